"""Errors that mean the user asked for something that cannot be done.

The tools print these as one line (``error: ...``) instead of a traceback.
"""
import difflib


class ConfigError(ValueError):
    """A model argument or config value that is not valid; the message names it."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked; the message says why."""


class DatasetError(RuntimeError):
    """Data that does not match its annotations; the message names the file."""


class UsageError(RuntimeError):
    """An option that this config or machine cannot honour."""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message says how to resume."""


USER_ERRORS = (FileNotFoundError, ConfigError, CheckpointError, DatasetError, UsageError,
               TrainingError)


def closest_name_hint(name, valid) -> str:
    """' (did you mean X?)' for a near miss among ``valid``, else ''."""
    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f' (did you mean {match[0]!r}?)' if match else ''
