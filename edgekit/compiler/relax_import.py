"""ONNX to TVM Relax, with failures named by the user's own node names and op types."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend

from edgekit.errors import UnsupportedModelError, last_line
from edgekit.onnx_model import TensorSpec

# Ops the importer handles outside its converter table (TVM 0.27 `_check_for_unsupported_ops`).
_DIRECT_OPS = {"If", "Constant"}


@dataclass(frozen=True)
class OnnxNode:
    """The ONNX node a Relax var computes, by the user's own names."""

    name: str
    op_type: str


def node_name(node: onnx.NodeProto) -> str:
    """A node's name, or its first output's when the exporter left it unnamed."""
    return node.name or (node.output[0] if node.output else "?")


def import_onnx(model: onnx.ModelProto, inputs: list[TensorSpec], nodes: dict[relax.Var, OnnxNode] | None = None) -> tvm.IRModule:
    """Import a shape-folded ONNX model with static `inputs` into a Relax IRModule.

    nodes: filled with the var that holds each ONNX node's output (the vars a converter emits on
    the way there are its own too: they reach that var first). The converters' results are bound
    to vars as they return, so that every node's output has one.
    """
    check_supported_ops(model)
    shape_dict = {spec.name: list(spec.shape) for spec in inputs}
    dtype_dict = {spec.name: spec.dtype for spec in inputs}
    current: dict[str, str] = {}
    with _tracking_nodes(current, nodes), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return onnx_frontend.from_onnx(model, shape_dict=shape_dict, dtype_dict=dtype_dict, keep_params_in_input=False)
        except Exception as exc:  # noqa: BLE001 - the importer raises anything from ValueError to TVMError
            where = f"node '{current['node']}' ({current['op']})" if current else "the model"
            raise UnsupportedModelError(
                f"TVM cannot import {where}: {last_line(exc)}",
                "simplify or re-export that part of the model (a newer opset or static shapes often help)",
            ) from exc


def check_supported_ops(model: onnx.ModelProto) -> None:
    """Raise naming every op type TVM's importer lacks and the first node that uses each."""
    known = set(onnx_frontend._get_convert_map()) | _DIRECT_OPS
    missing: dict[str, str] = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type not in known and node.op_type not in missing:
            missing[node.op_type] = node.name or f"#{index}"
    if missing:
        listed = ", ".join(f"{op} (node '{name}')" for op, name in missing.items())
        raise UnsupportedModelError(
            f"TVM 0.27 has no ONNX importer for op {listed}",
            "replace the op in the model (e.g. decompose it in PyTorch before export)",
        )


def output_specs(mod: tvm.IRModule, names: list[str]) -> list[TensorSpec]:
    """Shapes and dtypes of `main`'s results, named after the ONNX graph outputs."""
    ret = mod["main"].ret_ty
    fields = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    if len(fields) != len(names):
        raise UnsupportedModelError(f"the imported model has {len(fields)} outputs, the ONNX graph {len(names)}", "report this model")
    specs = []
    for name, field in zip(names, fields):
        if not isinstance(field, relax.TensorType) or field.shape is None:
            raise UnsupportedModelError(f"output '{name}' is not a tensor of known shape after import", "give static input shapes with --shape")
        try:
            shape = tuple(int(d) for d in field.shape)
        except TypeError:
            raise UnsupportedModelError(f"output '{name}' has a data-dependent shape {field.shape}", "edgekit builds static-shape artifacts only") from None
        specs.append(TensorSpec(name=name, shape=shape, dtype=str(field.dtype)))
    return specs


@contextlib.contextmanager
def _tracking_nodes(current: dict[str, str], nodes: dict[relax.Var, OnnxNode] | None):
    # The importer reports failures without naming the node. It parses each NodeProto once,
    # right before converting it (TVM 0.27 `_construct_nodes`), so record the node there.
    importer = onnx_frontend.ONNXGraphImporter
    originals = importer._parse_value_proto, importer._convert_operator, importer.from_onnx
    parse_value_proto, convert_operator, from_onnx = originals

    def parse(self, value_proto):
        if isinstance(value_proto, onnx.NodeProto):
            current["op"] = value_proto.op_type
            current["node"] = node_name(value_proto)
        return parse_value_proto(self, value_proto)

    def convert(self, op_name, inputs, attrs, opset):
        # Many converters return an unbound call; its consumer's normalization would bind it to a
        # fresh var that belongs to no node. Bound here, the node's output is a var of its own.
        result = convert_operator(self, op_name, inputs, attrs, opset)
        return self.bb.emit(result) if isinstance(result, relax.Call) else result

    def construct(self, graph, opset):
        mod = from_onnx(self, graph, opset)
        for node in graph.node:  # graph order: an Identity's output stays its producer's
            for output in node.output:
                if isinstance(var := self._nodes.get(output), relax.Var):
                    nodes.setdefault(var, OnnxNode(node_name(node), node.op_type))
        return mod

    importer._parse_value_proto = parse
    if nodes is not None:
        importer._convert_operator, importer.from_onnx = convert, construct
    try:
        yield
    finally:
        importer._parse_value_proto, importer._convert_operator, importer.from_onnx = originals
