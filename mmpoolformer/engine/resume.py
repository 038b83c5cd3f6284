"""What makes a crash cost nothing: checkpoints written atomically, and random
generators reseeded per epoch so that ``--resume`` draws the numbers an
uninterrupted run would have drawn."""
import os

from mmengine.fileio import LocalBackend
from mmengine.fileio import io as mmengine_io
from mmengine.fileio import register_backend
from mmengine.hooks import Hook

from mmpoolformer.registry import HOOKS


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing to a temporary file in the same
    folder and renaming it into place: a process killed while writing leaves
    the previous file (a checkpoint, ``last_checkpoint``) whole."""

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
        tmp = f'{filepath}.tmp-{os.getpid()}'
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


register_backend('local', AtomicLocalBackend, force=True, prefixes='')
# Drop local-path instances mmengine may have cached before (keys 'prefix:args').
for key in [k for k in mmengine_io.backend_instances if k.startswith(':')]:
    del mmengine_io.backend_instances[key]


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed Python, NumPy and torch from (seed, epoch) at the start of every
    training epoch.

    mmengine's ``--resume`` restores weights, optimizer, scheduler, message hub
    and the sampler's epoch, but not the random generators, which a resumed
    run would otherwise restart from the seed; augmentation, RPN / RoI sampling
    and dropout would then draw differently. With this hook each epoch draws
    the same numbers whether or not the run was interrupted before it
    (tools/train.py adds it). Exact for epoch-based loops with
    ``num_workers=0`` or non-persistent workers, whose seeds mmengine derives
    from the same seed.
    """
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner import set_random_seed
        seed = (runner.seed * 1_000_003 + runner.epoch) % 2**31
        set_random_seed(seed, deterministic=runner._randomness_cfg.get('deterministic', False),
                        diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False))
