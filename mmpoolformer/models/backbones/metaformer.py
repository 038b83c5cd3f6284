"""The MetaFormer family in one file: stem, token mixers, block, stage, backbone.

PoolFormer ("MetaFormer Is Actually What You Need for Vision", CVPR 2022) is a
MetaFormer whose token mixer is ``AvgPool3x3(x) - x``. "MetaFormer Baselines for
Vision" (sail-sg/metaformer) adds PoolFormerV2, IdentityFormer, RandFormer,
ConvFormer and CAFormer: the same frame with other token mixers, norms and
activations. Everything here is written against the general frame, so a family
member is a ``default_settings`` dict and an ``arch_settings`` table, not a new
block class. All blocks work on NCHW tensors (channel MLPs are 1x1 convolutions).

Provenance: Yu et al., "MetaFormer Is Actually What You Need for Vision" (CVPR 2022,
arXiv 2111.11418) and "MetaFormer Baselines for Vision" (TPAMI 2024, arXiv
2210.13452). The parity tests compare against the reference implementations
through their APIs: timm's ``poolformer_*`` / ``poolformerv2_*`` / ``convformer_*`` /
``caformer_*`` (timm/models/metaformer.py, a port of sail-sg/poolformer and
sail-sg/metaformer) and mmpretrain's ``PoolFormer`` backbone. CPU deployment paths
(fused oneDNN ops, folding) are in ``deploy.py``.

State-dict layout (the project's own, close to timm's ``metaformer.py``)::

    stem.conv / stem.post_norm                  7x7/4 patch embedding
    stages.{i}.downsample.pre_norm / conv       3x3/2, stages 1..3
    stages.{i}.blocks.{j}.norm1 / token_mixer / layer_scale1.scale
    stages.{i}.blocks.{j}.norm2 / mlp.fc1 / mlp.act / mlp.fc2 / layer_scale2.scale
    stages.{i}.blocks.{j}.res_scale{1,2}.scale  (MetaFormer v2 models)
    norm{i}                                     one norm per output stage
"""
import copy
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseInit, BaseModule
from mmengine.model.weight_init import trunc_normal_init
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from mmpoolformer.registry import MODELS
from mmpoolformer.utils.errors import ConfigError, closest_name_hint

from .deploy import fused_conv_mlp


def _in_our_scope(build, *args, **kwargs):
    """Run a builder with ``mmpoolformer`` as the default scope, so that names
    resolve in our registry first (then mmengine's root, where mmcv's norms and
    activations are) whichever toolbox's Runner is building the model. The one
    way this file builds norms, activations and token mixers."""
    with DefaultScope.overwrite_default_scope('mmpoolformer'):
        return build(*args, **kwargs)


def build_norm(cfg: Optional[dict], dim: int) -> nn.Module:
    """mmcv's norms (GN, BN, LN, ...) and this file's (LayerNorm2d, GroupNorm1)
    by name; ``None`` gives Identity."""
    if cfg is None:
        return nn.Identity()
    return _in_our_scope(build_norm_layer, cfg, dim)[1]


def build_act(cfg: dict) -> nn.Module:
    """mmcv's activations and this file's (StarReLU, SquaredReLU) by name."""
    return _in_our_scope(build_activation_layer, cfg)


# --------------------------------------------------------------------------- #
# Norms and activations of MetaFormer v2 (NCHW)
# --------------------------------------------------------------------------- #
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


@MODELS.register_module()
class StarReLU(nn.Module):
    """``s * relu(x)**2 + b`` with learnable scalars s and b."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0,
                 inplace: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([scale_value]))
        self.bias = nn.Parameter(torch.tensor([bias_value]))

    def forward(self, x):
        return self.scale * F.relu(x).square() + self.bias


@MODELS.register_module()
class SquaredReLU(nn.Module):
    """``relu(x)**2`` (ConvFormer / CAFormer classifier heads)."""

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x):
        return F.relu(x).square()


# --------------------------------------------------------------------------- #
# Stem and downsampling
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# Token mixers: each takes ``dim`` and maps (B, C, H, W) -> (B, C, H, W)
# --------------------------------------------------------------------------- #
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
                 act_cfg: dict = dict(type='StarReLU'), bias: bool = False):
        super().__init__()
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


# --------------------------------------------------------------------------- #
# Block and stage
# --------------------------------------------------------------------------- #
class LayerScale(nn.Module):
    """Per-channel learnable scale on an NCHW tensor."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x):
        return x * self.scale.view(-1, 1, 1)


