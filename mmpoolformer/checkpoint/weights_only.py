"""Checkpoints that plain ``torch.load(path)`` reads under ``weights_only=True``.

mmengine saves its message hub (``HistoryBuffer`` objects holding numpy arrays)
and numpy values (a metric as ``np.float64``) beside the weights. Torch's
weights-only unpickler refuses them, and with it every client that loads
with torch's default: mmdet's, mmseg's and mmpretrain's inferencers and tools,
mmengine's ``load_checkpoint``. :func:`to_weights_only` turns those values into
tagged dicts of tensors and numbers on save; :func:`from_weights_only` turns
them back, exactly, on load (:class:`mmpoolformer.engine.WeightsOnlyCheckpointHook`
does both). Nothing is registered with torch: no ``add_safe_globals``.
"""
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# The key that marks a dict standing for a value of another type.
TYPE_KEY = '__mmpoolformer_type__'

# What torch's weights-only unpickler reads as it is (containers are walked).
_PLAIN = (str, bytes, int, float, complex, bool, type(None), torch.Tensor, torch.dtype,
          torch.device, torch.Size)


def _array(value: np.ndarray) -> dict:
    if value.dtype.kind in 'biufc':  # numbers: a tensor keeps dtype and bits
        return {TYPE_KEY: 'ndarray', 'data': torch.from_numpy(np.ascontiguousarray(value))}
    return {TYPE_KEY: 'ndarray', 'dtype': value.dtype.str, 'data': value.tolist()}


def to_weights_only(value, path: str = 'checkpoint', unsupported: list = None):
    """``value`` with every HistoryBuffer, numpy array and numpy scalar replaced
    by a tagged dict that torch's weights-only unpickler reads. A value of any
    other type that it would refuse is kept as it is and its key path appended
    to ``unsupported``, for the caller to report."""
    if isinstance(value, np.generic):  # before _PLAIN: np.float64 is a float, np.str_ a str
        return {TYPE_KEY: 'numpy_scalar', 'dtype': value.dtype.str, 'value': value.item()}
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, HistoryBuffer):
        logs, counts = value.data
        return {TYPE_KEY: 'HistoryBuffer', 'log_history': _array(logs),
                'count_history': _array(counts), 'max_length': value.max_length}
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, Mapping):
        kind = OrderedDict if isinstance(value, OrderedDict) else dict
        return kind((key, to_weights_only(item, f'{path}[{key!r}]', unsupported))
                    for key, item in value.items())
    if isinstance(value, (list, tuple)):  # a named tuple is saved as a plain one
        items = [to_weights_only(item, f'{path}[{i}]', unsupported)
                 for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if type(value) is set and all(isinstance(item, _PLAIN) for item in value):
        return value
    if unsupported is not None:
        unsupported.append(f'{path} ({type(value).__module__}.{type(value).__qualname__})')
    return value


def _from_array(tagged: dict) -> np.ndarray:
    data = tagged['data']
    if isinstance(data, torch.Tensor):
        return data.numpy()
    return np.array(data, dtype=np.dtype(tagged['dtype']))


def from_weights_only(value):
    """The inverse of :func:`to_weights_only`: tagged dicts become the
    HistoryBuffers, arrays and numpy scalars they stand for, bit for bit.
    Anything else (a checkpoint saved before, which holds the objects
    themselves) is returned as it is."""
    if isinstance(value, Mapping):
        kind = value.get(TYPE_KEY)
        if kind == 'HistoryBuffer':
            return HistoryBuffer(_from_array(value['log_history']),
                                 _from_array(value['count_history']), value['max_length'])
        if kind == 'ndarray':
            return _from_array(value)
        if kind == 'numpy_scalar':
            return np.dtype(value['dtype']).type(value['value'])
        kind = OrderedDict if isinstance(value, OrderedDict) else dict
        return kind((key, from_weights_only(item)) for key, item in value.items())
    if type(value) in (list, tuple):
        return type(value)(from_weights_only(item) for item in value)
    return value
