"""Checkpoint layouts: detecting them and converting between them.

Five layouts are understood and converted to this project's (see
``models/backbones/metaformer.py``)::

    official    sail-sg/poolformer .pth.tar   patch_embed.proj, network.{k}.{j}, norm, head
    mmpretrain  poolformer-*_3rdparty_*       backbone.network.{k}.{j}, backbone.norm6, head.fc
                (the original mmdet/mmseg checkpoints use the same backbone names)
    metaformer  sail-sg/metaformer (v2 family) downsample_layers.{i}, stages.{i}.{j}, norm, head
    timm        poolformer*, convformer_*,    stem.conv, stages.{i}.blocks.{j}, head.norm, head.fc
                caformer_*
    mmpoolformer                               backbone.stem.conv, backbone.stages..., head.fc

The v2 family (metaformer layout, timm's poolformerv2 / convformer / caformer)
keeps its classifier's norm in ``head.norm``, after global pooling; PoolFormer
v1 keeps it in the backbone (``backbone.norm3``) before pooling. Channel MLPs
stored as linear layers (the metaformer layout, timm's attention stages) are
reshaped to this project's 1x1 convolutions.
"""
import re

import torch

from mmpoolformer.utils.errors import CheckpointError

LAYOUTS = ('mmpoolformer', 'mmpretrain', 'official', 'metaformer', 'timm')
# The layouts each generation of models can be written in.
V1_LAYOUTS = ('mmpoolformer', 'mmpretrain', 'official', 'timm')
V2_LAYOUTS = ('mmpoolformer', 'metaformer', 'timm')


# --------------------------------------------------------------------------- #
# Layouts
# --------------------------------------------------------------------------- #
def detect_layout(state_dict: dict[str, torch.Tensor]) -> str:
    keys = list(state_dict)
    if any(k.startswith('backbone.stem.') for k in keys):
        return 'mmpoolformer'
    if any(re.match(r'(backbone\.)?network\.\d+\.', k) for k in keys):
        return 'mmpretrain' if any(k.startswith('backbone.') for k in keys) else 'official'
    if any(k.startswith('downsample_layers.') for k in keys):
        return 'metaformer'
    if any(re.match(r'(stem\.|stages\.\d+\.)', k) for k in keys):
        return 'timm'  # also a bare mmpoolformer backbone: the names agree
    raise CheckpointError(
        'unrecognised checkpoint layout (expected one of '
        f'{", ".join(LAYOUTS)}); first keys: {keys[:5]}')


def _convert_official_key(key: str, last_stage: int) -> str:
    """official/mmpretrain backbone key (no 'backbone.' prefix) -> ours."""
    key = re.sub(r'^patch_embed\.proj\.', 'stem.conv.', key)
    # network.{odd}.proj: downsampling before stage (k+1)/2
    key = re.sub(r'^network\.(\d+)\.proj\.',
                 lambda m: f'stages.{(int(m[1]) + 1) // 2}.downsample.conv.', key)
    key = re.sub(r'^network\.(\d+)\.(\d+)\.',
                 lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.', key)
    key = re.sub(r'layer_scale_(\d)$', r'layer_scale\1.scale', key)
    key = re.sub(r'^norm(\d+)\.', lambda m: f'norm{int(m[1]) // 2}.', key)
    key = re.sub(r'^norm\.', f'norm{last_stage}.', key)
    return key


# 1x1 layers that this project keeps as convolutions and others as nn.Linear.
_POINTWISE = re.compile(r'\.(mlp\.fc[12]|token_mixer\.pwconv[12])\.weight$')


def _as_conv(key: str, value: torch.Tensor) -> torch.Tensor:
    return value[:, :, None, None] if value.dim() == 2 and _POINTWISE.search(key) else value


def _convert_timm_key(key: str, last_stage: int, is_v2: bool) -> str:
    if key.startswith('head.norm.') and not is_v2:
        return f'backbone.norm{last_stage}.' + key[len('head.norm.'):]
    if key.startswith('head.'):
        return key
    key = key.replace('stem.norm.', 'stem.post_norm.')
    key = re.sub(r'\.downsample\.norm\.', '.downsample.pre_norm.', key)
    return 'backbone.' + key


# (sail-sg/metaformer pattern, ours); the head rules come before the norm rule.
_METAFORMER_KEYS = [
    (r'^head\.(fc1|norm|fc2)\.', r'head.fc.\1.'),
    (r'^head\.(weight|bias)$', r'head.fc.\1'),
    (r'^norm\.', 'head.norm.'),
    (r'^downsample_layers\.0\.', 'backbone.stem.'),
    (r'^downsample_layers\.(\d+)\.', r'backbone.stages.\1.downsample.'),
    (r'^stages\.(\d+)\.(\d+)\.', r'backbone.stages.\1.blocks.\2.'),
]


def _convert_metaformer_key(key: str) -> str:
    for pattern, replacement in _METAFORMER_KEYS:
        new_key, count = re.subn(pattern, replacement, key)
        if count:
            return new_key
    return key


def _to_metaformer_key(key: str) -> str:
    """Ours -> sail-sg/metaformer; None for keys that layout has no place for."""
    key = re.sub(r'^backbone\.stem\.', 'downsample_layers.0.', key)
    key = re.sub(r'^backbone\.stages\.(\d+)\.downsample\.', r'downsample_layers.\1.', key)
    key = re.sub(r'^backbone\.stages\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.\2.', key)
    key = re.sub(r'^head\.norm\.', 'norm.', key)
    key = re.sub(r'^head\.fc\.(fc1|norm|fc2)\.', r'head.\1.', key)
    key = re.sub(r'^head\.fc\.(weight|bias)$', r'head.\1', key)
    # Output norms of dense backbones and detector / segmentor parts have no place.
    return key if key.startswith(('downsample_layers.', 'stages.', 'norm.', 'head.')) else None


def _last_stage(state_dict, pattern) -> int:
    indices = [int(m[1]) for k in state_dict for m in [re.match(pattern, k)] if m]
    return max(indices) if indices else 3


def convert_to_mmpoolformer(state_dict: dict[str, torch.Tensor]
                            ) -> tuple[dict[str, torch.Tensor], str]:
    """Convert any known layout to this project's; returns (state_dict, layout).

    Keys outside the backbone and classifier head (a detector's neck, say) are
    kept as they are.
    """
    layout = detect_layout(state_dict)
    out = {}
    if layout == 'mmpoolformer':
        return dict(state_dict), layout
    if layout == 'timm':
        last = _last_stage(state_dict, r'stages\.(\d+)\.')
        is_v2 = 'stem.norm.weight' in state_dict  # v1 has no stem norm
        for key, value in state_dict.items():
            key = _convert_timm_key(key, last, is_v2)
            out[key] = _as_conv(key, value)
        return out, layout
    if layout == 'metaformer':
        for key, value in state_dict.items():
            key = _convert_metaformer_key(key)
            out[key] = _as_conv(key, value)
        return out, layout
    last = _last_stage(state_dict, r'(?:backbone\.)?network\.(\d+)\.') // 2
    for key, value in state_dict.items():
        if layout == 'official':
            if key.startswith('head.') and not key.startswith('head.fc.'):
                out['head.fc.' + key[len('head.'):]] = value
            else:
                out['backbone.' + _convert_official_key(key, last)] = value
        elif key.startswith('backbone.'):
            out['backbone.' + _convert_official_key(key[9:], last)] = value
        else:
            out[key] = value
    return out, layout


# --------------------------------------------------------------------------- #
# Writing other layouts (the converter's way back)
# --------------------------------------------------------------------------- #
def _to_official_key(key: str, last_stage: int) -> str:
    """Our backbone key (no 'backbone.' prefix) -> official / mmpretrain names."""
    key = re.sub(r'^stem\.conv\.', 'patch_embed.proj.', key)
    key = re.sub(r'^stages\.(\d+)\.downsample\.conv\.',
                 lambda m: f'network.{2 * int(m[1]) - 1}.proj.', key)
    key = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.',
                 lambda m: f'network.{2 * int(m[1])}.{m[2]}.', key)
    key = re.sub(r'layer_scale(\d)\.scale$', r'layer_scale_\1', key)
    return re.sub(r'^norm(\d+)\.', lambda m: f'norm{2 * int(m[1])}.', key)


