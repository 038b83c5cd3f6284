"""The worked examples of docs/finetune.md, run as written on generated data.

Every config block of the page (a python block whose first line is
``# my_configs/NAME.py``) is written under tmp_path next to a link to configs/,
as a user keeps it in the repository, and trained with tools/train.py; the
command-line options only point it at the generated data and a local ImageNet
checkpoint and make the run tiny. The 1000-class "ImageNet checkpoints" are
built here with random weights (nothing can be downloaded).
"""
import json
import os
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from helpers import (
    ROOT,
    build_from_config,
    loader_options,
    one_line_error,
    randomize_,
    run_tool,
    succeeded,
)

DOC = os.path.join(ROOT, 'docs', 'finetune.md')
FRUIT = ('apple', 'banana', 'cherry')


@pytest.fixture
def doc_configs(tmp_path):
    """{file name: path} of the doc's configs, written as the doc shows them."""
    blocks = re.findall(r'```python\n(# (my_configs/[\w.-]+\.py)\n.*?)```',
                        open(DOC).read(), re.S)
    assert len(blocks) == 4, 'docs/finetune.md should hold four example configs'
    os.symlink(os.path.join(ROOT, 'configs'), tmp_path / 'configs')
    (tmp_path / 'my_configs').mkdir()
    for text, name in blocks:
        (tmp_path / name).write_text(text)
    return {os.path.basename(name): str(tmp_path / name) for _, name in blocks}



def _state_dict(path):
    from mmpoolformer.checkpoint import get_state_dict, load_file
    return get_state_dict(load_file(path))


@pytest.fixture(scope='module')
def imagenet_s12(tmp_path_factory):
    """A 1000-class PoolFormer-S12 with random weights, saved in the official
    sail-sg and the mmpretrain layouts. Returns ({layout: path}, our state dict)."""
    from mmpoolformer.checkpoint import convert_from_mmpoolformer
    tmp = tmp_path_factory.mktemp('imagenet_s12')
    state_dict = randomize_(build_from_config(
        'configs/classification/poolformer_s12_in1k.py')).state_dict()
    paths = {'official': str(tmp / 'poolformer_s12.pth.tar'),
             'mmpretrain': str(tmp / 'poolformer-s12_in1k.pth')}
    for layout, path in paths.items():
        torch.save(convert_from_mmpoolformer(state_dict, layout), path)
    return paths, state_dict


# --------------------------------------------------------------------------- #
# 1. Classification
# --------------------------------------------------------------------------- #
@pytest.fixture(scope='module')
def flowers(tmp_path_factory):
    """An image folder with 3 classes (4 / 2 images each, 64x64)."""
    from mmpoolformer.datasets.builtin import make_classification_set
    root = tmp_path_factory.mktemp('flowers')
    make_classification_set(str(root), splits=(('train', 4), ('val', 2)), seed=3)
    for split in ('train', 'val'):
        shutil.rmtree(root / split / 'cross')
    return str(root)


@pytest.mark.slow
@pytest.mark.parametrize('config, layout', [
    ('poolformer_s12_flowers.py', 'official'),            # load_from, head skipped
    ('poolformer_s12_flowers_backbone.py', 'mmpretrain'),  # backbone init_cfg
])
def test_classifier_finetunes_from_imagenet_weights(doc_configs, flowers, imagenet_s12,
                                                    tmp_path, config, layout):
    paths, imagenet = imagenet_s12
    weights = (f'load_from={paths[layout]}' if config.endswith('flowers.py') else
               f'model.backbone.init_cfg.checkpoint={paths[layout]}')
    work = str(tmp_path / 'work')
    # lr 0: the saved weights are exactly what was loaded.
    out = succeeded(run_tool(
        'tools/train.py', doc_configs[config], '--work-dir', work, '--auto-scale-lr',
        '--cfg-options', weights, *loader_options(flowers, 0), 'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=6', 'optim_wrapper.optimizer.lr=0'))
    assert 'data_preprocessor.num_classes 1000 -> 3' in out
    trained = _state_dict(os.path.join(work, 'epoch_1.pth'))
    for key in ('backbone.stem.conv.weight', 'backbone.stages.3.blocks.1.mlp.fc2.weight',
                'backbone.norm3.weight'):
        assert torch.equal(trained[key], imagenet[key]), key
    assert trained['head.fc.weight'].shape == (3, 512)
    skipped = re.findall(r'skipped \d+ tensors whose shapes differ', out)
    if config.endswith('flowers.py'):
        assert skipped == ['skipped 2 tensors whose shapes differ'], out[-3000:]
        assert 'head.fc.weight: checkpoint (1000, 512), model (3, 512)' in out
        assert 'head.fc.bias: checkpoint (1000,), model (3,)' in out
        assert 'missing keys' not in out  # named once, not again by mmengine
    else:
        assert skipped == []


