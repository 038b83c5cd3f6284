"""Model complexity (parameters, MACs), the inputs models are fed with, and the
CPU benchmark (``benchmark``, imported on its own)."""
from .complexity import DEFAULT_SHAPES, count_macs, count_parameters  # noqa: F401
