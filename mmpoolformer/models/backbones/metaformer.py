"""The MetaFormer family in one file: stem, token mixers, block, stage, backbone.

PoolFormer ("MetaFormer Is Actually What You Need for Vision", CVPR 2022) is a
MetaFormer whose token mixer is ``AvgPool3x3(x) - x``. Everything here is written
against the general frame, so a new member of the family is a new token mixer
and an ``arch_settings`` entry, not a new block class.

State-dict layout (the project's own, close to timm's ``metaformer.py``)::

    stem.conv                                   7x7/4 patch embedding
    stages.{i}.downsample.conv                  3x3/2, stages 1..3
    stages.{i}.blocks.{j}.norm1 / token_mixer / layer_scale1.scale
    stages.{i}.blocks.{j}.norm2 / mlp.fc1 / mlp.fc2 / layer_scale2.scale
    norm{i}                                     one norm per output stage
"""
import copy
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmpoolformer.errors import ConfigError
from mmpoolformer.registry import MODELS


# --------------------------------------------------------------------------- #
# Stem and downsampling
# --------------------------------------------------------------------------- #
class Downsampling(nn.Module):
    """A strided convolution, optionally with a norm before or after it.

    PoolFormer uses plain convolutions (7x7/4 stem, 3x3/2 between stages);
    MetaFormer v2 models add a norm after the stem and before each downsampling.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, padding: int, pre_norm_cfg: Optional[dict] = None,
                 post_norm_cfg: Optional[dict] = None):
        super().__init__()
        self.pre_norm = (build_norm_layer(pre_norm_cfg, in_channels)[1]
                         if pre_norm_cfg else nn.Identity())
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              stride=stride, padding=padding)
        self.post_norm = (build_norm_layer(post_norm_cfg, out_channels)[1]
                          if post_norm_cfg else nn.Identity())

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
    """

    def __init__(self, dim: int, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2,
                                 count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x


@MODELS.register_module()
class IdentityMixer(nn.Module):
    """No token mixing at all (IdentityFormer)."""

    def __init__(self, dim: int):
        super().__init__()

    def forward(self, x):
        return x


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
    """Channel MLP as two 1x1 convolutions."""

    def __init__(self, dim: int, hidden_dim: int, act_cfg: dict,
                 drop_rate: float = 0.):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def _scale_or_identity(dim, init_value):
    return nn.Identity() if init_value is None else LayerScale(dim, init_value)


class MetaFormerBlock(nn.Module):
    """``x = x + LS1 * mixer(norm1(x)); x = x + LS2 * mlp(norm2(x))``."""

    def __init__(self, dim: int, token_mixer_cfg: dict, mlp_ratio: float,
                 norm_cfg: dict, act_cfg: dict, drop_rate: float = 0.,
                 drop_path: float = 0.,
                 layer_scale_init_value: Optional[float] = 1e-5,
                 res_scale_init_value: Optional[float] = None):
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        # _scope_: look mixers up in our registry whichever toolbox is building.
        self.token_mixer = MODELS.build(
            dict(_scope_='mmpoolformer', **token_mixer_cfg), default_args=dict(dim=dim))
        self.layer_scale1 = _scale_or_identity(dim, layer_scale_init_value)
        self.res_scale1 = _scale_or_identity(dim, res_scale_init_value)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), act_cfg, drop_rate)
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
    """An optional downsampling followed by ``depth`` blocks."""

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


