"""Per-channel scales: layer scale (PoolFormer) and residual scale (MetaFormer v2)."""
from typing import Optional

import torch
import torch.nn as nn


class LayerScale(nn.Module):
    """Per-channel learnable scale on an NCHW tensor."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x):
        return x * self.scale.view(-1, 1, 1)


def scale_or_identity(dim: int, init_value: Optional[float]) -> nn.Module:
    """A LayerScale, or Identity where ``init_value`` is None (no scale)."""
    return nn.Identity() if init_value is None else LayerScale(dim, init_value)
