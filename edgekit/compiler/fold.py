"""Fold constant and shape subgraphs so TVM sees static shapes, and prove nothing changed.

Exporters other than ours compute shapes at run time (Shape -> Gather -> Concat -> Reshape);
TVM 0.27's ONNX importer rejects a Reshape whose target is such a tensor. With the inputs fixed
to static shapes, onnxslim folds those subgraphs to constants. The folded model is then run
beside the original in ONNX Runtime on the same inputs: folding must not change the numbers.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim

from edgekit.errors import UnsupportedModelError
from edgekit.onnx_model import TensorSpec, with_static_inputs
from edgekit.reference import Reference, random_inputs

SHAPE_OPS = ("Shape", "Size", "ConstantOfShape")
# Folding only reorders float math inside constant subgraphs; anything beyond this is a real change.
FOLD_RTOL = 1e-4
FOLD_ATOL = 1e-5


@dataclass(frozen=True)
class FoldReport:
    tool: str
    nodes_before: int
    nodes_after: int
    shape_ops_before: int
    shape_ops_after: int
    verified: bool
    max_abs_diff: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def fold_model(model: onnx.ModelProto, inputs: list[TensorSpec]) -> tuple[onnx.ModelProto, FoldReport]:
    """Return `model` with static input shapes and constant/shape subgraphs folded, and a report."""
    fixed = with_static_inputs(model, inputs)
    try:
        # onnxslim prints its own summary tables; edgekit reports the figures itself.
        with contextlib.redirect_stdout(io.StringIO()):
            folded = onnxslim.slim(fixed, model_check=False)
        tool = f"onnxslim {onnxslim.__version__}"
    except Exception:  # noqa: BLE001 - onnxslim failing on an odd graph is not fatal: fall back
        folded = _fold_with_onnxruntime(fixed)
        tool = f"onnxruntime {ort.__version__} basic graph optimizations"
    max_diff, verified, note = _compare(model, folded, inputs)
    report = FoldReport(
        tool=tool,
        nodes_before=len(model.graph.node),
        nodes_after=len(folded.graph.node),
        shape_ops_before=_count(model, SHAPE_OPS),
        shape_ops_after=_count(folded, SHAPE_OPS),
        verified=verified,
        max_abs_diff=max_diff,
        note=note,
    )
    return folded, report


def _compare(original: onnx.ModelProto, folded: onnx.ModelProto, inputs: list[TensorSpec]) -> tuple[float, bool, str]:
    feeds = random_inputs(inputs, seed=0)
    try:
        expected = Reference(original, optimize=False)(feeds)
    except Exception as exc:  # noqa: BLE001 - any ORT failure means we cannot verify, not that folding is wrong
        return 0.0, False, f"not verified: ONNX Runtime cannot run the original ({str(exc).splitlines()[0]})"
    got = Reference(folded, optimize=False)(feeds)
    max_diff = 0.0
    for name, want in expected.items():
        have = got.get(name)
        if have is None or have.shape != want.shape:
            raise UnsupportedModelError(f"constant folding changed output '{name}' (shape {want.shape} became {None if have is None else have.shape})", "report this model; folding cannot be trusted for it")
        if want.dtype.kind in "fc":
            diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
            max_diff = max(max_diff, float(np.nanmax(diff)) if diff.size else 0.0)
            if not np.allclose(have, want, rtol=FOLD_RTOL, atol=FOLD_ATOL, equal_nan=True):
                raise UnsupportedModelError(f"constant folding changed output '{name}' by up to {max_diff:.3g}", "report this model; folding cannot be trusted for it")
        elif not np.array_equal(have, want):
            raise UnsupportedModelError(f"constant folding changed integer output '{name}'", "report this model; folding cannot be trusted for it")
    return max_diff, True, ""


def _fold_with_onnxruntime(model: onnx.ModelProto) -> onnx.ModelProto:
    # Basic level is constant folding and redundant-node removal only: the result stays plain ONNX.
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _count(model: onnx.ModelProto, op_types: tuple[str, ...]) -> int:
    return sum(node.op_type in op_types for node in model.graph.node)
