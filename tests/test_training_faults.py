"""What a cluster does to a training run (docs/reliability.md, "Faults on a cluster"):
SIGTERM / SIGUSR1 (preemption, time limits), a NaN loss (in one process, on one rank), an Inf loss,
a rank that dies, a checkpoint write that fails, a data worker killed; a resume at an
iteration that loads nothing for the trained batches; and the slurm scripts that ask
for the warning signal and requeue a stopped job."""
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

from helpers import (
    ROOT,
    Watched,
    builtin_cls_options,
    loader_options,
    one_line_error,
    run_tool,
    toy_runner,
)

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
    """Samples drawn with NumPy and torch, as augmentations are; counts its loads."""

    def __init__(self):
        self.loads = 0

    def __len__(self):
        return 12

    def __getitem__(self, index):
        self.loads += 1
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
    to an uninterrupted one (weights, momentum, lr, random draws). With torch's
    BatchSampler nothing is loaded for the trained batches; other batch samplers
    (mmdet's) load them and drop them."""
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
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        with pytest.raises(SystemExit) as exit_, handling_training_faults(runner):
            runner.train()
        assert exit_.value.code == EXIT_STOPPED
        # Leaving: a launcher's SIGTERM during the teardown cannot turn 75 into a kill.
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
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
    dropped = 3 if batch_sampler else 0
    assert resumed.train_dataloader.dataset.loads == (18 - 9 + dropped) * 2
    end_a = torch.load(tmp_path / 'straight' / 'epoch_3.pth', weights_only=False)
    end_b = torch.load(stopped / 'epoch_3.pth', weights_only=False)
    for key, value in end_a['state_dict'].items():
        assert torch.equal(value, end_b['state_dict'][key]), key
    momentum_a = end_a['optimizer']['state'][0]['momentum_buffer']
    assert torch.equal(momentum_a, end_b['optimizer']['state'][0]['momentum_buffer'])
    assert end_a['param_schedulers'] == end_b['param_schedulers']


def test_iteration_resume_skips_trained_batches_without_loading_them():
    """ExactResumeHook on a resume at iteration 3: mmengine's skip loop gets 3
    placeholders, no sample is loaded for them, and the next batch is the 4th
    batch of the sampler's stream, as in an uninterrupted run."""
    from types import SimpleNamespace

    from mmengine.dataset import InfiniteSampler
    from torch.utils.data import DataLoader

    from mmpoolformer.engine import ExactResumeHook

    class Counting(torch.utils.data.Dataset):
        loaded = []

        def __len__(self):
            return 10

        def __getitem__(self, index):
            self.loaded.append(index)
            return index

    dataset = Counting()
    stream = iter(InfiniteSampler(dataset, shuffle=True, seed=5))
    uninterrupted = [[next(stream) for _ in range(2)] for _ in range(5)]
    loader = DataLoader(dataset, batch_size=2, collate_fn=list,
                        sampler=InfiniteSampler(dataset, shuffle=True, seed=5))
    loop = SimpleNamespace(dataloader=loader, dataloader_iterator=None)
    ExactResumeHook._skip_trained_batches(SimpleNamespace(train_loop=loop, iter=3))
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
    assert dataset.loaded == []
    assert [next(loop.dataloader_iterator) for _ in range(2)] == uninterrupted[3:]



def test_fp16_skipped_steps_are_not_a_failure_until_too_many_in_a_row(tmp_path):
    """With a loss scaler a non-finite step is skipped by the GradScaler: a warning,
    and a finite step resets the count; `max_skipped_steps` in a row stop training.
    Without a scaler the first non-finite loss stops it."""
    from types import SimpleNamespace

    from mmpoolformer.engine import NonFiniteLossHook
    from mmpoolformer.utils.errors import TrainingError

    def runner(loss_scaler):
        return SimpleNamespace(iter=0, epoch=0, work_dir=str(tmp_path), cfg=SimpleNamespace(
            filename=CLS), optim_wrapper=SimpleNamespace(loss_scaler=loss_scaler))

    nan, one = dict(loss=torch.tensor(float('nan'))), dict(loss=torch.tensor(1.0))
    hook, amp = NonFiniteLossHook(max_skipped_steps=3), runner(loss_scaler=object())
    for outputs in (nan, nan, one, nan, nan):
        hook.after_train_iter(amp, 0, outputs=outputs)
        amp.iter += 1
    with pytest.raises(TrainingError, match=r'non-finite loss at iteration 6 \(epoch 1\): '
                                            r'loss=nan \(3 non-finite steps in a row\)'):
        hook.after_train_iter(amp, 0, outputs=nan)
    with pytest.raises(TrainingError, match=r'at iteration 1 \(epoch 1\): loss=nan; '
                                            r'training stopped and'):
        NonFiniteLossHook().after_train_iter(runner(loss_scaler=None), 0, outputs=nan)


@pytest.mark.parametrize('bad', [float('inf'), float('-inf')], ids=['inf', '-inf'])
def test_an_infinite_loss_stops_training_like_a_nan(tmp_path, bad):
    """A toy run of two epochs (two iterations each) whose loss term turns infinite at
    iteration 3, beside a finite one: the run stops there naming the term, and only
    epoch 1's checkpoint was written."""
    from mmengine.model import BaseModel

    from mmpoolformer.utils.errors import TrainingError

    class InfiniteAtIteration3(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)
            self.calls = 0

        def forward(self, inputs, mode='loss'):
            self.calls += 1
            loss = self.linear(torch.stack(inputs)).pow(2).mean()
            return dict(loss_a=loss * (bad if self.calls == 3 else 1.0), loss_b=loss)

    work = tmp_path / 'work'
    runner = toy_runner(
        work, model=InfiniteAtIteration3(),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[dict(type='mmpoolformer.NonFiniteLossHook')])
    with pytest.raises(TrainingError, match=rf'non-finite loss at iteration 3 \(epoch 2\): '
                                            rf'loss={bad}, loss_a={bad}, loss_b=[0-9.e-]+; '
                                            r'training stopped'):
        runner.train()
    assert sorted(os.path.basename(p) for p in glob.glob(str(work / '*.pth'))) == ['epoch_1.pth']


def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    """A write that fails (here fsync answers ENOSPC, as a full disk or quota does)
    raises one line naming the path and the OS error; the previous file is whole
    and no temporary file is left."""
    from mmpoolformer.engine import AtomicLocalBackend
    from mmpoolformer.utils.errors import CheckpointError
    path = tmp_path / 'epoch_2.pth'
    AtomicLocalBackend().put(b'previous', path)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(CheckpointError, match=rf'^cannot write {re.escape(str(path))}: '
                                              r'\[Errno 28\] No space left on device;'):
        AtomicLocalBackend().put(b'new', path)
    assert path.read_bytes() == b'previous' and os.listdir(tmp_path) == ['epoch_2.pth']


# --------------------------------------------------------------------------- #
# The slurm scripts, with fake srun / sbatch / scontrol on PATH
# --------------------------------------------------------------------------- #
def _fake_slurm(tmp_path, srun_status):
    """srun, scontrol and sbatch that log their arguments to tmp_path/calls; srun
    exits with the next status of `srun_status` (one per call), after
    $FAKE_SRUN_SLEEP seconds; sbatch runs the script as slurm would, again while
    scontrol has requeued it."""
    bin_dir, calls = tmp_path / 'bin', tmp_path / 'calls'
    bin_dir.mkdir(parents=True)
    (tmp_path / 'statuses').write_text(''.join(f'{s}\n' for s in srun_status))
    scripts = dict(srun=f'''
echo "srun $*" >> {calls}
sleep "${{FAKE_SRUN_SLEEP:-0}}"
status=$(head -n1 {tmp_path}/statuses); sed -i 1d {tmp_path}/statuses
exit "$status"''', scontrol=f'''
echo "scontrol $*" >> {calls}
[ "$1" = requeue ] && touch {tmp_path}/requeued''', sbatch=f'''
echo "sbatch $*" >> {calls}
script=$1; shift
export SLURM_JOB_ID=42 SLURM_JOB_NAME=job SLURM_SUBMIT_DIR=$PWD SLURM_RESTART_COUNT=0
while :; do
    rm -f {tmp_path}/requeued
    bash "$script" "$@"
    [ -e {tmp_path}/requeued ] || break
    SLURM_RESTART_COUNT=$((SLURM_RESTART_COUNT + 1))
done''')
    for name, body in scripts.items():
        (bin_dir / name).write_text('#!/usr/bin/env bash\n' + body + '\n')
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}')
    return env, calls


