"""Norms of the MetaFormer family on NCHW tensors, and how every layer builds a norm."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer

from mmpoolformer.registry import MODELS, build_in_our_scope


def build_norm(cfg: Optional[dict], dim: int) -> nn.Module:
    """mmcv's norms (GN, BN, LN, ...) and this package's (LayerNorm2d, GroupNorm1)
    by name; ``None`` gives Identity."""
    if cfg is None:
        return nn.Identity()
    return build_in_our_scope(build_norm_layer, cfg, dim)[1]


@MODELS.register_module()
class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor, optionally without bias."""

    def __init__(self, num_features: int, eps: float = 1e-6, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight,
                         self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


@MODELS.register_module()
class GroupNorm1(nn.GroupNorm):
    """GroupNorm with one group (statistics over C, H, W; affine per channel),
    optionally without bias as in MetaFormer v2."""

    def __init__(self, num_features: int, eps: float = 1e-5, bias: bool = True):
        super().__init__(1, num_features, eps=eps)
        if not bias:
            self.bias = None
