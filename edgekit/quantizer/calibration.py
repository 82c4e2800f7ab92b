"""Calibrate once, plan once per set of float nodes: statistics for every tensor any plan of the model might quantize.

Calibration observes the tensors of the recipe's plan made before any data is seen (its candidates);
the accuracy budget and the sensitivity analysis re-plan with nodes forced to float, and those plans
quantize a subset of the same tensors plus tensors the full plan hid inside one integer op (a fused
Relu's input, a SiLU's sigmoid, a lookup chain's interior, a MatMul's output before its bias), so those are observed too and one
calibration serves all.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.dataset import Dataset
from edgekit.quantizer.activation_stats import collect_histograms, collect_ranges
from edgekit.quantizer.calibrators import calibrate
from edgekit.quantizer.graph import GraphView
from edgekit.quantizer.histogram import Histogram
from edgekit.quantizer.plan import Plan, make_plan
from edgekit.quantizer.recipe import ActivationRule, Recipe


@dataclass(frozen=True)
class TensorCalibration:
    """What was observed of one activation tensor and the clipping range its rule chose."""

    tensor: str
    rule: ActivationRule
    rule_sources: tuple[str, ...]
    observed: tuple[float, float]
    method: str  # the calibrator, or "fixed" for a recipe range
    clip: tuple[float, float]


@dataclass
class Calibration:
    tensors: dict[str, TensorCalibration]
    extreme: dict[str, str]  # tensor -> why it stays float
    samples: int


def calibrate_model(view: GraphView, recipe: Recipe, dataset: Dataset, candidate_plan: Plan) -> Calibration:
    """Run passes 1 and 2 over `dataset` and choose a clipping range for every tensor `candidate_plan`
    quantizes or fuses (the recipe's plan before extreme values are known: `make_plan(view, recipe)`)."""
    hidden = set(candidate_plan.fused) | set(candidate_plan.tables) | set().union(*(c.inner for c in candidate_plan.chains))
    hidden |= {view.node(matmul).output[0] for matmul in candidate_plan.bias_adds.values()}
    candidates = sorted(set(candidate_plan.activations) | hidden)
    ranges, extreme = collect_ranges(view.model, candidates, dataset, recipe.extreme_abs)
    # Tensors never seen as float32 (untyped in the graph, other dtype at run time) cannot be quantized.
    for tensor in candidates:
        if tensor not in ranges and tensor not in extreme:
            extreme[tensor] = "is not a float32 tensor at run time"
    rules = {t: _rule(view, recipe, t) for t in ranges if t not in extreme}
    histograms = {
        t: Histogram(ranges[t].min, ranges[t].max, rule.bins)
        for t, (rule, _) in rules.items()
        if rule.range is None and rule.method != "minmax"
    }
    collect_histograms(view.model, histograms, dataset)
    tensors = {}
    for tensor, (rule, sources) in rules.items():
        observed = (ranges[tensor].min, ranges[tensor].max)
        if rule.range is not None:
            method, clip = "fixed", tuple(rule.range)
        else:
            hist = histograms.get(tensor, ranges[tensor])
            found = calibrate(rule.method, hist, rule.dtype, rule.symmetric, **rule.method_params())
            method, clip = rule.method, (found.lo, found.hi)
        tensors[tensor] = TensorCalibration(tensor, rule, tuple(sources), observed, method, (float(clip[0]), float(clip[1])))
    return Calibration(tensors, extreme, len(dataset))


def plan_with(view: GraphView, recipe: Recipe, calibration: Calibration, float_nodes: dict[str, str] | None = None) -> Plan:
    """The plan for this calibration: tensors with extreme values keep their consumers float."""
    return make_plan(view, recipe, calibration.extreme, float_nodes)


def _rule(view: GraphView, recipe: Recipe, tensor: str) -> tuple[ActivationRule, list[str]]:
    producer = view.producer.get(tensor)
    op, name = (producer.op_type, producer.name) if producer else (None, None)
    return recipe.activation_rule(tensor, op, name), recipe.rule_sources(tensor, op, name)

