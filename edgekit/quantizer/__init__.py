"""quantize: calibrated int8 post-training quantization to QDQ ONNX, with a record of every decision."""

from edgekit.quantizer.api import QuantizeResult, quantize
from edgekit.quantizer.budget import AccuracyBudget

__all__ = ["AccuracyBudget", "QuantizeResult", "quantize"]
