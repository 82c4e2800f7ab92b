"""What a node costs, from the float model's shapes: multiply-accumulates for convolutions and
matrix products, output elements for everything else.

The accuracy budget orders its fallbacks by accuracy gained per unit of latency lost: a layer that
goes back to float runs its MACs in float32 instead of int8 (2-4x the time on the boards' cores),
so its MACs are what it costs; an elementwise op costs about its output's size.
"""

from __future__ import annotations

import math

import onnx

from edgekit.quantizer.graph import GraphView


def node_costs(view: GraphView) -> dict[str, int]:
    """Node name -> MACs (Conv, ConvTranspose, Gemm, MatMul) or output elements (the rest); 1 where a shape is unknown."""
    shapes = _static_shapes(view.model)
    costs = {}
    for node in view.nodes:
        out = shapes.get(node.output[0]) if node.output else None
        elements = math.prod(out) if out else 1
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        if weight is None and len(node.input) > 1 and node.input[1] in view.constants:
            weight = list(view.constants[node.input[1]].shape)
        if node.op_type in ("Conv", "ConvTranspose") and weight and out:
            # Conv: every output element sums C_in/group x kernel products; ConvTranspose: every input
            # element scatters C_out/group x kernel of them, the same count seen from its input.
            source = shapes.get(node.input[0])
            if node.op_type == "Conv":
                costs[node.name] = elements * math.prod(weight[1:])
            else:
                costs[node.name] = (math.prod(source) if source else elements) * math.prod(weight[1:])
        elif node.op_type in ("Gemm", "MatMul") and out:
            a = shapes.get(node.input[0])
            inner = a[-1] if a else (weight[0] if weight else 1)
            if node.op_type == "Gemm" and a and any(x.name == "transA" and x.i for x in node.attribute):
                inner = a[0]
            costs[node.name] = elements * inner
        else:
            costs[node.name] = elements
    return costs


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]  # a symbolic batch counts once
        shapes[vi.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes
