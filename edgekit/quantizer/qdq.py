"""Write the QDQ model: QuantizeLinear/DequantizeLinear pairs in ONNX Runtime's conventions.

Activations: `t -> QuantizeLinear -> DequantizeLinear -> quantized consumers`; float consumers keep
reading `t` itself, so leaving a node in float costs it nothing. Constants: the int8 (bias: int32)
initializer feeds a DequantizeLinear that replaces the float input of the quantized node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.quantizer.graph import GraphView
from edgekit.quantizer.params import QuantParams
from edgekit.quantizer.plan import Plan

MIN_OPSET = 13  # per-channel DequantizeLinear (axis) needs opset 13


@dataclass(frozen=True)
class QuantizedConstant:
    params: QuantParams
    values: np.ndarray  # int8 / int32


def write_qdq(view: GraphView, plan: Plan, activation_params: dict[str, QuantParams], constants: dict[str, QuantizedConstant]) -> onnx.ModelProto:
    """A new model with the plan applied; `view.model` is left unchanged."""
    model = onnx.ModelProto()
    model.CopyFrom(view.model)
    graph = model.graph
    initializers: list[onnx.TensorProto] = []
    replaced: dict[tuple[str, int], str] = {}  # (node, input index) -> new input tensor

    for tensor, entry in plan.activations.items():
        for consumer in entry.consumers:
            replaced.update({(consumer, i): f"{tensor}_dequantized" for i in _indices(view, consumer, tensor)})
    for const in plan.constants:
        replaced[(const.node, const.input_index)] = f"{const.key}_dequantized"

    nodes: list[onnx.NodeProto] = []
    emitted: set[str] = set()
    for tensor in view.graph_inputs:
        if tensor in plan.activations:
            nodes += _activation_pair(tensor, activation_params[tensor], initializers)
    for node in view.nodes:
        for const in (c for c in plan.constants if c.node == node.name):
            if const.key not in emitted:
                emitted.add(const.key)
                nodes.append(_constant_dequantize(const.key, constants[const.key], initializers))
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for index, name in enumerate(node.input):
            if (node.name, index) in replaced:
                new.input[index] = replaced[(node.name, index)]
        nodes.append(new)
        for output in node.output:
            if output in plan.activations:
                nodes += _activation_pair(output, activation_params[output], initializers)

    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    _drop_unused(graph)
    _require_opset(model)
    return model


def _indices(view: GraphView, node_name: str, tensor: str) -> list[int]:
    node = view.node(node_name)
    return [i for i, name in enumerate(node.input) if name == tensor]


def _activation_pair(tensor: str, params: QuantParams, initializers: list) -> list[onnx.NodeProto]:
    scale, zero = f"{tensor}_scale", f"{tensor}_zero_point"
    initializers.append(numpy_helper.from_array(params.scale_array().reshape(()), scale))
    initializers.append(numpy_helper.from_array(params.zero_point_array().reshape(()), zero))
    return [
        helper.make_node("QuantizeLinear", [tensor, scale, zero], [f"{tensor}_quantized"], name=f"{tensor}_QuantizeLinear"),
        helper.make_node("DequantizeLinear", [f"{tensor}_quantized", scale, zero], [f"{tensor}_dequantized"], name=f"{tensor}_DequantizeLinear"),
    ]


def _constant_dequantize(key: str, const: QuantizedConstant, initializers: list) -> onnx.NodeProto:
    params = const.params
    shape = (-1,) if params.axis is not None else ()
    names = (f"{key}_quantized", f"{key}_scale", f"{key}_zero_point")
    initializers.append(numpy_helper.from_array(const.values, names[0]))
    initializers.append(numpy_helper.from_array(params.scale_array().reshape(shape), names[1]))
    initializers.append(numpy_helper.from_array(params.zero_point_array().reshape(shape), names[2]))
    attrs = {"axis": params.axis} if params.axis is not None else {}
    return helper.make_node("DequantizeLinear", list(names), [f"{key}_dequantized"], name=f"{key}_DequantizeLinear", **attrs)


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove float initializers and Constant nodes nothing reads any more (their int8 copies stay)."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    used |= _subgraph_inputs(graph)
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(nodes)


def _subgraph_inputs(graph: onnx.GraphProto) -> set[str]:
    names = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                names |= {name for n in sub.node for name in n.input} | _subgraph_inputs(sub)
    return names


def _require_opset(model: onnx.ModelProto) -> None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version < MIN_OPSET:
            raise ValueError(f"opset {entry.version} < {MIN_OPSET}: convert the model before writing QDQ")
