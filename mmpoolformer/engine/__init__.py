from .hooks import ConvertCheckpointHook  # noqa: F401
