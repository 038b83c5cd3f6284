"""tools/train.py, tools/test.py and tools/dist_train.sh on the CPU."""
import glob
import os
import re

import pytest
import torch

from helpers import (
    builtin_cls_options,
    mmpretrain_classifier,
    official_from_mmpretrain,
    randomize_,
    run_tool,
    succeeded,
    trained_steps_of_last_run,
)

CONFIG = 'configs/classification/poolformer_s12_builtin.py'


def test_train_then_test(tiny_cls_data, tmp_path):
    work = str(tmp_path / 'work')
    succeeded(run_tool('tools/train.py', CONFIG, '--work-dir', work,
                 *builtin_cls_options(tiny_cls_data)))
    ckpt = os.path.join(work, 'epoch_1.pth')
    assert os.path.isfile(ckpt)
    out = succeeded(run_tool('tools/test.py', CONFIG, ckpt, '--work-dir', work,
                       *builtin_cls_options(tiny_cls_data)))
    top1 = re.search(r'accuracy/top1: (\d+\.\d+)', out)[1]
    # The folded (deployed) backbone scores the same.
    out = succeeded(run_tool('tools/test.py', CONFIG, ckpt, '--work-dir', work, '--deploy',
                             *builtin_cls_options(tiny_cls_data)))
    assert 'deploy: folded 12 blocks' in out
    assert re.search(r'accuracy/top1: (\d+\.\d+)', out)[1] == top1


def test_tools_test_takes_an_official_checkpoint(tiny_cls_data, tmp_path):
    """The sail-sg layout evaluates without a conversion step (ConvertCheckpointHook)."""
    source = randomize_(mmpretrain_classifier('s12', num_classes=4))
    official = official_from_mmpretrain(source.state_dict())
    path = str(tmp_path / 'poolformer_s12.pth.tar')
    torch.save(official, path)
    out = succeeded(run_tool('tools/test.py', CONFIG, path, '--work-dir', str(tmp_path),
                       *builtin_cls_options(tiny_cls_data)))
    assert 'converted checkpoint from the official layout' in out
    assert re.search(r'accuracy/top1: \d+\.\d+', out)


def test_missing_config_is_one_line():
    proc = run_tool('tools/train.py', 'configs/no_such_config.py')
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert (proc.stderr.strip().splitlines()[-1]
            == 'error: config not found: configs/no_such_config.py')


def test_missing_checkpoint_is_one_line():
    proc = run_tool('tools/test.py', CONFIG, '/no/such/checkpoint.pth')
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert (proc.stderr.strip().splitlines()[-1]
            == 'error: checkpoint not found: /no/such/checkpoint.pth')


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tiny_cls_data, tmp_path):
    work = str(tmp_path / 'work')
    out = succeeded(run_tool('tools/dist_train.sh', CONFIG, '2', '--work-dir', work,
                       *builtin_cls_options(tiny_cls_data), 'train_dataloader.batch_size=16',
                       env={'PORT': '29517'}))
    log = open(glob.glob(f'{work}/*/*.log')[0]).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    # 32 training images, batch 16: two iterations alone, one per rank when sharded.
    assert 'Epoch(train) [1][1/1]' in log, out[-2000:]
    assert os.path.isfile(os.path.join(work, 'epoch_1.pth'))


def test_unknown_arch_in_config_is_one_line():
    proc = run_tool('tools/train.py', CONFIG, '--cfg-options', 'model.backbone.arch=s13')
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and "arch 's13'" in last and "'m48'" in last


def test_resume_continues_from_the_latest_checkpoint(tiny_cls_data, tmp_path):
    """mmengine's own checkpoints load under weights_only=True (allow-listed types).
    32 training images in one batch: one iteration an epoch."""
    work = str(tmp_path / 'work')
    succeeded(run_tool('tools/train.py', CONFIG, '--work-dir', work,
                 *builtin_cls_options(tiny_cls_data, max_epochs=1)))
    out = succeeded(run_tool('tools/train.py', CONFIG, '--work-dir', work, '--resume',
                       *builtin_cls_options(tiny_cls_data, max_epochs=2),
                       'default_hooks.logger.interval=1'))
    assert f'Load checkpoint from {work}/epoch_1.pth' in out
    assert 'resumed epoch: 1, iter: 1\n' in out
    assert trained_steps_of_last_run(work) == [(2, 2)]  # epoch 2 alone
    assert os.path.isfile(os.path.join(work, 'epoch_2.pth'))
