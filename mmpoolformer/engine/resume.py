"""What makes a crash cost nothing: checkpoints and ``last_checkpoint`` written
atomically, and random generators reseeded per epoch (or iteration) so that
``--resume`` draws the numbers an uninterrupted run would have drawn.

Nothing here acts on import: the atomic file backend is registered, under its
own name, when a config builds :class:`AtomicCheckpointHook`.
"""
import itertools
import os
import os.path as osp

from mmengine.dataset import InfiniteSampler
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.backends import backends
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop, set_random_seed

from mmpoolformer.registry import HOOKS

ATOMIC_BACKEND = 'atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing to a temporary file in the same
    folder, fsyncing it and renaming it into place: a process killed while
    writing leaves the previous file whole."""

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        tmp = f'{filepath}.tmp-{os.getpid()}'
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


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
        save(staged_runner, *args)
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
    torch from (seed, step): at every epoch start for epoch-based loops, and
    before every iteration's batch for iteration-based ones, where it also
    starts an ``InfiniteSampler`` after the batches already trained on, so that
    they are skipped without loading them (mmengine draws them again). Added by
    tools/train.py. Exact with ``num_workers=0``, and for epoch-based loops with
    non-persistent workers (mmengine seeds workers from the same seed).
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self.by_iteration = isinstance(runner.train_loop, IterBasedTrainLoop)

    def _reseed(self, runner, step: int):
        # runner.seed already has the per-rank offset when diff_rank_seed is set.
        set_random_seed((runner.seed * 1_000_003 + step) % 2**31,
                        deterministic=runner.deterministic)

    def before_train_epoch(self, runner) -> None:
        if not self.by_iteration:
            self._reseed(runner, runner.epoch)
            return
        if runner.iter > 0:
            self._skip_trained_batches(runner)
        self._reseed(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.by_iteration:  # the next batch is loaded after this hook
            self._reseed(runner, runner.iter + 1)

    def after_val(self, runner) -> None:
        # A validation between two iterations must not shift their draws.
        if getattr(self, 'by_iteration', False):
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