def test_class_count_must_match_the_folders(doc_configs, flowers, tmp_path):
    proc = run_tool('tools/train.py', doc_configs['poolformer_s12_flowers.py'],
                    '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                    *loader_options(flowers, 0), 'model.head.num_classes=4')
    one_line_error(proc, r'model\.head\.num_classes is 4, but .*flowers\d*/train \(a class '
                          r'per sub-folder\) has 3 classes')
    assert not (tmp_path / 'work').exists()


def test_backbone_of_another_arch_is_still_an_error(doc_configs, flowers, tmp_path):
    """Only heads are skipped: an M36 stem (and head) in an S12 is an error."""
    m36 = str(tmp_path / 'm36.pth')
    torch.save({'backbone.stem.conv.weight': torch.zeros(96, 3, 7, 7),
                'head.fc.weight': torch.zeros(1000, 768)}, m36)
    proc = run_tool('tools/train.py', doc_configs['poolformer_s12_flowers.py'],
                    '--work-dir', str(tmp_path / 'work'), '--cfg-options', f'load_from={m36}',
                    *loader_options(flowers, 0), 'train_cfg.max_epochs=1')
    one_line_error(proc, r"m36\.pth: shape mismatch for 'backbone\.stem\.conv\.weight': "
                          r'checkpoint has \(96, 3, 7, 7\), model has \(64, 3, 7, 7\)')
    assert not os.path.exists(tmp_path / 'work' / 'epoch_1.pth')


# --------------------------------------------------------------------------- #
# 2. Detection and instance segmentation
# --------------------------------------------------------------------------- #
@pytest.fixture(scope='module')
def fruit(tmp_path_factory):
    """COCO layout with the doc's file names and class names (3 of the 4 drawn
    shapes, renamed; the fourth shape's annotations removed)."""
    from mmpoolformer.datasets.builtin import make_coco_set
    root = tmp_path_factory.mktemp('fruit')
    make_coco_set(str(root), splits=(('train', 4), ('val', 2)), seed=3)
    for split in ('train', 'val'):
        path = root / 'annotations' / f'instances_{split}.json'
        content = json.loads(path.read_text())
        content['categories'] = [dict(id=i + 1, name=name) for i, name in enumerate(FRUIT)]
        content['annotations'] = [a for a in content['annotations'] if a['category_id'] <= 3]
        path.write_text(json.dumps(content))
    return str(root)


def _fruit_options(root, pretrained):
    """Point the doc's detection config at root, with small images."""
    ann = f'{root}/annotations/instances_val.json'
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}',
            *loader_options(root, 0), f'val_evaluator.ann_file={ann}',
            f'test_evaluator.ann_file={ann}', 'train_cfg.max_epochs=1',
            'train_dataloader.batch_size=2',
            'train_dataloader.dataset.pipeline.2.scale=(192,160)',
            'val_dataloader.dataset.pipeline.1.scale=(192,160)']


@pytest.mark.slow
def test_detector_heads_follow_the_class_list(doc_configs, fruit, imagenet_s12, tmp_path):
    work = str(tmp_path / 'work')
    out = succeeded(run_tool('tools/train.py', doc_configs['maskrcnn_poolformer_s12_fruit.py'],
                             '--work-dir', work, '--auto-scale-lr',
                             *_fruit_options(fruit, imagenet_s12[0]['official'])))
    assert ('num_classes follows the classes: model.roi_head.bbox_head.num_classes 80 -> 3, '
            'model.roi_head.mask_head.num_classes 80 -> 3') in out
    trained = _state_dict(os.path.join(work, 'epoch_1.pth'))
    assert trained['roi_head.bbox_head.fc_cls.weight'].shape[0] == 3 + 1  # + background
    assert trained['roi_head.mask_head.conv_logits.weight'].shape[0] == 3


def test_detector_num_classes_set_by_hand_must_agree(doc_configs, fruit, tmp_path):
    work = tmp_path / 'work'
    proc = run_tool('tools/train.py', doc_configs['maskrcnn_poolformer_s12_fruit.py'],
                    '--work-dir', str(work), *_fruit_options(fruit, 'unused'),
                    'model.roi_head.mask_head.num_classes=4')
    one_line_error(proc, r'model\.roi_head\.mask_head\.num_classes is 4, but '
                          r'train_dataloader\.dataset\.metainfo\.classes has 3 classes')
    assert not work.exists()  # stopped before the Runner wrote anything


