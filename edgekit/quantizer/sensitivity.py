"""Per-layer sensitivity: the output error when only one layer is quantized, and the error along the network.

Like RKNN-Toolkit2's accuracy analysis, for any ONNX model: every number comes from running the
float and QDQ models in ONNX Runtime on the first calibration samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgekit import console
from edgekit.quantizer.collect import observed_tensors
from edgekit.quantizer.metrics import cosines, run_outputs, sqnr_db
from edgekit.quantizer.plan import QUANTIZERS
from edgekit.quantizer.job import QuantizedModel, build_qdq
from edgekit.reference import Reference

SAMPLES = 32


@dataclass(frozen=True)
class LayerSensitivity:
    """Model outputs with only `node` quantized, against the float model."""

    node: str
    op_type: str
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


def layers(quantized: QuantizedModel) -> list[str]:
    """Quantized nodes that compute something (pass-through ops only reuse their input's scale)."""
    return [d.name for d in quantized.plan.nodes if d.quantized and not QUANTIZERS[d.op_type].passes_scale]


def layer_sensitivity(job, quantized: QuantizedModel, samples: int = SAMPLES) -> list[LayerSensitivity]:
    """Every layer quantized alone, most sensitive (lowest SQNR) first; ties keep graph order."""
    subset = _subset(job.dataset, samples)
    reference = run_outputs(Reference(job.view.model), subset)
    names = layers(quantized)
    ops = {d.name: d.op_type for d in quantized.plan.nodes}
    results = []
    with console.progress(len(names), "sensitivity: one layer at a time") as advance:
        for name in names:
            others = {other: "analysis: only one layer quantized" for other in names if other != name}
            alone = build_qdq(job.view, job.recipe, job.calibration, others)
            outputs = run_outputs(Reference(alone.model), subset)
            results.append(LayerSensitivity(name, ops[name], *_compare(reference, outputs)))
            advance()
    return sorted(results, key=lambda r: r.sqnr_db)


def accumulated_error(job, quantized: QuantizedModel, samples: int = SAMPLES) -> list[LayerError]:
    """With every layer quantized: each layer's output against the float model's, in graph order."""
    subset = _subset(job.dataset, samples)
    nodes = {n.name: n for n in job.view.nodes}
    tensors = [nodes[name].output[0] for name in layers(quantized)]
    float_values = _stack(observed_tensors(job.view.model, tensors, subset, "accumulated error: float"))
    int8_values = _stack(observed_tensors(quantized.model, tensors, subset, "accumulated error: int8"))
    rows = []
    for name in layers(quantized):
        tensor = nodes[name].output[0]
        if tensor in float_values and tensor in int8_values:
            ref, ours = float_values[tensor], int8_values[tensor]
            rows.append(LayerError(name, nodes[name].op_type, tensor, sqnr_db(ref, ours), float(cosines(ref, ours).mean())))
    return rows


def sensitivity_report(job, quantized: QuantizedModel, samples: int = SAMPLES) -> dict:
    """The JSON report: ranked single-layer sensitivity and the accumulated error along the network."""
    ranked = layer_sensitivity(job, quantized, samples)
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


def _subset(dataset, samples: int):
    from edgekit.dataset import Dataset

    count = min(samples, len(dataset))
    labels = dataset.labels[:count] if dataset.labels is not None else None
    return Dataset({k: v[:count] for k, v in dataset.arrays.items()}, labels, dataset.source)


def _stack(batches) -> dict[str, np.ndarray]:
    stacked: dict[str, list] = {}
    for values in batches:
        for name, value in values.items():
            stacked.setdefault(name, []).append(value)
    return {name: np.stack(v) for name, v in stacked.items()}


def _rounded(row: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
