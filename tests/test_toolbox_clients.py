"""The doors OpenMMLab users come in by, on models trained here: plain ``torch.load``,
mmengine's ``load_checkpoint``, mmpretrain's ``ImageClassificationInferencer`` and
``get_model``, mmdet's ``DetInferencer``, mmseg's ``MMSegInferencer`` and
``init_model``, and the toolboxes' own tools/train.py and tools/test.py through
``mim train/test <toolbox>``. No project wrapper is on the path of any of them.

The trained models are the suite's session fixtures (the main job's own with
MMPOOLFORMER_REUSE_MAIN_JOB=1), so these tests add inference, not training.
"""
import glob
import json
import os
import re

import cv2
import numpy as np
import pytest
import torch
from conftest import FPN_BUILTIN, MASKRCNN_BUILTIN

from helpers import (
    ROOT,
    builtin_cls_options,
    builtin_coco_options,
    builtin_seg_options,
    run_tool,
    succeeded,
)

CLS_BUILTIN = 'configs/classification/poolformer_s12_builtin.py'


def _config(path):
    return os.path.join(ROOT, path)


def _mim(*args, timeout=900):
    """``python -m mim ...`` from the repository root, as a user runs it."""
    return run_tool('-m', 'mim', *args, timeout=timeout)


# --- checkpoints ---------------------------------------------------------------------------
def test_message_hub_and_numpy_values_survive_the_weights_only_round_trip():
    """What mmengine puts beside the weights comes back from a weights-only load as
    the same objects, dtypes and bits, so a resume restores the same state."""
    import io

    from mmengine.logging import HistoryBuffer, MessageHub

    from mmpoolformer.checkpoint.weights_only import from_weights_only, to_weights_only
    hub = MessageHub('weights_only_round_trip')
    for step, loss in enumerate([2.5, 1.25, 0.1 + 0.2]):
        hub.update_scalar('train/loss', loss)
        hub.update_scalar('train/lr', np.float32(1e-3 / (step + 1)), count=2)
    hub.update_info('best_score', np.float64(0.1 + 0.2))
    hub.update_info('iter', 3)
    hub.update_info('counts', np.arange(6, dtype=np.int16).reshape(2, 3))
    hub.update_info('names', np.array(['circle', 'square']))
    checkpoint = dict(message_hub=hub.state_dict(), meta=dict(seed=np.int64(7), epoch=1))

    buffer = io.BytesIO()
    torch.save(to_weights_only(checkpoint), buffer)
    buffer.seek(0)
    loaded = from_weights_only(torch.load(buffer))  # torch's default: weights_only=True

    scalars = loaded['message_hub']['log_scalars']
    for key, saved in checkpoint['message_hub']['log_scalars'].items():
        assert isinstance(scalars[key], HistoryBuffer)
        for got, want in zip(scalars[key].data, saved.data):
            assert got.dtype == want.dtype and np.array_equal(got, want), key
        assert scalars[key].max_length == saved.max_length
    info, saved_info = loaded['message_hub']['runtime_info'], checkpoint['message_hub'][
        'runtime_info']
    assert type(info['best_score']) is np.float64 and info['best_score'] == 0.1 + 0.2
    assert type(info['iter']) is int
    for key in ('counts', 'names'):
        assert info[key].dtype == saved_info[key].dtype
        assert np.array_equal(info[key], saved_info[key])
    assert type(loaded['meta']['seed']) is np.int64 and loaded['meta']['seed'] == 7
    restored = MessageHub('weights_only_restored')
    restored.load_state_dict(loaded['message_hub'])
    assert restored.get_scalar('train/loss').mean() == hub.get_scalar('train/loss').mean()


def test_a_value_torch_would_refuse_is_named_on_save():
    from mmpoolformer.checkpoint.weights_only import to_weights_only
    unsupported = []
    to_weights_only(dict(meta=dict(when=range(3))), 'checkpoint', unsupported)
    assert unsupported == ["checkpoint['meta']['when'] (builtins.range)"]


