"""Activations of MetaFormer v2, and how every layer builds an activation."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer

from mmpoolformer.registry import MODELS, build_in_our_scope


def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)**2``, squared in fp32 when ``x`` is fp16.

    fp16 tops out at 65504, so any activation above 256 would square to inf under
    ``--amp``. Under CUDA autocast ``.square()`` stays in fp16 (``pow`` is on its fp32
    list, but not on the CPU's), so the cast is explicit. The result is then fp32; the
    next convolution casts it back to fp16 under autocast, which holds up to 65504.
    """
    x = F.relu(x)
    return x.float().square() if x.dtype == torch.float16 else x.square()


def build_act(cfg: dict) -> nn.Module:
    """mmcv's activations and this package's (StarReLU, SquaredReLU) by name."""
    return build_in_our_scope(build_activation_layer, cfg)


@MODELS.register_module()
class StarReLU(nn.Module):
    """``s * relu(x)**2 + b`` with learnable scalars s and b."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0,
                 inplace: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([scale_value]))
        self.bias = nn.Parameter(torch.tensor([bias_value]))

    def forward(self, x):
        return self.scale * relu_squared(x) + self.bias


@MODELS.register_module()
class SquaredReLU(nn.Module):
    """``relu(x)**2`` (ConvFormer / CAFormer classifier heads)."""

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x):
        return relu_squared(x)
