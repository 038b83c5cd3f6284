"""Model size and complexity, counted the way the PoolFormer paper does (fvcore)."""
from typing import Tuple

import torch


class _TensorForward(torch.nn.Module):
    """Exposes an OpenMMLab model's plain tensor forward to fvcore's tracer."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        if hasattr(self.model, 'data_preprocessor'):
            return self.model(x, mode='tensor')
        return self.model(x)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, shape: Tuple[int, int] = (224, 224)) -> int:
    """Multiply-accumulates of one forward pass on a 1x3xHxW input (fvcore)."""
    from fvcore.nn import FlopCountAnalysis
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(_TensorForward(model), torch.randn(1, 3, *shape))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    try:
        return int(analysis.total())
    finally:
        model.train(was_training)
