"""A run killed hard (SIGKILL) after a checkpoint and resumed with --resume ends
exactly where an uninterrupted run ends: same weights, optimizer state and
logged metrics, for epoch- and iteration-based loops; so does a run resumed with
--resume PATH from an older checkpoint than the newest, in one process and in two.
Checkpoints and last_checkpoint are written atomically.

A seeded run from scratch reaches the same end too, so each test also checks where
the resumed run restarted and that it trained only the iterations after that."""
import glob
import json
import os
import re
import shutil
import signal
import sys
import time

import pytest
import torch

from helpers import (
    ROOT,
    Watched,
    builtin_cls_options,
    builtin_coco_options,
    builtin_seg_options,
    loader_options,
    run_tool,
    succeeded,
    trained_steps_of_last_run,
)
from mmpoolformer.checkpoint.weights_only import from_weights_only

pytestmark = pytest.mark.slow  # each test trains two or three times

# Deterministic, single-process data loading: mmengine seeds workers from the
# run's seed alone, and ExactResumeHook (added by tools/train.py) reseeds the
# main process per epoch or iteration.
DETERMINISTIC = ['randomness.seed=0', 'randomness.deterministic=True']
CLS = 'configs/classification/poolformer_s12_builtin.py'


def _train_cmd(config, work_dir, options, resume=False):
    """The arguments of tools/train.py (run_tool's)."""
    args = ['tools/train.py', config, '--work-dir', work_dir]
    return args + (['--resume'] if resume else []) + options


def _names(last_checkpoint, checkpoint):
    try:
        with open(last_checkpoint) as f:
            return os.path.basename(f.read().strip()) == os.path.basename(checkpoint)
    except FileNotFoundError:
        return False


def _run_and_kill_after(cmd, checkpoint):
    """Start a training run and SIGKILL it as soon as `checkpoint` is saved and
    last_checkpoint, which --resume reads, names it. (mmengine writes last_checkpoint
    after the checkpoint; killed in between, the run resumes from the one before.)"""
    run = Watched([sys.executable, *cmd], env=dict(os.environ, PYTHONPATH=ROOT))
    deadline = time.monotonic() + 900
    last_checkpoint = os.path.join(os.path.dirname(checkpoint), 'last_checkpoint')
    while not _names(last_checkpoint, checkpoint):
        if run.proc.poll() is not None:
            run.fail(f'{checkpoint} (the run ended first)')
        if time.monotonic() > deadline:
            run.fail(f'{checkpoint} within 900 s')
        time.sleep(0.05)
    os.kill(run.proc.pid, signal.SIGKILL)
    return run.finish(60).returncode


def _scalars(work_dir):
    """Logged scalars of every run in work_dir, by (step, key), without timings."""
    logged = {}
    for path in sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for line in open(path):
            entry = json.loads(line)
            for key, value in entry.items():
                if key not in ('step', 'epoch', 'iter') and 'time' not in key and key != 'memory':
                    logged[(entry.get('step'), key)] = value
    return logged


def _progress(checkpoint):
    """Where a checkpoint's run stands (epoch, iteration) and the history of its
    logged scalars (losses, lr, metrics), without timings, which differ."""
    hub = checkpoint['message_hub']
    info = {k: hub['runtime_info'].get(k) for k in ('epoch', 'iter', 'max_epochs', 'max_iters')}
    scalars = {key: [array.tolist() for array in buffer.data]
               for key, buffer in hub['log_scalars'].items() if 'time' not in key}
    return checkpoint['meta']['epoch'], checkpoint['meta']['iter'], info, scalars


def _assert_same_end(uninterrupted, resumed, last):
    # torch's default loader (weights only), decoded as a resume decodes it
    a = from_weights_only(torch.load(os.path.join(uninterrupted, last)))
    b = from_weights_only(torch.load(os.path.join(resumed, last)))
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    state_a, state_b = a['optimizer']['state'], b['optimizer']['state']
    assert state_a.keys() == state_b.keys()
    for param, moments in state_a.items():
        for name, value in moments.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(state_b[param][name]))
    assert a.get('param_schedulers') == b.get('param_schedulers')
    assert _progress(a) == _progress(b)
    logged_a, logged_b = _scalars(uninterrupted), _scalars(resumed)
    after_resume = {k for k in logged_b}
    assert after_resume, 'the resumed run logged nothing'
    for key in after_resume:
        assert logged_a[key] == logged_b[key], key


