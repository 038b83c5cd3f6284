"""The MetaFormer family: block, stage, backbone, and each member's settings.

PoolFormer ("MetaFormer Is Actually What You Need for Vision", CVPR 2022) is a
MetaFormer whose token mixer is ``AvgPool3x3(x) - x``. "MetaFormer Baselines for
Vision" (sail-sg/metaformer) adds PoolFormerV2, IdentityFormer, RandFormer,
ConvFormer and CAFormer: the same frame with other token mixers, norms and
activations. Everything here is written against the general frame, so a family
member is a ``default_settings`` dict and an ``arch_settings`` table, not a new
block class. All blocks work on NCHW tensors (channel MLPs are 1x1 convolutions).
The layers (norms, activations, scales, MLP, token mixers, downsampling) are in
``models/layers/``; the CPU deployment paths (folding) in ``deploy.py``, which
this file does not import.

Provenance: Yu et al., "MetaFormer Is Actually What You Need for Vision" (CVPR 2022,
arXiv 2111.11418) and "MetaFormer Baselines for Vision" (TPAMI 2024, arXiv
2210.13452). The parity tests compare against the reference implementations
through their APIs: timm's ``poolformer_*`` / ``poolformerv2_*`` / ``convformer_*`` /
``caformer_*`` (timm/models/metaformer.py, a port of sail-sg/poolformer and
sail-sg/metaformer) and mmpretrain's ``PoolFormer`` backbone.

State-dict layout (the project's own, close to timm's ``metaformer.py``)::

    stem.conv / stem.post_norm                  7x7/4 patch embedding
    stages.{i}.downsample.pre_norm / conv       3x3/2, stages 1..3
    stages.{i}.blocks.{j}.norm1 / token_mixer / layer_scale1.scale
    stages.{i}.blocks.{j}.norm2 / mlp.fc1 / mlp.act / mlp.fc2 / layer_scale2.scale
    stages.{i}.blocks.{j}.res_scale{1,2}.scale  (MetaFormer v2 models)
    norm{i}                                     one norm per output stage
"""
import copy
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmpoolformer.models.layers import (
    ConvMlp,
    Downsampling,
    LayerScale,
    build_norm,
    scale_or_identity,
    use_onednn_mlps,
)
from mmpoolformer.registry import MODELS, build_in_our_scope
from mmpoolformer.utils.errors import ConfigError, closest_name_hint

# An architecture's keys besides those of ``default_settings``: its size.
SIZE_KEYS = ('layers', 'embed_dims')


# --------------------------------------------------------------------------- #
# Block and stage
# --------------------------------------------------------------------------- #
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
        self.token_mixer = build_in_our_scope(MODELS.build, dict(token_mixer_cfg),
                                              default_args=dict(dim=dim))
        self.layer_scale1 = scale_or_identity(dim, layer_scale_init_value)
        self.res_scale1 = scale_or_identity(dim, res_scale_init_value)
        self.norm2 = build_norm(norm_cfg, dim)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), act_cfg, drop_rate, mlp_bias)
        self.layer_scale2 = scale_or_identity(dim, layer_scale_init_value)
        self.res_scale2 = scale_or_identity(dim, res_scale_init_value)
        self.drop_path_rate = drop_path

    def forward(self, x):
        x = self._add_branch(self.res_scale1(x), self.layer_scale1,
                             self.token_mixer(self.norm1(x)))
        return self._add_branch(self.res_scale2(x), self.layer_scale2,
                                self.mlp(self.norm2(x)))

    def _add_branch(self, x, layer_scale: nn.Module, branch):
        """``x + drop_path(layer_scale(branch))`` as one ``addcmul``: the layer scale
        and the drop-path mask (per sample, drawn as mmcv's DropPath draws it)
        multiply a (B, C, 1, 1) tensor, not the activations. Two passes fewer per
        branch: the training step 8% faster on the CPU (CHANGELOG, 2026-12-02)."""
        scale = layer_scale.scale.view(1, -1, 1, 1) if isinstance(layer_scale, LayerScale) \
            else None
        if self.training and self.drop_path_rate > 0:
            keep = 1 - self.drop_path_rate
            mask = (keep + torch.rand((branch.shape[0], 1, 1, 1), dtype=branch.dtype,
                                      device=branch.device)).floor_().div_(keep)
            scale = mask if scale is None else scale * mask
        return x + branch if scale is None else torch.addcmul(x, scale, branch)


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


