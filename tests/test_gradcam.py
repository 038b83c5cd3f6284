"""Grad-CAM for PoolFormer and the comparison models."""
import glob

import cv2

from helpers import import_tool, run_tool
from mmpoolformer.visualization import cam

comparison = import_tool('tools/visualization/cam_comparison.py')


def test_poolformer_cam_png_from_the_trained_classifier(builtin_classifier, tiny_cls_data,
                                                        tmp_path):
    image = sorted(glob.glob(f'{tiny_cls_data}/val/square/*.png'))[0]
    out = str(tmp_path / 'cam.png')
    proc = run_tool('tools/visualization/gradcam.py', image,
                    'configs/classification/poolformer_s12_builtin.py',
                    '--checkpoint', builtin_classifier[1], '--out', out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cv2.imread(out).shape == (224, 224, 3)
    model = comparison.build_model('configs/classification/poolformer_s12_builtin.py',
                            builtin_classifier[1])
    _, heat, _ = cam.grad_cam(model, image, 'backbone.stages.-1')
    assert heat.shape == (224, 224) and heat.std() > 0.01


def test_side_by_side_with_resnet_and_deit(tiny_cls_data, tmp_path):
    image = sorted(glob.glob(f'{tiny_cls_data}/val/circle/*.png'))[0]
    out = str(tmp_path / 'cams.png')
    proc = run_tool('tools/visualization/gradcam.py', image, '--compare', 'poolformer',
                    'resnet', 'deit', '--out', out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    picture = cv2.imread(out)
    assert picture.shape == (224 + 28, 3 * 224, 3)
    for name in ('resnet', 'deit'):
        model = comparison.build_model(comparison.COMPARISON_MODELS[name][0])
        _, heat, _ = cam.grad_cam(model, image, *comparison.COMPARISON_MODELS[name][1:])
        assert heat.std() > 0.01, name