def test_classification_resumes_exactly(tiny_cls_data, tmp_path):
    """Killed once epoch_2.pth is saved, before or during epoch 2's validation (the
    checkpoint is saved first): the resumed run validates epoch 2, then trains from
    iteration 9, and ends with the uninterrupted run's weights and history."""
    config = CLS
    options = ['--cfg-options', 'train_cfg.max_epochs=8', 'train_cfg.val_interval=2',
               'train_dataloader.batch_size=8', 'default_hooks.logger.interval=1',
               'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=-1',
               *DETERMINISTIC, *loader_options(tiny_cls_data, 0)]
    straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
    succeeded(run_tool(*_train_cmd(config, straight, options)))
    assert _run_and_kill_after(_train_cmd(config, killed, options),
                               os.path.join(killed, 'epoch_2.pth')) == -signal.SIGKILL
    assert not os.path.exists(os.path.join(killed, 'epoch_8.pth'))
    out = succeeded(run_tool(*_train_cmd(config, killed, options, resume=True)))
    # 32 images in batches of 8: 4 iterations an epoch; epoch 2 ends at iteration 8.
    assert f'Load checkpoint from {killed}/epoch_2.pth' in out
    assert 'resumed epoch: 2, iter: 8\n' in out
    assert re.search(r'Epoch\(val\) \[2\]\[\d+/\d+\] +accuracy/top1', out), out[-3000:]
    assert trained_steps_of_last_run(killed) == [((i - 1) // 4 + 1, i) for i in range(9, 33)]
    _assert_same_end(straight, killed, 'epoch_8.pth')


def _resume_from_an_older_checkpoint(data, tmp_path, procs):
    """Train 3 epochs of 4 iterations (32 images, 8 an iteration, shared by ``procs``
    processes: tools/train.py, or tools/dist_train.sh with gloo), then ``--resume``
    epoch_1.pth of that run in a work dir that also holds its epoch_2.pth, which
    last_checkpoint names (what a bare --resume would take). The resumed run goes on
    at iteration 5 with epoch 1's optimizer and scheduler state: the first checkpoint
    it writes, epoch_2.pth, is the uninterrupted run's (weights, AdamW moments and
    step counts, the schedulers' state, the logged lr and losses), and so is its end.
    Returns the resumed run's output."""
    options = [*builtin_cls_options(data, max_epochs=3), *DETERMINISTIC,
               f'train_dataloader.batch_size={8 // procs}', 'default_hooks.logger.interval=1',
               'default_hooks.checkpoint.max_keep_ckpts=-1']
    ports = iter(range(29671, 29673))  # one per run: the last one's may still be held

    def train(work_dir, *args):
        if procs == 1:
            return succeeded(run_tool('tools/train.py', CLS, '--work-dir', str(work_dir),
                                      *args, *options))
        return succeeded(run_tool('tools/dist_train.sh', CLS, str(procs), '--work-dir',
                                  str(work_dir), *args, *options,
                                  env=dict(PORT=str(next(ports)), PYTHON=sys.executable)))

    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    train(straight)
    resumed.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):  # copies: the resumed run writes its own
        shutil.copyfile(straight / name, resumed / name)
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_2.pth'))
    out = train(resumed, '--resume', str(resumed / 'epoch_1.pth'))
    assert f'Load checkpoint from {resumed}/epoch_1.pth' in out, out[-3000:]
    assert 'resumed epoch: 1, iter: 4\n' in out, out[-3000:]
    assert trained_steps_of_last_run(resumed) == [((i - 1) // 4 + 1, i) for i in range(5, 13)]
    _assert_same_end(str(straight), str(resumed), 'epoch_2.pth')
    _assert_same_end(str(straight), str(resumed), 'epoch_3.pth')
    return out


def test_resume_from_an_explicit_older_checkpoint(tiny_cls_data, tmp_path):
    """``tools/train.py --resume PATH``, one process."""
    _resume_from_an_older_checkpoint(tiny_cls_data, tmp_path, procs=1)


def test_resume_from_an_explicit_older_checkpoint_with_two_processes(tiny_cls_data, tmp_path):
    """``tools/dist_train.sh CONFIG 2 --resume PATH``: two gloo processes, each loading
    the file. The launcher runs them with tcmalloc (tools/malloc.sh)."""
    out = _resume_from_an_older_checkpoint(tiny_cls_data, tmp_path, procs=2)
    assert 'Distributed training: True' in out and 'GPU number: 2' in out
    assert 'memory allocator: tcmalloc' in out


def test_detection_resumes_exactly(builtin_classifier, builtin_coco, tmp_path):
    config = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
    _, pretrained = builtin_classifier
    coco = builtin_coco_options(builtin_coco, pretrained, num_workers=0)
    options = [*coco, 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
               'default_hooks.logger.interval=2', 'default_hooks.checkpoint.interval=1',
               'default_hooks.checkpoint.max_keep_ckpts=-1',
               'train_dataloader.dataset.indices=16', 'val_dataloader.dataset.indices=8',
               *DETERMINISTIC]
    straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
    succeeded(run_tool(*_train_cmd(config, straight, options)))
    _run_and_kill_after(_train_cmd(config, killed, options), os.path.join(killed, 'epoch_1.pth'))
    assert not os.path.exists(os.path.join(killed, 'epoch_2.pth'))
    out = succeeded(run_tool(*_train_cmd(config, killed, options, resume=True)))
    # 16 images in batches of 4: epoch 1 ends at iteration 4; logged every 2 iterations.
    assert f'Load checkpoint from {killed}/epoch_1.pth' in out
    assert 'resumed epoch: 1, iter: 4\n' in out
    assert trained_steps_of_last_run(killed) == [(2, 6), (2, 8)]
    _assert_same_end(straight, killed, 'epoch_2.pth')


def test_iteration_based_segmentation_resumes_exactly(builtin_ade20k, tmp_path):
    """The ADE20K loop (IterBasedTrainLoop, InfiniteSampler): 12 iterations,
    killed after the checkpoint of iteration 6, resumed: the trained batches are
    skipped without loading them, and the end is bitwise equal."""
    config = 'configs/segmentation/fpn_poolformer_s12_builtin.py'
    options = [*builtin_seg_options(builtin_ade20k, 'unused', num_workers=0),
               'model.backbone.init_cfg=None', 'train_cfg.max_iters=12',
               'train_cfg.val_interval=12', 'param_scheduler.0.end=12',
               'train_dataloader.batch_size=2', 'val_dataloader.dataset.indices=2',
               'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=3',
               'default_hooks.checkpoint.max_keep_ckpts=-1', *DETERMINISTIC]
    straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
    succeeded(run_tool(*_train_cmd(config, straight, options)))
    _run_and_kill_after(_train_cmd(config, killed, options), os.path.join(killed, 'iter_6.pth'))
    assert not os.path.exists(os.path.join(killed, 'iter_12.pth'))
    out = succeeded(run_tool(*_train_cmd(config, killed, options, resume=True)))
    assert f'Load checkpoint from {killed}/iter_6.pth' in out
    assert 'resumed epoch: 0, iter: 6\n' in out
    assert [i for _, i in trained_steps_of_last_run(killed)] == list(range(7, 13))
    assert 'Advance dataloader' in out  # mmengine's skip, here of placeholders
    _assert_same_end(straight, killed, 'iter_12.pth')


def test_checkpoint_write_killed_midway_leaves_the_previous_one(tmp_path):
    """A process saving big checkpoints over and over through mmengine with the
    backend our configs' CheckpointHook selects (backend_args), killed at an
    arbitrary moment, leaves a loadable file (old or new, never torn)."""
    target = tmp_path / 'latest.pth'
    code = ('import torch\n'
            'from mmengine.runner.checkpoint import save_checkpoint\n'
            'from mmpoolformer.engine import register_atomic_backend\n'
            'register_atomic_backend()\n'
            'i = 0\n'
            'while True:\n'
            f'    save_checkpoint({{"i": i, "w": torch.full((40_000_000,), float(i))}}, '
            f'{str(target)!r}, backend_args=dict(backend="atomic_local"))\n'
            '    i += 1\n'
            '    print(i, flush=True)\n')
    run = Watched([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=ROOT))
    run.wait_for(r'^1$', timeout=300)  # one complete file exists
    time.sleep(0.7)  # somewhere inside a later 160 MB write
    run.kill()
    checkpoint = torch.load(target, weights_only=True)
    assert torch.equal(checkpoint['w'], torch.full((40_000_000,), float(checkpoint['i'])))