def test_slurm_train_asks_for_the_warning_signal(tmp_path):
    env, calls = _fake_slurm(tmp_path, [0])
    subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'job', CLS, str(tmp_path / 'work')],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    srun = calls.read_text().split()
    assert srun[0] == 'srun' and '--signal=USR1@180' in srun
    assert srun[-3:] == [CLS, f'--work-dir={tmp_path / "work"}', '--launcher=slurm']


def test_sbatch_template_requeues_a_job_stopped_before_its_time_limit(tmp_path):
    """The template asks slurm for --requeue and the SIGUSR1 warning; submitted (fake
    sbatch), a run that train.py ends with 75 (stopped and saved) is requeued by
    the script and runs again with --resume, and a run that ends with 0 or 1 is
    not requeued; the status goes through."""
    template = open(os.path.join(ROOT, 'tools/slurm_sbatch.sh')).read()
    options = re.findall(r'^#SBATCH (\S+)', template, re.M)
    assert '--requeue' in options and '--signal=USR1@180' in options
    env, calls = _fake_slurm(tmp_path, [75, 0])
    proc = subprocess.run(['sbatch', 'tools/slurm_sbatch.sh', CLS, str(tmp_path / 'work')],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    python = os.path.join(ROOT, '.venv', 'bin', 'python')  # the checkout's, never a bare one
    train = (f'srun --kill-on-bad-exit=1 {python} -u tools/train.py {CLS} '
             f'--work-dir={tmp_path / "work"} --resume --launcher=slurm')
    assert lines[1:] == [train, 'scontrol requeue 42', train], lines
    assert 'run 2:' in proc.stdout
    for status in (0, 1):
        env, calls = _fake_slurm(tmp_path / str(status), [status])
        env.update(SLURM_JOB_ID='7', SLURM_SUBMIT_DIR=ROOT)
        proc = subprocess.run(['bash', 'tools/slurm_sbatch.sh', CLS], cwd=ROOT, env=env)
        assert proc.returncode == status
        assert calls.read_text().count('srun ') == 1 and 'scontrol' not in calls.read_text()


def test_sbatch_template_leaves_a_preempted_job_to_slurm(tmp_path):
    """Preemption signals the batch shell too: srun's 75 is passed on, and the
    script does not requeue (slurm does, --requeue)."""
    env, calls = _fake_slurm(tmp_path, [75])
    env.update(SLURM_JOB_ID='7', SLURM_SUBMIT_DIR=ROOT, FAKE_SRUN_SLEEP='3')
    proc = subprocess.Popen(['bash', 'tools/slurm_sbatch.sh', CLS], cwd=ROOT, env=env)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 75
    assert 'scontrol' not in calls.read_text()


# --------------------------------------------------------------------------- #
# tools/train.py on the built-in classifier: one process, and two with gloo
# --------------------------------------------------------------------------- #
def _options(data, max_epochs, batch_size, num_workers=0):
    """Deterministic, one batch logged per line, a checkpoint per epoch."""
    return ['--cfg-options', f'train_cfg.max_epochs={max_epochs}', 'train_cfg.val_interval=1',
            f'train_dataloader.batch_size={batch_size}', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=-1',
            'randomness.seed=0', 'randomness.deterministic=True',
            *loader_options(data, num_workers)]


def _train(work_dir, options, procs=1, port=None, resume=False, wrapper=None):
    """The command of tools/train.py, or of torchrun with `procs` of it as
    tools/dist_run.sh starts them; `wrapper`: a script that runs tools/train.py."""
    tool = [wrapper] if wrapper else ['tools/train.py']
    args = [CLS, '--work-dir', str(work_dir), *(['--resume'] if resume else [])]
    if procs == 1:
        return [sys.executable, *tool, *args, *options]
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={procs}',
            f'--master_port={port}', *tool, *args, '--launcher', 'pytorch', *options]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1')