class ConvMlp(nn.Module):
    """Channel MLP as two 1x1 convolutions.

    At inference on CPU with channels_last input, fc1 and an exact GELU run as
    one oneDNN convolution (GELU's erf is about a fifth of PoolFormer's eager
    time when it is a separate pass), and an optional residual is added inside
    fc2. Same math; float rounding differs by ~1e-6 relative.
    """

    def __init__(self, dim: int, hidden_dim: int, act_cfg: dict,
                 drop_rate: float = 0., bias: bool = True):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1, bias=bias)
        self.act = build_act(act_cfg)
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1, bias=bias)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x, residual: Optional[torch.Tensor] = None):
        fused = fused_conv_mlp(self, x, residual)
        if fused is not None:
            return fused
        x = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        return x if residual is None else x + residual


def _scale_or_identity(dim, init_value):
    return nn.Identity() if init_value is None else LayerScale(dim, init_value)


class MetaFormerBlock(nn.Module):
    """``x = RS1 * x + LS1 * mixer(norm1(x)); x = RS2 * x + LS2 * mlp(norm2(x))``.

    Layer scale (LS, PoolFormer) and residual scale (RS, MetaFormer v2) are
    per-channel scales, each left out when its init value is None.

    Args:
        dim (int): Channels of the input and output.
        token_mixer_cfg (dict): The token mixer, a registered name (``Pooling``,
            ``IdentityMixer``, ``RandomMixing``, ``SepConv``, ``Attention``) and
            its arguments; ``dim`` is passed.
        mlp_ratio (float): Hidden channels of the channel MLP per input channel.
        norm_cfg (dict): The two norms (before the mixer, before the MLP).
        act_cfg (dict): Activation of the channel MLP.
        mlp_bias (bool): Biases in the channel MLP. Defaults to True.
        drop_rate (float): Dropout in the channel MLP. Defaults to 0.
        drop_path (float): Stochastic depth rate of both branches. Defaults to 0.
        layer_scale_init_value (float, optional): Initial layer scale, None for
            none. Defaults to 1e-5.
        res_scale_init_value (float, optional): Initial residual scale, None for
            none. Defaults to None.
    """

    def __init__(self, dim: int, token_mixer_cfg: dict, mlp_ratio: float,
                 norm_cfg: dict, act_cfg: dict, mlp_bias: bool = True,
                 drop_rate: float = 0., drop_path: float = 0.,
                 layer_scale_init_value: Optional[float] = 1e-5,
                 res_scale_init_value: Optional[float] = None):
        super().__init__()
        self.norm1 = build_norm(norm_cfg, dim)
        self.token_mixer = _in_our_scope(MODELS.build, dict(token_mixer_cfg),
                                         default_args=dict(dim=dim))
        self.layer_scale1 = _scale_or_identity(dim, layer_scale_init_value)
        self.res_scale1 = _scale_or_identity(dim, res_scale_init_value)
        self.norm2 = build_norm(norm_cfg, dim)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), act_cfg, drop_rate, mlp_bias)
        self.layer_scale2 = _scale_or_identity(dim, layer_scale_init_value)
        self.res_scale2 = _scale_or_identity(dim, res_scale_init_value)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.res_scale1(x) + self.drop_path(
            self.layer_scale1(self.token_mixer(self.norm1(x))))
        x = self.res_scale2(x) + self.drop_path(
            self.layer_scale2(self.mlp(self.norm2(x))))
        return x


class MetaFormerStage(nn.Module):
    """An optional downsampling followed by blocks.

    Args:
        downsample (nn.Module): Run first (``nn.Identity`` in stage 0).
        blocks (Sequence[nn.Module]): The stage's blocks, run in order.
        with_cp (bool): Gradient checkpointing per block while training.
            Defaults to False.
    """

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module],
                 with_cp: bool = False):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.with_cp = with_cp

    def forward(self, x):
        x = self.downsample(x)
        for block in self.blocks:
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


