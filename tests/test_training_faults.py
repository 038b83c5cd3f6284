"""What a cluster does to a training run (docs/reliability.md, "Faults on a cluster"):
SIGTERM / SIGUSR1 (preemption, time limits), a NaN on one rank, a rank that dies, a
checkpoint write that fails, a data worker killed; and the slurm scripts that ask for
the warning signal and requeue a stopped job."""
import errno
import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from helpers import ROOT, loader_options

CLS = 'configs/classification/poolformer_s12_builtin.py'


# --------------------------------------------------------------------------- #
# In one process, on a toy model: the signal handlers, the stop and the resume
# --------------------------------------------------------------------------- #
def test_stop_signals_are_handled_only_while_training():
    """Inside handling_training_faults SIGTERM and SIGUSR1 only ask for a stop (a
    second one is ignored); before and after, the previous handlers are in place."""
    from types import SimpleNamespace

    from mmpoolformer.engine import faults
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    with faults.handling_training_faults(SimpleNamespace()):
        assert faults.stop_signal() == 0
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)  # already stopping: ignored
        assert faults.stop_signal() == signal.SIGUSR1
    assert {s: signal.getsignal(s) for s in before} == before
    assert faults.stop_signal() == 0


class _Augmented(torch.utils.data.Dataset):
    """Samples drawn with NumPy and torch, as augmentations are."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return dict(inputs=torch.full((4, ), index / 12) + np.random.rand() + torch.rand(4))

    def get_data_info(self, index):  # for mmdet's aspect-ratio batches
        return dict(width=3 + index % 3, height=4)


def _toy_runner(work_dir, batch_sampler=None, **kwargs):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)
            self.dropout = torch.nn.Dropout(0.5)

        def forward(self, inputs, mode='loss'):
            return dict(loss=self.dropout(self.linear(torch.stack(inputs))).pow(2).mean())

    torch.manual_seed(0)  # the same first weights in every run
    return Runner(
        # A name of its own: mmengine shares the message hub of runs with the same name.
        model=Toy(), work_dir=str(work_dir), experiment_name=f'{work_dir}-{time.time()}',
        train_dataloader=dict(dataset=_Augmented(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_sampler=batch_sampler, collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=10),
        train_cfg=dict(type='mmpoolformer.ResumableEpochBasedTrainLoop', max_epochs=3),
        default_hooks=dict(checkpoint=dict(type='mmpoolformer.AtomicCheckpointHook',
                                           interval=1, backend_args=dict(backend='atomic_local'))),
        custom_hooks=[dict(type='mmpoolformer.ExactResumeHook'),
                      dict(type='mmpoolformer.StopOnSignalHook')],
        randomness=dict(seed=3), **kwargs)


class _SignalAt(Hook):
    """Sends this process `signum` while iteration `at` (1-based) is in flight."""

    def __init__(self, at, signum):
        self.at, self.signum = at, signum

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.signum)


class _BatchesSeen(Hook):
    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append((runner.epoch, batch_idx))


@pytest.mark.parametrize('batch_sampler', [None, 'mmdet.AspectRatioBatchSampler'])
def test_stop_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, batch_sampler):
    """SIGTERM during iteration 9 of 18 (epoch 2, batch 3 of 6): that iteration is
    finished and saved as iter_9.pth, last_checkpoint names it, the process would
    exit 75; resumed, the epoch goes on from batch 4 and the run ends bitwise equal
    to an uninterrupted one (weights, momentum, lr, random draws). torch's
    BatchSampler skips the trained indices; other batch samplers (mmdet's) load
    the trained batches and drop them."""
    if batch_sampler:
        import mmdet.datasets  # noqa: F401 - registers it
        batch_sampler = dict(type=batch_sampler)
    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    from mmpoolformer.engine import EXIT_STOPPED, handling_training_faults
    straight = _toy_runner(tmp_path / 'straight', batch_sampler)
    straight.train()

    stopped = tmp_path / 'stopped'
    runner = _toy_runner(stopped, batch_sampler)
    runner.register_hook(_SignalAt(9, signal.SIGTERM))
    with pytest.raises(SystemExit) as exit_, handling_training_faults(runner):
        runner.train()
    assert exit_.value.code == EXIT_STOPPED
    assert open(stopped / 'last_checkpoint').read() == str(stopped / 'iter_9.pth')
    saved = torch.load(stopped / 'iter_9.pth', weights_only=False)
    assert (saved['meta']['epoch'], saved['meta']['iter']) == (1, 9)
    assert saved['message_hub']['runtime_info']['batches_done_in_epoch'] == 3
    assert not os.path.exists(stopped / 'epoch_2.pth')

    resumed = _toy_runner(stopped, batch_sampler, resume=True)
    batches = _BatchesSeen()
    resumed.register_hook(batches)
    with mmengine_loads_through_load_file():  # as tools/train.py loads checkpoints
        resumed.train()
    assert batches.seen[0] == (1, 3) and len(batches.seen) == 18 - 9
    end_a = torch.load(tmp_path / 'straight' / 'epoch_3.pth', weights_only=False)
    end_b = torch.load(stopped / 'epoch_3.pth', weights_only=False)
    for key, value in end_a['state_dict'].items():
        assert torch.equal(value, end_b['state_dict'][key]), key
    momentum_a = end_a['optimizer']['state'][0]['momentum_buffer']
    assert torch.equal(momentum_a, end_b['optimizer']['state'][0]['momentum_buffer'])
    assert end_a['param_schedulers'] == end_b['param_schedulers']
