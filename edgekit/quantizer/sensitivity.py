"""Per-layer sensitivity: the output error when only one layer is quantized, and the error along the network.

Like RKNN-Toolkit2's accuracy analysis, for any ONNX model: every number comes from running the
float and QDQ models in ONNX Runtime on the first calibration samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgekit import console
from edgekit.metrics import cosines, sqnr_db
from edgekit.quantizer.activation_stats import observed_tensors
from edgekit.quantizer.evaluation import run_outputs
from edgekit.quantizer.job import QuantizedModel, build_qdq
from edgekit.quantizer.plan import QUANTIZERS, Plan
from edgekit.reference import Reference

SAMPLES = 32  # at most, for models small enough; fewer (never below MIN_SAMPLES) where that costs too much
MIN_SAMPLES = 8
# Multiply-accumulates the single-layer pass may run in ONNX Runtime (layers x samples x the
# model's MACs): a few minutes at most on two cores for QDQ models. The demo keeps 32 samples,
# PP-OCR's 1.7 GMAC text detector with 128 layers gets 8.
SENSITIVITY_MACS = 2e12


@dataclass(frozen=True)
class LayerSensitivity:
    """Model outputs with only `node` quantized, against the float model."""

    node: str
    op_type: str
    nodes: tuple[str, ...]  # the node and the Relu/Clip fused into its output
    sqnr_db: float
    cosine_mean: float


@dataclass(frozen=True)
class LayerError:
    """A node's output tensor with every layer quantized, against the same tensor in the float model."""

    node: str
    op_type: str
    tensor: str
    sqnr_db: float
    cosine_mean: float


def layers(quantized: QuantizedModel) -> dict[str, list[str]]:
    """Layer -> the nodes it stands for: quantized nodes that compute something, each with the
    Relu/Clip that runs inside its integer output (pass-through ops only reuse their input's scale).
    A lookup-table chain is one layer (its first node's name), and so is a table function with the
    product x * f(x) it compiles into: they become one table, and go to float together or not at all."""
    producer = {tensor: node.name for node in quantized.model.graph.node for tensor in node.output}
    return plan_layers(quantized.plan, producer)


def plan_layers(plan: Plan, producer: dict[str, str]) -> dict[str, list[str]]:
    """`layers` of a plan; producer: tensor -> the name of the node that makes it."""
    owner = {activation: plan.fused_producer(activation) for activation in plan.fused.values()}
    for chain in plan.chains:
        owner.update({name: chain.nodes[0] for name in chain.nodes[1:]})
    for function_output, product in plan.tables.items():
        owner[product] = producer[function_output]
    groups: dict[str, list[str]] = {}
    for d in plan.nodes:
        if d.quantized and not QUANTIZERS[d.op_type].passes_scale and d.name not in owner:
            groups[d.name] = [d.name]
    for d in plan.nodes:
        head = owner.get(d.name)
        if head is not None and head in groups:
            groups[head].append(d.name)
    return groups


def _pass_macs_per_sample(job) -> int:
    """MACs the single-layer pass runs per sample: one model per layer of the job's plan, each the whole model."""
    layer_count = len(plan_layers(job.plan, {t: node.name for t, node in job.view.producer.items()}))
    return max(1, layer_count * sum(job.costs.values()))


def single_layer_affordable(job) -> bool:
    """Whether the single-layer pass fits SENSITIVITY_MACS at MIN_SAMPLES (otherwise: error_growth)."""
    return MIN_SAMPLES * _pass_macs_per_sample(job) <= SENSITIVITY_MACS


