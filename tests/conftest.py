"""Fixtures of the suite; what tests share as functions is in tests/helpers.py."""
import itertools
import os
import warnings

import pytest
import torch

from helpers import (
    REUSE_MAIN_JOB,
    builtin_cls_options,
    builtin_coco_options,
    builtin_seg_options,
    main_job_output,
    processes,
    randomize_,
    run_tool,
    succeeded,
)

torch.set_num_threads(os.cpu_count() or 1)

MASKRCNN_BUILTIN = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
FPN_BUILTIN = 'configs/segmentation/fpn_poolformer_s12_builtin.py'

_tests = itertools.count()


@pytest.fixture(autouse=True)
def no_process_left(request, monkeypatch):
    """Every process a test starts carries the test's token in its environment (and
    so do the processes those start), so that whatever is still running when the test
    ends, passed, failed or timed out, is killed here, by pid: torchrun's workers, in
    sessions of their own, too. What a test left is a warning naming it."""
    token = f'test-{os.getpid()}-{next(_tests)}'
    monkeypatch.setenv(processes.MARK, processes.marked_env(token)[processes.MARK])
    yield
    if left := processes.kill_tree(token):
        warnings.warn(f'{request.node.nodeid} left {len(left)} process(es) running, killed: '
                      + '; '.join(f'{pid} {cmd[:120]}' for pid, cmd in left.items()),
                      stacklevel=1)


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


@pytest.fixture(scope='session')
def tiny_cls_data(tmp_path_factory):
    from mmpoolformer.datasets.builtin import make_classification_set
    root = str(tmp_path_factory.mktemp('tiny_cls'))
    make_classification_set(root, splits=(('train', 8), ('val', 4)), seed=1)
    return root


def pytest_collection_modifyitems(items):
    """Tests that need a trained model are slow, whatever file they are in."""
    trains = {'builtin_classifier', 'trained_maskrcnn', 'trained_fpn'}
    for item in items:
        if trains & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope='session')
def builtin_classifier(tmp_path_factory):
    """PoolFormer-S12 trained on the built-in shapes (about 3 minutes on 2 cores):
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


@pytest.fixture(scope='session')
def builtin_ade20k(tmp_path_factory):
    from mmpoolformer.datasets.builtin import make_ade20k_set
    root = str(tmp_path_factory.mktemp('builtin_ade20k'))
    make_ade20k_set(root, seed=0)
    return root


@pytest.fixture(scope='session')
def trained_maskrcnn(builtin_coco, builtin_classifier, tmp_path_factory):
    """The built-in Mask R-CNN, trained from the built-in classifier (the main job's
    own with MMPOOLFORMER_REUSE_MAIN_JOB=1). Returns (work_dir, checkpoint)."""
    if REUSE_MAIN_JOB:  # the main job trained this same config on the same data
        return main_job_output('maskrcnn')
    work = str(tmp_path_factory.mktemp('maskrcnn'))
    succeeded(run_tool('tools/train.py', MASKRCNN_BUILTIN, '--work-dir', work,
                       *builtin_coco_options(builtin_coco, builtin_classifier[1]), timeout=1500))
    return work, os.path.join(work, 'epoch_8.pth')


@pytest.fixture(scope='session')
def trained_fpn(builtin_ade20k, builtin_classifier, tmp_path_factory):
    """The built-in Semantic FPN (200 iterations), trained from the built-in
    classifier. Returns (work_dir, checkpoint)."""
    work = str(tmp_path_factory.mktemp('fpn'))
    succeeded(run_tool('tools/train.py', FPN_BUILTIN, '--work-dir', work,
                       *builtin_seg_options(builtin_ade20k, builtin_classifier[1]), timeout=1500))
    return work, os.path.join(work, 'iter_200.pth')