def _run(cmd, timeout=900):
    return _watched(cmd).finish(timeout)


def _watched(cmd):
    """A training run whose merged output is read line by line as it comes."""
    return Watched(cmd, env=_env())


# From a stop signal to the end of every process: about 1 s to the saved checkpoint,
# then the interpreters' teardown, 2 to 10 s on a quiet machine (docs/reliability.md).
# A run that has not ended by then waits on something that will not come (the ranks
# disagreeing on the stop, a collective left hanging): the test fails, naming it.
STOP_WITHIN_S = 120


def _children(pid):
    children = []
    for task in glob.glob(f'/proc/{pid}/task/*/children'):
        children += [int(child) for child in open(task).read().split()]
    return sorted(children)


def _trained_iterations(output):
    """(epoch, batch) of each training iteration logged, in order."""
    return [tuple(map(int, m)) for m in re.findall(r'Epoch\(train\) +\[(\d+)\]\[ *(\d+)/', output)]


# Runs tools/train.py; every time a stop checkpoint (iter_*.pth) is written, this
# process first sends itself SIGTERM again: a second signal during the save.
_SECOND_SIGNAL_DURING_SAVE = """
import os, runpy, signal, sys
from mmpoolformer.engine import AtomicLocalBackend
put = AtomicLocalBackend.put
def put_after_another_signal(self, obj, filepath):
    if os.path.basename(str(filepath)).startswith('iter_'):
        os.kill(os.getpid(), signal.SIGTERM)
    return put(self, obj, filepath)
AtomicLocalBackend.put = put_after_another_signal
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
"""


