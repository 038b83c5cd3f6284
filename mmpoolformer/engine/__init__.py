from .amp import CPUBf16OptimWrapper, cpu_has_native_bf16  # noqa: F401
from .hooks import ConvertCheckpointHook, DeployHook  # noqa: F401
from .resume import AtomicLocalBackend, EpochSeedHook  # noqa: F401
