"""A read-only view of an ONNX graph for the quantizer: node names, producers, consumers, constants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

FLOAT = onnx.TensorProto.FLOAT


@dataclass
class GraphView:
    """Indexes over the top-level graph of `model` (subgraphs of If/Loop are left alone)."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]
    producer: dict[str, onnx.NodeProto]
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]]
    constants: dict[str, np.ndarray]
    elem_types: dict[str, int]
    graph_inputs: list[str]
    graph_outputs: list[str]
    by_name: dict[str, onnx.NodeProto]

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphView:
        graph = model.graph
        constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            value = _constant_value(node)
            if value is not None:
                constants[node.output[0]] = value
        producer, consumers = {}, {}
        for node in graph.node:
            for name in node.output:
                if name:
                    producer[name] = node
            for index, name in enumerate(node.input):
                if name:
                    consumers.setdefault(name, []).append((node, index))
        inferred = onnx.shape_inference.infer_shapes(model)
        elem_types = {
            vi.name: vi.type.tensor_type.elem_type
            for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
            if vi.type.HasField("tensor_type")
        }
        for name, value in constants.items():
            elem_types[name] = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
        initializers = {init.name for init in graph.initializer}
        return cls(
            model=model,
            nodes=list(graph.node),
            producer=producer,
            consumers=consumers,
            constants=constants,
            elem_types=elem_types,
            graph_inputs=[vi.name for vi in graph.input if vi.name not in initializers],
            graph_outputs=[vi.name for vi in graph.output],
            by_name={node.name: node for node in graph.node},
        )

    def node(self, name: str) -> onnx.NodeProto:
        """The top-level node called `name` (every node is named: see name_nodes)."""
        return self.by_name[name]

    def is_float(self, tensor: str) -> bool:
        """True for float32 tensors; unknown types count as float and are confirmed at calibration."""
        return self.elem_types.get(tensor, FLOAT) == FLOAT

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.constants

    def tensor_names(self) -> set[str]:
        names = set(self.graph_inputs) | set(self.constants)
        for node in self.nodes:
            names.update(n for n in node.output if n)
        return names


def tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every tensor ONNX shape inference can tell (symbolic dimensions count)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {vi.name: len(vi.type.tensor_type.shape.dim) for vi in infos if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")}


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed top-level node a stable name (`OpType_index`) so the record can cite it."""
    taken = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return None
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), np.float32)
    return None
