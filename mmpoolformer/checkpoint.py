"""Loading PoolFormer weights in any public layout, safely.

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

Files are read with ``torch.load(weights_only=True)`` (or safetensors), so a
checkpoint cannot run code while it is being loaded.
"""
import os
import pickle
import re
from typing import Dict, List, Optional, Tuple

import torch

from mmpoolformer.utils.errors import CheckpointError

LAYOUTS = ('mmpoolformer', 'mmpretrain', 'official', 'metaformer', 'timm')
# The layouts each generation of models can be written in.
V1_LAYOUTS = ('mmpoolformer', 'mmpretrain', 'official', 'timm')
V2_LAYOUTS = ('mmpoolformer', 'metaformer', 'timm')


# --------------------------------------------------------------------------- #
# Reading files
# --------------------------------------------------------------------------- #
def _allow_mmengine_types():
    """Let ``weights_only`` loading accept the plain types mmengine stores.

    mmengine's checkpoints hold its logging buffers (HistoryBuffer, whose
    statistics methods pickle as ``getattr(buffer, 'min')``) and numpy arrays and
    scalars. ``getattr`` only fetches attributes of objects the restricted
    unpickler already allowed; calling what it returns is still refused unless
    that callable is itself allow-listed, so the protection stays on.
    """
    import builtins

    import numpy as np
    from mmengine.logging import HistoryBuffer
    np_core = getattr(np, '_core', None) or np.core
    torch.serialization.add_safe_globals([
        HistoryBuffer, builtins.getattr, np.ndarray, np.dtype,
        np_core.multiarray._reconstruct, np_core.multiarray.scalar,
        *{type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'uint32',
                                      'bool')},
    ])


_allow_mmengine_types()


# Files the user has vouched for by typing ``--trust-checkpoint PATH``.
_TRUSTED = set()


def trust_checkpoint(path: str):
    """Allow full (code-running) unpickling of this one file or URL."""
    _TRUSTED.add(_identity(path))


def _identity(path: str) -> str:
    path = str(path)
    return path if path.startswith(('http://', 'https://')) else os.path.realpath(path)


def load_file(path: str, map_location='cpu') -> dict:
    """Read a checkpoint file or URL without executing pickled code.

    Every checkpoint the project reads comes here: pretrained weights,
    ``load_from`` and ``--resume`` (through mmengine, see
    ``_route_mmengine_loading``), converters, demos. A file whose unpickling
    would call anything outside torch's and mmengine's plain data types is
    refused unless ``trust_checkpoint(path)`` was called for it.
    """
    path = str(path)
    trusted = _identity(path) in _TRUSTED
    if path.startswith(('http://', 'https://')):
        return torch.hub.load_state_dict_from_url(
            path, map_location=map_location, weights_only=not trusted)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file as load_safetensors
        try:
            return load_safetensors(path, device=str(map_location))
        except Exception as err:
            raise CheckpointError(f'cannot load checkpoint {path}: {err}') from None
    if trusted:
        from mmengine.logging import print_log
        print_log(f'{path}: full unpickling, trusted by --trust-checkpoint', logger='current')
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        culprit = re.search(r'(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)', str(err))
        what = f' (it calls {culprit[1]})' if culprit else ''
        raise CheckpointError(
            f'refused to load {path}: unpickling it needs code outside plain tensor '
            f'and number types{what}, and nothing from it was run. If you trust '
            f'this file, pass --trust-checkpoint {path}') from None
    except Exception as err:  # truncated zip, not a checkpoint, ...
        raise CheckpointError(
            f'cannot load checkpoint {path}: {str(err).splitlines()[0]}') from None


