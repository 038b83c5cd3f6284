"""Errors that mean the user asked for something that cannot be done.

The tools print these as one line (``error: ...``) instead of a traceback.
"""


class ConfigError(ValueError):
    """A model argument or config value that is not valid; the message names it."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked; the message says why."""


class DatasetError(RuntimeError):
    """Data that does not match its annotations; the message names the file."""


class UsageError(RuntimeError):
    """An option that this config or machine cannot honour."""


USER_ERRORS = (FileNotFoundError, ConfigError, CheckpointError, DatasetError, UsageError)
