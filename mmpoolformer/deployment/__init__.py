"""Deployment: ONNX export checked with ONNX Runtime (``onnx.py``)."""
from .onnx import (  # noqa: F401
    RTOL,
    ExportReport,
    check_onnx,
    check_tolerance,
    export_onnx,
    export_wrapper,
)
