from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from mmpoolformer.checkpoint import (check_shapes, convert_to_mmpoolformer, get_state_dict,
                                     skipped_message)
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
            folded = model.backbone.switch_to_deploy()
            print_log(f'deploy: folded {folded} blocks of the backbone', logger='current')

    def before_test(self, runner) -> None:
        self._deploy(runner)

    def before_val(self, runner) -> None:
        self._deploy(runner)
