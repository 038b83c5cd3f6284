import logging
import math

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from mmpoolformer.checkpoint import (
    check_shapes,
    convert_to_mmpoolformer,
    get_state_dict,
    skipped_message,
)
from mmpoolformer.checkpoint.weights_only import from_weights_only, to_weights_only
from mmpoolformer.models.backbones.deploy import switch_to_deploy
from mmpoolformer.registry import HOOKS
from mmpoolformer.utils.errors import TrainingError

from .faults import resume_command
from .resume import newest_checkpoint


def inner_model(runner):
    """The model inside DDP and test-time-augmentation wrappers (whose checkpoint
    keys mmengine's loader also unwraps)."""
    model = runner.model
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


@HOOKS.register_module()
class ConvertCheckpointHook(Hook):
    """Let ``load_from`` / ``tools/test.py CONFIG CKPT`` take any PoolFormer layout.

    Runs on mmengine's ``after_load_checkpoint``: converts official sail-sg,
    mmpretrain and timm state dicts to this project's layout in place. A shape
    mismatch inside the backbone (weights of another arch) is an error naming
    the key; tensors outside it whose shapes differ (an ImageNet or COCO head
    for another number of classes) are skipped, as mmengine does, and named with
    both shapes in one log message.
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict, layout = convert_to_mmpoolformer(get_state_dict(checkpoint))
        if layout != 'mmpoolformer':
            print_log(f'converted checkpoint from the {layout} layout', logger='current')
        model = inner_model(runner)
        model_state = model.state_dict()
        source = runner.cfg.get('load_from') or 'checkpoint'
        skipped = check_shapes(model_state, state_dict, source, skip_heads=True)
        if skipped:
            print_log(skipped_message(source, skipped), logger='current')
            # The model's own tensors stand in for them, so that mmengine's loader
            # does not report the same keys again as missing.
            state_dict.update({key: model_state[key] for key, _, _ in skipped})
        checkpoint['state_dict'] = state_dict


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Save checkpoints that plain ``torch.load(path)`` reads (``weights_only=True``,
    torch's default), and read them back on ``--resume``.

    Before a checkpoint is saved, the message hub's HistoryBuffers and numpy
    values become tagged dicts of tensors and numbers
    (:func:`~mmpoolformer.checkpoint.weights_only.to_weights_only`); after one
    is loaded they become the objects again, bit for bit, before mmengine
    restores the message hub. So the toolboxes' own inferencers and tools,
    which load with torch's default, take the checkpoints trained here, and a
    resume stays exact. Checkpoints saved before this hook hold the objects
    themselves and resume as before (through tools/train.py, which reads
    them with the message hub's types allowed). A value that torch would still
    refuse is kept and named in one warning. On by default in our configs
    (``default_hooks.weights_only_checkpoint``).
    """
    # Last before saving: after every hook that adds to the checkpoint.
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        unsupported = []
        converted = to_weights_only(checkpoint, 'checkpoint', unsupported)
        checkpoint.clear()  # in place: mmengine saves this dict
        checkpoint.update(converted)
        if unsupported:
            print_log('these checkpoint values are not plain data, so torch.load needs '
                      f'weights_only=False to read the checkpoint: {", ".join(unsupported)}',
                      logger='current', level=logging.WARNING)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.update(from_weights_only(checkpoint))


@HOOKS.register_module()
class DeployHook(Hook):
    """Fold the backbone for inference (``switch_to_deploy``) once the checkpoint
    is loaded, before validation or testing; ``tools/test.py --deploy`` adds it."""

    def _deploy(self, runner):
        model = inner_model(runner)
        if not getattr(model.backbone, 'deployed', False):
            folded = switch_to_deploy(model.backbone)
            print_log(f'deploy: folded {folded} blocks of the backbone', logger='current')

    def before_test(self, runner) -> None:
        self._deploy(runner)

    def before_val(self, runner) -> None:
        self._deploy(runner)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop every rank at the first NaN or Inf loss of any rank, before anything saves it.

    The optimizer has already stepped with that loss, and in a distributed run
    the all-reduce has carried its gradients to every rank, so the weights in
    memory are spoiled everywhere. After each iteration the ranks reduce one
    small tensor, which of them saw a non-finite loss; when any did, every rank
    raises at that same iteration. This hook runs before CheckpointHook (whose
    priority is VERY_LOW) and before the epoch's end, so the spoiled state is
    never written and the last checkpoint stays the last good one. The error
    names the iteration, the rank(s) and the loss terms, and says how to
    resume. On by default in our configs (``default_hooks.check_loss``).

    With a loss scaler (fp16 ``AmpOptimWrapper``) a non-finite step is skipped
    by the GradScaler, which lowers its scale, so the weights are still good:
    only ``max_skipped_steps`` non-finite iterations in a row (default 20; from
    the default 2**16 the scale is then below 1) stop training.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, max_skipped_steps: int = 20):
        self.max_skipped_steps = max_skipped_steps
        self.non_finite_in_a_row = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        terms = {k: float(v.detach()) if hasattr(v, 'detach') else float(v)
                 for k, v in (outputs or {}).items() if 'loss' in k}
        non_finite = torch.zeros(dist.get_world_size(), dtype=torch.int32)
        non_finite[dist.get_rank()] = not all(math.isfinite(v) for v in terms.values())
        dist.all_reduce(non_finite, op='max')  # nothing to do when not distributed
        if not non_finite.any():
            self.non_finite_in_a_row = 0
            return
        ranks = [rank for rank, flag in enumerate(non_finite.tolist()) if flag]
        where = (f' on rank{"s" if len(ranks) > 1 else ""} {", ".join(map(str, ranks))} of '
                 f'{len(non_finite)}' if dist.is_distributed() else '')
        values = ', '.join(f'{k}={v:.4g}' for k, v in terms.items())
        what = f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}){where}'
        if non_finite[dist.get_rank()]:
            what += f': {values}'
        self.non_finite_in_a_row += 1
        if (getattr(runner.optim_wrapper, 'loss_scaler', None) is not None
                and self.non_finite_in_a_row < self.max_skipped_steps):
            print_log(f'{what}; the loss scaler skipped the step ({self.non_finite_in_a_row} '
                      f'in a row, training stops at {self.max_skipped_steps})',
                      logger='current', level=logging.WARNING)
            return
        if self.non_finite_in_a_row > 1:
            what += f' ({self.non_finite_in_a_row} non-finite steps in a row)'
        stopped = 'training stopped on every rank' if where else 'training stopped'
        raise TrainingError(f'{what}; {stopped} and the spoiled weights were not saved; '
                            f'{self._advice(runner)}')

    @staticmethod
    def _advice(runner) -> str:
        latest = newest_checkpoint(runner.work_dir)  # the one --resume takes
        if not latest:
            return 'no checkpoint was saved before it'
        return (f'the last good checkpoint is {latest}; resume from it with '
                f'{resume_command(runner)} (a lower lr, gradient clipping or fp32 may help)')