@pytest.mark.slow
def test_checkpoints_load_with_plain_torch_load_and_old_ones_still_resume(tiny_cls_data,
                                                                           tmp_path):
    """Every checkpoint training writes (by epoch, by iteration, the best one) loads
    with torch.load's default weights_only=True and into a model with mmengine's
    load_checkpoint. A checkpoint saved without the hook (as before it) is refused by
    plain torch.load, and still resumes through tools/train.py."""
    from mmengine.runner import load_checkpoint

    from mmpoolformer.apis import build_model
    work = tmp_path / 'work'
    succeeded(run_tool('tools/train.py', CLS_BUILTIN, '--work-dir', str(work),
                       *builtin_cls_options(tiny_cls_data, max_epochs=2),
                       'default_hooks.checkpoint.save_best=accuracy/top1',
                       'default_hooks.checkpoint.rule=greater'))
    saved = sorted(os.path.basename(p) for p in glob.glob(str(work / '*.pth')))
    assert {'epoch_1.pth', 'epoch_2.pth'} <= set(saved), saved
    assert any(name.startswith('best_accuracy_top1') for name in saved), saved
    for name in saved:
        checkpoint = torch.load(work / name)
        # the image folder's class folders, in their sorted order
        assert checkpoint['meta']['dataset_meta']['classes'] == (
            'circle', 'cross', 'square', 'triangle')
        assert 'train/loss' in checkpoint['message_hub']['log_scalars'], name
    model = build_model(_config(CLS_BUILTIN))
    load_checkpoint(model, str(work / 'epoch_2.pth'), strict=True)

    # A checkpoint as mmengine alone writes it: the message hub's objects themselves.
    from mmpoolformer.checkpoint.weights_only import from_weights_only
    old = tmp_path / 'old'
    old.mkdir()
    torch.save(from_weights_only(torch.load(work / 'epoch_1.pth')), old / 'epoch_1.pth')
    with pytest.raises(Exception, match='HistoryBuffer'):
        torch.load(old / 'epoch_1.pth')
    out = succeeded(run_tool('tools/train.py', CLS_BUILTIN, '--work-dir', str(old),
                             '--resume', str(old / 'epoch_1.pth'),
                             *builtin_cls_options(tiny_cls_data, max_epochs=2)))
    assert re.search(r'resumed epoch: 1, iter: \d+', out)
    assert 'Epoch(train) [2]' in out and os.path.isfile(old / 'epoch_2.pth')


# --- inferencers -------------------------------------------------------------------------
def _classification_val_set(builtin_classifier) -> list:
    """(path, class name) of ten validation images of each class."""
    work = builtin_classifier[0]
    root = (os.path.join(ROOT, 'data/builtin/imagenet') if work.startswith(ROOT)
            else os.path.join(os.path.dirname(work), 'data'))
    images = []
    for folder in sorted(glob.glob(os.path.join(root, 'val', '*'))):
        images += [(p, os.path.basename(folder)) for p in sorted(glob.glob(f'{folder}/*'))[:10]]
    assert len(images) == 40, root
    return images


# Measured top-1 of the built-in classifier on its val set: 87.0 (its metafile); the
# same 40 images through each client: see the assertion messages.
MIN_CLIENT_TOP1 = 0.7


@pytest.mark.slow
def test_mmpretrain_inferencer_and_get_model_take_the_trained_classifier(builtin_classifier):
    from mmpretrain.apis import ImageClassificationInferencer, get_model
    images = _classification_val_set(builtin_classifier)
    inferencer = ImageClassificationInferencer(_config(CLS_BUILTIN),
                                               pretrained=builtin_classifier[1], device='cpu')
    paths, truth = zip(*images)
    from_paths = [r['pred_class'] for r in inferencer(list(paths))]
    arrays = [cv2.imread(p) for p in paths]  # BGR, as the inferencer's own loader reads
    from_arrays = [r['pred_class'] for r in inferencer(arrays)]
    top1 = np.mean([p == t for p, t in zip(from_paths, truth)])
    assert top1 >= MIN_CLIENT_TOP1, f'top-1 {top1:.3f} on {len(truth)} val images'
    assert from_arrays == from_paths

    # get_model loads the checkpoint itself (mmengine's load_checkpoint) and takes the
    # class names from its meta; the inferencer takes the model it built.
    model = get_model(_config(CLS_BUILTIN), pretrained=builtin_classifier[1], device='cpu')
    from_model = ImageClassificationInferencer(model, device='cpu')(list(paths[:8]))
    assert [r['pred_class'] for r in from_model] == from_paths[:8]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


# Measured Mask R-CNN box mAP on the built-in val set: 0.639 (the main job's); the
# share of ground-truth shapes found on 12 images: see the assertion message.
MIN_SHAPES_FOUND = 0.6


