import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
torch.set_num_threads(os.cpu_count() or 1)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter distinct random values, so that parity checks cannot
    pass through default initialisations (layer scale 1e-5, GN weight 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1
                        + (1.0 if 'norm' in name and name.endswith('weight') else 0.0))
    return module


def build_from_config(path, **overrides):
    from mmpoolformer.apis import build_model
    return build_model(os.path.join(ROOT, path), overrides or None).eval()


def dense_predict_data(model, sizes, seed=0) -> dict:
    """A preprocessed predict batch for a detector or segmentor: random uint8
    images of these (h, w) sizes, with the metainfo their predict steps read."""
    gen = torch.Generator().manual_seed(seed)
    images, samples = [], []
    for h, w in sizes:
        images.append(torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=gen))
        if type(model).__module__.startswith('mmdet'):
            from mmdet.structures import DetDataSample
            samples.append(DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                                       scale_factor=(1.0, 1.0))))
        else:
            from mmseg.structures import SegDataSample
            samples.append(SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w))))
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), False)


@pytest.fixture
def checkpoint_calls(monkeypatch):
    """The functions run through torch.utils.checkpoint during the test, so that a
    with_cp test fails if checkpointing is silently skipped."""
    import torch.utils.checkpoint as cp
    calls, real = [], cp.checkpoint

    def counting(function, *args, **kwargs):
        calls.append(function)
        return real(function, *args, **kwargs)

    monkeypatch.setattr(cp, 'checkpoint', counting)
    return calls


@pytest.fixture
def randomize():
    return randomize_


def run_tool(*args, timeout=900, env=None):
    """Run a command of tools/ from the repository root; returns CompletedProcess."""
    import subprocess
    cmd = [sys.executable, *args] if args[0].endswith('.py') else ['bash', *args]
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def loader_options(data_root, num_workers):
    """cfg-options that point every data loader of a config at data_root."""
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}',
                 f'{loader}.num_workers={num_workers}',
                 f'{loader}.persistent_workers={num_workers > 0}']
    return opts


def builtin_cls_options(data_root, max_epochs=1, num_workers=0):
    """--cfg-options that point the built-in classification config at data_root."""
    return ['--cfg-options', f'train_cfg.max_epochs={max_epochs}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', *loader_options(data_root, num_workers)]


@pytest.fixture(scope='session')
def tiny_cls_data(tmp_path_factory):
    from mmpoolformer.datasets.builtin import make_classification_set
    root = str(tmp_path_factory.mktemp('tiny_cls'))
    make_classification_set(root, splits=(('train', 8), ('val', 4)), seed=1)
    return root


def mmpretrain_classifier(arch='s12', num_classes=1000):
    """mmpretrain's own PoolFormer classifier, the reference for parity."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    width = 512 if arch.startswith('s') else 768
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(
            backbone=dict(type='PoolFormer', arch=arch),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=width)).eval()


def official_from_mmpretrain(state_dict):
    """Write the sail-sg layout: the mmpretrain names without 'backbone.',
    the final norm as 'norm' and the classifier as 'head'."""
    import re
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r'^backbone\.', '', key)
        key = re.sub(r'^norm6\.', 'norm.', key)
        key = re.sub(r'^head\.fc\.', 'head.', key)
        out[key] = value
    return out


def last_metrics(work_dir):
    """The last logged validation metrics of an mmengine run in work_dir."""
    import glob
    import json
    # The last run that logged scalars: a later tools/test.py run in the same
    # work_dir (the main job's) writes none.
    logs = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert logs, f'no run in {work_dir} logged scalars'
    scalars = [json.loads(line) for line in open(logs[-1])]
    return [s for s in scalars if 'step' in s and not any(k.startswith(('loss', 'lr')) for k in s)][-1]


# CI runs the main job (tools/run_main.sh) before the suite and sets this, so that
# the suite checks the main job's own classifier, COCO set and Mask R-CNN instead of
# training the same models again (about 8 of the suite's minutes on 2 cores).
REUSE_MAIN_JOB = os.environ.get('MMPOOLFORMER_REUSE_MAIN_JOB') == '1'
MAIN_JOB = dict(  # what tools/run_main.sh writes, and the file that shows it finished
    classifier=('work_dirs/poolformer_s12_builtin', 'epoch_15.pth'),
    coco=('data/builtin/coco', 'annotations/instances_val2017.json'),
    maskrcnn=('work_dirs/maskrcnn_poolformer_s12_builtin', 'epoch_6.pth'))


def main_job_output(name):
    """(folder, file) of one of the main job's outputs; fails if it is missing,
    since reusing it was asked for."""
    folder, file = MAIN_JOB[name]
    folder = os.path.join(ROOT, folder)
    path = os.path.join(folder, file)
    assert os.path.isfile(path), (f'MMPOOLFORMER_REUSE_MAIN_JOB=1 but the main job left no '
                                  f'{path}: run tools/run_main.sh first')
    return folder, path


def pytest_collection_modifyitems(items):
    """Tests that need a trained model are slow, whatever file they are in."""
    trains = {'builtin_classifier', 'trained_maskrcnn', 'trained_fpn'}
    for item in items:
        if trains & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope='session')
def builtin_classifier(tmp_path_factory):
    """PoolFormer-S12 trained on the built-in shapes (about 2.5 minutes on 2 cores):
    the learning test checks it, and the dense-prediction tests start from it, as
    COCO and ADE20K models start from ImageNet weights. Returns (work_dir, checkpoint)."""
    if REUSE_MAIN_JOB:
        return main_job_output('classifier')
    from mmpoolformer.datasets.builtin import make_classification_set
    tmp = tmp_path_factory.mktemp('builtin_cls')
    data, work = str(tmp / 'data'), str(tmp / 'work')
    make_classification_set(data, seed=0)
    proc = run_tool('tools/train.py', 'configs/classification/poolformer_s12_builtin.py',
                    '--work-dir', work,
                    *builtin_cls_options(data, max_epochs=15, num_workers=2),
                    'train_cfg.val_interval=15', timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, os.path.join(work, 'epoch_15.pth')


@pytest.fixture(scope='session')
def builtin_coco(tmp_path_factory):
    """The built-in COCO-layout set; tests copy it before changing anything."""
    if REUSE_MAIN_JOB:
        return main_job_output('coco')[0]
    from mmpoolformer.datasets.builtin import make_coco_set
    root = str(tmp_path_factory.mktemp('builtin_coco'))
    make_coco_set(root, seed=0)
    return root


def builtin_coco_options(data_root, pretrained, num_workers=2):
    """--cfg-options that point a built-in detection config at data_root."""
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}',
            f'val_evaluator.ann_file={data_root}/annotations/instances_val2017.json',
            f'test_evaluator.ann_file={data_root}/annotations/instances_val2017.json',
            *loader_options(data_root, num_workers)]


@pytest.fixture(scope='session')
def builtin_ade20k(tmp_path_factory):
    from mmpoolformer.datasets.builtin import make_ade20k_set
    root = str(tmp_path_factory.mktemp('builtin_ade20k'))
    make_ade20k_set(root, seed=0)
    return root


def builtin_seg_options(data_root, pretrained, num_workers=2):
    """--cfg-options that point the built-in segmentation config at data_root."""
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}',
            *loader_options(data_root, num_workers)]


def succeeded(proc):
    """Assert a run_tool() call exited 0 (showing its output if not); returns the output."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr
