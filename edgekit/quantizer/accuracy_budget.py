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
from edgekit.quantizer.job import QuantizedModel, build_qdq
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
Scorer = Callable[[onnx.ModelProto], tuple[float, dict]]  # a model -> its score and how sure it is


@dataclass(frozen=True)
class BudgetResult:
    """What meeting a budget did to a QDQ model."""

    quantized: QuantizedModel  # the model it ended with
    fallbacks: list[dict]  # one record entry per fallback, with its measured effect
    outcome: dict | None  # the budget's summary for the record (None: no budget)
    ranking: list[LayerSensitivity] | None  # the single-layer ranking it measured (None: no layer had to fall back)


def without_budget(quantized: QuantizedModel) -> BudgetResult:
    return BudgetResult(quantized, [], None, None)


def make_scorer(budget: AccuracyBudget, float_model: onnx.ModelProto, macs: int) -> tuple[Scorer, str]:
    """A function scoring a model (higher is better) with how sure that score is, and the metric's name.

    macs: the float model's MACs per sample, which bound the evaluation data (_dataset). The
    confidence comes from the same run as the score: the sample count and the score's standard
    error (binomial for top-1, of the mean for cosine)."""
    if budget.evaluation == "top1":
        dataset, total = _dataset(budget.data, float_model, macs)
        if dataset.labels is None:
            raise InputError(f"--eval top1 needs labels, and {budget.data} has no 'label' array", "add labels or use --eval cosine")

        def score_top1(model: onnx.ModelProto) -> tuple[float, dict]:
            p = top1(_first_output(model, dataset), dataset.labels)
            error = round(100.0 * float(np.sqrt(p * (1 - p) / len(dataset))), 6)
            return 100.0 * p, {"samples": len(dataset), "standard_error": error, "unit": "percentage points", "data_samples": total}

        return score_top1, "top-1 %"
    if budget.evaluation == "cosine":
        dataset, total = _dataset(budget.data, float_model, macs)
        reference = _first_output(float_model, dataset)

        def score_cosine(model: onnx.ModelProto) -> tuple[float, dict]:
            values = cosines(reference, _first_output(model, dataset))
            spread = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
            return float(values.mean()), {"samples": len(values), "standard_error": round(spread, 6), "min": round(float(values.min()), 6), "data_samples": total}

        return score_cosine, "mean cosine to float"
    evaluate = _user_evaluator(budget.evaluation)
    return (lambda model: (evaluate(model), {"note": "a user metric: its spread is the metric's own"})), budget.evaluation


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
    score_of, metric = make_scorer(budget, job.view.model, sum(job.costs.values()))
    float_score, _ = score_of(job.view.model)
    score, sure = score_of(quantized.model)
    console.info(f"accuracy budget: {metric} float {float_score:.4f}, int8 {score:.4f}, drop {float_score - score:.4f} (allowed {budget.max_drop:g})")
    search = [{"fallbacks": 0, "score": round(score, 6), "drop": round(float_score - score, 6)}]

    def meets(value: float) -> bool:
        return float_score - value <= budget.max_drop

    def outcome(final: float, confidence: dict, fallbacks: int, samples: int | None = None, method: str | None = None) -> dict:
        return {"metric": metric, "data": str(budget.data), "max_drop": budget.max_drop, "float_score": round(float_score, 6), "confidence": confidence,
                "int8_score": round(final, 6), "drop": round(float_score - final, 6), "fallbacks": fallbacks,
                "order": "noise added per MAC run in float (each layer's noise / its cost)", "search": search,
                **({"sensitivity": method, "sensitivity_samples": samples} if samples else {})}

    if meets(score):
        return BudgetResult(quantized, [], outcome(score, sure, 0), None)
    if single_layer_affordable(job):
        ranking, samples, method = layer_sensitivity(job, quantized), sensitivity_samples(job), "single-layer runs"
    else:
        # Past SENSITIVITY_MACS even at MIN_SAMPLES (PicoDet layout: 3.3 GMAC, ~200 layers): one run.
        ranking, samples, method = error_growth(job, quantized), MIN_SAMPLES, "error growth in one run with every layer int8"
    order = fallback_order(ranking, job.costs)
    reason = {layer.node: _reason(metric, float_score - score, budget.max_drop, layer) for layer, _ in order}

    def built_without(layers: list[tuple[LayerSensitivity, int]]) -> tuple[QuantizedModel, float, dict]:
        """The job's model with `layers` in float, its score and confidence."""
        candidate = build_qdq(job, {node: reason[layer.node] for layer, _ in layers for node in layer.nodes})
        return (candidate, *score_of(candidate.model))

    built: dict[int, tuple[QuantizedModel, float, dict]] = {0: (quantized, score, sure)}

    def try_prefix(count: int) -> bool:
        if count not in built:
            built[count] = built_without(order[:count])
            search.append({"fallbacks": count, "score": round(built[count][1], 6), "drop": round(float_score - built[count][1], 6)})
            console.info(f"{count} layers in float: drop {float_score - built[count][1]:.4f}")
        return meets(built[count][1])

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
    final, final_score, final_sure = built[high]
    # A single layer's noise alone does not add up exactly with the others': of the prefix, the
    # costliest layers are tried back in int8 one at a time, and stay int8 where the budget holds.
    kept = list(order[:high])
    for layer, cost in sorted(kept, key=lambda pair: -pair[1])[:RESTORE_TRIES]:
        trial = [pair for pair in kept if pair[0] is not layer]
        candidate, candidate_score, candidate_sure = built_without(trial)
        holds = meets(candidate_score)
        search.append({"restored": layer.node, "macs": cost, "score": round(candidate_score, 6), "drop": round(float_score - candidate_score, 6), "kept_int8": holds})
        if holds:
            kept, final, final_score, final_sure = trial, candidate, candidate_score, candidate_sure
            console.info(f"{layer.node} back in int8: drop {float_score - candidate_score:.4f}")
    rank = {layer.node: i + 1 for i, (layer, _) in enumerate(order)}
    fallbacks = [
        {"node": layer.node, "op_type": layer.op_type, "nodes": list(layer.nodes), "metric": metric, "sqnr_db_alone": round(layer.sqnr_db, 3),
         "macs": cost, "order": rank[layer.node]}
        for layer, cost in kept
    ]
    # Only the single-layer ranking is what --analyze would measure: the estimate is not reused as one.
    reusable = ranking if method == "single-layer runs" else None
    return BudgetResult(final, fallbacks, outcome(final_score, final_sure, len(kept), samples, method), reusable)


