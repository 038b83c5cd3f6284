from .amp import CPUBf16OptimWrapper, cpu_has_native_bf16  # noqa: F401
from .faults import (EXIT_STOPPED, StopOnSignalHook, TrainingStopped,  # noqa: F401
                     enable_stop_and_resume, handling_training_faults)
from .hooks import ConvertCheckpointHook, DeployHook, NonFiniteLossHook  # noqa: F401
from .resume import (ATOMIC_BACKEND, AtomicCheckpointHook, AtomicLocalBackend,  # noqa: F401
                     ExactResumeHook, ResumableEpochBasedTrainLoop, register_atomic_backend)
