"""The stem and the downsampling between stages."""
from typing import Optional

import torch.nn as nn

from .norms import build_norm


class Downsampling(nn.Module):
    """A strided convolution, optionally with a norm before or after it.

    PoolFormer uses plain convolutions (7x7/4 stem, 3x3/2 between stages);
    MetaFormer v2 models add a norm after the stem and before each downsampling.

    Args:
        in_channels (int): Channels of the input.
        out_channels (int): Channels of the output.
        kernel_size (int): Kernel size of the convolution.
        stride (int): Stride of the convolution.
        padding (int): Zero padding of the convolution.
        pre_norm_cfg (dict, optional): Norm applied to the input (MetaFormer v2
            downsampling). Defaults to None (no norm).
        post_norm_cfg (dict, optional): Norm applied to the output (MetaFormer v2
            stem). Defaults to None (no norm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, padding: int, pre_norm_cfg: Optional[dict] = None,
                 post_norm_cfg: Optional[dict] = None):
        super().__init__()
        self.pre_norm = build_norm(pre_norm_cfg, in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              stride=stride, padding=padding)
        self.post_norm = build_norm(post_norm_cfg, out_channels)

    def forward(self, x):
        return self.post_norm(self.conv(self.pre_norm(x)))