class MetaFormer(BaseModule):
    """MetaFormer backbone: a token mixer, norm and activation chosen per family.

    An architecture is a dict: ``layers`` (blocks per stage) and ``embed_dims``
    (channels per stage) are required; ``mlp_ratios``, ``token_mixers`` (a
    mixer config, or one per stage), ``norm_cfg``, ``act_cfg``, ``mlp_bias``,
    ``stem_norm_cfg`` (after the stem), ``downsample_norm_cfg`` (before each
    downsampling), ``layer_scale_init_values`` and ``res_scale_init_values`` (a
    value, None for none, or one per stage) default to the class's
    ``default_settings``.
    Each family (PoolFormer, PoolFormerV2, IdentityFormer, RandFormer,
    ConvFormer, CAFormer) writes out those defaults and names its sizes in
    ``arch_settings``; the constructor's ``token_mixers``, ``norm_cfg`` and
    ``act_cfg`` override them.

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
        stem_cfg (dict, optional): ``kernel_size/stride/padding`` of the stem.
            Defaults to None: 7x7, stride 4, padding 2.
        downsample_cfg (dict, optional): Same for the downsampling between
            stages. Defaults to None: 3x3, stride 2, padding 1.
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
            performance section), with the channel MLPs' fused oneDNN kernel
            (:class:`~mmpoolformer.models.layers.OneDNNConvMlp`). Defaults to True.
        channels_last_train (bool): While training on CPU, run in channels_last
            too (PoolFormer-S12's train step about 1.4x NCHW on a 2-core AVX-512
            machine; docs/performance.md). Training on CUDA keeps the input's
            layout until a GPU measurement says otherwise. Defaults to True.
        nchw_outputs (bool): Return NCHW features from the channels_last
            path, as heads expect: mmcv's CPU RoIAlign reads raw NCHW
            memory and ignores strides. False returns channels_last features,
            so that the neck's and heads' convolutions run in channels_last
            too; this project's dense configs do so, with RoI extractors that
            take either layout (``mmpoolformer.NCHWRoIExtractor``). Defaults
            to True.
        init_cfg (dict, optional): ``dict(type='mmpoolformer.PretrainedAnyLayout',
            checkpoint=...)`` loads sail-sg (poolformer / metaformer), mmpretrain,
            timm or mmpoolformer weights, converting the layout on the fly;
            ``prefix`` selects a sub-module of a checkpoint saved in this
            project's layout. ``type='Pretrained'`` is mmengine's own loader.
    """
    # Set by each family: its sizes, and the rest of an architecture.
    arch_settings: dict = {}
    default_settings: dict = {}
    default_arch: Optional[str] = None
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
                 stem_cfg: Optional[dict] = None,
                 downsample_cfg: Optional[dict] = None,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 channels_last_eval: bool = True,
                 channels_last_train: bool = True,
                 nchw_outputs: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.channels_last_eval = channels_last_eval
        self.channels_last_train = channels_last_train
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

        stem_cfg = stem_cfg or dict(kernel_size=7, stride=4, padding=2)
        downsample_cfg = downsample_cfg or dict(kernel_size=3, stride=2, padding=1)
        self.stem = Downsampling(in_channels, dims[0], **stem_cfg,
                                 post_norm_cfg=arch['stem_norm_cfg'])
        # On the CPU even where the model is built on another device (e.g. 'meta').
        drop_paths = torch.linspace(0, drop_path_rate, sum(layers), device='cpu').tolist()
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
        """``default_settings`` updated by the named size or the arch dict."""
        if not cls.default_settings:
            raise TypeError(f'{cls.__name__} has no default_settings: build a family '
                            'member (PoolFormer, PoolFormerV2, IdentityFormer, '
                            'RandFormer, ConvFormer, CAFormer)')
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
        valid = [*SIZE_KEYS, *cls.default_settings]
        unknown = set(arch) - set(valid)
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(
                f'{cls.__name__} arch has unknown key {name!r}'
                f'{closest_name_hint(name, valid)}; valid keys: {sorted(valid)}')
        missing = [k for k in SIZE_KEYS if k not in arch]
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
        channels_last = self.channels_last_train if self.training else self.channels_last_eval
        if channels_last and x.device.type == 'cpu':
            # oneDNN's convolutions are fastest in channels_last; the layers that
            # follow keep the layout, so converting the input is enough.
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
        self._choose_mlp_kernel()
        return self

    @property
    def channels_last_eval(self) -> bool:
        return self._channels_last_eval

    @channels_last_eval.setter
    def channels_last_eval(self, value: bool):
        self._channels_last_eval = value
        self._choose_mlp_kernel()

    def _choose_mlp_kernel(self):
        """Pick the channel MLPs' kernel once, when the mode or ``channels_last_eval``
        changes, not on every call: oneDNN's fused one for inference on CPU in
        channels_last, the plain one otherwise (see ``use_onednn_mlps``).

        Where the model lives is read now: a model put in eval mode on the CPU
        and then moved to a GPU keeps the fused class, whose own cheap check on
        each call (a CPU input, no autograd, no autocast) then runs the plain
        path. Re-choosing on ``.to()`` would need nn.Module's private ``_apply``.
        """
        weight = next(self.parameters(), None)
        on_cpu = weight is not None and weight.device.type == 'cpu'
        use_onednn_mlps(self, not self.training and self.channels_last_eval and on_cpu)