# --------------------------------------------------------------------------- #
# Backbone
# --------------------------------------------------------------------------- #
def _per_stage(value, num_stages: int, name: str) -> list:
    """Broadcast a scalar or a dict to one entry per stage."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_stages:
            raise ConfigError(f'{name} has {len(value)} entries, expected one '
                              f'per stage ({num_stages}): {value}')
        return [copy.deepcopy(v) for v in value]
    return [copy.deepcopy(value) for _ in range(num_stages)]


_GN1 = dict(type='GN', num_groups=1)


@MODELS.register_module()
class PretrainedAnyLayout(BaseInit):
    """The weight initializer a ``dict(type='Pretrained', checkpoint=...)``
    init_cfg of these backbones becomes: sail-sg, mmpretrain, timm or
    mmpoolformer weights, converted to this layout on the fly and read safely
    (:func:`mmpoolformer.checkpoint.load_backbone_weights`); ``prefix`` selects a
    sub-module of a checkpoint in this project's layout."""

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.checkpoint, self.prefix = checkpoint, prefix

    def __call__(self, module):
        from mmpoolformer.checkpoint import load_backbone_weights
        load_backbone_weights(module, self.checkpoint, prefix=self.prefix)


class MetaFormer(BaseModule):
    """MetaFormer backbone: a token mixer, norm and activation chosen per family.

    An architecture is a dict of the keys in ``default_settings``:
    ``layers`` (blocks per stage) and ``embed_dims`` (channels per stage) are
    required; ``mlp_ratios``, ``token_mixers`` (a mixer config, or one per
    stage), ``norm_cfg``, ``act_cfg``, ``mlp_bias``, ``stem_norm_cfg`` (after
    the stem), ``downsample_norm_cfg`` (before each downsampling),
    ``layer_scale_init_values`` and ``res_scale_init_values`` (a value, None
    for none, or one per stage) default to the class's ``default_settings``.
    Subclasses (PoolFormer, PoolFormerV2, IdentityFormer, RandFormer,
    ConvFormer, CAFormer) set those defaults and name sizes in ``arch_settings``.

    Args:
        arch (str | dict): A name in ``arch_settings`` or an architecture dict.
        in_channels (int): Input image channels. Defaults to 3.
        token_mixers (dict | list[dict], optional): Overrides the arch's token
            mixers, e.g. ``dict(type='Pooling', pool_size=3)``.
        norm_cfg (dict, optional): Overrides the arch's norm in blocks and on
            the outputs.
        act_cfg (dict, optional): Overrides the arch's MLP activation.
        out_norms (bool): Put a norm (of ``norm_cfg``'s type) on each output,
            as dense heads expect. MetaFormer v2 classifiers norm after global
            pooling in their head instead and set this False. Defaults to True.
        stem_cfg (dict): ``kernel_size/stride/padding`` of the stem.
            Defaults to 7x7, stride 4, padding 2.
        downsample_cfg (dict): Same for the downsampling between stages.
            Defaults to 3x3, stride 2, padding 1.
        drop_rate (float): Dropout in the MLPs. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly from 0 over
            all blocks to this value. Defaults to 0.
        out_indices (Sequence[int] | int): Stages (0-3, negative counts from
            the end) whose outputs are returned. Stages after the last one are
            not computed. Defaults to (3, ).
        frozen_stages (int): -1 freezes nothing, 0 the stem, ``k`` the stem
            and stages 0..k-1 (with their output norms). Defaults to -1.
        norm_eval (bool): Keep BatchNorm-type layers in eval mode while
            training (no effect on GroupNorm / LayerNorm). Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        channels_last_eval (bool): At inference on CPU, run in channels_last
            memory layout, where oneDNN's convolutions are fastest (PoolFormer-S12
            about 2x NCHW eager on a 2-core AVX-512 machine; see the README's
            performance section). Defaults to True.
        nchw_outputs (bool): Return NCHW features from the channels_last
            inference path, as heads expect: mmcv's CPU RoIAlign reads raw NCHW
            memory and ignores strides. False returns channels_last features,
            so that the neck's and heads' convolutions run in channels_last
            too; this project's dense configs do so, with RoI extractors that
            take either layout (``mmpoolformer.NCHWRoIExtractor``). Defaults
            to True.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            loads sail-sg (poolformer / metaformer), mmpretrain, timm or
            mmpoolformer weights, converting the layout on the fly; ``prefix``
            selects a sub-module of a checkpoint saved in this project's layout.
    """
    arch_settings: dict = {}
    default_arch: Optional[str] = None
    # PoolFormer v1's choices; each family overrides what differs.
    default_settings = dict(
        layers=None, embed_dims=None, mlp_ratios=4,
        token_mixers=dict(type='Pooling'), norm_cfg=_GN1, act_cfg=dict(type='GELU'),
        mlp_bias=True, stem_norm_cfg=None, downsample_norm_cfg=None,
        layer_scale_init_values=1e-5, res_scale_init_values=None)
    num_stages = 4
    # Layers that get trunc_normal_(std=.02) when no init_cfg is given: 'mlp'
    # (sail-sg/poolformer) or 'all' convolutions and linears (sail-sg/metaformer).
    original_init = 'mlp'

    def __init__(self,
                 arch: Union[str, dict] = None,
                 in_channels: int = 3,
                 token_mixers: Union[dict, Sequence[dict], None] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 out_norms: bool = True,
                 stem_cfg: dict = dict(kernel_size=7, stride=4, padding=2),
                 downsample_cfg: dict = dict(kernel_size=3, stride=2, padding=1),
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 channels_last_eval: bool = True,
                 nchw_outputs: bool = True,
                 init_cfg: Optional[dict] = None):
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            # Read like every other checkpoint here, in any public layout;
            # mmengine's BaseModule.init_weights runs it.
            init_cfg = dict(init_cfg, type=PretrainedAnyLayout)
        super().__init__(init_cfg=init_cfg)
        self.channels_last_eval = channels_last_eval
        self.nchw_outputs = nchw_outputs
        arch = self._resolve_arch(arch if arch is not None else self.default_arch)
        overrides = dict(token_mixers=token_mixers, norm_cfg=norm_cfg, act_cfg=act_cfg)
        arch.update({k: v for k, v in overrides.items() if v is not None})
        layers, dims = arch['layers'], arch['embed_dims']
        n = self.num_stages = len(layers)
        if len(dims) != n:
            raise ConfigError(f'arch has {n} layers but {len(dims)} embed_dims')
        mlp_ratios = _per_stage(arch['mlp_ratios'], n, 'mlp_ratios')
        mixers = _per_stage(arch['token_mixers'], n, 'token_mixers')
        norms = _per_stage(arch['norm_cfg'], n, 'norm_cfg')
        layer_scales = _per_stage(arch['layer_scale_init_values'], n,
                                  'layer_scale_init_values')
        res_scales = _per_stage(arch['res_scale_init_values'], n, 'res_scale_init_values')
        self.arch = arch
        self.embed_dims = list(dims)
        self.out_indices = self._check_out_indices(out_indices)
        if not -1 <= frozen_stages <= n:
            raise ConfigError(f'frozen_stages must be in [-1, {n}] (-1: none, '
                              f'0: stem, {n}: all stages), got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.stem = Downsampling(in_channels, dims[0], **stem_cfg,
                                 post_norm_cfg=arch['stem_norm_cfg'])
        drop_paths = torch.linspace(0, drop_path_rate, sum(layers)).tolist()
        self.stages = nn.ModuleList()
        for i in range(n):
            blocks = [
                MetaFormerBlock(
                    dims[i], mixers[i], mlp_ratios[i], norms[i], arch['act_cfg'],
                    mlp_bias=arch['mlp_bias'], drop_rate=drop_rate,
                    drop_path=drop_paths[sum(layers[:i]) + j],
                    layer_scale_init_value=layer_scales[i],
                    res_scale_init_value=res_scales[i])
                for j in range(layers[i])
            ]
            downsample = (nn.Identity() if i == 0 else Downsampling(
                dims[i - 1], dims[i], **downsample_cfg,
                pre_norm_cfg=arch['downsample_norm_cfg']))
            self.stages.append(MetaFormerStage(downsample, blocks, with_cp))
        self.out_norms = out_norms
        if out_norms:
            for i in self.out_indices:
                self.add_module(f'norm{i}', build_norm(norms[i], dims[i]))
        self._freeze_stages()

    # -- configuration checks ------------------------------------------------ #
    @classmethod
    def _resolve_arch(cls, arch) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ConfigError(
                    f'Unknown {cls.__name__} arch {arch!r}'
                    f'{closest_name_hint(key, cls.arch_settings)}; valid: '
                    f'{sorted(cls.arch_settings)} or a dict with "layers" and '
                    '"embed_dims".')
            arch = cls.arch_settings[key]
        elif not isinstance(arch, dict):
            raise ConfigError(f'arch must be a str or dict, got {type(arch).__name__}')
        unknown = set(arch) - set(cls.default_settings)
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(
                f'{cls.__name__} arch has unknown key {name!r}'
                f'{closest_name_hint(name, cls.default_settings)}; valid keys: '
                f'{sorted(cls.default_settings)}')
        missing = [k for k in ('layers', 'embed_dims') if k not in arch]
        if missing:
            raise ConfigError(f'arch dict lacks {missing}; got keys {sorted(arch)}')
        return copy.deepcopy({**cls.default_settings, **arch})

    def _check_out_indices(self, out_indices) -> tuple:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        n = self.num_stages
        result = []
        for i in out_indices:
            if not -n <= i < n:
                raise ConfigError(f'out_indices entry {i} is out of range: '
                                  f'{self.__class__.__name__} has {n} stages '
                                  f'(valid: {-n}..{n - 1})')
            result.append(i % n)
        if not result:
            raise ConfigError('out_indices is empty')
        return tuple(sorted(set(result)))

    # -- weights --------------------------------------------------------------- #
    def init_weights(self):
        if self.init_cfg is None:
            self._init_as_original()
        super().init_weights()

    def _init_as_original(self):
        """The reference implementations' initialisation, so that pretraining
        from scratch starts where the papers' did: ``trunc_normal_(std=.02)``
        and zero bias on the channel-MLP convolutions (sail-sg/poolformer's
        ``Mlp._init_weights``), or on every convolution and linear layer
        (sail-sg/metaformer's ``MetaFormer._init_weights``). The rest keeps
        PyTorch's defaults, as there."""
        if self.original_init == 'mlp':
            layers = [fc for m in self.modules() if isinstance(m, ConvMlp)
                      for fc in (m.fc1, m.fc2)]
        else:
            layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for layer in layers:
            trunc_normal_init(layer, std=.02, bias=0.)

    # -- forward / train mode ------------------------------------------------ #
    def forward(self, x):
        if self.channels_last_eval and not self.training and x.device.type == 'cpu':
            x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        x = self.stem(x)
        for i in range(self.out_indices[-1] + 1):
            x = self.stages[i](x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if self.out_norms else x
                # Heads get NCHW unless told otherwise: some ops (mmcv's RoIAlign
                # on CPU) read raw NCHW memory.
                outs.append(out.contiguous() if self.nchw_outputs else out)
        return tuple(outs)

    def switch_to_deploy(self) -> int:
        """Fold norm affines, layer scales and the pooling terms into the
        convolutions of every PoolFormer block (see DeployedPoolFormerBlock);
        outputs match within float rounding (tests: <= 1e-4 relative). For
        inference only: the folded model cannot be trained or saved back to the
        trained layout. Blocks of other mixers are kept. Returns how many
        blocks were folded."""
        from .deploy import fold_pooling_blocks
        folded = fold_pooling_blocks(self.stages)
        self.deployed = True
        return folded

    def _freeze_stages(self):
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.stem)
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if self.out_norms and i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self