def _assert_stopped_and_saved(work_dir, output, before_signal, per_epoch):
    """The run stopped after the iteration in flight when the signal came (or the
    one logged just before), saved it, and lost no trained iteration."""
    stop = int(re.search(r'stopped after iteration (\d+) \(epoch \d+\) and saved it to '
                         r'\S+iter_\1\.pth', output).group(1))
    assert before_signal <= stop <= before_signal + 1, (before_signal, stop)
    epoch, batch = _trained_iterations(output)[-1]
    assert (epoch - 1) * per_epoch + batch == stop, 'a trained iteration was not saved'
    assert open(os.path.join(work_dir, 'last_checkpoint')).read() == os.path.join(
        work_dir, f'iter_{stop}.pth')
    meta = torch.load(os.path.join(work_dir, f'iter_{stop}.pth'), weights_only=False)['meta']
    assert meta['iter'] == stop
    return stop


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_the_iteration_and_resume_is_exact(tiny_cls_data, tmp_path):
    """One process, 8 iterations of batch 4: SIGTERM once iteration 3 is logged;
    the iteration in flight finishes and is saved, a second SIGTERM during that
    save is ignored, the exit status is 75. --resume goes on with the next batch
    of the epoch and ends bitwise equal to an uninterrupted run."""
    from test_resume import _assert_same_end
    options = _options(tiny_cls_data, max_epochs=1, batch_size=4)
    straight, stopped = tmp_path / 'straight', tmp_path / 'stopped'
    assert _run(_train(straight, options)).returncode == 0
    script = tmp_path / 'second_signal.py'
    script.write_text(_SECOND_SIGNAL_DURING_SAVE)
    run = _watched(_train(stopped, options, wrapper=str(script)))
    run.wait_for(r'Epoch\(train\) +\[1\]\[3/8\]')
    run.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    done = run.finish(STOP_WITHIN_S)
    status, output = done.returncode, done.stdout
    print(f'time to stop: {time.monotonic() - signalled:.1f} s')
    assert status == 75, output[-3000:]
    assert 'SIGTERM received: stopping after the iteration in flight' in output
    assert 'SIGTERM received: already stopping, ignored' in output  # during the save
    stop = _assert_stopped_and_saved(str(stopped), output, before_signal=3, per_epoch=8)
    assert not (stopped / 'epoch_1.pth').exists()
    resumed = _run(_train(stopped, options, resume=True))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert _trained_iterations(resumed.stdout)[0] == (1, stop + 1)
    _assert_same_end(str(straight), str(stopped), 'epoch_1.pth')


