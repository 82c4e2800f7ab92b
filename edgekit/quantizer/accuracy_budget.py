"""The accuracy budget: fall back the layers that buy the most accuracy per unit of cost to float, until the drop holds."""

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
from edgekit.quantizer.graph import GraphView
from edgekit.quantizer.job import QuantizedModel, build_qdq
from edgekit.quantizer.costs import node_costs
from edgekit.quantizer.sensitivity import (
    MIN_SAMPLES,
    LayerSensitivity,
    error_growth,
    layer_sensitivity,
    sensitivity_samples,
    single_layer_affordable,
)
from edgekit.reference import Reference
from edgekit.user_code import UserCodeErrors, load_user_function, split_function_spec

BUILTIN = ("top1", "cosine")
RESTORE_TRIES = 12  # costliest fallbacks tried back in int8 after the search
# Each evaluation runs the model over the data: at most this many MACs (a few seconds of ONNX
# Runtime on two cores; 100 samples of a 2 GMAC detector), and never on fewer than EVAL_MIN_SAMPLES.
EVAL_MACS = 2e11
EVAL_MIN_SAMPLES = 32
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
    evaluate, metric, _ = _evaluator(budget, float_model)
    return evaluate, metric


def _evaluator(budget: AccuracyBudget, float_model: onnx.ModelProto) -> tuple[Evaluator, str, Callable[[onnx.ModelProto], dict]]:
    """make_evaluator's pair, and a function saying how sure a model's score is (for the record)."""
    if budget.evaluation == "top1":
        dataset, total = _dataset(budget.data, float_model)
        if dataset.labels is None:
            raise InputError(f"--eval top1 needs labels, and {budget.data} has no 'label' array", "add labels or use --eval cosine")

        def top1_confidence(model: onnx.ModelProto) -> dict:
            p = top1(_first_output(model, dataset), dataset.labels)
            return {"samples": len(dataset), "standard_error": round(100.0 * float(np.sqrt(p * (1 - p) / len(dataset))), 6), "unit": "percentage points", "data_samples": total}

        return (lambda model: 100.0 * top1(_first_output(model, dataset), dataset.labels)), "top-1 %", top1_confidence
    if budget.evaluation == "cosine":
        dataset, total = _dataset(budget.data, float_model)
        reference = _first_output(float_model, dataset)

        def cosine_confidence(model: onnx.ModelProto) -> dict:
            values = cosines(reference, _first_output(model, dataset))
            spread = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
            return {"samples": len(values), "standard_error": round(spread, 6), "min": round(float(values.min()), 6), "data_samples": total}

        return (lambda model: float(cosines(reference, _first_output(model, dataset)).mean())), "mean cosine to float", cosine_confidence
    return _user_evaluator(budget.evaluation), budget.evaluation, lambda model: {"note": "a user metric: its spread is the metric's own"}


