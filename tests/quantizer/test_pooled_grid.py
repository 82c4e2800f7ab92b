"""A MaxPool's input is quantized on the grid calibrated on the pool's output: max pooling commutes
with a monotone grid's clamping and rounding, and the pooled range is narrower (PReLU -> MaxPool
in MTCNN). Checked on the QDQ model's own parameters and against the float model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import edgekit

SHAPE = (1, 3, 8, 8)


def model_with(nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    """x -> Conv(3x3, 8) -> a -> NODES -> o -> Conv(1x1, 4) -> y."""
    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in (("w_in", (8, 3, 3, 3)), ("w_out", (4, 8, 1, 1)))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w_in"], ["a"], name="conv_in", pads=[1, 1, 1, 1]), *nodes, helper.make_node("Conv", ["o", "w_out"], ["y"], name="conv_out")],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(SHAPE))], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], weights,
    )
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9))


def prelu_pool_model() -> onnx.ModelProto:
    slope = numpy_helper.from_array(np.full((8, 1, 1), 0.25, np.float32), "slope")
    nodes = [
        helper.make_node("PRelu", ["a", "slope"], ["p"], name="prelu"),
        helper.make_node("MaxPool", ["p"], ["o"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model = model_with(nodes)
    model.graph.initializer.append(slope)
    return model


def grids(model: onnx.ModelProto) -> dict[str, tuple[float, int]]:
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: (float(constants[n.input[1]]), int(constants[n.input[2]])) for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants}


def test_a_max_pool_input_takes_the_pooled_grid(tmp_path):
    model = prelu_pool_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    calib = np.random.default_rng(0).standard_normal((32, *SHAPE)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=calib)
    result = edgekit.quantize(tmp_path / "m.onnx", tmp_path / "calib.npz", tmp_path / "q.onnx")
    qdq = onnx.load(str(result.model_path))
    found = grids(qdq)
    assert found["p"] == found["o"]  # one grid, the pool's
    # ... calibrated on the pool's output: its minimum is the pooled minimum, above the PReLU's.
    probe = onnx.load_from_string(model.SerializeToString())
    probe.graph.output.append(helper.make_tensor_value_info("p", onnx.TensorProto.FLOAT, None))
    probe_session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    prelu_min = min(probe_session.run(["p"], {"x": x})[0].min() for x in calib)
    scale, zero_point = found["o"]
    grid_min = (-128 - zero_point) * scale
    assert grid_min > prelu_min + scale  # narrower than the PReLU's own range would be
    record = json.loads(result.model_path.with_suffix(".quant.json").read_text())
    notes = {n["name"]: n["notes"] for n in record["nodes"]}
    assert any("grid calibrated on its output" in note for note in notes["pool"])