def _rank_pid(agent_pid, rank):
    """The pid of a rank that torchrun (agent_pid) started."""
    for pid in _children(agent_pid):
        environ = open(f'/proc/{pid}/environ', 'rb').read().split(b'\0')
        if f'RANK={rank}'.encode() in environ:
            return pid
    raise AssertionError(f'torchrun has no rank {rank}')


# Runs tools/train.py and says, at destroy_process_group, how many DDP wrappers are alive:
# one still alive keeps the gloo group, whose threads then die in interpreter finalization
# (rank 0 once aborted that way at exit: "terminate called without an active exception").
_COUNT_DDP_AT_DESTROY = """
import gc, os, runpy, sys
import torch.distributed
from torch.nn.parallel import DistributedDataParallel
destroy = torch.distributed.destroy_process_group
def counting(*args, **kwargs):
    live = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    print(f'rank {os.environ["RANK"]}: DDP wrappers alive at destroy_process_group: {live}')
    return destroy(*args, **kwargs)
torch.distributed.destroy_process_group = counting
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
"""


@pytest.mark.slow
def test_sigterm_to_one_of_two_ranks_stops_both_at_one_iteration_and_resume_is_exact(
        tiny_cls_data, tmp_path):
    """Two gloo processes under torchrun, 4 iterations an epoch, 2 epochs: SIGTERM
    to rank 1 alone once iteration 2 is logged. The ranks agree on one iteration,
    rank 0 saves it, both exit 75 (torchrun's summary shows it). Resumed with two
    processes, the run ends bitwise equal to an uninterrupted two-process run.
    Finished or stopped, each rank has released its DDP wrapper when the process
    group is destroyed."""
    from test_resume import _assert_same_end
    options = _options(tiny_cls_data, max_epochs=2, batch_size=4)
    straight, stopped = tmp_path / 'straight', tmp_path / 'stopped'
    counting = tmp_path / 'count_ddp.py'
    counting.write_text(_COUNT_DDP_AT_DESTROY)
    proc = _run(_train(straight, options, procs=2, port=29641, wrapper=str(counting)))
    assert proc.returncode == 0, proc.stdout[-3000:]
    released = r'rank [01]: DDP wrappers alive at destroy_process_group: 0'
    assert len(re.findall(released, proc.stdout)) == 2, proc.stdout[-3000:]
    run = _watched(_train(stopped, options, procs=2, port=29642, wrapper=str(counting)))
    run.wait_for(r'Epoch\(train\) +\[1\]\[2/4\]')
    os.kill(_rank_pid(run.proc.pid, 1), signal.SIGTERM)
    signalled = time.monotonic()
    done = run.finish(STOP_WITHIN_S)
    status, output = done.returncode, done.stdout
    print(f'time to stop: {time.monotonic() - signalled:.1f} s')
    assert 'rank 1: SIGTERM received: stopping after the iteration in flight' in output
    assert re.search(r'SIGTERM received \(rank 1\): stopped after iteration', output)
    assert status != 0 and output.count('exitcode  : 75') == 2, output[-3000:]
    assert len(re.findall(released, output)) == 2, output[-3000:]
    stop = _assert_stopped_and_saved(str(stopped), output, before_signal=2, per_epoch=4)
    resumed = _run(_train(stopped, options, procs=2, port=29643, resume=True))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    first = _trained_iterations(resumed.stdout)[0]
    assert (first[0] - 1) * 4 + first[1] == stop + 1
    _assert_same_end(str(straight), str(stopped), 'epoch_2.pth')