def fallback_order(ranking: list[LayerSensitivity], costs: dict[str, int]) -> list[tuple[LayerSensitivity, int]]:
    """The layers with their cost (MACs, or elements for elementwise ops), most noise per unit of cost first.

    A layer's noise alone is 10^(-SQNR/10) of the output's power; falling it back removes about that
    and costs its MACs in float. Ties keep the ranking's order (most sensitive first).
    """
    with_cost = [(layer, sum(costs.get(node, 1) for node in layer.nodes)) for layer in ranking]
    return sorted(with_cost, key=lambda pair: -(10.0 ** (-pair[0].sqnr_db / 10.0)) / max(pair[1], 1))


def _reason(metric: str, drop: float, allowed: float, layer: LayerSensitivity) -> str:
    return f"accuracy budget: fell back to float ({metric} drop {drop:.4g} > {allowed:g} with every layer int8; SQNR alone {layer.sqnr_db:.1f} dB)"


def _dataset(path: Path, model: onnx.ModelProto, macs: int) -> tuple[Dataset, int]:
    """The evaluation data, bounded: the first samples whose evaluation runs at most EVAL_MACS
    (never fewer than EVAL_MIN_SAMPLES), and how many the file holds; the record's
    budget.confidence says both."""
    dataset = load_dataset(Path(path), model_inputs(model))
    macs = max(1, macs)
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
