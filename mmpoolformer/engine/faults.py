"""What a cluster does to a training run, and what becomes of it (docs/reliability.md).

- SIGTERM (preemption, ``scancel``, torchrun passing its own on) and SIGUSR1
  (slurm's warning before a time limit, ``--signal``): the iteration in flight
  finishes, every rank agrees to stop after the same one, that iteration is
  saved, mid-epoch too, and the process exits with :data:`EXIT_STOPPED`;
  ``--resume`` goes on from there as if nothing had happened
  (:class:`StopOnSignalHook`).
- A data loader worker killed, or a rank lost in the middle of a collective:
  one line naming the worker or the rank and the likely cause, instead of a
  deep traceback or a hang (:func:`handling_training_faults`).

Nothing here acts on import: tools/train.py runs ``Runner.train()`` inside
:func:`handling_training_faults`, which installs the signal handlers and puts
the previous ones back when training ends.
"""
import datetime
import multiprocessing
import os
import os.path as osp
import re
import signal
import threading
import time
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmpoolformer.registry import HOOKS
from mmpoolformer.utils.errors import TrainingError, UsageError

from .resume import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    ResumableEpochBasedTrainLoop,
    newest_checkpoint,
    register_atomic_backend,
)

# sysexits.h EX_TEMPFAIL, "temporary failure, the user is invited to retry": stopped
# by a signal with the last iteration saved; run again with --resume.
EXIT_STOPPED = 75
STOP_SIGNALS = ('SIGTERM', 'SIGUSR1')  # SIGUSR1: slurm's `--signal` warning

_received: Optional[list[int]] = None  # stop signals, while handling_training_faults() runs


class TrainingStopped(Exception):
    """Training stopped at a stop signal, its last iteration saved."""


def stop_signal() -> int:
    """The first stop signal this process received while training, else 0."""
    return _received[0] if _received else 0


def _stop_signums():
    return [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]