@pytest.mark.slow
def test_mmdet_inferencer_takes_the_trained_maskrcnn(trained_maskrcnn, builtin_coco):
    """mmdet's DetInferencer with the config and checkpoint: from paths and from
    arrays, each ground-truth shape is found with its class (IoU 0.5, score 0.3) and
    a non-empty mask."""
    from mmdet.apis import DetInferencer
    coco = json.load(open(f'{builtin_coco}/annotations/instances_val2017.json'))
    names = {c['id']: c['name'] for c in coco['categories']}
    images = coco['images'][:12]
    paths = [f'{builtin_coco}/val2017/{image["file_name"]}' for image in images]
    inferencer = DetInferencer(model=_config(MASKRCNN_BUILTIN), weights=trained_maskrcnn[1],
                               device='cpu')
    classes = inferencer.model.dataset_meta['classes']
    from_paths = inferencer(paths, return_datasamples=True, no_save_vis=True)['predictions']
    from_arrays = inferencer([cv2.imread(p) for p in paths], return_datasamples=True,
                             no_save_vis=True)['predictions']
    found = total = 0
    for image, by_path, by_array in zip(images, from_paths, from_arrays):
        assert torch.allclose(by_path.pred_instances.bboxes, by_array.pred_instances.bboxes)
        pred = by_path.pred_instances[by_path.pred_instances.scores >= 0.3]
        assert (pred.masks.flatten(1).sum(1) > 0).all(), image['file_name']
        for ann in (a for a in coco['annotations'] if a['image_id'] == image['id']):
            x, y, w, h = ann['bbox']
            total += 1
            found += any(classes[label] == names[ann['category_id']]
                         and _iou(box, (x, y, x + w, y + h)) >= 0.5
                         for box, label in zip(pred.bboxes.tolist(), pred.labels.tolist()))
    assert found / total >= MIN_SHAPES_FOUND, f'{found} of {total} shapes found'


# Measured Semantic FPN on the built-in val set: mIoU 68.1 (its metafile); pixel
# accuracy through the clients on 8 images: see the assertion message.
MIN_PIXEL_ACCURACY = 0.8


@pytest.mark.slow
def test_mmseg_inferencer_and_init_model_take_the_trained_fpn(trained_fpn, builtin_ade20k):
    """mmseg's MMSegInferencer and init_model / inference_model with the config and
    checkpoint: the label maps they predict, from paths and arrays, match the
    ground truth (label value 0 = ignore, class k stored as k + 1)."""
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    paths = sorted(glob.glob(f'{builtin_ade20k}/images/validation/*.jpg'))[:8]
    labels = [cv2.imread(p.replace('/images/validation/', '/annotations/validation/')
                         .replace('.jpg', '.png'), cv2.IMREAD_UNCHANGED) for p in paths]
    inferencer = MMSegInferencer(model=_config(FPN_BUILTIN), weights=trained_fpn[1],
                                 device='cpu')
    from_paths = inferencer(paths, return_datasamples=True)
    from_arrays = inferencer([cv2.imread(p) for p in paths], return_datasamples=True)
    model = init_model(_config(FPN_BUILTIN), trained_fpn[1], device='cpu')
    from_init_model = inference_model(model, paths)
    correct = counted = 0
    for label, *results in zip(labels, from_paths, from_arrays, from_init_model):
        maps = [r.pred_sem_seg.data[0].numpy() for r in results]
        assert np.array_equal(maps[0], maps[1]) and np.array_equal(maps[0], maps[2])
        annotated = label > 0
        correct += int((maps[0][annotated] + 1 == label[annotated]).sum())
        counted += int(annotated.sum())
    assert correct / counted >= MIN_PIXEL_ACCURACY, f'pixel accuracy {correct / counted:.3f}'


# --- the toolboxes' own tools --------------------------------------------------------------
def _metric(out: str, name: str) -> float:
    return float(re.findall(rf'{re.escape(name)}: (-?[\d.]+)', out)[-1])


