"""What makes a crash cost nothing: checkpoints and ``last_checkpoint`` written
atomically, an epoch-based loop that resumes mid-epoch, and random generators
reseeded per iteration so that ``--resume`` draws the numbers an uninterrupted
run would have drawn.

Nothing here acts on import: the atomic file backend is registered, under its
own name, when a config builds :class:`AtomicCheckpointHook`.
"""
import glob
import itertools
import os
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.backends import backends
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import (
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    find_latest_checkpoint,
    set_random_seed,
)
from torch.utils.data import BatchSampler

from mmpoolformer.registry import HOOKS, LOOPS
from mmpoolformer.utils.errors import CheckpointError

ATOMIC_BACKEND = 'atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing to a temporary file in the same
    folder, fsyncing it and renaming it into place: a process killed while
    writing leaves the previous file whole."""

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        tmp = f'{filepath}.tmp-{os.getpid()}'
        try:
            os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except OSError as err:  # a full disk, a quota, a read-only or failing file system
            raise write_error(filepath, err) from err
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def newest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from: the one ``last_checkpoint``
    names, or a newer ``epoch_N.pth`` / ``iter_N.pth`` beside it. mmengine names a
    checkpoint after writing it; a run killed in between would otherwise resume
    from the one before, or start afresh. (Checkpoints appear whole: they are
    written to a temporary file and renamed.)"""
    named = find_latest_checkpoint(work_dir)
    folder = osp.dirname(named) if named else work_dir
    saved = [path for path in glob.glob(osp.join(folder, '*.pth'))
             if re.fullmatch(r'(epoch|iter)_\d+\.pth', osp.basename(path))]
    newest = max(saved, key=osp.getmtime, default=None)
    if named is None or (newest is not None and osp.getmtime(newest) > osp.getmtime(named)):
        return newest
    return named


def write_error(path, err: OSError) -> CheckpointError:
    return CheckpointError(f'cannot write {path}: [Errno {err.errno}] {err.strerror or err}; '
                           'the file there before, if any, is unchanged, and so is '
                           'last_checkpoint')


def register_atomic_backend():
    """Make ``backend_args=dict(backend='atomic_local')`` select
    :class:`AtomicLocalBackend`; mmengine's ``local`` backend is left alone."""
    if backends.get(ATOMIC_BACKEND) is not AtomicLocalBackend:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