# The loss turns NaN in epoch 3 of a one-process run.
_NAN_FROM_EPOCH_3 = """
import runpy, sys
from mmengine.logging import MessageHub
from mmpretrain.models.losses import LabelSmoothLoss
forward = LabelSmoothLoss.forward
def nan_from_epoch_3(self, *args, **kwargs):
    loss = forward(self, *args, **kwargs)
    epoch = MessageHub.get_current_instance().get_info('epoch')
    return loss * float('nan') if epoch >= 2 else loss
LabelSmoothLoss.forward = nan_from_epoch_3
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
"""


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_cls_data, tmp_path):
    """The classifier's loss turns NaN in epoch 3 (the loss patched in the
    tools/train.py process): the run stops with one line naming the iteration and
    the loss terms and saying how to resume; epoch 2's checkpoint is kept and is
    finite, and nothing after it was saved."""
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, '-c', _NAN_FROM_EPOCH_3, CLS, '--work-dir', str(work),
         *builtin_cls_options(tiny_cls_data, max_epochs=3), 'train_cfg.val_interval=3'],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT))
    last = one_line_error(proc, r'non-finite loss at iteration 3 \(epoch 3\): loss=nan;')
    assert re.search(rf'last good checkpoint is .*epoch_2\.pth.*tools/train\.py {CLS} '
                     rf'--work-dir {re.escape(str(work))} --resume', last), last
    saved = sorted(os.path.basename(p) for p in glob.glob(str(work / '*.pth')))
    assert saved == ['epoch_1.pth', 'epoch_2.pth'], saved
    state = torch.load(work / 'epoch_2.pth', weights_only=False)['state_dict']
    assert all(torch.isfinite(value).all() for value in state.values())
    assert open(work / 'last_checkpoint').read().endswith('epoch_2.pth')


# Rank 1's loss turns NaN at the last iteration of epoch 2 (of 4 iterations each).
_NAN_ON_RANK_1 = """
import os, runpy, sys
from mmengine.logging import MessageHub
from mmpretrain.models.losses import LabelSmoothLoss
forward = LabelSmoothLoss.forward
def nan_on_rank_1(self, *args, **kwargs):
    loss = forward(self, *args, **kwargs)
    if os.environ['RANK'] == '1' and MessageHub.get_current_instance().get_info('iter') == 7:
        return loss * float('nan')
    return loss
LabelSmoothLoss.forward = nan_on_rank_1
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
"""


