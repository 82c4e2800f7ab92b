"""The compile front half, once: ONNX to the Relax module every CPU build, tuning run and cost count starts from.

    lower(model, inputs, target)  ->  fold constant and shape subgraphs (checked in ONNX Runtime)
                                  ->  import into Relax
                                  ->  integer kernels for the QDQ regions, with the target's packing
    fused_module(lowered.module, target)  ->  one PrimFunc per fused group, unscheduled

`edgekit compile` builds from it, `edgekit tune` extracts its tasks from the fused module, and
compile counts each fused kernel's FLOPs and MACs from the same fused module into the manifest,
so the names a profile sees at run time are the names the counts were made under.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import onnx
import tvm

from edgekit import console
from edgekit.compiler.dot_products import scheme_for
from edgekit.compiler.fold import FoldReport, fold_model
from edgekit.compiler.integer import IntegerReport, has_qdq, integer_regions
from edgekit.compiler.integer_float_nodes import FloatNode
from edgekit.compiler.mac_share import mac_share
from edgekit.compiler.relax_import import OnnxNode, import_onnx, output_specs
from edgekit.compiler.variadic_extrema import pairwise_extrema
from edgekit.errors import UnsupportedModelError, last_line
from edgekit.onnx_model import TensorSpec, model_outputs
from edgekit.target_spec import TargetSpec


@dataclass(frozen=True)
class FloatChoice:
    """Which nodes may run in float inside a quantized region, and who chose that for each.

    nodes: node name -> who chose float for it (`--float-nodes`, the quantization record);
    every: set when every node may (`--float-fallback`; tuning, which ships no artifact): who chose it.
    """

    nodes: Mapping[str, str] = field(default_factory=dict)
    every: str | None = None

    def chosen_by(self, name: str) -> str | None:
        return self.every or self.nodes.get(name)


FLOAT_NODES_HINT = "--float-nodes {names} runs these in float, recorded in the manifest"
_LISTED = 5  # nodes named in full in the error; the hint names them all


@dataclass(frozen=True)
class Lowered:
    """A model as Relax, ready to fuse and schedule, and what it took to get there."""

    module: tvm.IRModule
    folded: onnx.ModelProto
    fold: FoldReport
    outputs: list[TensorSpec]
    integer: IntegerReport | None  # None: no QDQ, a GPU build, or the rewrite failed
    integer_failure: str | None = None  # why the rewrite failed (the QDQ graph then runs in float)
    macs: dict | None = None  # conv/matmul MACs and the share in integers (mac_share.py)


def lower(
    model: onnx.ModelProto, inputs: list[TensorSpec], target: TargetSpec, integer: bool = True, float_fallback: bool = False,
    float_choice: FloatChoice | None = None,
) -> Lowered:
    """Fold, import and (with `integer`, when the model has QDQ) rewrite `model` for `target`.

    Raises UnsupportedModelError when folding changes the numbers, TVM cannot import a node, the
    integer rewrite fails, or an op inside a quantized region stays float and nobody chose float
    for its node (`float_choice`; the error names each node, its op and why no integer rule took
    it). Only with `float_fallback` (the user's choice, which compile records in the manifest)
    does a failed rewrite leave the float QDQ graph, with the reason in `integer_failure`, and
    may any node run in float.
    """
    float_choice = FloatChoice(every="--float-fallback") if float_fallback else (float_choice or FloatChoice())
    with console.step("folding constant and shape subgraphs"):
        folded, fold_report = fold_model(model, inputs)
    console.info(
        f"folded {fold_report.nodes_before} -> {fold_report.nodes_after} nodes "
        f"({fold_report.shape_ops_before} -> {fold_report.shape_ops_after} shape ops) with {fold_report.tool}; "
        + (f"max abs diff vs original {fold_report.max_abs_diff:.2g}" if fold_report.verified else fold_report.note)
    )
    nodes: dict[object, OnnxNode] = {}  # relax var -> the ONNX node it computes
    with console.step("importing into TVM Relax"):
        mod = pairwise_extrema(import_onnx(folded, inputs, nodes))
    outputs = output_specs(mod, [spec.name for spec in model_outputs(model)])
    if not (integer and has_qdq(mod)):
        return Lowered(mod, folded, fold_report, outputs, None, macs=mac_share(mod["main"]))
    try:
        with console.step("rewriting quantized regions into integer kernels"):
            rewritten, report = integer_regions(mod, dot=scheme_for(target), nodes=nodes)
    except Exception as exc:  # noqa: BLE001 - a pattern the rewrite mishandles must not cost the build
        failure = f"integer rewrite failed ({type(exc).__name__}: {last_line(exc)})"
        if not float_fallback:
            raise UnsupportedModelError(failure, "report this model; --float-fallback builds the QDQ graph in float instead (recorded in the manifest)") from exc
        failure += "; the QDQ graph runs in float (--float-fallback)"
        console.warn(failure)
        # A fresh module: the failed rewrite may have touched the old one.
        return Lowered(pairwise_extrema(import_onnx(folded, inputs)), folded, fold_report, outputs, None, failure, macs=mac_share(mod["main"]))
    _require_chosen(report, float_choice)
    console.info(_integer_summary(report))
    return Lowered(rewritten, folded, fold_report, outputs, report, macs=report.macs)


def integer_rewrite(inputs: list[TensorSpec], target: TargetSpec):
    """The import and integer rewrite `lower` does, as a function of a folded QDQ model (for the self-check)."""

    def rewrite(model: onnx.ModelProto) -> tvm.IRModule:
        return integer_regions(pairwise_extrema(import_onnx(model, inputs)), dot=scheme_for(target))[0]

    return rewrite


def _require_chosen(report: IntegerReport, choice: FloatChoice) -> None:
    """Record who chose float for each float node inside a region; UnsupportedModelError naming those nobody chose."""
    unchosen: list[FloatNode] = []
    for node in report.float_nodes:
        chooser = choice.chosen_by(node.name)
        if chooser is None:
            unchosen.append(node)
        else:
            report.accepted_float[node.name] = chooser
    if not unchosen:
        return
    listed = "; ".join(f"node '{n.name}' ({n.op_type}, {', '.join(n.ops)}): {n.why}" for n in unchosen[:_LISTED])
    more = f"; and {len(unchosen) - _LISTED} more" if len(unchosen) > _LISTED else ""
    what = "a float op" if len(unchosen) == 1 else f"{len(unchosen)} nodes with float ops"
    raise UnsupportedModelError(
        f"{what} inside a quantized region (dequantized, computed in float, quantized again), which no integer rule takes: {listed}{more}",
        FLOAT_NODES_HINT.format(names=",".join(n.name for n in unchosen)),
    )


def _integer_summary(report: IntegerReport) -> str:
    ints = ", ".join(f"{op} {n}" for op, n in sorted(report.integer_ops.items()))
    floats = ", ".join(f"{op} {n}" for op, n in sorted(report.float_ops.items())) or "none"
    chosen = ""
    if report.float_nodes:
        by = {}
        for name, chooser in report.accepted_float.items():
            by.setdefault(chooser.split(":")[0], []).append(name)
        chosen = "; float inside quantized regions, as chosen: " + "; ".join(f"{', '.join(names)} ({who})" for who, names in by.items())
    return f"float ops left (region edges, unquantized ops): {floats}; integer: {ints}{chosen}"
