from .amp import CPUBf16OptimWrapper, cpu_has_native_bf16  # noqa: F401
from .compile import CompileBackboneHook  # noqa: F401
from .faults import (  # noqa: F401
    EXIT_STOPPED,
    StopOnSignalHook,
    TrainingStopped,
    enable_stop_and_resume,
    handling_training_faults,
)
from .hooks import (  # noqa: F401
    ConvertCheckpointHook,
    DeployHook,
    NonFiniteLossHook,
    WeightsOnlyCheckpointHook,
)
from .resume import (  # noqa: F401
    ATOMIC_BACKEND,
    AtomicCheckpointHook,
    AtomicLocalBackend,
    ExactResumeHook,
    ResumableEpochBasedTrainLoop,
    newest_checkpoint,
    register_atomic_backend,
)
from .timing import IterTimeBreakdownHook  # noqa: F401
