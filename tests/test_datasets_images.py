"""Data sets and images (mmpoolformer/datasets, mmpoolformer/apis/images.py;
docs/reliability.md): bad images in training and test sets named or skipped;
grayscale, RGBA and 16-bit images; one read per image; truncated and empty annotation
files and empty sets; the checks of the COCO API subclass; the inference API and the
web demo refusing what is not an image."""
import glob
import json
import os
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from helpers import (
    build_from_config,
    builtin_cls_options,
    builtin_coco_options,
    import_tool,
    one_line_error,
    run_tool,
    succeeded,
)
from mmpoolformer.utils.errors import DatasetError, UsageError

CLS = 'configs/classification/poolformer_s12_builtin.py'
MASKRCNN = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'



# --------------------------------------------------------------------------- #
# Bad images in a data set
# --------------------------------------------------------------------------- #
def _copy_cls_data(tiny_cls_data, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(tiny_cls_data, root)
    return root, sorted(glob.glob(str(root / 'train' / '*' / '*.png')))


@pytest.mark.parametrize('fault', ['truncated', 'corrupt'])
def test_bad_training_image_is_named(tiny_cls_data, tmp_path, fault):
    root, images = _copy_cls_data(tiny_cls_data, tmp_path)
    data = open(images[0], 'rb').read()
    open(images[0], 'wb').write(data[:len(data) // 2] if fault == 'truncated'
                                else b'not an image at all' * 10)
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(str(root)))
    name = re.escape(os.path.basename(images[0]))
    one_line_error(proc, rf"bad image .*{name}: .*(truncated|cannot be decoded).*bad_images='skip'")


def test_bad_training_image_can_be_skipped_with_a_warning(tiny_cls_data, tmp_path):
    root, images = _copy_cls_data(tiny_cls_data, tmp_path)
    open(images[0], 'wb').write(open(images[0], 'rb').read()[:100])
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(str(root)),
                    'train_dataloader.dataset.bad_images=skip')
    out = succeeded(proc)
    assert re.search(rf'skipped bad image .*{re.escape(os.path.basename(images[0]))}', out)
    assert os.path.isfile(tmp_path / 'work' / 'epoch_1.pth')


def _untrained_checkpoint(tmp_path):
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': build_from_config(CLS).state_dict()}, path)
    return path