@contextmanager
def _catching_stop_signals():
    """SIGTERM and SIGUSR1 only ask :class:`StopOnSignalHook` to stop; the
    previous handlers come back afterwards. Later signals are ignored, so that
    one arriving while the checkpoint is written cannot cut it short (the write
    is atomic anyway).

    Data loader workers forked meanwhile inherit the handler. While training
    runs they ignore the signal (a cluster signals every process of the job, and
    the iteration in flight needs its workers); once it has ended, the signal
    ends them as it would have, so that the loader's shutdown (or
    multiprocessing's at exit, which sends SIGTERM) cannot leave one behind
    reading from a closed pipe."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield  # Python handles signals in the main thread only
        return
    owner, received = os.getpid(), []
    training = multiprocessing.RawValue('b', 1)  # shared with forked workers

    def request_stop(signum, frame):
        if os.getpid() != owner:  # a data loader worker
            if not training.value:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        rank = f'rank {dist.get_rank()}: ' if dist.is_distributed() else ''
        name = signal.Signals(signum).name
        what = ('stopping after the iteration in flight and saving it' if not received else
                'already stopping, ignored (SIGKILL stops at once, without saving)')
        received.append(signum)
        try:  # os.write: print() from a signal handler can re-enter a write in progress
            os.write(2, f'{rank}{name} received: {what}\n'.encode())
        except OSError:
            pass

    previous = {signum: signal.signal(signum, request_stop) for signum in _stop_signums()}
    _received = received
    try:
        yield
    finally:
        _received, training.value = None, 0
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def handling_training_faults(runner):
    """Run ``runner.train()`` inside this (tools/train.py does): a stop signal
    ends training with its last iteration saved and the process with exit
    status :data:`EXIT_STOPPED`, and a killed data loader worker or a lost rank
    becomes a :class:`TrainingError` of one line."""
    try:
        with _catching_stop_signals():
            yield
    except TrainingStopped:
        # The process is leaving with its iteration saved. torchrun and srun end the
        # ranks still tearing down once one has exited: that must not turn 75 into a kill.
        for signum in _stop_signums():
            signal.signal(signum, signal.SIG_IGN)
        raise SystemExit(EXIT_STOPPED) from None
    except RuntimeError as err:
        message = _worker_killed(str(err)) or _lost_rank(runner, err)
        if message is None:
            raise
        raise TrainingError(f'{message}; {_resume_advice(runner)}') from err


def resume_command(runner) -> str:
    return (f'`python tools/train.py {runner.cfg.filename or "CONFIG"} --work-dir '
            f'{runner.work_dir} --resume`')


def _resume_advice(runner) -> str:
    latest = newest_checkpoint(runner.work_dir)  # the one --resume takes
    if not latest:
        return 'no checkpoint was saved yet'
    return f'the last checkpoint is {latest}; resume from it with {resume_command(runner)}'


_WORKER_DIED = re.compile(r'DataLoader worker \(pid(?:\(s\))? ([\d, ]+)\) '
                          r'(?:is killed by signal: ([^.]+)|exited unexpectedly)')


def _worker_killed(message: str) -> Optional[str]:
    found = _WORKER_DIED.search(message)
    if found is None:
        return None
    pids, how = found.group(1), found.group(2)
    how = f'was killed by signal {how.strip()}' if how else 'exited unexpectedly'
    return (f'data loader worker (pid {pids}) {how}, most likely by the out-of-memory killer '
            f'(`dmesg` names it: "Out of memory: Killed process {pids.split(",")[0]}"); give '
            'the job more memory, or lower num_workers or batch_size of train_dataloader')


# What gloo and NCCL say when a peer's process or node is gone.
_PEER_LOST = re.compile(r'gloo/transport|Connection (?:reset|closed) by peer|Broken pipe|NCCL|'
                        r'Socket Timeout')
CENSUS_WAIT_S = 10  # torchrun kills the workers it has sent SIGTERM 30 s later


def _lost_rank(runner, err: RuntimeError) -> Optional[str]:
    dist_error = getattr(torch.distributed, 'DistError', ())  # torch >= 2.1
    if not dist.is_distributed() or not (isinstance(err, dist_error)
                                         or _PEER_LOST.search(str(err))):
        return None
    rank, world_size = dist.get_rank(), dist.get_world_size()
    missing = _unresponsive_ranks(runner, rank, world_size)
    if missing is None:
        who = 'another rank was lost (the rendezvous store does not answer either)'
    elif missing:
        who = (f'rank{"s" if len(missing) > 1 else ""} {", ".join(map(str, missing))} did not '
               f'answer within {CENSUS_WAIT_S} s (process killed, or node down)')
    else:
        who = 'every rank answered afterwards (a network fault?)'
    return (f'rank {rank} of {world_size} lost contact at iteration {runner.iter + 1}: {who}; '
            f'the collective failed with: {str(err).strip().splitlines()[0]}')


def _unresponsive_ranks(runner, rank: int, world_size: int) -> Optional[list[int]]:
    """The ranks that do not check in at the rendezvous store (torchrun's, or
    with slurm rank 0's) within CENSUS_WAIT_S seconds; None when it cannot be
    reached."""
    host, port = os.environ.get('MASTER_ADDR'), os.environ.get('MASTER_PORT')
    if not host or not port:
        return None
    keys = [f'mmpoolformer/alive/{runner.timestamp}/{runner.iter}/{r}' for r in range(world_size)]
    try:
        store = torch.distributed.TCPStore(host, int(port), is_master=False,
                                           timeout=datetime.timedelta(seconds=CENSUS_WAIT_S))
        store.set(keys[rank], '1')
        deadline = time.monotonic() + CENSUS_WAIT_S
        while True:
            missing = [r for r, key in enumerate(keys) if not store.check([key])]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)
    except (RuntimeError, OSError, ValueError):  # no store there (any more)
        return None


def _checkpoint_hook(runner) -> Optional[CheckpointHook]:
    return next((hook for hook in runner.hooks if isinstance(hook, CheckpointHook)), None)


@HOOKS.register_module()
class StopOnSignalHook(Hook):
    """Stop every rank after the same iteration at SIGTERM or SIGUSR1, and save it.

    After each iteration the ranks reduce one small tensor: which of them
    received a stop signal (while tools/train.py trains inside
    :func:`handling_training_faults`). When any did, that iteration is saved as
    ``iter_<N>.pth`` with the config's checkpoint settings (an epoch-based loop
    saves its position in the epoch, see
    :class:`~mmpoolformer.engine.ResumableEpochBasedTrainLoop`), ``last_checkpoint``
    is pointed at it atomically, the ranks wait for the write, and training ends
    with :class:`TrainingStopped`. Its priority is the lowest: the iteration's
    schedulers, logs and EMA are done when it is saved. Added by tools/train.py.
    """
    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if (isinstance(loop, EpochBasedTrainLoop)
                and not isinstance(loop, ResumableEpochBasedTrainLoop)):
            raise UsageError(f'{type(self).__name__} saves mid-epoch, which '
                             f'{type(loop).__name__} cannot resume: use train_cfg.type='
                             "'mmpoolformer.ResumableEpochBasedTrainLoop'")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        received = torch.zeros(dist.get_world_size(), dtype=torch.int32)
        received[dist.get_rank()] = stop_signal()
        dist.all_reduce(received, op='max')  # nothing to do when not distributed
        if not received.any():
            return
        path = self._save(runner)
        dist.barrier()  # no rank exits (and gets its peers killed) before the file is whole
        by = sorted({signal.Signals(int(s)).name for s in received if s})
        ranks = [r for r, s in enumerate(received.tolist()) if s]
        who = ''
        if dist.is_distributed():
            who = f' (rank{"s" if len(ranks) > 1 else ""} {", ".join(map(str, ranks))})'
        message = (f'{" and ".join(by)} received{who}: stopped after iteration {runner.iter + 1}'
                   f' (epoch {runner.epoch + 1}) and saved it to {path}; continue with '
                   f'{resume_command(runner)} (exit status {EXIT_STOPPED})')
        print_log(message, logger='current')
        runner.visualizer.close()  # as LoggerHook.after_run would: TensorBoard's last scalars
        raise TrainingStopped(message)

    @staticmethod
    def _save(runner) -> str:
        hook = _checkpoint_hook(runner)
        out_dir = getattr(hook, 'out_dir', None) or runner.work_dir
        backend_args = getattr(hook, 'backend_args', None)
        if backend_args is None and '://' not in str(out_dir):
            register_atomic_backend()
            backend_args = dict(backend=ATOMIC_BACKEND)
        filename = f'iter_{runner.iter + 1}.pth'
        runner.save_checkpoint(
            out_dir, filename, by_epoch=False, backend_args=backend_args,
            save_optimizer=getattr(hook, 'save_optimizer', True),
            save_param_scheduler=getattr(hook, 'save_param_scheduler', True))
        path = osp.join(out_dir, filename)
        if dist.is_main_process():
            AtomicLocalBackend().put_text(path, osp.join(runner.work_dir, 'last_checkpoint'))
        return path


def enable_stop_and_resume(cfg):
    """What tools/train.py adds to every config: exact resume
    (:class:`~mmpoolformer.engine.ExactResumeHook`), a stop on SIGTERM / SIGUSR1
    that saves the iteration (:class:`StopOnSignalHook`), and for epoch-based
    loops :class:`~mmpoolformer.engine.ResumableEpochBasedTrainLoop`, which
    resumes from that iteration in the middle of an epoch."""
    hooks = list(cfg.get('custom_hooks') or [])
    for hook in ('mmpoolformer.ExactResumeHook', 'mmpoolformer.StopOnSignalHook'):
        if not any(h.get('type') == hook for h in hooks):
            hooks.append(dict(type=hook))
    cfg.custom_hooks = hooks
    loop = cfg.get('train_cfg')
    if not loop:
        return
    if loop.get('by_epoch') or loop.get('type') in ('EpochBasedTrainLoop',
                                                    'mmengine.EpochBasedTrainLoop'):
        loop = {key: value for key, value in loop.items() if key not in ('by_epoch', 'type')}
        cfg.train_cfg = dict(type='mmpoolformer.ResumableEpochBasedTrainLoop', **loop)