@pytest.mark.slow
def test_nan_on_one_rank_stops_every_rank_before_the_epoch_checkpoint(tiny_cls_data, tmp_path):
    """Two gloo ranks; rank 1's loss is NaN at iteration 8, the last of epoch 2,
    where epoch_2.pth is due. Both ranks stop there with one line naming rank 1
    and the iteration; nothing is saved after epoch_1.pth, which is finite, and
    last_checkpoint still names it; both processes exit with status 1."""
    script = tmp_path / 'nan_on_rank_1.py'
    script.write_text(_NAN_ON_RANK_1)
    work = tmp_path / 'work'
    proc = _run(_train(work, _options(tiny_cls_data, max_epochs=3, batch_size=4), procs=2,
                       port=29651, wrapper=str(script)))
    print(proc.stdout[-5000:])
    # One line from each rank (the two may share a line of the merged output).
    what = 'error: non-finite loss at iteration 8 (epoch 2) on rank 1 of 2'
    assert proc.stdout.count(what) == 2, proc.stdout[-3000:]
    assert what + ': loss=nan; training stopped on every rank' in proc.stdout  # rank 1
    assert what + '; training stopped on every rank' in proc.stdout  # rank 0
    assert proc.stdout.count('last good checkpoint is ' + str(work / 'epoch_1.pth')) == 2
    assert proc.returncode != 0
    assert sorted(os.listdir(work)) == sorted(
        ['.last_checkpoint.staging', 'epoch_1.pth', 'last_checkpoint', os.path.basename(CLS),
         *[d for d in os.listdir(work) if re.fullmatch(r'\d{8}_\d{6}', d)]])
    state = torch.load(work / 'epoch_1.pth', weights_only=False)['state_dict']
    assert all(torch.isfinite(value).all() for value in state.values())
    assert open(work / 'last_checkpoint').read() == str(work / 'epoch_1.pth')


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_is_named_and_the_run_resumes(tiny_cls_data, tmp_path):
    """Two gloo ranks; rank 1 is SIGKILLed in epoch 2 (of 3, 4 iterations each).
    Rank 0 exits within seconds with one line naming rank 1, last_checkpoint still
    names epoch_1.pth, and --resume with two processes trains to the end."""
    work = tmp_path / 'work'
    options = _options(tiny_cls_data, max_epochs=3, batch_size=4)
    run = _watched(_train(work, options, procs=2, port=29661))
    run.wait_for(r'Epoch\(train\) +\[2\]\[1/4\]')
    os.kill(_rank_pid(run.proc.pid, 1), signal.SIGKILL)
    killed = time.monotonic()
    done = run.finish(STOP_WITHIN_S)
    status, output = done.returncode, done.stdout
    print(f'time to stop: {time.monotonic() - killed:.1f} s')
    assert status != 0
    # Named by rank 0 when it notices first, or by torchrun's monitoring, which may
    # stop rank 0 (SIGTERM) before it does.
    ours = re.search(r'error: rank 0 of 2 lost contact at iteration \d+: rank 1 did not answer '
                     r'within 10 s \(process killed, or node down\); the collective failed '
                     rf'with: .*; the last checkpoint is {re.escape(str(work / "epoch_1.pth"))}; '
                     r'resume', output)
    torchrun = re.search(r'failed \(exitcode: -9\) local_rank: 1 ', output)
    assert ours or torchrun, output[-3000:]
    assert open(work / 'last_checkpoint').read() == str(work / 'epoch_1.pth')
    resumed = _run(_train(work, options, procs=2, port=29662, resume=True))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert _trained_iterations(resumed.stdout)[0] == (2, 1)
    assert (work / 'epoch_3.pth').exists()