# --------------------------------------------------------------------------- #
# The family: each member's defaults and sizes, written out
# --------------------------------------------------------------------------- #
@MODELS.register_module()
class PoolFormer(MetaFormer):
    """PoolFormer: a MetaFormer with ``AvgPool3x3(x) - x`` as token mixer.

    ``arch`` is one of ``s12, s24, s36, m36, m48`` or a dict (see
    :class:`MetaFormer` for all arguments). Figures for each size are in the
    README; layer scale starts at 1e-5 (s12, s24) or 1e-6 (s36, m36, m48) as in
    the official code.
    """
    arch_settings = {
        's12': dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512],
                    layer_scale_init_values=1e-5),
        's24': dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512],
                    layer_scale_init_values=1e-5),
        's36': dict(layers=[6, 6, 18, 6], embed_dims=[64, 128, 320, 512],
                    layer_scale_init_values=1e-6),
        'm36': dict(layers=[6, 6, 18, 6], embed_dims=[96, 192, 384, 768],
                    layer_scale_init_values=1e-6),
        'm48': dict(layers=[8, 8, 24, 8], embed_dims=[96, 192, 384, 768],
                    layer_scale_init_values=1e-6),
    }
    default_settings = dict(
        mlp_ratios=4,
        token_mixers=dict(type='Pooling'),
        norm_cfg=dict(type='GN', num_groups=1),
        act_cfg=dict(type='GELU'),
        mlp_bias=True,
        stem_norm_cfg=None,
        downsample_norm_cfg=None,
        layer_scale_init_values=1e-5,
        res_scale_init_values=None)
    default_arch = 's12'
    original_init = 'mlp'

    def __init__(self, arch: Union[str, dict] = 's12', pool_size: int = 3, **kwargs):
        if pool_size != 3:  # else the arch's (or the default) token mixers stand
            if isinstance(arch, dict) and 'token_mixers' in arch:
                raise ConfigError(f'PoolFormer got pool_size={pool_size} and an arch dict '
                                  'with token_mixers: give the pool size in token_mixers')
            kwargs.setdefault('token_mixers', dict(type='Pooling', pool_size=pool_size))
        super().__init__(arch=arch, **kwargs)


# "MetaFormer Baselines for Vision" (the families below): norms without bias (eps
# 1e-6) after the stem and before each downsampling, StarReLU MLPs without bias,
# no layer scale, residual scale in the last two stages.
@MODELS.register_module()
class PoolFormerV2(MetaFormer):
    """PoolFormer with the MetaFormer v2 frame (StarReLU, residual scale,
    norms after the stem and before downsampling). Sizes s12..m48."""
    arch_settings = {
        's12': dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512]),
        's24': dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512]),
        's36': dict(layers=[6, 6, 18, 6], embed_dims=[64, 128, 320, 512]),
        'm36': dict(layers=[6, 6, 18, 6], embed_dims=[96, 192, 384, 768]),
        'm48': dict(layers=[8, 8, 24, 8], embed_dims=[96, 192, 384, 768]),
    }
    default_settings = dict(
        mlp_ratios=4,
        token_mixers=dict(type='Pooling'),
        norm_cfg=dict(type='GroupNorm1', eps=1e-6, bias=False),
        act_cfg=dict(type='StarReLU'),
        mlp_bias=False,
        stem_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        downsample_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        layer_scale_init_values=None,
        res_scale_init_values=[None, None, 1.0, 1.0])
    default_arch = 's12'
    original_init = 'all'