# --------------------------------------------------------------------------- #
# The family: defaults and sizes
# --------------------------------------------------------------------------- #
_S, _M = [64, 128, 320, 512], [96, 192, 384, 768]
_POOLFORMER_SIZES = {  # PoolFormer, PoolFormerV2, IdentityFormer, RandFormer
    's12': dict(layers=[2, 2, 6, 2], embed_dims=_S),
    's24': dict(layers=[4, 4, 12, 4], embed_dims=_S),
    's36': dict(layers=[6, 6, 18, 6], embed_dims=_S),
    'm36': dict(layers=[6, 6, 18, 6], embed_dims=_M),
    'm48': dict(layers=[8, 8, 24, 8], embed_dims=_M),
}
_CONVFORMER_SIZES = {  # ConvFormer, CAFormer
    's18': dict(layers=[3, 3, 9, 3], embed_dims=_S),
    's36': dict(layers=[3, 12, 18, 3], embed_dims=_S),
    'm36': dict(layers=[3, 12, 18, 3], embed_dims=[96, 192, 384, 576]),
    'b36': dict(layers=[3, 12, 18, 3], embed_dims=[128, 256, 512, 768]),
}
# "MetaFormer Baselines for Vision": norms without bias (eps 1e-6) after the
# stem and before each downsampling, StarReLU MLPs without bias, no layer
# scale, residual scale in the last two stages.
_LN2D_NO_BIAS = dict(type='LayerNorm2d', eps=1e-6, bias=False)
_V2_SETTINGS = dict(
    MetaFormer.default_settings,
    norm_cfg=dict(type='GroupNorm1', eps=1e-6, bias=False),
    act_cfg=dict(type='StarReLU'), mlp_bias=False,
    stem_norm_cfg=_LN2D_NO_BIAS, downsample_norm_cfg=_LN2D_NO_BIAS,
    layer_scale_init_values=None, res_scale_init_values=[None, None, 1.0, 1.0])


