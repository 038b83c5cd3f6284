from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmpoolformer.checkpoint import check_shapes, convert_to_mmpoolformer, get_state_dict
from mmpoolformer.registry import HOOKS


@HOOKS.register_module()
class ConvertCheckpointHook(Hook):
    """Let ``load_from`` / ``tools/test.py CONFIG CKPT`` take any PoolFormer layout.

    Runs on mmengine's ``after_load_checkpoint``: converts official sail-sg,
    mmpretrain and timm state dicts to this project's layout in place, and turns
    a shape mismatch (weights of another arch) into an error naming the key.
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict, layout = convert_to_mmpoolformer(get_state_dict(checkpoint))
        if layout != 'mmpoolformer':
            print_log(f'converted checkpoint from the {layout} layout', logger='current')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_shapes(model.state_dict(), state_dict)
        checkpoint['state_dict'] = state_dict


@HOOKS.register_module()
class DeployHook(Hook):
    """Fold the backbone for inference (``switch_to_deploy``) once the checkpoint
    is loaded, before validation or testing; ``tools/test.py --deploy`` adds it."""

    def _deploy(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not getattr(model.backbone, 'deployed', False):
            folded = model.backbone.switch_to_deploy()
            print_log(f'deploy: folded {folded} blocks of the backbone', logger='current')

    def before_test(self, runner) -> None:
        self._deploy(runner)

    def before_val(self, runner) -> None:
        self._deploy(runner)
