"""ONNX to TVM Relax, with failures named by the user's own node names and op types."""

from __future__ import annotations

import contextlib
import io
import warnings

import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend

from edgekit.errors import UnsupportedModelError, last_line
from edgekit.onnx_model import TensorSpec

# Ops the importer handles outside its converter table (TVM 0.27 `_check_for_unsupported_ops`).
_DIRECT_OPS = {"If", "Constant"}


def import_onnx(model: onnx.ModelProto, inputs: list[TensorSpec]) -> tvm.IRModule:
    """Import a shape-folded ONNX model with static `inputs` into a Relax IRModule."""
    check_supported_ops(model)
    shape_dict = {spec.name: list(spec.shape) for spec in inputs}
    dtype_dict = {spec.name: spec.dtype for spec in inputs}
    current: dict[str, str] = {}
    with _tracking_nodes(current), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
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
def _tracking_nodes(current: dict[str, str]):
    # The importer reports failures without naming the node. It parses each NodeProto once,
    # right before converting it (TVM 0.27 `_construct_nodes`), so record the node there.
    original = onnx_frontend.ONNXGraphImporter._parse_value_proto

    def parse(self, value_proto):
        if isinstance(value_proto, onnx.NodeProto):
            current["op"] = value_proto.op_type
            current["node"] = value_proto.name or (value_proto.output[0] if value_proto.output else "?")
        return original(self, value_proto)

    onnx_frontend.ONNXGraphImporter._parse_value_proto = parse
    try:
        yield
    finally:
        onnx_frontend.ONNXGraphImporter._parse_value_proto = original