@MODELS.register_module()
class MetaFormer(BaseModule):
    """MetaFormer backbone with a pluggable token mixer per stage.

    Args:
        arch (str | dict): A name in ``arch_settings`` or a dict with
            ``layers`` (blocks per stage) and ``embed_dims`` (channels per
            stage), and optionally ``mlp_ratios`` (int or per stage),
            ``layer_scale_init_value``, ``res_scale_init_value`` and
            ``token_mixers`` (a mixer config, or one per stage).
        in_channels (int): Input image channels. Defaults to 3.
        token_mixers (dict | list[dict], optional): Overrides the arch's token
            mixer, e.g. ``dict(type='Pooling', pool_size=3)``.
        norm_cfg (dict): Norm inside blocks and on the outputs.
            Defaults to 1-group GroupNorm, as in PoolFormer.
        act_cfg (dict): Activation of the channel MLP. Defaults to GELU.
        stem_cfg (dict): ``kernel_size/stride/padding`` of the stem and
            optional ``post_norm_cfg``. Defaults to 7x7, stride 4, padding 2.
        downsample_cfg (dict): Same for the downsampling between stages.
            Defaults to 3x3, stride 2, padding 1.
        drop_rate (float): Dropout in the MLPs. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly from 0 over
            all blocks to this value. Defaults to 0.
        out_indices (Sequence[int] | int): Stages (0-3, negative counts from
            the end) whose outputs are returned, each through its own norm.
            Stages after the last one are not computed. Defaults to (3, ).
        frozen_stages (int): -1 freezes nothing, 0 the stem, ``k`` the stem
            and stages 0..k-1 (with their output norms). Defaults to -1.
        norm_eval (bool): Keep BatchNorm-type layers in eval mode while
            training (no effect on GroupNorm). Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            loads official sail-sg, mmpretrain, timm or mmpoolformer weights,
            converting the layout on the fly; ``prefix`` selects a sub-module
            of a checkpoint saved in this project's own layout.
    """
    arch_settings: dict = {}
    default_arch: Optional[str] = None
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = None,
                 in_channels: int = 3,
                 token_mixers: Union[dict, Sequence[dict], None] = None,
                 norm_cfg: dict = dict(type='GN', num_groups=1),
                 act_cfg: dict = dict(type='GELU'),
                 stem_cfg: dict = dict(kernel_size=7, stride=4, padding=2),
                 downsample_cfg: dict = dict(kernel_size=3, stride=2, padding=1),
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = self._resolve_arch(arch if arch is not None else self.default_arch)
        layers, dims = arch['layers'], arch['embed_dims']
        n = self.num_stages = len(layers)
        if len(dims) != n:
            raise ConfigError(f'arch has {n} layers but {len(dims)} embed_dims')
        mlp_ratios = _per_stage(arch.get('mlp_ratios', 4), n, 'mlp_ratios')
        mixers = _per_stage(
            token_mixers or arch.get('token_mixers', dict(type='Pooling')), n,
            'token_mixers')
        self.arch = arch
        self.embed_dims = list(dims)
        self.out_indices = self._check_out_indices(out_indices)
        if not -1 <= frozen_stages <= n:
            raise ConfigError(f'frozen_stages must be in [-1, {n}] (-1: none, '
                             f'0: stem, {n}: all stages), got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.stem = Downsampling(in_channels, dims[0], **stem_cfg)
        drop_paths = torch.linspace(0, drop_path_rate, sum(layers)).tolist()
        self.stages = nn.ModuleList()
        for i in range(n):
            blocks = [
                MetaFormerBlock(
                    dims[i], mixers[i], mlp_ratios[i], norm_cfg, act_cfg,
                    drop_rate=drop_rate,
                    drop_path=drop_paths[sum(layers[:i]) + j],
                    layer_scale_init_value=arch.get('layer_scale_init_value', 1e-5),
                    res_scale_init_value=arch.get('res_scale_init_value'))
                for j in range(layers[i])
            ]
            downsample = (nn.Identity() if i == 0 else Downsampling(
                dims[i - 1], dims[i], **downsample_cfg))
            self.stages.append(MetaFormerStage(downsample, blocks, with_cp))
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, dims[i])[1])
        self._freeze_stages()

    # -- configuration checks ------------------------------------------------ #
    @classmethod
    def _resolve_arch(cls, arch) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ConfigError(f'Unknown {cls.__name__} arch {arch!r}; valid: '
                               f'{sorted(cls.arch_settings)} or a dict with '
                               f'"layers" and "embed_dims".')
            return copy.deepcopy(cls.arch_settings[key])
        if isinstance(arch, dict):
            missing = {'layers', 'embed_dims'} - set(arch)
            if missing:
                raise ConfigError(f'arch dict lacks {sorted(missing)}; got keys '
                               f'{sorted(arch)}')
            return copy.deepcopy(dict(arch))
        raise ConfigError(f'arch must be a str or dict, got {type(arch).__name__}')

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
        if self.init_cfg and self.init_cfg.get('type') == 'Pretrained':
            # Delegated so that every public weight layout loads without a
            # manual conversion step; see mmpoolformer/checkpoint.py.
            from mmpoolformer.checkpoint import load_backbone_weights
            load_backbone_weights(self, self.init_cfg['checkpoint'],
                                  prefix=self.init_cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()

    # -- forward / train mode ------------------------------------------------ #
    def forward(self, x):
        outs = []
        x = self.stem(x)
        for i in range(self.out_indices[-1] + 1):
            x = self.stages[i](x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
        return tuple(outs)

    def _freeze_stages(self):
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.stem)
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_indices:
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


@MODELS.register_module()
class PoolFormer(MetaFormer):
    """PoolFormer: a MetaFormer with ``AvgPool3x3(x) - x`` as token mixer.

    ``arch`` is one of ``s12, s24, s36, m36, m48`` or a dict (see
    :class:`MetaFormer` for all arguments). Figures for each size are in the
    README; layer scale starts at 1e-5 (s12, s24) or 1e-6 (s36, m36, m48) as in
    the official code.
    """
    _small, _medium = [64, 128, 320, 512], [96, 192, 384, 768]
    arch_settings = {
        's12': dict(layers=[2, 2, 6, 2], embed_dims=_small, layer_scale_init_value=1e-5),
        's24': dict(layers=[4, 4, 12, 4], embed_dims=_small, layer_scale_init_value=1e-5),
        's36': dict(layers=[6, 6, 18, 6], embed_dims=_small, layer_scale_init_value=1e-6),
        'm36': dict(layers=[6, 6, 18, 6], embed_dims=_medium, layer_scale_init_value=1e-6),
        'm48': dict(layers=[8, 8, 24, 8], embed_dims=_medium, layer_scale_init_value=1e-6),
    }
    default_arch = 's12'

    def __init__(self, arch: Union[str, dict] = 's12', pool_size: int = 3, **kwargs):
        kwargs.setdefault('token_mixers', dict(type='Pooling', pool_size=pool_size))
        super().__init__(arch=arch, **kwargs)
