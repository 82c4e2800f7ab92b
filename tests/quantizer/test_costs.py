"""Node costs from shapes (MACs for convolutions and matrix products) and the budget's fallback
order by noise per unit of cost."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.quantizer.accuracy_budget import fallback_order
from edgekit.quantizer.costs import node_costs
from edgekit.quantizer.graph import GraphView
from edgekit.quantizer.sensitivity import LayerSensitivity


def costed_model() -> onnx.ModelProto:
    """x[1,3,16,16] -> Conv 3x3 s2 (8) -> Relu -> ConvTranspose 2x2 s2 (4) -> Flatten -> MatMul [1024, 10]."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((8, 4, 2, 2)).astype(np.float32), "wt"),
        numpy_helper.from_array(rng.standard_normal((1024, 10)).astype(np.float32), "m"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ConvTranspose", ["r", "wt"], ["t"], name="deconv", strides=[2, 2]),
        helper.make_node("Flatten", ["t"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "m"], ["y"], name="matmul"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_costs_count_macs_of_weighted_ops_and_elements_of_the_rest():
    costs = node_costs(GraphView.of(costed_model()))
    assert costs["conv"] == 8 * 8 * 8 * (3 * 3 * 3)  # output elements x (C_in x kernel)
    assert costs["relu"] == 8 * 8 * 8
    assert costs["deconv"] == (8 * 8 * 8) * (4 * 2 * 2)  # input elements x (C_out x kernel)
    assert costs["matmul"] == 10 * 1024


def test_fallback_order_is_noise_per_unit_of_cost():
    layer = lambda name, sqnr: LayerSensitivity(name, "Conv", (name,), sqnr, 1.0)
    ranking = [layer("noisy_big", 20.0), layer("noisy_small", 30.0), layer("quiet", 60.0)]
    order = fallback_order(ranking, {"noisy_big": 1_000_000, "noisy_small": 1_000, "quiet": 1_000})
    # 30 dB at 1k MACs (1e-3 / 1e3 = 1e-6) before 20 dB at 1M (1e-2 / 1e6 = 1e-8), before 60 dB at 1k (1e-6 / 1e3 = 1e-9).
    assert [(l.node, cost) for l, cost in order] == [("noisy_small", 1_000), ("noisy_big", 1_000_000), ("quiet", 1_000)]
