"""CPU deployment paths of the MetaFormer family (models/backbones/metaformer.py).

Two things, neither needed to train: oneDNN's fused pointwise convolutions
(``torch.ops.mkldnn._convolution_pointwise``, the ops torch.compile's CPU backend
emits), which ConvMlp uses at inference on CPU in channels_last; and folding
(``MetaFormer.switch_to_deploy``), which rewrites PoolFormer blocks so that norm
affines, layer scales and the pooling terms live in the convolutions.
"""
import copy
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

_ONEDNN = getattr(getattr(torch.ops, 'mkldnn', None), '_convolution_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None
_1x1 = ([0, 0], [1, 1], [1, 1], 1)  # padding, stride, dilation, groups


def onednn_supports(dtype: torch.dtype) -> bool:
    """Whether this CPU runs oneDNN's fused convolutions in ``dtype``.

    fp32 runs everywhere; bf16 needs AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT,
    and fp16 AVX-512 FP16 or AMX. Asked of oneDNN itself, not of /proc/cpuinfo.
    """
    if dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if dtype == torch.float16:
        return torch.ops.mkldnn._is_mkldnn_fp16_supported()
    return dtype == torch.float32


def _onednn_fusable(x: torch.Tensor, weight: torch.Tensor, training: bool) -> bool:
    """Whether oneDNN's fused convolutions (the ops torch.compile's CPU backend
    emits) can run this step: inference on CPU, channels_last, no autograd, a
    dtype this CPU supports. Elsewhere the plain path runs, with the same math."""
    return (_ONEDNN is not None and not training and x.device.type == 'cpu'
            and x.dtype == weight.dtype and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled('cpu')
            and x.is_contiguous(memory_format=torch.channels_last)
            and onednn_supports(x.dtype))


def fused_conv_mlp(mlp: nn.Module, x: torch.Tensor,
                   residual: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """``mlp``'s (a ConvMlp) output through oneDNN's fused convolutions, or None
    where they cannot run this step (then the caller runs its plain path).

    fc1 and an exact GELU run as one oneDNN convolution (GELU's erf is about a
    fifth of PoolFormer's eager time when it is a separate pass), and an
    optional residual is added inside fc2. Same math; float rounding differs
    by ~1e-6 relative.
    """
    if not _onednn_fusable(x, mlp.fc1.weight, mlp.training):
        return None
    if type(mlp.act) is nn.GELU and mlp.act.approximate == 'none':
        x = _ONEDNN(x, mlp.fc1.weight, mlp.fc1.bias, *_1x1, 'gelu', [], 'none')
    else:
        x = mlp.act(mlp.fc1(x))
    if residual is None:
        return mlp.fc2(x)
    return _ONEDNN.binary(x, residual, mlp.fc2.weight, mlp.fc2.bias, *_1x1,
                          'add', None, None, [], None)


def fold_pooling_blocks(stages) -> int:
    """Replace every foldable PoolFormer block of ``stages`` by its
    DeployedPoolFormerBlock; returns how many were folded."""
    folded = 0
    for stage in stages:
        for j, block in enumerate(stage.blocks):
            if DeployedPoolFormerBlock.can_fold(block):
                stage.blocks[j] = DeployedPoolFormerBlock(block)
                folded += 1
    return folded


class DeployedPoolFormerBlock(nn.Module):
    """A PoolFormer block with everything linear at inference folded away.

    With ``n(x) = a * (x - mu) / sigma + b`` (1-group GroupNorm; mu, sigma per
    sample) and ``count_include_pad=False`` (a constant pools to itself)::

        pool(n(x)) - n(x) = a / sigma * (pool(x) - x)

    so the token mixer needs only sigma: ``x + LS1 * a / sigma * (pool(x) - x)``,
    one ``lerp``. The second norm's affine goes into fc1, layer scale 2 into
    fc2, and the residual add into fc2's convolution. Residual scales
    (PoolFormerV2's stages 3-4) stay as per-channel multiplies.
    """

    def __init__(self, block: nn.Module):
        from .metaformer import LayerScale
        super().__init__()
        norm1, norm2, mlp = block.norm1, block.norm2, block.mlp
        # Folded where the block lives (a CUDA model stays on its GPU), in its dtype.
        like = mlp.fc1.weight
        ls1 = _scale_vector(block.layer_scale1, like, norm1.num_channels)
        ls2 = _scale_vector(block.layer_scale2, like, norm2.num_channels)
        self.pool = block.token_mixer.pool
        self.eps1, self.eps2 = norm1.eps, norm2.eps
        self.register_buffer('mixer_scale', (ls1 * _affine(norm1, like)[0]).view(1, -1, 1, 1))
        for name in ('res_scale1', 'res_scale2'):  # None: no residual scale
            scale = getattr(block, name)
            self.register_buffer(name, scale.scale.detach().view(1, -1, 1, 1)
                                 if isinstance(scale, LayerScale) else None)
        weight2, bias2 = _affine(norm2, like)
        self.mlp = copy.deepcopy(mlp)
        with torch.no_grad():
            fc1, fc2 = self.mlp.fc1, self.mlp.fc2
            fc1_bias = fc1.bias if fc1.bias is not None else fc1.weight.new_zeros(
                fc1.out_channels)
            fc1.bias = nn.Parameter(fc1_bias + fc1.weight.flatten(1) @ bias2)
            fc1.weight.mul_(weight2.view(1, -1, 1, 1))
            fc2.weight.mul_(ls2.view(-1, 1, 1, 1))
            if fc2.bias is not None:
                fc2.bias.mul_(ls2)

    def forward(self, x):
        n, c, h, w = x.shape
        # GroupNorm's own 1/sigma (its normalised output is not needed here);
        # Tensor.var is some 10x slower than this on CPU.
        rstd = torch.native_group_norm(x, None, None, n, c, h * w, 1, self.eps1)[2]
        # In x's dtype: under autocast x is fp16/bf16 and the buffers fp32.
        mixer_scale = self.mixer_scale.to(x.dtype) * rstd.view(n, 1, 1, 1).to(x.dtype)
        if self.res_scale1 is None:
            x = torch.lerp(x, self.pool(x), mixer_scale)
        else:
            x = torch.addcmul(x * self.res_scale1.to(x.dtype), mixer_scale, self.pool(x) - x)
        residual = x if self.res_scale2 is None else x * self.res_scale2.to(x.dtype)
        return self.mlp(F.group_norm(x, 1, eps=self.eps2), residual=residual)

    @staticmethod
    def can_fold(block: nn.Module) -> bool:
        from .metaformer import MetaFormerBlock, Pooling
        return (isinstance(block, MetaFormerBlock)
                and isinstance(block.token_mixer, Pooling)
                and all(isinstance(nm, nn.GroupNorm) and nm.num_groups == 1
                        for nm in (block.norm1, block.norm2)))


def _affine(norm: nn.GroupNorm, like: torch.Tensor):
    """(weight, bias) of a norm, ones / zeros (on ``like``'s device) where it has none."""
    ones = like.new_ones(norm.num_channels)
    weight = norm.weight.detach() if norm.weight is not None else ones
    bias = norm.bias.detach() if norm.bias is not None else torch.zeros_like(ones)
    return weight, bias


def _scale_vector(layer_scale: nn.Module, like: torch.Tensor, dim: int) -> torch.Tensor:
    from .metaformer import LayerScale
    if isinstance(layer_scale, LayerScale):
        return layer_scale.scale.detach()
    return like.new_ones(dim)
