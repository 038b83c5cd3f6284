"""Token mixers: each takes ``dim`` and maps (B, C, H, W) -> (B, C, H, W).

PoolFormer's pooling, and MetaFormer v2's identity, random mixing, separable
convolution (ConvFormer) and attention (CAFormer). Blocks build them by registered
name (``token_mixers=dict(type='Pooling', pool_size=3)``).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpoolformer.registry import MODELS
from mmpoolformer.utils.errors import ConfigError

from .activations import build_act


@MODELS.register_module()
class Pooling(nn.Module):
    """PoolFormer's token mixer: ``AvgPool(x) - x``.

    The ``- x`` is there because the block adds the input back through its
    residual; ``count_include_pad=False`` keeps borders unbiased.

    Args:
        dim (int): Channels of the input (unused; every mixer takes it).
        pool_size (int): Pooling window, stride 1, same padding. Defaults to 3.
    """

    def __init__(self, dim: int, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2,
                                 count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x


@MODELS.register_module()
class IdentityMixer(nn.Module):
    """No token mixing at all (IdentityFormer).

    Args:
        dim (int): Channels of the input (unused; every mixer takes it).
    """

    def __init__(self, dim: int):
        super().__init__()

    def forward(self, x):
        return x


@MODELS.register_module()
class RandomMixing(nn.Module):
    """Mix tokens with a fixed random row-stochastic matrix (RandFormer).

    The matrix (``num_tokens`` x ``num_tokens``, a square grid: 196 = 14x14 for
    stage 3 and 49 = 7x7 for stage 4 at 224x224) is a frozen buffer drawn at
    construction and stored in checkpoints. On a token grid of another size,
    as in detection and segmentation, both of its grid axes are resampled
    bilinearly to the input's grid and each row renormalised to sum to 1, so
    every token still takes a convex combination of all tokens; on the stored
    grid the matrix is used as it is.

    Args:
        dim (int): Channels of the input (unused; every mixer takes it).
        num_tokens (int): Tokens of the square grid the matrix is drawn for.
            Defaults to 196 (14x14).
    """

    def __init__(self, dim: int, num_tokens: int = 196):
        super().__init__()
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ConfigError(f'RandomMixing num_tokens must be a square grid '
                              f'(e.g. 196 = 14x14), got {num_tokens}')
        self.side = side
        self.register_buffer(
            'random_matrix', torch.softmax(torch.rand(num_tokens, num_tokens), dim=-1))

    def mixing_matrix(self, height: int, width: int) -> torch.Tensor:
        if (height, width) == (self.side, self.side):
            return self.random_matrix
        s = self.side
        # Resample the source axes (columns), then the target axes (rows).
        m = self.random_matrix.reshape(s * s, 1, s, s)
        m = F.interpolate(m, size=(height, width), mode='bilinear', align_corners=False)
        m = m.reshape(s, s, height * width).permute(2, 0, 1).unsqueeze(1)
        m = F.interpolate(m, size=(height, width), mode='bilinear', align_corners=False)
        m = m.reshape(height * width, height * width).t()
        return m / m.sum(dim=-1, keepdim=True)

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # B, N, C
        mixed = torch.matmul(self.mixing_matrix(h, w).to(x.dtype), tokens)
        return mixed.transpose(1, 2).reshape(b, c, h, w)


@MODELS.register_module()
class SepConv(nn.Module):
    """Inverted separable convolution (ConvFormer): 1x1 expand, activation,
    depthwise kxk, 1x1 project; no biases.

    Args:
        dim (int): Channels of the input and output.
        expansion_ratio (float): Hidden channels per input channel. Defaults to 2.
        kernel_size (int): Kernel size of the depthwise convolution. Defaults to 7.
        act_cfg (dict): Activation after the expansion. Defaults to StarReLU.
        bias (bool): Biases in the three convolutions. Defaults to False.
    """

    def __init__(self, dim: int, expansion_ratio: float = 2, kernel_size: int = 7,
                 act_cfg: Optional[dict] = None, bias: bool = False):
        super().__init__()
        act_cfg = act_cfg or dict(type='StarReLU')
        hidden = int(expansion_ratio * dim)
        self.pwconv1 = nn.Conv2d(dim, hidden, 1, bias=bias)
        self.act1 = build_act(act_cfg)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2,
                                groups=hidden, bias=bias)
        self.pwconv2 = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        return self.pwconv2(self.dwconv(self.act1(self.pwconv1(x))))


@MODELS.register_module()
class Attention(nn.Module):
    """Multi-head self-attention over all tokens (CAFormer's later stages).

    Args:
        dim (int): Channels of the input and output.
        head_dim (int): Channels per head; ``dim // head_dim`` heads (at least
            one). Defaults to 32.
        qkv_bias (bool): Bias in the query / key / value projection.
            Defaults to False.
        attn_drop (float): Dropout on the attention weights while training.
            Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
    """

    def __init__(self, dim: int, head_dim: int = 32, qkv_bias: bool = False,
                 attn_drop: float = 0., proj_drop: float = 0.):
        super().__init__()
        self.head_dim = head_dim
        self.num_heads = max(dim // head_dim, 1)
        inner = self.num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner, dim, bias=False)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.qkv(x.flatten(2).transpose(1, 2))  # B, N, 3 * inner
        q, k, v = qkv.reshape(b, h * w, 3, self.num_heads, self.head_dim
                              ).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        out = self.proj_drop(self.proj(out.transpose(1, 2).flatten(2)))
        return out.transpose(1, 2).reshape(b, c, h, w)
