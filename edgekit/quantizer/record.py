"""The quantization record: every quantized tensor and every float node, with the numbers behind them.

Deterministic by construction (graph order, no timestamps), so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.files import sha256_file
from edgekit.quantizer.params import QuantParams

RECORD_FORMAT = "edgekit-quant-record/1"
ROUNDING = "round half to even (ONNX QuantizeLinear); saturate to the dtype range"


def record_path_for(model_path: Path) -> Path:
    """`model.int8.onnx` -> `model.int8.quant.json`."""
    model_path = Path(model_path)
    stem = model_path.name[: -len(".onnx")] if model_path.name.endswith(".onnx") else model_path.name
    return model_path.with_name(f"{stem}.quant.json")


def make_record(job, quantized, clipped: dict[str, float], verification: list, fallbacks: list[dict], output_path: Path) -> dict:
    """The record as a JSON-ready dict. `job` is a QuantizeJob, `quantized` its QuantizedModel."""
    view, plan, calibration = job.view, quantized.plan, job.calibration
    quantized_nodes = plan.quantized_nodes()
    float_consumers = {t: [n.name for n, _ in view.consumers.get(t, []) if n.name not in quantized_nodes] for t in plan.activations}
    tensors = []
    for tensor, entry in plan.activations.items():
        root = plan.root(tensor)
        cal = calibration.tensors[root]
        item = {
            "name": tensor,
            "role": "activation",
            "producer": entry.producer,
            "producer_op": entry.producer_op,
            "consumers": entry.consumers,
            "float_consumers": float_consumers[tensor],
            **quantized.activations[tensor].to_dict(),
            "observed_range": list(calibration.tensors[tensor].observed) if tensor in calibration.tensors else list(cal.observed),
            "method": cal.method if root == tensor else "shared",
            "method_params": cal.rule.method_params() if cal.method not in ("fixed", "minmax") else {},
            "rule_sources": list(cal.rule_sources),
            "symmetric": cal.rule.symmetric,
            "clip_range": list(cal.clip),
            "clipped_fraction": clipped.get(tensor, 0.0),
        }
        if root != tensor:
            item["shares_params_with"] = root
            item["why"] = f"{entry.producer_op} passes its input's scale through"
        tensors.append(item)
    for const in plan.constants:
        tensors.append(_constant_entry(view, const, quantized))
    return {
        "format": RECORD_FORMAT,
        "source_model": {"path": str(job.source), "sha256": sha256_file(job.source)},
        "quantized_model": {"path": Path(output_path).name},
        "recipe": job.recipe.to_dict(),
        "calibration": {"data": str(job.calib), "samples": calibration.samples},
        "rounding": ROUNDING,
        "summary": _summary(plan, tensors, job.costs),
        "nodes": [
            {"name": d.name, "op_type": d.op_type, "precision": "int8" if d.quantized else "float", "reason": d.reason, "notes": plan.notes.get(d.name, [])}
            for d in plan.nodes
        ],
        "tensors": tensors,
        "fused": [{"tensor": t, "producer": view.producer[t].name, "activation": node} for t, node in plan.fused.items()],
        "table_products": [{"tensor": t, "function": view.producer[t].name, "product": node} for t, node in plan.tables.items()],
        "equalization": [e.to_dict() for e in job.equalized],
        "batch_norms_folded": [b.to_dict() for b in job.batch_norms],
        "lookup_chains": [{"source": c.source, "nodes": list(c.nodes), "output": c.output, "unquantized_tensors": sorted(c.inner)} for c in plan.chains],
        "extreme_tensors": [{"tensor": t, "why": why} for t, why in sorted(calibration.extreme.items())],
        "fallbacks": fallbacks,
        "verification": [row.to_dict() for row in verification],
    }


def write_record(record: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")


def _constant_entry(view, const, quantized) -> dict:
    value = view.constants[const.tensor].astype(np.float64)
    q = quantized.constants[const.key]
    params: QuantParams = q.params
    entry = {
        "name": const.tensor,
        "role": const.role,
        "quantized_name": f"{const.key}_quantized",
        "consumers": [const.node],
        **params.to_dict(),
        "observed_range": [float(value.min(initial=0.0)), float(value.max(initial=0.0))],
        "method": "int32: scale = input scale x weight scale" if const.role == "bias" else "symmetric absmax",
        "clipped_fraction": quantized.bias_clipped.get(const.key, 0) / max(value.size, 1),
    }
    if const.role == "bias":
        entry["scale_from"] = {"input": const.scale_from[0], "weight": const.scale_from[1]}
    return entry


WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _summary(plan, tensors: list[dict], costs: dict[str, int]) -> dict:
    int8 = [d for d in plan.nodes if d.quantized]
    weighted = [d for d in plan.nodes if d.op_type in WEIGHTED_OPS]
    macs = sum(costs.get(d.name, 0) for d in weighted)
    int8_macs = sum(costs.get(d.name, 0) for d in weighted if d.quantized)
    return {
        "nodes": len(plan.nodes),
        "int8_nodes": len(int8),
        "float_nodes": len(plan.nodes) - len(int8),
        # Conv/ConvTranspose/Gemm/MatMul MACs (costs.py) in int8 nodes: what the budget's fallbacks cost.
        "macs": macs,
        "int8_mac_share": round(int8_macs / macs, 4) if macs else None,
        "quantized_activations": sum(1 for t in tensors if t["role"] == "activation"),
        "quantized_constants": sum(1 for t in tensors if t["role"] != "activation"),
    }