def meet_budget(job, quantized: QuantizedModel, budget: AccuracyBudget) -> BudgetResult:
    """Fall back the layers that buy the most accuracy per unit of cost until the drop is within budget; GateFailure if it never is.

    `quantized` is the job's model with nothing forced to float. Its layers are ranked once, each
    quantized alone (sensitivity.py; where that pass would cost more than SENSITIVITY_MACS, by
    their error growth in one run with every layer int8), then ordered by the noise each adds per MAC it would run in
    float (fallback_order). The search tries growing prefixes of that order (1, 2, 4, ... layers)
    until one meets the budget, then bisects down to the shortest prefix that does: about
    2 log2(k) evaluations for k fallbacks, where one evaluation per fallback made the 130-layer
    text detector run out of time. It assumes that more float layers never lose accuracy. Then the
    RESTORE_TRIES costliest layers of that prefix are tried back in int8, one at a time. Every
    prefix and trial it evaluated is in the record.
    """
    evaluate, metric, confidence = _evaluator(budget, job.view.model)
    float_score = evaluate(job.view.model)
    score = evaluate(quantized.model)
    console.info(f"accuracy budget: {metric} float {float_score:.4f}, int8 {score:.4f}, drop {float_score - score:.4f} (allowed {budget.max_drop:g})")
    search = [{"fallbacks": 0, "score": round(score, 6), "drop": round(float_score - score, 6)}]

    def outcome(final: float, fallbacks: int, samples: int | None = None, method: str | None = None, model: onnx.ModelProto | None = None) -> dict:
        # How sure the final score is: the evaluation's sample count and the score's standard error.
        sure = confidence(model if model is not None else quantized.model)
        return {"metric": metric, "data": str(budget.data), "max_drop": budget.max_drop, "float_score": round(float_score, 6), "confidence": sure,
                "int8_score": round(final, 6), "drop": round(float_score - final, 6), "fallbacks": fallbacks,
                "order": "noise added per MAC run in float (each layer's noise / its cost)", "search": search,
                **({"sensitivity": method, "sensitivity_samples": samples} if samples else {})}

    if float_score - score <= budget.max_drop:
        return BudgetResult(quantized, [], outcome(score, 0), None)
    if single_layer_affordable(job):
        ranking, samples, method = layer_sensitivity(job, quantized), sensitivity_samples(job), "single-layer runs"
    else:
        # Past SENSITIVITY_MACS even at MIN_SAMPLES (PicoDet layout: 3.3 GMAC, ~200 layers): one run.
        ranking, samples, method = error_growth(job, quantized), MIN_SAMPLES, "error growth in one run with every layer int8"
    order = fallback_order(ranking, node_costs(job.view))
    built: dict[int, tuple[QuantizedModel, float]] = {0: (quantized, score)}

    def try_prefix(count: int) -> bool:
        if count not in built:
            forced = {node: _reason(metric, float_score - score, budget.max_drop, layer) for layer, _ in order[:count] for node in layer.nodes}
            candidate = build_qdq(job, forced)
            built[count] = (candidate, evaluate(candidate.model))
            search.append({"fallbacks": count, "score": round(built[count][1], 6), "drop": round(float_score - built[count][1], 6)})
            console.info(f"{count} layers in float: drop {float_score - built[count][1]:.4f}")
        return float_score - built[count][1] <= budget.max_drop

    low, high = 0, 1  # low fails; find a high that meets the budget
    while not try_prefix(high):
        if high == len(order):
            raise GateFailure(
                f"accuracy budget not met: {metric} drop {float_score - built[high][1]:.4g} > {budget.max_drop:g} with all {len(order)} quantized layers in float",
                "raise --max-drop, or change the recipe (calibration method, data)",
            )
        low, high = high, min(2 * high, len(order))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if try_prefix(middle) else (middle, high)
    final, final_score = built[high]
    # A single layer's noise alone does not add up exactly with the others': of the prefix, the
    # costliest layers are tried back in int8 one at a time, and stay int8 where the budget holds.
    kept = [pair for pair in order[:high]]
    for layer, cost in sorted(order[:high], key=lambda pair: -pair[1])[:RESTORE_TRIES]:
        trial = [pair for pair in kept if pair[0] is not layer]
        forced = {node: _reason(metric, float_score - score, budget.max_drop, other) for other, _ in trial for node in other.nodes}
        candidate = build_qdq(job, forced)
        candidate_score = evaluate(candidate.model)
        holds = float_score - candidate_score <= budget.max_drop
        search.append({"restored": layer.node, "macs": cost, "score": round(candidate_score, 6), "drop": round(float_score - candidate_score, 6), "kept_int8": holds})
        if holds:
            kept, final, final_score = trial, candidate, candidate_score
            console.info(f"{layer.node} back in int8: drop {float_score - candidate_score:.4f}")
    fallbacks = [
        {"node": layer.node, "op_type": layer.op_type, "nodes": list(layer.nodes), "metric": metric, "sqnr_db_alone": round(layer.sqnr_db, 3),
         "macs": cost, "order": order.index((layer, cost)) + 1}
        for layer, cost in kept
    ]
    # Only the single-layer ranking is what --analyze would measure: the estimate is not reused as one.
    reusable = ranking if method == "single-layer runs" else None
    return BudgetResult(final, fallbacks, outcome(final_score, len(kept), samples, method, final.model), reusable)


def fallback_order(ranking: list[LayerSensitivity], costs: dict[str, int]) -> list[tuple[LayerSensitivity, int]]:
    """The layers with their cost (MACs, or elements for elementwise ops), most noise per unit of cost first.

    A layer's noise alone is 10^(-SQNR/10) of the output's power; falling it back removes about that
    and costs its MACs in float. Ties keep the ranking's order (most sensitive first).
    """
    with_cost = [(layer, sum(costs.get(node, 1) for node in layer.nodes)) for layer in ranking]
    return sorted(with_cost, key=lambda pair: -(10.0 ** (-pair[0].sqnr_db / 10.0)) / max(pair[1], 1))


def _reason(metric: str, drop: float, allowed: float, layer: LayerSensitivity) -> str:
    return f"accuracy budget: fell back to float ({metric} drop {drop:.4g} > {allowed:g} with every layer int8; SQNR alone {layer.sqnr_db:.1f} dB)"


def _dataset(path: Path, model: onnx.ModelProto) -> tuple[Dataset, int]:
    """The evaluation data, bounded: the first samples whose evaluation runs at most EVAL_MACS
    (never fewer than EVAL_MIN_SAMPLES), and how many the file holds; the record's
    budget.confidence says both."""
    dataset = load_dataset(Path(path), model_inputs(model))
    macs = max(1, sum(node_costs(GraphView.of(model)).values()))
    count = len(dataset) if len(dataset) * macs <= EVAL_MACS else max(EVAL_MIN_SAMPLES, int(EVAL_MACS // macs))
    return dataset.head(count), len(dataset)


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