def convert_from_mmpoolformer(state_dict: dict[str, torch.Tensor], layout: str
                              ) -> dict[str, torch.Tensor]:
    """Write a state dict of this project's layout in another public layout.

    ``official`` and ``timm`` describe classifiers (the final norm becomes
    ``norm`` / ``head.norm``; other output norms have no place there and are
    left out); ``mmpretrain`` also holds detectors and segmentors (the layout of
    the original mmdet / mmseg checkpoints), whose other keys are kept.
    """
    if layout not in LAYOUTS:
        raise CheckpointError(f'unknown layout {layout!r}; valid: {", ".join(LAYOUTS)}')
    if layout == 'mmpoolformer':
        return dict(state_dict)
    is_v2 = 'backbone.stem.post_norm.weight' in state_dict
    if is_v2 and layout in ('official', 'mmpretrain'):
        raise CheckpointError(
            f'the {layout} layout holds PoolFormer v1 only; write a MetaFormer v2 '
            'model (PoolFormerV2 ... CAFormer) as metaformer or timm')
    if layout == 'metaformer':
        if not is_v2:
            raise CheckpointError('the metaformer layout holds the MetaFormer v2 '
                                  'family; write PoolFormer v1 as official or timm')
        # sail-sg/metaformer works on NHWC tensors: its 1x1 layers are nn.Linear.
        return {k: v.flatten(1) if _POINTWISE.search(k) else v
                for key, v in state_dict.items()
                for k in [_to_metaformer_key(key)] if k is not None}
    # timm keeps the channel MLPs of attention stages as nn.Linear.
    attention_blocks = {m[1] for k in state_dict
                        for m in [re.match(r'(.*\.blocks\.\d+\.)token_mixer\.qkv\.', k)] if m}
    last = _last_stage(state_dict, r'backbone\.stages\.(\d+)\.')
    out = {}
    for key, value in state_dict.items():
        if not key.startswith('backbone.'):
            if layout == 'official' and key.startswith('head.fc.'):
                key = 'head.' + key[len('head.fc.'):]
            elif layout != 'mmpretrain' and not key.startswith('head.'):
                continue
            out[key] = value
            continue
        key = key[len('backbone.'):]
        is_norm = re.match(r'norm(\d+)\.', key)
        if layout == 'timm':
            if is_norm:
                if is_v2 or int(is_norm[1]) != last:
                    continue
                key = 'head.norm.' + key[len(is_norm[0]):]
            block = re.match(r'.*\.blocks\.\d+\.', key)
            if block and 'backbone.' + block[0] in attention_blocks and _POINTWISE.search(key):
                value = value.flatten(1)
            key = key.replace('stem.post_norm.', 'stem.norm.')
            out[re.sub(r'\.downsample\.pre_norm\.', '.downsample.norm.', key)] = value
        elif layout == 'official':
            if is_norm:
                if int(is_norm[1]) != last:
                    continue
                key = 'norm.' + key[len(is_norm[0]):]
            out[_to_official_key(key, last)] = value
        else:
            out['backbone.' + _to_official_key(key, last)] = value
    return out