@pytest.mark.slow
def test_mim_test_of_each_toolbox_takes_the_trained_models(builtin_classifier,
                                                           trained_maskrcnn, builtin_coco,
                                                           trained_fpn, builtin_ade20k,
                                                           tmp_path):
    """mmpretrain's, mmdet's and mmseg's own tools/test.py (``mim test <toolbox>``)
    evaluate the checkpoints trained here on the built-in val sets."""
    val_image = _classification_val_set(builtin_classifier)[0][0]  # ROOT/val/CLASS/IMAGE
    cls_root = os.path.dirname(os.path.dirname(os.path.dirname(val_image)))
    out = succeeded(_mim('test', 'mmpretrain', _config(CLS_BUILTIN), '--checkpoint',
                         builtin_classifier[1], '--work-dir', str(tmp_path / 'cls'),
                         *builtin_cls_options(cls_root)))
    assert _metric(out, 'accuracy/top1') >= 70.0  # the test of test_learning.py
    out = succeeded(_mim('test', 'mmdet', _config(MASKRCNN_BUILTIN), '--checkpoint',
                         trained_maskrcnn[1], '--work-dir', str(tmp_path / 'det'),
                         *builtin_coco_options(builtin_coco, 'unused', num_workers=0)))
    assert _metric(out, 'coco/bbox_mAP') >= 0.8  # test_detection.py's threshold
    out = succeeded(_mim('test', 'mmseg', _config(FPN_BUILTIN), '--checkpoint', trained_fpn[1],
                         '--work-dir', str(tmp_path / 'seg'),
                         *builtin_seg_options(builtin_ade20k, 'unused', num_workers=0)))
    assert _metric(out, 'mIoU') >= 50.0  # test_segmentation.py's threshold


# A few images and iterations: what is checked is that the tools train, save, resume and
# test, not what the model learns.
TOOLBOX_RUNS = {
    'mmpretrain': (CLS_BUILTIN, 'epoch', lambda data, classifier, n: [
        *builtin_cls_options(data['cls'], max_epochs=n)]),
    'mmdet': (MASKRCNN_BUILTIN, 'epoch', lambda data, classifier, n: [
        *builtin_coco_options(data['coco'], classifier, num_workers=0),
        f'train_cfg.max_epochs={n}', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1', 'train_dataloader.dataset.indices=4',
        'val_dataloader.dataset.indices=4']),
    'mmseg': (FPN_BUILTIN, 'iter', lambda data, classifier, n: [
        *builtin_seg_options(data['ade20k'], classifier, num_workers=0),
        f'train_cfg.max_iters={2 * n}', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
        'val_dataloader.dataset.indices=4']),
}


@pytest.mark.slow
@pytest.mark.parametrize('toolbox', list(TOOLBOX_RUNS))
def test_mim_train_of_each_toolbox_trains_saves_resumes_and_tests(
        toolbox, tiny_cls_data, builtin_coco, builtin_ade20k, builtin_classifier, tmp_path):
    """``mim train <toolbox> CONFIG`` runs the toolbox's own tools/train.py on the
    config: it trains and saves; run again with ``--resume`` and a longer schedule it
    continues from the saved checkpoint; ``mim test <toolbox>`` evaluates the result.
    The checkpoints load with plain torch.load."""
    config, unit, options = TOOLBOX_RUNS[toolbox]
    data = dict(cls=tiny_cls_data, coco=builtin_coco, ade20k=builtin_ade20k)
    work = str(tmp_path / 'work')
    first, last = (f'{unit}_{n}.pth' for n in ((1, 2) if unit == 'epoch' else (2, 4)))

    def train(epochs, *extra):
        return succeeded(_mim('train', toolbox, _config(config), '--work-dir', work,
                              *extra, '--cfg-options',
                              *options(data, builtin_classifier[1], epochs)[1:]))

    train(1)
    assert torch.load(os.path.join(work, first))['meta'][unit] == (1 if unit == 'epoch' else 2)
    out = train(2, '--resume')
    assert re.search(r'resumed epoch: \d+, iter: \d+', out), out[-2000:]
    assert f'Load checkpoint from {os.path.join(work, first)}' in out
    resumed = torch.load(os.path.join(work, last))
    assert resumed['meta'][unit] == (2 if unit == 'epoch' else 4)
    out = succeeded(_mim('test', toolbox, _config(config), '--checkpoint',
                         os.path.join(work, last), '--work-dir', work, '--cfg-options',
                         *options(data, 'unused', 2)[1:]))
    assert re.search(r'(accuracy/top1|coco/bbox_mAP|mIoU): [\d.]+', out)
