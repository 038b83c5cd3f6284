"""Folding the MetaFormer family for CPU and GPU inference (``switch_to_deploy``).

Folding rewrites PoolFormer blocks so that norm affines, layer scales and the
pooling terms live in the convolutions; it is not needed to train. This module
sits above the model: it imports the layers and ``metaformer.py``, and nothing
in the model imports it. (The fused oneDNN kernel of the channel MLPs, which
the folded blocks use too, is a layer: ``models/layers/mlp.py``.)
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpoolformer.models.layers import LayerScale, Pooling

from .metaformer import MetaFormer, MetaFormerBlock


def switch_to_deploy(backbone: MetaFormer) -> int:
    """Fold norm affines, layer scales and the pooling terms into the
    convolutions of every PoolFormer block of ``backbone`` (see
    DeployedPoolFormerBlock); outputs match within float rounding (tests:
    <= 1e-4 relative). For inference only: the folded model cannot be trained or
    saved back to the trained layout. Blocks of other mixers are kept, and a
    second call folds nothing more. Sets ``backbone.deployed``; returns how many
    blocks were folded."""
    if not isinstance(backbone, MetaFormer):
        raise TypeError(f'switch_to_deploy folds a MetaFormer backbone (pass '
                        f'model.backbone), got {type(backbone).__name__}')
    folded = 0
    for stage in backbone.stages:
        for j, block in enumerate(stage.blocks):
            if DeployedPoolFormerBlock.can_fold(block):
                stage.blocks[j] = DeployedPoolFormerBlock(block)
                folded += 1
    backbone.deployed = True
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

    def __init__(self, block: MetaFormerBlock):
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
    if isinstance(layer_scale, LayerScale):
        return layer_scale.scale.detach()
    return like.new_ones(dim)