@MODELS.register_module()
class PoolFormer(MetaFormer):
    """PoolFormer: a MetaFormer with ``AvgPool3x3(x) - x`` as token mixer.

    ``arch`` is one of ``s12, s24, s36, m36, m48`` or a dict (see
    :class:`MetaFormer` for all arguments). Figures for each size are in the
    README; layer scale starts at 1e-5 (s12, s24) or 1e-6 (s36, m36, m48) as in
    the official code.
    """
    arch_settings = {
        name: dict(size, layer_scale_init_values=1e-5 if name in ('s12', 's24') else 1e-6)
        for name, size in _POOLFORMER_SIZES.items()
    }
    default_arch = 's12'

    def __init__(self, arch: Union[str, dict] = 's12', pool_size: int = 3, **kwargs):
        if pool_size != 3:  # else the arch's (or the default) token mixers stand
            if isinstance(arch, dict) and 'token_mixers' in arch:
                raise ConfigError(f'PoolFormer got pool_size={pool_size} and an arch dict '
                                  'with token_mixers: give the pool size in token_mixers')
            kwargs.setdefault('token_mixers', dict(type='Pooling', pool_size=pool_size))
        super().__init__(arch=arch, **kwargs)


@MODELS.register_module()
class PoolFormerV2(MetaFormer):
    """PoolFormer with the MetaFormer v2 frame (StarReLU, residual scale,
    norms after the stem and before downsampling). Sizes s12..m48."""
    default_settings = _V2_SETTINGS
    arch_settings = _POOLFORMER_SIZES
    default_arch = 's12'
    original_init = 'all'