def sensitivity_samples(job) -> int:
    """How many calibration samples the single-layer pass runs: SAMPLES, fewer where layers x
    samples x MACs would pass SENSITIVITY_MACS, never below MIN_SAMPLES (or the data set's size).
    A property of the job (its plan with nothing forced), so a ranking measured once is reused."""
    affordable = int(SENSITIVITY_MACS // _pass_macs_per_sample(job))
    return min(len(job.dataset), max(MIN_SAMPLES, min(SAMPLES, affordable)))


def layer_sensitivity(job, quantized: QuantizedModel, samples: int | None = None) -> list[LayerSensitivity]:
    """Every layer quantized alone, most sensitive (lowest SQNR) first; ties keep graph order.

    samples: calibration samples to run (default: sensitivity_samples(job))."""
    subset = job.dataset.head(samples or sensitivity_samples(job))
    reference = run_outputs(Reference(job.view.model), subset)
    groups = layers(quantized)
    ops = {d.name: d.op_type for d in quantized.plan.nodes}
    results = []
    with console.progress(len(groups), "sensitivity: one layer at a time") as advance:
        for name, members in groups.items():
            others = {other: "analysis: only one layer quantized" for group, nodes in groups.items() if group != name for other in nodes}
            alone = build_qdq(job, {**quantized.forced, **others})
            outputs = run_outputs(Reference(alone.model), subset)
            results.append(LayerSensitivity(name, ops[name], tuple(members), *_compare(reference, outputs)))
            advance()
    return sorted(results, key=lambda r: r.sqnr_db)


def accumulated_error(job, quantized: QuantizedModel, samples: int | None = None) -> list[LayerError]:
    """With every layer quantized: each layer's output against the float model's, in graph order.

    A layer's row measures its output before that output is rounded to int8 (the rounding shows
    in the next layer's row), after a fused Relu/Clip when there is one.
    """
    subset = job.dataset.head(samples or sensitivity_samples(job))
    nodes = {n.name: n for n in job.view.nodes}
    groups = layers(quantized)
    tensors = [nodes[members[-1]].output[0] for members in groups.values()]
    float_values = _stack(observed_tensors(job.view.model, tensors, subset, "accumulated error: float"))
    int8_values = _stack(observed_tensors(quantized.model, tensors, subset, "accumulated error: int8"))
    rows = []
    for name, members in groups.items():
        tensor = nodes[members[-1]].output[0]
        if tensor in float_values and tensor in int8_values:
            ref, ours = float_values[tensor], int8_values[tensor]
            rows.append(LayerError(name, nodes[name].op_type, tensor, sqnr_db(ref, ours), float(cosines(ref, ours).mean())))
    return rows


def error_growth(job, quantized: QuantizedModel, samples: int = MIN_SAMPLES) -> list[LayerSensitivity]:
    """Every layer's own noise, estimated from one run with every layer quantized, most first.

    The single-layer pass builds and runs one model per layer; on a 500-layer detector that is
    far past any budget. Here the float and the QDQ model run once, side by side, and each layer's
    output noise (relative to its signal power, before its own rounding) is compared with the
    largest such noise among the layers that feed it: what it adds is its own. Reported as an
    SQNR, like the single-layer pass, so the same fallback order applies; it is an estimate (noise
    from different inputs does not simply add), which the budget's search then measures.
    """
    subset = job.dataset.head(samples)
    nodes = {n.name: n for n in job.view.nodes}
    groups = layers(quantized)
    output_of = {name: nodes[members[-1]].output[0] for name, members in groups.items()}
    layer_of_tensor = {tensor: name for name, tensor in output_of.items()}
    feeds = {name: _feeding_layers(job.view, nodes[name], layer_of_tensor) for name in groups}
    tensors = sorted(set(output_of.values()))
    signal = dict.fromkeys(tensors, 0.0)
    noise = dict.fromkeys(tensors, 0.0)
    floats = observed_tensors(job.view.model, tensors, subset, "error growth: float")
    int8s = observed_tensors(quantized.model, tensors, subset, "error growth: int8")
    for reference, ours in zip(floats, int8s):
        for tensor in tensors:
            if tensor in reference and tensor in ours:
                ref = reference[tensor].astype(np.float64)
                signal[tensor] += float(np.sum(ref**2))
                noise[tensor] += float(np.sum((ref - ours[tensor].astype(np.float64)) ** 2))
    ratio = {t: (noise[t] / signal[t] if signal[t] > 0 else 0.0) for t in tensors}
    rows = []
    for name, members in groups.items():
        before = max((ratio[output_of[f]] for f in feeds[name]), default=0.0)
        own = max(ratio[output_of[name]] - before, 1e-20)
        rows.append(LayerSensitivity(name, nodes[name].op_type, tuple(members), float(-10.0 * np.log10(own)), float("nan")))
    return sorted(rows, key=lambda r: r.sqnr_db)


def _feeding_layers(view, node, layer_of_tensor: dict[str, str]) -> list[str]:
    """The layers whose outputs reach `node`'s activation inputs, through pass-through ops and chains."""
    found, stack, seen = [], [t for t in node.input if t and not view.is_constant(t)], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor in layer_of_tensor and layer_of_tensor[tensor] != node.name:
            found.append(layer_of_tensor[tensor])
            continue
        producer = view.producer.get(tensor)
        if producer is not None:
            stack += [t for t in producer.input if t and not view.is_constant(t)]
    return found


def reuse_ranking(ranking: list[LayerSensitivity], quantized: QuantizedModel) -> list[LayerSensitivity] | None:
    """`ranking`'s rows for the layers of `quantized`, or None when some layer of it was not ranked.

    `ranking` was measured on a build of the same job with fewer nodes forced to float (the
    accuracy budget ranks before falling back whole layers). A layer quantized alone is the same
    model in both: every other layer is float either way, fallen back or forced for the analysis.
    Its rows, in the same stable order, are the ranking `layer_sensitivity(job, quantized)` measures.
    """
    rows = {row.node: row for row in ranking}
    groups = layers(quantized)
    if any(name not in rows or rows[name].nodes != tuple(members) for name, members in groups.items()):
        return None
    return [row for row in ranking if row.node in groups]


def sensitivity_report(job, quantized: QuantizedModel, samples: int | None = None, ranking: list[LayerSensitivity] | None = None) -> dict:
    """The JSON report: ranked single-layer sensitivity and the accumulated error along the network.

    ranking: a single-layer ranking measured with the same `samples` on a build of this job with
    fewer nodes in float (the accuracy budget's); reused instead of measured again when it covers
    every layer of `quantized`.
    """
    samples = samples or sensitivity_samples(job)
    reused = reuse_ranking(ranking, quantized) if ranking is not None else None
    ranked = reused if reused is not None else layer_sensitivity(job, quantized, samples)
    return {
        "format": "edgekit-sensitivity/1",
        "model": str(job.source),
        "recipe": job.recipe.name,
        "samples": min(samples, len(job.dataset)),
        "layers": [{"rank": i + 1, **_rounded(asdict(r))} for i, r in enumerate(ranked)],
        "accumulated": [_rounded(asdict(r)) for r in accumulated_error(job, quantized, samples)],
    }


def _compare(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> tuple[float, float]:
    floats = [n for n, v in reference.items() if np.issubdtype(v.dtype, np.floating)]
    ref = np.concatenate([reference[n].reshape(len(reference[n]), -1) for n in floats], axis=1)
    ours = np.concatenate([outputs[n].reshape(len(outputs[n]), -1) for n in floats], axis=1)
    return sqnr_db(ref, ours), float(cosines(ref, ours).mean())


def _stack(batches) -> dict[str, np.ndarray]:
    stacked: dict[str, list] = {}
    for values in batches:
        for name, value in values.items():
            stacked.setdefault(name, []).append(value)
    return {name: np.stack(v) for name, v in stacked.items()}


def _rounded(row: dict) -> dict:
    # Cosines near 1 differ in the 6th-8th decimal; SQNR needs no more than 4.
    return {k: (round(v, 8 if k.startswith("cosine") else 4) if isinstance(v, float) else (list(v) if isinstance(v, tuple) else v)) for k, v in row.items()}
