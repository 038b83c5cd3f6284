"""Work that one rank of a distributed run does for all of them.

On a shared file system, 16 ranks checking the same 118k files, or downloading
the same checkpoint, cost 16 times what one does. Rank 0 does it; the others
wait in a broadcast (a barrier) and get its result, or its error, so that a
failing check stops every rank with the same message instead of hanging them.
Every rank must call these functions at the same point (they are collectives);
outside a process group they just run the function.
"""
import pickle
from typing import Callable, Optional, TypeVar

from mmengine.dist import broadcast_object_list, get_rank, get_world_size

T = TypeVar('T')


def _sendable(error: Exception) -> Exception:
    """The error itself if it survives pickling (a broadcast pickles it), else a
    RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f'{type(error).__name__}: {error}')


def _from_rank_zero(value):
    box = [value]
    broadcast_object_list(box, src=0)
    return box[0]


def run_on_rank_zero(function: Callable[..., T], *args, **kwargs) -> T:
    """``function(*args, **kwargs)`` run by rank 0 only; every rank returns its
    result (keep it small: it is pickled and broadcast) or raises its error."""
    if get_world_size() == 1:
        return function(*args, **kwargs)
    result, error = None, None
    if get_rank() == 0:
        try:
            result = function(*args, **kwargs)
        except Exception as err:
            error = err
        _from_rank_zero((result, None if error is None else _sendable(error)))
        if error is not None:
            raise error
        return result
    result, error = _from_rank_zero(None)
    if error is not None:
        raise error
    return result


def rank_zero_first(function: Callable[..., T], *args, **kwargs) -> T:
    """``function(*args, **kwargs)`` run by rank 0, then, once it succeeded, by
    the other ranks (which find what it left behind, e.g. a downloaded file);
    if it fails on rank 0, every rank raises that error and the others never
    run it. Each rank returns its own result."""
    if get_world_size() == 1:
        return function(*args, **kwargs)
    if get_rank() == 0:
        error: Optional[Exception] = None
        try:
            result = function(*args, **kwargs)
        except Exception as err:
            error = err
        _from_rank_zero(None if error is None else _sendable(error))
        if error is not None:
            raise error
        return result
    error = _from_rank_zero(None)
    if error is not None:
        raise error
    return function(*args, **kwargs)