@MODELS.register_module()
class IdentityFormer(MetaFormer):
    """MetaFormer v2 with no token mixing at all. Sizes s12..m48."""
    arch_settings = {
        's12': dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512]),
        's24': dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512]),
        's36': dict(layers=[6, 6, 18, 6], embed_dims=[64, 128, 320, 512]),
        'm36': dict(layers=[6, 6, 18, 6], embed_dims=[96, 192, 384, 768]),
        'm48': dict(layers=[8, 8, 24, 8], embed_dims=[96, 192, 384, 768]),
    }
    default_settings = dict(
        mlp_ratios=4,
        token_mixers=dict(type='IdentityMixer'),
        norm_cfg=dict(type='GroupNorm1', eps=1e-6, bias=False),
        act_cfg=dict(type='StarReLU'),
        mlp_bias=False,
        stem_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        downsample_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        layer_scale_init_values=None,
        res_scale_init_values=[None, None, 1.0, 1.0])
    default_arch = 's12'
    original_init = 'all'


@MODELS.register_module()
class RandFormer(MetaFormer):
    """MetaFormer v2 with identity mixing in stages 1-2 and fixed random mixing
    in stages 3-4 (196 and 49 tokens: the 14x14 and 7x7 grids at 224x224; see
    :class:`~mmpoolformer.models.layers.RandomMixing` for other resolutions).
    Sizes s12..m48."""
    arch_settings = {
        's12': dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512]),
        's24': dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512]),
        's36': dict(layers=[6, 6, 18, 6], embed_dims=[64, 128, 320, 512]),
        'm36': dict(layers=[6, 6, 18, 6], embed_dims=[96, 192, 384, 768]),
        'm48': dict(layers=[8, 8, 24, 8], embed_dims=[96, 192, 384, 768]),
    }
    default_settings = dict(
        mlp_ratios=4,
        token_mixers=[dict(type='IdentityMixer'), dict(type='IdentityMixer'),
                      dict(type='RandomMixing', num_tokens=196),
                      dict(type='RandomMixing', num_tokens=49)],
        norm_cfg=dict(type='GroupNorm1', eps=1e-6, bias=False),
        act_cfg=dict(type='StarReLU'),
        mlp_bias=False,
        stem_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        downsample_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        layer_scale_init_values=None,
        res_scale_init_values=[None, None, 1.0, 1.0])
    default_arch = 's12'
    original_init = 'all'


@MODELS.register_module()
class ConvFormer(MetaFormer):
    """MetaFormer v2 with separable convolutions (7x7 depthwise) as token
    mixer and channel LayerNorms. Sizes s18, s36, m36, b36."""
    arch_settings = {
        's18': dict(layers=[3, 3, 9, 3], embed_dims=[64, 128, 320, 512]),
        's36': dict(layers=[3, 12, 18, 3], embed_dims=[64, 128, 320, 512]),
        'm36': dict(layers=[3, 12, 18, 3], embed_dims=[96, 192, 384, 576]),
        'b36': dict(layers=[3, 12, 18, 3], embed_dims=[128, 256, 512, 768]),
    }
    default_settings = dict(
        mlp_ratios=4,
        token_mixers=dict(type='SepConv'),
        norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        act_cfg=dict(type='StarReLU'),
        mlp_bias=False,
        stem_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        downsample_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        layer_scale_init_values=None,
        res_scale_init_values=[None, None, 1.0, 1.0])
    default_arch = 's18'
    original_init = 'all'


@MODELS.register_module()
class CAFormer(MetaFormer):
    """ConvFormer with self-attention (head dim 32) in stages 3-4.
    Sizes s18, s36, m36, b36."""
    arch_settings = {
        's18': dict(layers=[3, 3, 9, 3], embed_dims=[64, 128, 320, 512]),
        's36': dict(layers=[3, 12, 18, 3], embed_dims=[64, 128, 320, 512]),
        'm36': dict(layers=[3, 12, 18, 3], embed_dims=[96, 192, 384, 576]),
        'b36': dict(layers=[3, 12, 18, 3], embed_dims=[128, 256, 512, 768]),
    }
    default_settings = dict(
        mlp_ratios=4,
        token_mixers=[dict(type='SepConv'), dict(type='SepConv'),
                      dict(type='Attention'), dict(type='Attention')],
        norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        act_cfg=dict(type='StarReLU'),
        mlp_bias=False,
        stem_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        downsample_norm_cfg=dict(type='LayerNorm2d', eps=1e-6, bias=False),
        layer_scale_init_values=None,
        res_scale_init_values=[None, None, 1.0, 1.0])
    default_arch = 's18'
    original_init = 'all'