def test_retinanet_follows_and_checks_the_class_list(doc_configs):
    """The doc's "inherit retinanet_poolformer_s12.py instead"; config preparation only."""
    from mmpoolformer.apis import load_config
    from mmpoolformer.utils.errors import ConfigError
    path = doc_configs['maskrcnn_poolformer_s12_fruit.py']
    text = open(path).read().replace('maskrcnn_poolformer_s12.py', 'retinanet_poolformer_s12.py')
    retinanet = os.path.join(os.path.dirname(path), 'retinanet_poolformer_s12_fruit.py')
    open(retinanet, 'w').write(text)
    assert load_config(retinanet).model.bbox_head.num_classes == 3
    with pytest.raises(ConfigError, match=r'model\.bbox_head\.num_classes is 5, but .* has 3 '):
        load_config(retinanet, {'model.bbox_head.num_classes': 5})
    with pytest.raises(ConfigError, match=r'val_dataloader\.dataset\.metainfo\.classes is not set'):
        load_config(retinanet, {'val_dataloader.dataset.metainfo': None})


def test_unknown_class_name_is_named(doc_configs, fruit, tmp_path):
    classes = '(apple,banan,cherry)'
    proc = run_tool('tools/train.py', doc_configs['maskrcnn_poolformer_s12_fruit.py'],
                    '--work-dir', str(tmp_path / 'work'), *_fruit_options(fruit, 'unused'),
                    'model.backbone.init_cfg=None',
                    *[f'{loader}.dataset.metainfo.classes={classes}'
                      for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')])
    one_line_error(proc, r"instances_train\.json: metainfo class 'banan' is not the name of a "
                          r"category; .* \(did you mean 'banana'\?\)")


# --------------------------------------------------------------------------- #
# 3. Semantic segmentation
# --------------------------------------------------------------------------- #
def _streets(root, reduce_zero_label, splits):
    """ADE20K-layout label maps of 5 classes: stored 1..5 with 0 = ignore as drawn
    (reduce_zero_label), or rewritten to 0..4 with 255 = ignore."""
    from mmpoolformer.datasets.builtin import make_ade20k_set
    make_ade20k_set(root, splits=splits, seed=3)
    maps = sorted(os.path.join(folder, name) for folder, _, names in
                  os.walk(os.path.join(root, 'annotations')) for name in names)
    if not reduce_zero_label:
        for path in maps:
            label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            cv2.imwrite(path, np.where(label == 0, 255, label - 1).astype(np.uint8))
    return maps


def _streets_options(root, reduce_zero_label, pretrained):
    datasets = ('train_dataloader.dataset.dataset', 'val_dataloader.dataset',
                'test_dataloader.dataset')  # the training set inside a RepeatDataset
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}',
            *[f'{key}.data_root={root}' for key in datasets],
            *[f'{key}.reduce_zero_label={reduce_zero_label}' for key in datasets],
            *[f'{loader}_dataloader.{option}' for loader in ('train', 'val', 'test')
              for option in ('num_workers=0', 'persistent_workers=False')],
            'train_dataloader.batch_size=2', 'train_cfg.max_iters=1',
            'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1']


@pytest.mark.slow
@pytest.mark.parametrize('reduce_zero_label', [False, True])
def test_segmentor_follows_the_class_list(doc_configs, imagenet_s12, tmp_path,
                                          reduce_zero_label):
    root = str(tmp_path / 'streets')
    _streets(root, reduce_zero_label, (('training', 2), ('validation', 1)))
    out = succeeded(run_tool('tools/train.py', doc_configs['fpn_poolformer_s12_streets.py'],
                             '--work-dir', str(tmp_path / 'work'),
                             *_streets_options(root, reduce_zero_label,
                                               imagenet_s12[0]['official'])))
    assert 'model.decode_head.num_classes 150 -> 5' in out
    assert re.search(r'mIoU: \d', out)
    trained = _state_dict(str(tmp_path / 'work' / 'iter_1.pth'))
    assert trained['decode_head.conv_seg.weight'].shape[0] == 5


@pytest.mark.parametrize('reduce_zero_label, bad', [(False, 5), (True, 6)])
def test_label_value_outside_the_classes_is_named(doc_configs, tmp_path,
                                                  reduce_zero_label, bad):
    root = str(tmp_path / 'streets')
    maps = _streets(root, reduce_zero_label, (('training', 1), ('validation', 1)))
    culprit = next(p for p in maps if 'training' in p)
    label = cv2.imread(culprit, cv2.IMREAD_UNCHANGED)
    label[3, 4] = bad
    cv2.imwrite(culprit, label)
    proc = run_tool('tools/train.py', doc_configs['fpn_poolformer_s12_streets.py'],
                    '--work-dir', str(tmp_path / 'work'),
                    *_streets_options(root, reduce_zero_label, 'unused'),
                    'model.backbone.init_cfg=None')
    one_line_error(proc, rf'{re.escape(culprit)}: label value\(s\) \[{bad}\] outside the 5 '
                          rf'classes .*reduce_zero_label={reduce_zero_label}\)')
    assert not os.path.exists(tmp_path / 'work' / 'iter_1.pth')
