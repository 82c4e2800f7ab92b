"""The export stage: PyTorch (`model.pt2` or `file.py:factory`) to ONNX, parity-checked in ONNX Runtime."""

from edgekit.exporter.torch_to_onnx import ExportOptions, ExportReport, export_model

__all__ = ["ExportOptions", "ExportReport", "export_model"]