@MODELS.register_module()
class IdentityFormer(MetaFormer):
    """MetaFormer v2 with no token mixing at all. Sizes s12..m48."""
    default_settings = dict(_V2_SETTINGS, token_mixers=dict(type='IdentityMixer'))
    arch_settings = _POOLFORMER_SIZES
    default_arch = 's12'
    original_init = 'all'


@MODELS.register_module()
class RandFormer(MetaFormer):
    """MetaFormer v2 with identity mixing in stages 1-2 and fixed random mixing
    in stages 3-4 (196 and 49 tokens: the 14x14 and 7x7 grids at 224x224; see
    :class:`RandomMixing` for other resolutions). Sizes s12..m48."""
    default_settings = dict(_V2_SETTINGS, token_mixers=[
        dict(type='IdentityMixer'), dict(type='IdentityMixer'),
        dict(type='RandomMixing', num_tokens=196),
        dict(type='RandomMixing', num_tokens=49)])
    arch_settings = _POOLFORMER_SIZES
    default_arch = 's12'
    original_init = 'all'


@MODELS.register_module()
class ConvFormer(MetaFormer):
    """MetaFormer v2 with separable convolutions (7x7 depthwise) as token
    mixer and channel LayerNorms. Sizes s18, s36, m36, b36."""
    default_settings = dict(_V2_SETTINGS, token_mixers=dict(type='SepConv'),
                            norm_cfg=_LN2D_NO_BIAS)
    arch_settings = _CONVFORMER_SIZES
    default_arch = 's18'
    original_init = 'all'


@MODELS.register_module()
class CAFormer(MetaFormer):
    """ConvFormer with self-attention (head dim 32) in stages 3-4.
    Sizes s18, s36, m36, b36."""
    default_settings = dict(_V2_SETTINGS, norm_cfg=_LN2D_NO_BIAS, token_mixers=[
        dict(type='SepConv'), dict(type='SepConv'),
        dict(type='Attention'), dict(type='Attention')])
    arch_settings = _CONVFORMER_SIZES
    default_arch = 's18'
    original_init = 'all'
