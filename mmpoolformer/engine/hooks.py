from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from mmpoolformer.checkpoint import (check_shapes, convert_to_mmpoolformer, get_state_dict,
                                     skipped_message)
from mmpoolformer.models.backbones.deploy import switch_to_deploy
from mmpoolformer.registry import HOOKS


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
    """Stop training at the first NaN or Inf loss, before anything saves it.

    The optimizer has already stepped with that loss, so the weights in memory
    are spoiled; this hook runs before CheckpointHook (whose priority is
    VERY_LOW) on the same iteration, so the spoiled state is never written and
    the last checkpoint stays the last good one. The error names the iteration
    and every loss term, and says how to resume. On by default in our configs
    (``default_hooks.check_loss``).
    """
    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        import math

        from mmengine.runner import find_latest_checkpoint

        from mmpoolformer.utils.errors import TrainingError
        terms = {k: float(v.detach()) if hasattr(v, 'detach') else float(v)
                 for k, v in (outputs or {}).items() if 'loss' in k}
        if all(math.isfinite(v) for v in terms.values()):
            return
        values = ', '.join(f'{k}={v:.4g}' for k, v in terms.items())
        latest = find_latest_checkpoint(runner.work_dir)
        if latest:
            config = runner.cfg.filename or 'CONFIG'
            advice = (f'the last good checkpoint is {latest}; resume from it with '
                      f'`python tools/train.py {config} --work-dir {runner.work_dir} '
                      '--resume` (a lower lr, gradient clipping or fp32 may help)')
        else:
            advice = 'no checkpoint was saved before it'
        raise TrainingError(f'non-finite loss at iteration {runner.iter + 1} '
                            f'(epoch {runner.epoch + 1}): {values}; training stopped and '
                            f'the spoiled weights were not saved; {advice}')
