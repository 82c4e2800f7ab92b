"""The accuracy budget: fall back the most sensitive layers to float, one at a time, until the drop holds."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgekit import console
from edgekit.dataset import Dataset, load_dataset
from edgekit.errors import GateFailure, InputError
from edgekit.metrics import cosines, top1
from edgekit.onnx_model import model_inputs
from edgekit.quantizer.evaluation import run_outputs
from edgekit.quantizer.job import QuantizedModel, build_qdq
from edgekit.quantizer.sensitivity import LayerSensitivity, layer_sensitivity
from edgekit.reference import Reference
from edgekit.user_code import UserCodeErrors, load_user_function, split_function_spec

BUILTIN = ("top1", "cosine")
EVALUATOR_ERRORS = UserCodeErrors(
    not_found=("--eval file not found: {path}", "give the path of a Python file"),
    import_failed=("--eval {path} failed to import: {error}", "fix the evaluation module"),
    no_function=("--eval {path} has no function '{name}'", "define evaluate(model_path) -> float"),
)


@dataclass(frozen=True)
class AccuracyBudget:
    """At most `max_drop` lost on `evaluation` (top1 in percent, cosine, or module.py:function) over `data`."""

    max_drop: float
    evaluation: str
    data: Path


Evaluator = Callable[[onnx.ModelProto], float]


@dataclass(frozen=True)
class BudgetResult:
    """What meeting a budget did to a QDQ model."""

    quantized: QuantizedModel  # the model it ended with
    fallbacks: list[dict]  # one record entry per fallback, with its measured effect
    outcome: dict | None  # the budget's summary for the record (None: no budget)
    ranking: list[LayerSensitivity] | None  # the single-layer ranking it measured (None: no layer had to fall back)


def without_budget(quantized: QuantizedModel) -> BudgetResult:
    return BudgetResult(quantized, [], None, None)


def make_evaluator(budget: AccuracyBudget, float_model: onnx.ModelProto) -> tuple[Evaluator, str]:
    """A function scoring a model (higher is better) and the metric's name for the record."""
    if budget.evaluation == "top1":
        dataset = _dataset(budget.data, float_model)
        if dataset.labels is None:
            raise InputError(f"--eval top1 needs labels, and {budget.data} has no 'label' array", "add labels or use --eval cosine")
        return (lambda model: 100.0 * top1(_first_output(model, dataset), dataset.labels)), "top-1 %"
    if budget.evaluation == "cosine":
        dataset = _dataset(budget.data, float_model)
        reference = _first_output(float_model, dataset)
        return (lambda model: float(cosines(reference, _first_output(model, dataset)).mean())), "mean cosine to float"
    return _user_evaluator(budget.evaluation), budget.evaluation


def meet_budget(job, quantized: QuantizedModel, budget: AccuracyBudget) -> BudgetResult:
    """Fall back nodes, most sensitive first, until the drop is within budget; GateFailure if it never is.

    `quantized` is the job's model with nothing forced to float; the layers are ranked on it.
    """
    evaluate, metric = make_evaluator(budget, job.view.model)
    float_score = evaluate(job.view.model)
    score = evaluate(quantized.model)
    console.info(f"accuracy budget: {metric} float {float_score:.4f}, int8 {score:.4f}, drop {float_score - score:.4f} (allowed {budget.max_drop:g})")
    fallbacks: list[dict] = []

    def outcome() -> dict:
        return {"metric": metric, "data": str(budget.data), "max_drop": budget.max_drop, "float_score": round(float_score, 6),
                "int8_score": round(score, 6), "drop": round(float_score - score, 6), "fallbacks": len(fallbacks)}

    if float_score - score <= budget.max_drop:
        return BudgetResult(quantized, fallbacks, outcome(), None)
    ranking = layer_sensitivity(job, quantized)
    forced: dict[str, str] = {}
    for layer in ranking:
        drop_before = float_score - score
        for node in layer.nodes:  # a layer falls back with the Relu/Clip fused into it
            forced[node] = f"accuracy budget: fell back to float ({metric} drop {drop_before:.4g} > {budget.max_drop:g}; SQNR alone {layer.sqnr_db:.1f} dB)"
        quantized = build_qdq(job, forced)
        score = evaluate(quantized.model)
        fallbacks.append({
            "node": layer.node, "op_type": layer.op_type, "nodes": list(layer.nodes), "metric": metric, "sqnr_db_alone": round(layer.sqnr_db, 3),
            "score_before": round(float_score - drop_before, 6), "score_after": round(score, 6),
            "drop_before": round(drop_before, 6), "drop_after": round(float_score - score, 6),
        })
        console.info(f"fell back {layer.node}: drop {drop_before:.4f} -> {float_score - score:.4f}")
        if float_score - score <= budget.max_drop:
            return BudgetResult(quantized, fallbacks, outcome(), ranking)
    raise GateFailure(
        f"accuracy budget not met: {metric} drop {float_score - score:.4g} > {budget.max_drop:g} with all {len(forced)} quantized layers in float",
        "raise --max-drop, or change the recipe (calibration method, data)",
    )


def _dataset(path: Path, model: onnx.ModelProto) -> Dataset:
    return load_dataset(Path(path), model_inputs(model))


def _first_output(model: onnx.ModelProto, dataset: Dataset) -> np.ndarray:
    outputs = run_outputs(Reference(model), dataset)
    return outputs[model.graph.output[0].name]


def _user_evaluator(spec: str) -> Evaluator:
    if split_function_spec(spec) is None:
        raise InputError(f"--eval '{spec}' is not top1, cosine or module.py:function", "e.g. --eval my_eval.py:evaluate")
    function = load_user_function(spec, None, "eval", EVALUATOR_ERRORS)

    def evaluate(model: onnx.ModelProto) -> float:
        with tempfile.TemporaryDirectory() as folder:
            candidate = Path(folder) / "candidate.onnx"
            onnx.save(model, str(candidate))
            value = function(str(candidate))
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InputError(f"--eval {spec} returned {value!r}, not a finite number", "return the score as a float, higher is better")
        return float(value)

    return evaluate