@pytest.mark.parametrize('fault', ['truncated', 'not-an-image'])
def test_bad_test_image_is_named_by_tools_test(tiny_cls_data, tmp_path, fault):
    root = tmp_path / 'data'
    shutil.copytree(tiny_cls_data, root)
    bad = sorted(glob.glob(str(root / 'val' / '*' / '*.png')))[0]
    data = open(bad, 'rb').read()
    open(bad, 'wb').write(data[:len(data) // 2] if fault == 'truncated' else b'text' * 50)
    proc = run_tool('tools/test.py', CLS, _untrained_checkpoint(tmp_path),
                    '--work-dir', str(tmp_path / 'work'), *builtin_cls_options(str(root)))
    name = re.escape(os.path.basename(bad))
    one_line_error(proc, rf"bad image .*{name}: .*(truncated|cannot be decoded).*bad_images='skip'")


def test_bad_test_image_can_be_skipped_and_counted(tiny_cls_data, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(tiny_cls_data, root)
    images = sorted(glob.glob(str(root / 'val' / '*' / '*.png')))
    open(images[0], 'wb').write(b'not an image' * 20)
    proc = run_tool('tools/test.py', CLS, _untrained_checkpoint(tmp_path),
                    '--work-dir', str(tmp_path / 'work'), *builtin_cls_options(str(root)),
                    'test_dataloader.dataset.bad_images=skip')
    out = succeeded(proc)
    assert re.search(rf'skipped bad image .*{re.escape(os.path.basename(images[0]))}', out)
    assert f'skipped 1 of {len(images)} images of the test set' in out
    assert re.search(r'accuracy/top1: [\d.]+', out)


@pytest.mark.parametrize('config', ['configs/segmentation/fpn_poolformer_s12_ade20k.py',
                                    'configs/detection/retinanet_poolformer_s12.py',
                                    'configs/detection/retinanet_poolformer_s12_builtin.py'])
def test_bad_test_image_is_named_under_tta(tmp_path, config):
    """tools/test.py --tta tests with the config's tta_pipeline (enable_tta): the test
    set, built in the config's toolbox scope, loads with it and names a corrupt image."""
    from mmengine.registry import DATASETS, DefaultScope

    from helpers import ROOT
    from mmpoolformer.apis import load_config
    from mmpoolformer.apis.run import enable_tta
    cfg = load_config(os.path.join(ROOT, config))
    enable_tta(cfg)
    bad = tmp_path / 'ADE_val_00000001.jpg'
    bad.write_bytes(b'not an image at all' * 10)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    with pytest.raises(DatasetError, match=rf'^bad image {bad}: it cannot be decoded'):
        dataset.pipeline(dict(img_path=str(bad), seg_map_path=None, reduce_zero_label=True,
                              seg_fields=[], img_id=0, instances=[]))


@pytest.mark.parametrize('mode', ['gray', 'rgba', '16bit'])
def test_grayscale_rgba_and_16bit_images_load_as_8bit_bgr(tmp_path, mode):
    from mmpoolformer.datasets.transforms import LoadImageChecked
    rgb = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    image = {'gray': rgb[..., 0], 'rgba': np.dstack([rgb, np.full((37, 53), 128, np.uint8)]),
             '16bit': rgb.astype(np.uint16) * 257}[mode]
    path = str(tmp_path / f'{mode}.png')
    cv2.imwrite(path, image)
    img = LoadImageChecked().transform(dict(img_path=path))['img']
    assert img.shape == (37, 53, 3) and img.dtype == np.uint8
    expected = {'gray': np.repeat(rgb[..., :1], 3, 2), 'rgba': rgb, '16bit': rgb}[mode]
    assert np.array_equal(img, expected)
    model = build_from_config(CLS)
    with torch.no_grad():
        logits = model(torch.from_numpy(img).permute(2, 0, 1)[None].float(), mode='tensor')
    assert logits.shape == (1, 4) and torch.isfinite(logits).all()


def test_load_image_checked_reads_each_file_once(tmp_path, monkeypatch):
    """The file was once read for the check and again by mmcv's loader."""
    from mmengine.fileio.backends import LocalBackend

    from mmpoolformer.datasets.transforms import LoadImageChecked
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.full((5, 7, 3), 9, np.uint8))
    reads, real = [], LocalBackend.get
    monkeypatch.setattr(LocalBackend, 'get', lambda self, p: reads.append(p) or real(self, p))
    results = LoadImageChecked(to_float32=True).transform(dict(img_path=path))
    assert reads == [path]
    assert results['img'].shape == (5, 7, 3) and results['img'].dtype == np.float32
    assert results['img_shape'] == results['ori_shape'] == (5, 7)


# --------------------------------------------------------------------------- #
# Annotation files and empty data sets
# --------------------------------------------------------------------------- #
def test_truncated_coco_json_is_named(builtin_coco, tmp_path):
    root = tmp_path / 'coco'
    shutil.copytree(builtin_coco, root)
    ann = root / 'annotations' / 'instances_train2017.json'
    ann.write_text(ann.read_text()[:500])
    proc = run_tool('tools/train.py', MASKRCNN, '--work-dir', str(tmp_path / 'work'),
                    *builtin_coco_options(str(root), 'unused', num_workers=0),
                    'model.backbone.init_cfg=None')
    one_line_error(proc, r'instances_train2017\.json: not valid JSON')


def test_empty_coco_set_is_named(builtin_coco, tmp_path):
    root = tmp_path / 'coco'
    shutil.copytree(builtin_coco, root)
    ann = root / 'annotations' / 'instances_train2017.json'
    content = json.loads(ann.read_text())
    content.update(images=[], annotations=[])
    ann.write_text(json.dumps(content))
    proc = run_tool('tools/train.py', MASKRCNN, '--work-dir', str(tmp_path / 'work'),
                    *builtin_coco_options(str(root), 'unused', num_workers=0),
                    'model.backbone.init_cfg=None')
    one_line_error(proc, r'instances_train2017\.json: the data set is empty')


def test_empty_image_folder_is_named(tmp_path):
    for split in ('train', 'val'):
        os.makedirs(tmp_path / 'data' / split)
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(str(tmp_path / 'data')))
    one_line_error(proc, r'empty data set: .*data/train')


def test_empty_segmentation_set_is_named(builtin_ade20k, tmp_path):
    root = tmp_path / 'ade'
    shutil.copytree(builtin_ade20k, root)
    for path in glob.glob(str(root / '**' / 'training' / '*'), recursive=True):
        os.remove(path)
    from helpers import builtin_seg_options
    proc = run_tool('tools/train.py', 'configs/segmentation/fpn_poolformer_s12_builtin.py',
                    '--work-dir', str(tmp_path / 'work'),
                    *builtin_seg_options(str(root), 'unused', num_workers=0),
                    'model.backbone.init_cfg=None')
    one_line_error(proc, r'segmentation data set is empty')


def test_coco_checks_live_in_a_coco_api_subclass(tmp_path):
    """ValidatedCocoDataset once shadowed COCOAPI on the instance during a load."""
    from mmdet.datasets import CocoDataset

    from mmpoolformer.datasets import ValidatedCocoDataset
    api = ValidatedCocoDataset.COCOAPI
    assert api is not CocoDataset.COCOAPI and issubclass(api, CocoDataset.COCOAPI)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(DatasetError, match='bad.json: not valid JSON'):
        api(str(bad))
    stray = tmp_path / 'stray.json'
    stray.write_text(json.dumps(dict(images=[dict(id=1, file_name='a.jpg')], categories=[
        dict(id=1, name='cat')], annotations=[dict(id=3, image_id=2, category_id=1)])))
    with pytest.raises(DatasetError, match='annotation 3 points at image_id 2'):
        api(str(stray))


# --------------------------------------------------------------------------- #
# The web demo and the inference API
# --------------------------------------------------------------------------- #
def test_inference_api_refuses_non_images_and_huge_images(tmp_path):
    from mmpoolformer.apis import check_image, inference
    text = tmp_path / 'notes.png'
    text.write_text('this is not an image')
    with pytest.raises(UsageError, match=r'notes\.png is not an image'):
        inference(CLS, None, str(text))
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(UsageError,
                       match=r'big\.png is 400x300 = 120000 pixels, above the limit of 100000'):
        inference(CLS, None, str(big), max_pixels=100_000)
    with pytest.raises(UsageError, match=r'not an image \(got array of shape \(5,\)\)'):
        check_image(np.zeros(5))
    proc = run_tool('tools/inference.py', CLS, 'none.pth', str(text))
    one_line_error(proc, r'notes\.png is not an image')
    # A folder: every file the inferencer would read is checked, whatever its name.
    folder = tmp_path / 'folder'
    folder.mkdir()
    cv2.imwrite(str(folder / 'small.png'), np.zeros((20, 20, 3), np.uint8))
    shutil.copy(big, folder / 'big.jpg.bak')
    with pytest.raises(UsageError, match=r'big\.jpg\.bak is 400x300 = 120000 pixels'):
        inference(CLS, None, str(folder), max_pixels=100_000)
    (folder / 'big.jpg.bak').unlink()
    (folder / 'README').write_text('these are test images')
    with pytest.raises(UsageError, match=r'README is not an image'):
        inference(CLS, None, str(folder))


def test_web_demo_refuses_bad_uploads_and_keeps_serving(builtin_classifier):
    import gradio as gr

    app = import_tool('tools/demo/app.py')
    predict, _ = app.make_predictor(CLS, builtin_classifier[1])
    app_fn = app.guarded(predict, max_pixels=128 * 128)
    for bad, message in [(None, 'no image was uploaded'),
                         (np.zeros((4, )), 'not an image'),
                         (np.zeros((200, 200, 3), np.uint8),
                          r'200x200 = 40000 pixels, above the limit')]:
        with pytest.raises(gr.Error, match=message):
            app_fn(bad)
    top5 = app_fn(np.full((64, 64, 3), 200, np.uint8))  # the next request is served
    assert len(top5) == 4 and abs(sum(top5.values()) - 1) < 1e-3