class _StagedWorkDir:
    """The runner as mmengine's CheckpointHook sees it, except that ``work_dir``
    is a staging folder: the hook writes ``last_checkpoint`` there with a plain
    ``open()``, and :class:`AtomicCheckpointHook` renames it into place. The
    folder is made when the hook first asks for ``work_dir``, which it does only
    on rank 0 after saving a checkpoint."""

    def __init__(self, runner):
        self._runner, self.staging = runner, None

    @property
    def work_dir(self) -> str:
        if self.staging is None:
            self.staging = osp.join(self._runner.work_dir, '.last_checkpoint.staging')
            os.makedirs(self.staging, exist_ok=True)
        return self.staging

    def __getattr__(self, name):
        return getattr(self._runner, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook whose files survive a crash while being written.

    Checkpoints go through the file backend that ``backend_args`` names (our
    configs: ``dict(backend='atomic_local')``, registered when this hook is
    built); ``last_checkpoint``, which mmengine writes with a plain ``open()``,
    is written into a staging folder of the work dir and renamed into place, so
    that ``--resume`` never reads a half-written pointer. Only rank 0 stages,
    and only when a checkpoint is saved: an iteration without a save touches no
    file (on a shared file system, 16 ranks' stats each iteration add up).
    """

    def __init__(self, *args, **kwargs):
        register_atomic_backend()
        super().__init__(*args, **kwargs)

    def _staged(self, runner, save, *args):
        if not is_main_process():  # mmengine writes last_checkpoint on rank 0 only
            return save(runner, *args)
        staged_runner = _StagedWorkDir(runner)
        try:
            save(staged_runner, *args)
        except OSError as err:  # the checkpoint, or mmengine's own open() of last_checkpoint
            where = err.filename or osp.join(runner.work_dir, 'last_checkpoint')
            raise write_error(where, err) from err
        if staged_runner.staging is None:  # nothing saved
            return
        staged = osp.join(staged_runner.staging, 'last_checkpoint')
        if osp.exists(staged):
            with open(staged) as f:
                AtomicLocalBackend().put_text(f.read(), osp.join(runner.work_dir,
                                                                 'last_checkpoint'))
            os.remove(staged)

    def after_train_epoch(self, runner) -> None:
        self._staged(runner, super().after_train_epoch)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._staged(runner, super().after_train_iter, batch_idx, data_batch, outputs)

    def after_val_epoch(self, runner, metrics) -> None:
        self._staged(runner, super().after_val_epoch, metrics)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``--resume`` draw the random numbers an uninterrupted run draws.

    mmengine's resume restores weights, optimizer, schedulers, message hub and
    the sampler's epoch, but not the random generators, which a resumed run
    would otherwise restart from the seed. This hook reseeds Python, NumPy and
    torch from (seed, iteration) before every batch is loaded: at each epoch
    start, after each iteration and after each validation, and, on a mid-epoch
    resume, once the trained batches are skipped
    (:class:`ResumableEpochBasedTrainLoop` calls ``after_skip_trained_batches``).
    For iteration-based loops it also starts an ``InfiniteSampler`` after the
    batches already trained on, so that they are skipped without loading them
    (mmengine draws them again). Added by tools/train.py. Exact with
    ``num_workers=0``; resumed at an epoch's start, also with non-persistent
    workers (mmengine seeds workers from the same seed).
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self.by_iteration = isinstance(runner.train_loop, IterBasedTrainLoop)

    def _reseed(self, runner, step: int):
        # runner.seed already has the per-rank offset when diff_rank_seed is set.
        set_random_seed((runner.seed * 1_000_003 + step) % 2**31,
                        deterministic=runner.deterministic)

    def before_train_epoch(self, runner) -> None:
        if self.by_iteration and runner.iter > 0:
            self._skip_trained_batches(runner)
        self._reseed(runner, runner.iter)

    def after_skip_trained_batches(self, runner) -> None:
        self._reseed(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._reseed(runner, runner.iter + 1)  # the next batch is loaded after this hook

    def after_val(self, runner) -> None:
        # A validation between two iterations must not shift their draws.
        if getattr(self, 'by_iteration', None) is not None:  # during training
            self._reseed(runner, runner.iter)

    @staticmethod
    def _skip_trained_batches(runner):
        loop = runner.train_loop
        loader = loop.dataloader
        sampler = loader.sampler
        if not isinstance(sampler, InfiniteSampler):
            return  # mmengine draws the trained batches again (not exact)
        # A fresh stream of the same indices, started after the trained ones...
        fresh = InfiniteSampler(sampler.dataset, shuffle=sampler.shuffle, seed=sampler.seed)
        sampler.indices = itertools.islice(fresh.indices, runner.iter * loader.batch_size, None)
        # ...and, for the `iter` batches IterBasedTrainLoop.run() draws and drops
        # on resume, placeholders, so that nothing is loaded or transformed.
        loop.dataloader_iterator = _SkipThenLoad(loader, skip=runner.iter)


class _SkipThenLoad:
    """``skip`` placeholder batches, then the data loader's batches, endlessly.
    The loader's iterator is made here, before the reseed that follows: making
    one draws a base seed from torch's generator."""

    def __init__(self, dataloader, skip: int):
        self.dataloader, self.skip, self.iterator = dataloader, skip, iter(dataloader)

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip:
            self.skip -= 1
            return None
        while True:
            if self.iterator is None:
                self.iterator = iter(self.dataloader)
            try:
                return next(self.iterator)
            except StopIteration:
                self.iterator = None


# The message hub's record (saved in every checkpoint) of how many batches of the
# current epoch are trained.
BATCHES_DONE_IN_EPOCH = 'batches_done_in_epoch'


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch-based loop, resumable in the middle of an epoch.

    A checkpoint saved after an iteration (:class:`StopOnSignalHook` saves one
    at SIGTERM) records how many batches of its epoch were trained. Resumed
    from it, the epoch goes on with the next batch, numbered as in an
    uninterrupted run; with torch's ``BatchSampler`` (mmpretrain, mmseg) the
    sampler starts after the trained indices, so nothing is loaded for them,
    otherwise (mmdet's aspect-ratio batches) they are loaded and dropped. The
    hooks' ``after_skip_trained_batches`` runs before the first batch is
    loaded. An epoch's checkpoint is saved before that epoch's validation: resumed
    from one, the loop runs the validation first if it was due, as the
    uninterrupted run did (killed during it, its metrics and a ``save_best``
    checkpoint would be lost). tools/train.py uses it in place of
    ``EpochBasedTrainLoop``.
    """

    def run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        resumed_at_epoch_end = self.runner.message_hub.get_info(BATCHES_DONE_IN_EPOCH, 0) == 0
        self._decide_current_val_interval()
        if self._epoch > 0 and resumed_at_epoch_end and self._validation_due():
            self.runner.val_loop.run()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval()
            if self._validation_due():
                self.runner.val_loop.run()
        self.runner.call_hook('after_train')
        return self.runner.model

    def _validation_due(self) -> bool:
        """Whether the epoch just trained is validated (mmengine's rule)."""
        return (self.runner.val_loop is not None and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0 or self._epoch == self._max_epochs))

    def run_epoch(self) -> None:
        hub = self.runner.message_hub
        trained = hub.get_info(BATCHES_DONE_IN_EPOCH, 0)
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        batch_sampler = getattr(self.dataloader, 'batch_sampler', None)
        skip_indices = trained and type(batch_sampler) is BatchSampler
        if skip_indices:
            sampler = batch_sampler.sampler
            batch_sampler.sampler = _StartAfter(sampler, trained * batch_sampler.batch_size)
        try:
            batches = iter(self.dataloader)
            if trained:
                if not skip_indices:
                    for _ in range(trained):
                        next(batches, None)
                self.runner.call_hook('after_skip_trained_batches')
            for idx, data_batch in enumerate(batches, start=trained):
                hub.update_info(BATCHES_DONE_IN_EPOCH, idx + 1)
                self.run_iter(idx, data_batch)
        finally:
            if skip_indices:
                batch_sampler.sampler = sampler
        # The epoch's checkpoint (saved by after_train_epoch) starts the next one afresh.
        hub.update_info(BATCHES_DONE_IN_EPOCH, 0)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


class _StartAfter:
    """A sampler's indices after the first ``skip``, drawn when the epoch's
    first batch is; its length stays the whole epoch's, which ``len()`` of the
    data loader (the loop's and the hooks' batch count) reads."""

    def __init__(self, sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self):
        return len(self.sampler)
