"""Deployment: ONNX export checked with ONNX Runtime (``onnx.py``)."""
from .onnx import (RTOL, ExportReport, check_onnx, check_tolerance, export_onnx,  # noqa: F401
                   export_wrapper)
