"""Analytic FLOP counts from an ONNX graph: what a model costs, independent of any runtime.

Counts multiply-accumulates of the compute-bound ops (Conv, ConvTranspose, MatMul, Gemm) as
2 FLOPs each; everything else is memory-bound and left out, as vendors' GFLOP figures do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx

from edgekit.onnx_model import TensorSpec, with_static_inputs


@dataclass(frozen=True)
class FlopCount:
    total: int
    by_op_type: dict[str, int] = field(default_factory=dict)

    @property
    def gflops(self) -> float:
        return self.total / 1e9


def count_flops(model: onnx.ModelProto, inputs: list[TensorSpec]) -> FlopCount:
    """FLOPs of one inference of `model` with the static input shapes `inputs`."""
    inferred = onnx.shape_inference.infer_shapes(with_static_inputs(model, inputs), data_prop=True)
    shapes = _known_shapes(inferred)
    by_op: dict[str, int] = {}
    for node in inferred.graph.node:
        counter = COUNTERS.get(node.op_type)
        if counter is None:
            continue
        flops = counter(node, shapes)
        if flops:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    return FlopCount(total=sum(by_op.values()), by_op_type=by_op)


def _known_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _conv(node: onnx.NodeProto, shapes: dict) -> int:
    weight, output = shapes.get(node.input[1]), shapes.get(node.output[0])
    if weight is None or output is None:
        return 0
    # weight (OC, IC/group, *kernel): each output element needs IC/group * prod(kernel) MACs.
    return 2 * math.prod(output) * math.prod(weight[1:])


def _conv_transpose(node: onnx.NodeProto, shapes: dict) -> int:
    data, weight = shapes.get(node.input[0]), shapes.get(node.input[1])
    if data is None or weight is None:
        return 0
    # weight (IC, OC/group, *kernel): every input element scatters into OC/group * prod(kernel).
    return 2 * math.prod(data) * math.prod(weight[1:])


def _matmul(node: onnx.NodeProto, shapes: dict) -> int:
    a, output = shapes.get(node.input[0]), shapes.get(node.output[0])
    if a is None or output is None:
        return 0
    return 2 * math.prod(output) * a[-1]  # each output element is a length-K dot product


def _gemm(node: onnx.NodeProto, shapes: dict) -> int:
    a, output = shapes.get(node.input[0]), shapes.get(node.output[0])
    if a is None or output is None:
        return 0
    trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
    k = a[0] if trans_a else a[1]
    return 2 * math.prod(output) * k


COUNTERS = {"Conv": _conv, "ConvTranspose": _conv_transpose, "MatMul": _matmul, "Gemm": _gemm}
