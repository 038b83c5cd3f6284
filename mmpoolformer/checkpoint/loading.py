"""Reading checkpoint files safely and loading them into models.

Files are read with ``torch.load(weights_only=True)`` (or safetensors), so a
checkpoint cannot run code while it is being loaded; ``trust_checkpoint`` (the
tools' ``--trust-checkpoint PATH``) vouches for one file that needs more.
Any layout of :mod:`.layouts` is converted to this project's before loading.
"""
import contextlib
import os
import pickle
import re
from typing import Optional

import torch

from mmpoolformer.utils.errors import CheckpointError
from mmpoolformer.utils.rank_zero import rank_zero_first

from .layouts import convert_to_mmpoolformer


# --------------------------------------------------------------------------- #
# Reading files
# --------------------------------------------------------------------------- #
def _mmengine_types() -> list:
    """The plain types that mmengine's checkpoints hold, for ``weights_only`` loading.

    mmengine's checkpoints hold its logging buffers (HistoryBuffer, whose
    statistics methods pickle as ``getattr(buffer, 'min')``) and numpy arrays and
    scalars. ``getattr`` only fetches attributes of objects the restricted
    unpickler already allowed; calling what it returns is still refused unless
    that callable is itself allow-listed, so the protection stays on. They are
    allowed inside :func:`load_file` only (``torch.serialization.safe_globals``),
    never for other libraries' loads.
    """
    import builtins

    import numpy as np
    from mmengine.logging import HistoryBuffer
    np_core = getattr(np, '_core', None) or np.core
    return [HistoryBuffer, builtins.getattr, np.ndarray, np.dtype,
            np_core.multiarray._reconstruct, np_core.multiarray.scalar,
            *{type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'uint32',
                                          'bool')}]


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
    ``load_from`` and ``--resume`` (through mmengine, inside
    :func:`mmengine_loads_through_load_file`), converters, demos. A file whose unpickling
    would call anything outside torch's and mmengine's plain data types is
    refused unless ``trust_checkpoint(path)`` was called for it.

    A URL is downloaded into torch's hub cache once: in a distributed run, as
    mmengine's own URL loader does, rank 0 downloads it while the other ranks
    wait, then they read the cached file (every rank must call this then).
    """
    path = str(path)
    trusted = _identity(path) in _TRUSTED
    if path.startswith(('http://', 'https://')):
        return rank_zero_first(_load_url, path, map_location, trusted)
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
        with torch.serialization.safe_globals(_mmengine_types()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refused(path, err) from None
    except Exception as err:  # truncated zip, not a checkpoint, ...
        raise CheckpointError(
            f'cannot load checkpoint {path}: {str(err).splitlines()[0]}') from None


def _refused(path: str, err: pickle.UnpicklingError) -> CheckpointError:
    """The one-line refusal of a file (or URL) that needs code to unpickle."""
    culprit = re.search(r'(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)', str(err))
    what = f' (it calls {culprit[1]})' if culprit else ''
    return CheckpointError(
        f'refused to load {path}: unpickling it needs code outside plain tensor '
        f'and number types{what}, and nothing from it was run. If you trust '
        f'this file, pass --trust-checkpoint {path}')


def _load_url(url: str, map_location, trusted: bool) -> dict:
    """A checkpoint URL through torch's hub cache (downloaded if not cached there)."""
    import urllib.error
    try:
        with torch.serialization.safe_globals(_mmengine_types()):
            return torch.hub.load_state_dict_from_url(
                url, map_location=map_location, weights_only=not trusted)
    except urllib.error.URLError as err:  # HTTP errors, unknown host, refused connection
        raise CheckpointError(f'cannot download checkpoint {url}: {err}') from None
    except pickle.UnpicklingError as err:  # downloaded (and cached) but not plain data
        raise _refused(url, err) from None
    except Exception as err:  # truncated download, not a checkpoint, ...
        raise CheckpointError(
            f'cannot load checkpoint {url}: {str(err).splitlines()[0]}') from None


def load_from_mmpoolformer(filename, map_location=None):
    """:func:`load_file` as an mmengine checkpoint loader (mmengine logs the
    name's part after ``load_from_``)."""
    return load_file(filename, map_location or 'cpu')


@contextlib.contextmanager
def mmengine_loads_through_load_file():
    """While inside, mmengine's own checkpoint loading (``load_from``,
    ``--resume``, other modules' ``Pretrained`` init_cfg) reads local files and
    URLs through :func:`load_file`; mmengine's loaders are put back on exit.

    tools/train.py and tools/test.py run the Runner inside it. Importing the
    package changes nothing: other code in the process keeps mmengine's loaders.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    prefixes = ('', 'http://', 'https://')
    # mmengine has no public getter for a registered loader: read its table
    # (a private attribute) only to put the same loaders back.
    previous = {p: CheckpointLoader._schemes[p] for p in prefixes
                if p in CheckpointLoader._schemes}
    CheckpointLoader.register_scheme(prefixes, load_from_mmpoolformer, force=True)
    try:
        yield
    finally:
        for prefix, loader in previous.items():
            CheckpointLoader.register_scheme(prefix, loader, force=True)


def get_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, whichever wrapper key holds them."""
    for key in ('state_dict', 'model', 'state_dict_ema', 'module'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {re.sub(r'^module\.', '', k): v for k, v in checkpoint.items()
            if isinstance(v, torch.Tensor)}




def check_shapes(model_state: dict[str, torch.Tensor],
                 state_dict: dict[str, torch.Tensor], source: str = 'checkpoint',
                 skip_heads: bool = False) -> list[tuple[str, tuple, tuple]]:
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