def _route_mmengine_loading():
    """Make mmengine's ``load_from``, ``--resume`` and ``init_cfg`` read local
    files and URLs through :func:`load_file` too."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load(filename, map_location=None, *args, **kwargs):
        return load_file(filename, map_location or 'cpu')
    CheckpointLoader.register_scheme(prefixes='', loader=load, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load, force=True)


_route_mmengine_loading()


def get_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint, whichever wrapper key holds them."""
    for key in ('state_dict', 'model', 'state_dict_ema', 'module'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {re.sub(r'^module\.', '', k): v for k, v in checkpoint.items()
            if isinstance(v, torch.Tensor)}


# --------------------------------------------------------------------------- #
# Layouts
# --------------------------------------------------------------------------- #
def detect_layout(state_dict: Dict[str, torch.Tensor]) -> str:
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


def convert_to_mmpoolformer(state_dict: Dict[str, torch.Tensor]
                            ) -> Tuple[Dict[str, torch.Tensor], str]:
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


def check_shapes(model_state: Dict[str, torch.Tensor],
                 state_dict: Dict[str, torch.Tensor], source: str = 'checkpoint',
                 skip_heads: bool = False) -> List[Tuple[str, tuple, tuple]]:
    """Raise on a tensor whose shape differs from the model's.

    With ``skip_heads``, only a mismatch inside the backbone (weights of another
    arch) raises; those outside it (a head for another number of classes) are
    returned as ``(key, checkpoint shape, model shape)`` for the caller to skip.
    """
    skipped = []
    for key, value in state_dict.items():
        if key not in model_state or model_state[key].shape == value.shape:
            continue
        got, want = tuple(value.shape), tuple(model_state[key].shape)
        if skip_heads and not key.startswith('backbone.'):
            skipped.append((key, got, want))
            continue
        raise CheckpointError(
            f'{source}: shape mismatch for {key!r}: checkpoint has {got}, model has '
            f'{want} (is the checkpoint for another arch?)')
    return skipped


def skipped_message(source: str, skipped) -> str:
    """The one log message that names the tensors :func:`check_shapes` skipped."""
    lines = [f'  {key}: checkpoint {got}, model {want}' for key, got, want in skipped]
    return (f'{source}: skipped {len(skipped)} tensors whose shapes differ from the '
            'model\'s (a head for another number of classes); they keep their '
            'initialisation:\n' + '\n'.join(lines))


# --------------------------------------------------------------------------- #
# Loading into models
# --------------------------------------------------------------------------- #
def _report(source, layout, loaded, missing, unexpected):
    from mmengine.logging import MMLogger, print_log
    msg = f'loaded {loaded} tensors from {source} ({layout} layout)'
    if missing:
        msg += f'\nmissing keys ({len(missing)}): {", ".join(missing)}'
    if unexpected:
        msg += f'\nunexpected keys ({len(unexpected)}): {", ".join(unexpected)}'
    print_log(msg, logger=MMLogger.get_current_instance())


def _read_converted(checkpoint: str):
    """(raw checkpoint, state dict in this project's layout, source layout)."""
    raw = load_file(checkpoint)
    state_dict, layout = convert_to_mmpoolformer(get_state_dict(raw))
    return raw, state_dict, layout


def _load_checked(module: torch.nn.Module, state_dict, checkpoint: str, layout: str,
                  strict: bool = False):
    """Shape check, load and report; returns (missing, unexpected)."""
    check_shapes(module.state_dict(), state_dict, checkpoint)
    missing, unexpected = module.load_state_dict(state_dict, strict=strict)
    _report(checkpoint, layout, len(state_dict) - len(unexpected), missing, unexpected)
    return missing, unexpected


def load_backbone_weights(backbone: torch.nn.Module, checkpoint: str,
                          prefix: Optional[str] = None):
    """Load a checkpoint of any layout into a bare backbone.

    Classifier, detector and segmentor checkpoints all work: the tensors under
    ``prefix`` (default ``backbone.``) are taken. Returns (missing, unexpected).
    """
    _, state_dict, layout = _read_converted(checkpoint)
    prefix = prefix or 'backbone.'
    if not prefix.endswith('.'):
        prefix += '.'
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(f'{checkpoint}: no tensors under prefix {prefix!r}')
    return _load_checked(backbone, selected, checkpoint, layout)


def load_model_weights(model: torch.nn.Module, checkpoint: str, strict: bool = False):
    """Load a checkpoint of any layout into a whole model (classifier, detector,
    segmentor built by this project). Returns (missing, unexpected); the
    checkpoint's ``meta`` (class names, ...) is kept in ``model.checkpoint_meta``."""
    raw, state_dict, layout = _read_converted(checkpoint)
    model.checkpoint_meta = raw.get('meta', {}) if isinstance(raw.get('meta'), dict) else {}
    return _load_checked(model, state_dict, checkpoint, layout, strict)


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


def convert_from_mmpoolformer(state_dict: Dict[str, torch.Tensor], layout: str
                              ) -> Dict[str, torch.Tensor]:
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