# Runs tools/train.py with a disk that is full from the second epoch's checkpoint on:
# its fsync answers ENOSPC, as a full disk or an exceeded quota does.
_DISK_FULL_AT_EPOCH_2 = """
import errno, os, runpy, sys
fsync = os.fsync
def full_from_epoch_2(fd):
    if 'epoch_2.pth' in os.readlink(f'/proc/self/fd/{fd}'):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return fsync(fd)
os.fsync = full_from_epoch_2
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
"""


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoint(tiny_cls_data, tmp_path):
    """Saving epoch_2.pth fails (ENOSPC): one line names the file and the OS error,
    the exit status is 1, epoch_1.pth and last_checkpoint are intact, and no
    temporary file is left."""
    script = tmp_path / 'disk_full.py'
    script.write_text(_DISK_FULL_AT_EPOCH_2)
    work = tmp_path / 'work'
    proc = _run(_train(work, _options(tiny_cls_data, max_epochs=2, batch_size=8),
                       wrapper=str(script)))
    assert proc.returncode == 1 and 'Traceback' not in proc.stdout, proc.stdout[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last == (f'error: cannot write {work / "epoch_2.pth"}: [Errno 28] No space left on '
                    'device; the file there before, if any, is unchanged, and so is '
                    'last_checkpoint'), last
    assert open(work / 'last_checkpoint').read() == str(work / 'epoch_1.pth')
    torch.load(work / 'epoch_1.pth', weights_only=False)
    assert not glob.glob(str(work / '*.tmp-*')) and not (work / 'epoch_2.pth').exists()


@pytest.mark.slow
def test_a_killed_data_worker_is_named_with_the_likely_cause(tiny_cls_data, tmp_path):
    """A data loader worker SIGKILLed mid-epoch (what the out-of-memory killer
    does): one line names its pid and memory as the likely cause, at once."""
    run = _watched(_train(tmp_path / 'work', _options(tiny_cls_data, max_epochs=1,
                                                      batch_size=4, num_workers=2)))
    run.wait_for(r'Epoch\(train\) +\[1\]\[2/8\]')
    worker = _children(run.proc.pid)[0]
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    done = run.finish(STOP_WITHIN_S)
    status, output = done.returncode, done.stdout
    print(f'time to stop: {time.monotonic() - killed:.1f} s')
    assert status == 1 and 'Traceback' not in output, output[-3000:]
    last = output.strip().splitlines()[-1]
    # Which PyTorch reports depends on what notices first: its SIGCHLD handler, or the
    # loader's timeout on a dead worker (1 run in 14 here, 2026-12-02).
    how = '(?:was killed by signal Killed|exited unexpectedly)'
    assert re.match(rf'error: data loader worker \(pid {worker}\) {how}, '
                    r'most likely by the out-of-memory killer .*; give the job more memory, or '
                    r'lower num_workers or batch_size of train_dataloader; no checkpoint was '
                    r'saved yet$', last), last


def test_resume_continues_from_a_checkpoint_saved_but_not_yet_named(tmp_path):
    """Killed after writing epoch_2.pth but before pointing last_checkpoint at it,
    a run resumes from epoch_2.pth, not epoch_1.pth; best_*.pth files do not count,
    and a stop checkpoint written later (iter_9.pth) does."""
    from mmpoolformer.engine import newest_checkpoint

    def save(name, age_s):
        path = tmp_path / name
        path.write_bytes(b'')
        os.utime(path, (time.time() - age_s, time.time() - age_s))
        return str(path)

    assert newest_checkpoint(str(tmp_path)) is None
    first = save('epoch_1.pth', age_s=30)
    assert newest_checkpoint(str(tmp_path)) == first  # nothing named yet
    (tmp_path / 'last_checkpoint').write_text(first)
    second = save('epoch_2.pth', age_s=20)
    save('best_accuracy_top1_epoch_2.pth', age_s=10)
    assert newest_checkpoint(str(tmp_path)) == second
    (tmp_path / 'last_checkpoint').write_text(second)
    stop = save('iter_9.pth', age_s=5)
    assert newest_checkpoint(str(tmp_path)) == stop


@pytest.mark.slow
def test_epoch_resume_is_exact_with_non_persistent_workers(tiny_cls_data, tmp_path):
    """docs/reliability.md's limit on workers: with num_workers=2 and non-persistent
    workers, a run resumed from epoch 3's checkpoint ends at epoch 6 bitwise equal to
    the uninterrupted run (mmengine seeds each epoch's new workers from the run's
    seed; ExactResumeHook reseeds the main process, where drop path draws). The
    checkpoint is the uninterrupted run's own, as a run killed after it leaves it, so
    this trains twice. Persistent workers keep their random state across epochs, so
    with them a resumed run differs (measured once; the docs say so)."""
    options = ['--cfg-options', 'train_cfg.max_epochs=6', 'train_cfg.val_interval=2',
               'train_dataloader.batch_size=4', 'default_hooks.checkpoint.interval=1',
               'default_hooks.checkpoint.max_keep_ckpts=-1', 'randomness.seed=0',
               'randomness.deterministic=True',
               *[option.replace('persistent_workers=True', 'persistent_workers=False')
                 for option in loader_options(tiny_cls_data, 2)]]
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(straight), *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed.mkdir()
    os.link(straight / 'epoch_3.pth', resumed / 'epoch_3.pth')
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_3.pth'))
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(resumed), '--resume', *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 3, iter: ' in proc.stdout
    assert not (resumed / 'epoch_2.pth').exists()
    a = torch.load(straight / 'epoch_6.pth', weights_only=False)['state_dict']
    b = torch.load(resumed / 'epoch_6.pth', weights_only=False)['state_dict']
    assert a.keys() == b.keys()
    assert [key for key in a if not torch.equal(a[key], b[key])] == []
