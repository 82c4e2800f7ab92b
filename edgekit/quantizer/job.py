"""From a float ONNX model, calibration data and a recipe to a QDQ model and its quantization record."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx

from edgekit import console
from edgekit.dataset import Dataset, load_dataset
from edgekit.errors import InputError, first_line
from edgekit.onnx_model import load_onnx, model_inputs
from edgekit.quantizer.batch_norm import FoldedBatchNorm, fold_batch_norms
from edgekit.quantizer.calibration import Calibration, calibrate_model, plan_with
from edgekit.quantizer.costs import node_costs
from edgekit.quantizer.equalize import Equalization, equalize
from edgekit.quantizer.graph import GraphView, name_nodes
from edgekit.quantizer.params import QuantParams, activation_params, bias_params, quantize, weight_params
from edgekit.quantizer.plan import Plan, make_plan
from edgekit.quantizer.qdq import MIN_OPSET, QuantizedConstant, write_qdq
from edgekit.quantizer.recipe import Recipe, load_recipe

MIN_CALIBRATION_SAMPLES = 32


@dataclass
class QuantizedModel:
    """One QDQ model built from a calibration: the graph, its plan and every parameter chosen."""

    model: onnx.ModelProto
    plan: Plan
    activations: dict[str, QuantParams]
    constants: dict[str, QuantizedConstant]
    bias_clipped: dict[str, int] = field(default_factory=dict)
    forced: dict[str, str] = field(default_factory=dict)  # nodes built in float on request (budget)


def prepare_model(path: Path) -> tuple[onnx.ModelProto, list[FoldedBatchNorm]]:
    """Load a float model, name its nodes, bring it to an opset where per-channel QDQ exists, and
    fold its BatchNormalizations into convolutions (batch_norm.py)."""
    model = load_onnx(path)
    if any(e.domain in ("", "ai.onnx") and e.version < MIN_OPSET for e in model.opset_import):
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:  # the converter raises bare RuntimeErrors per unsupported op
            raise InputError(f"{path} uses an opset below {MIN_OPSET} and cannot be converted ({first_line(exc)})", "re-export with opset >= 13") from None
    name_nodes(model)
    return fold_batch_norms(model)


def load_calibration(path: Path, model: onnx.ModelProto) -> Dataset:
    dataset = load_dataset(Path(path), model_inputs(model))
    if len(dataset) < MIN_CALIBRATION_SAMPLES:
        console.warn(f"{path} has {len(dataset)} samples; calibration ranges from fewer than {MIN_CALIBRATION_SAMPLES} are unreliable")
    return dataset


def build_qdq(job: QuantizeJob, float_nodes: dict[str, str] | None = None) -> QuantizedModel:
    """Choose every parameter of the job's plan (with `float_nodes` forced to float) and write the QDQ graph."""
    plan = job.plan_for(float_nodes)
    view, calibration = job.view, job.calibration
    activations = {}
    for tensor in plan.activations:
        root = calibration.tensors[plan.root(tensor)]
        activations[tensor] = activation_params(*root.clip, root.rule.dtype, root.rule.symmetric)
    constants: dict[str, QuantizedConstant] = {}
    clipped: dict[str, int] = {}
    for const in plan.constants:
        value = view.constants[const.tensor].astype(np.float32)
        if const.role == "bias":
            source, weight_key = const.scale_from
            params = bias_params(activations[source].scale[0], constants[weight_key].params)
            bound = np.abs(value / params.scale_array()).max(initial=0.0)
            if bound > 2**31 - 1:
                clipped[const.key] = int(np.count_nonzero(np.abs(value / params.scale_array()) > 2**31 - 1))
        elif const.role == "weight":
            params = weight_params(value, const.axis)
        else:
            params = weight_params(value, None)
        constants[const.key] = QuantizedConstant(params, quantize(value, params))
    model = write_qdq(view, plan, activations, constants)
    return QuantizedModel(model, plan, activations, constants, clipped, dict(float_nodes or {}))


@dataclass
class QuantizeJob:
    """A prepared model, its recipe, calibration data, the calibration done on it and the plan it gives."""

    source: Path
    calib: Path
    view: GraphView
    recipe: Recipe
    dataset: Dataset
    calibration: Calibration
    plan: Plan  # nothing forced to float: made once and shared by every build that forces nothing
    equalized: list[Equalization] = field(default_factory=list)  # tensors equalized before calibration
    batch_norms: list[FoldedBatchNorm] = field(default_factory=list)  # folded into convolutions before anything else

    @cached_property
    def costs(self) -> dict[str, int]:
        """Each node's MACs or output elements (costs.py), from the float model's shapes: computed once."""
        return node_costs(self.view)

    def plan_for(self, float_nodes: dict[str, str] | None) -> Plan:
        """The plan with `float_nodes` (node -> reason) forced to float: the job's own plan when there are none."""
        return plan_with(self.view, self.recipe, self.calibration, float_nodes) if float_nodes else self.plan


def start_job(model_path: Path, calib: Path, recipe: str | Path | None = None) -> QuantizeJob:
    """Load and validate everything, then calibrate (passes 1 and 2)."""
    model, batch_norms = prepare_model(Path(model_path))
    view = GraphView.of(model)
    recipe = load_recipe(recipe)
    recipe.check_against({n.name for n in view.nodes}, view.tensor_names())
    dataset = load_calibration(calib, model)
    equalized: list[Equalization] = []
    if recipe.equalize:
        # The float model the rest quantizes: equal to the original up to float rounding.
        with console.step("equalizing channel ranges"):
            model, equalized = equalize(model, dataset, recipe.equalize_alpha)
        view = GraphView.of(model)
    candidate_plan = make_plan(view, recipe)
    calibration = calibrate_model(view, recipe, dataset, candidate_plan)
    # Calibration changes the plan only through tensors found to hold extreme values (their
    # consumers stay float); without any, the candidate plan is the plan.
    plan = plan_with(view, recipe, calibration) if calibration.extreme else candidate_plan
    return QuantizeJob(Path(model_path), Path(calib), view, recipe, dataset, calibration, plan, equalized, batch_norms)
