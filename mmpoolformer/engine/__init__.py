from .hooks import ConvertCheckpointHook, DeployHook  # noqa: F401
from .resume import AtomicLocalBackend, EpochSeedHook  # noqa: F401
