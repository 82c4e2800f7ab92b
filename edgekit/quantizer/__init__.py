"""The quantize stage: calibrated int8 post-training quantization to QDQ ONNX, with a record of every decision."""

from edgekit.quantizer.accuracy_budget import AccuracyBudget
from edgekit.quantizer.api import QuantizeResult, quantize
from edgekit.quantizer.recipe import DEFAULT_RECIPE, Recipe, load_recipe
from edgekit.quantizer.sensitivity_html import FALLBACK_BELOW_DB, GUIDES

__all__ = ["DEFAULT_RECIPE", "FALLBACK_BELOW_DB", "GUIDES", "AccuracyBudget", "QuantizeResult", "Recipe", "load_recipe", "quantize"]
