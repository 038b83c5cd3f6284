"""``tools/train.py --compile`` and ``tools/test.py --compile``: the model's backbone
compiled in place with torch.compile."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from mmpoolformer.registry import HOOKS
from mmpoolformer.utils.errors import UsageError

from .hooks import inner_model


def dynamo_graphs() -> int:
    """How many graphs dynamo has compiled in this process so far."""
    # torch._dynamo keeps its statistics in this counter; no public API reports them.
    from torch._dynamo.utils import counters
    return int(counters['stats']['unique_graphs'])


@HOOKS.register_module()
class CompileBackboneHook(Hook):
    """Compile the model's backbone in place (``nn.Module.compile``) before the run.

    The backbone alone, not mmengine's ``compile=True``: that compiles the whole
    ``train_step``, optimizer step included, and dynamo stops on mmengine's optimizer
    wrapper on this stack (torch 2.14.1, mmengine 0.10.7; docs/performance.md). The
    backbone traces as one graph in training and inference (tests/test_compile.py)
    and holds almost all of a classifier's time. Compiled in place, the module keeps
    its parameters and names, so checkpoints carry no ``_orig_mod.`` and resume into
    compiled and eager runs alike. Classifiers, detectors and segmentors all have a
    ``backbone``; a model without one is a usage error naming its type.

    Compiling is lazy: the first iteration of each mode (train, val, test) compiles,
    and the hook logs how many graphs dynamo compiled by the end of it.

    Args:
        **compile_kwargs: passed to ``torch.compile`` (e.g. ``mode``, ``dynamic``).
    """
    priority = 'VERY_LOW'  # after hooks that change the backbone before the run

    def __init__(self, **compile_kwargs):
        self.compile_kwargs = compile_kwargs
        self._reported = set()

    def before_run(self, runner) -> None:
        model = inner_model(runner)
        backbone = getattr(model, 'backbone', None)
        if not isinstance(backbone, nn.Module):
            raise UsageError(f'--compile compiles the model\'s backbone, and '
                             f'{type(model).__name__} has no backbone module')
        backbone.compile(**self.compile_kwargs)
        options = ', '.join(f'{k}={v!r}' for k, v in self.compile_kwargs.items())
        print_log(f'compiled the backbone ({type(backbone).__name__}) in place with '
                  f'torch.compile({options})', logger='current')

    def _report_once(self, mode: str) -> None:
        if mode not in self._reported:
            self._reported.add(mode)
            print_log(f'compiled backbone: dynamo has compiled {dynamo_graphs()} graph(s) '
                      f'after the first {mode} iteration', logger='current')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._report_once('train')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._report_once('val')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._report_once('test')
