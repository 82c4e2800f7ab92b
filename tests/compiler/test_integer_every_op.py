"""Every op edgekit's quantizer can put on int8 grids runs in integers when compiled.

One tiny ONNX graph per op (or form of an op: grouped and depthwise Conv, padded AveragePool,
linear and nearest Resize, HardSigmoid with paddle2onnx's alpha/beta, GELU's chain...), written
with onnx.helper between two convolutions so the op sits inside a quantized region. Each is
quantized by edgekit's own quantizer on random calibration data (default recipe), compiled for
x86_64 with every int8 tensor exposed as an extra output (the graph is otherwise the model's),
and checked:

(a) the compile succeeds and no node was left float inside a region (`build.integer.float_nodes`);
(b) the op ran in integers: its integer op is in the report, the only quantize left is the model
    input's and no dequantize is left (a float island would keep a dequantize and a quantize
    around it: counted from the IR, independently of the float-node detection);
(c) every int8 tensor agrees with ONNX Runtime running the QDQ model to MAX_OUTPUT_LSB (99% of
    values equal), the float head within the self-check's tolerance.

`test_every_quantizable_op_type_has_a_case` fails when the quantizer learns an op this file does not build.
"""

from __future__ import annotations

import json
import zlib
from fractions import Fraction
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.checker.agreement import with_quantized_outputs
from edgekit.compiler.integer_check import MAX_OUTPUT_LSB
from edgekit.quantizer.plan import QUANTIZERS
from edgekit.reference import Reference

C = 8  # channels of the op's input
IN_SHAPE = (1, 3, 8, 8)
SAMPLES = 32


def _weights(name: str, shape: tuple[int, ...], scale: float = 0.3, seed: int = 0) -> onnx.TensorProto:
    rng = np.random.default_rng(zlib.crc32(f"{name}{shape}{seed}".encode()))
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _f32(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, np.float32), name)


def _i64(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, np.int64), name)


def _node(op: str, inputs: list[str], output: str = "o", name: str | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output] if isinstance(output, str) else output, name=name or op.lower(), **attrs)


def _conv_b() -> tuple[onnx.NodeProto, onnx.TensorProto]:
    """A second branch from the input, for two-operand ops."""
    return helper.make_node("Conv", ["x", "w_b"], ["b"], name="conv_b", pads=[1, 1, 1, 1]), _weights("w_b", (C, 3, 3, 3))


def sandwich(nodes: list[onnx.NodeProto], extra: list[onnx.TensorProto] = (), out_channels: int = C, opset: int = 17) -> onnx.ModelProto:
    """x -> Conv(3x3, C) -> a -> NODES -> o -> Conv(1x1) -> y: the op inside a quantized region."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w_in", "b_in"], ["a"], name="conv_in", pads=[1, 1, 1, 1]), *nodes,
         helper.make_node("Conv", ["o", "w_out"], ["y"], name="conv_out")],
        "op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(IN_SHAPE))], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_weights("w_in", (C, 3, 3, 3)), _weights("b_in", (C,), 0.1), *extra, _weights("w_out", (4, out_channels, 1, 1))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def flat_head(nodes: list[onnx.NodeProto], extra: list[onnx.TensorProto]) -> onnx.ModelProto:
    """x -> Conv -> Flatten -> f -> NODES -> y (a classifier head: Gemm, MatMul)."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w_in", "b_in"], ["a"], name="conv_in", pads=[1, 1, 1, 1]), helper.make_node("Flatten", ["a"], ["f"], name="flatten"), *nodes],
        "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(IN_SHAPE))], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_weights("w_in", (C, 3, 3, 3)), _weights("b_in", (C,), 0.1), *extra],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@dataclass(frozen=True)
class Case:
    build: Callable[[], onnx.ModelProto]
    integer_op: str  # the key of build.integer.integer_ops that shows the op ran in integers
    # Share of int8 values equal to ONNX Runtime's. A linear 2x upsample is exact on a grid 16 times
    # finer than its input's, so 9% of its values are exact ties, which edgekit rounds half up and
    # ONNX Runtime half to even: half of those differ by one LSB (test_linear_resize_is_exact_up_to_its_rounding).
    min_equal: float = 0.99


def _two(op: str, **attrs) -> Callable[[], onnx.ModelProto]:
    def build() -> onnx.ModelProto:
        conv_b, w_b = _conv_b()
        return sandwich([conv_b, _node(op, ["a", "b"], **attrs)], [w_b], out_channels=2 * C if op == "Concat" else C)
    return build


CASES: dict[str, Case] = {
    "Conv": Case(lambda: sandwich([_node("Conv", ["a", "w", "bias"], pads=[1, 1, 1, 1], strides=[2, 2])], [_weights("w", (C, C, 3, 3)), _weights("bias", (C,), 0.1)]), "nn.conv2d"),
    "Conv-grouped": Case(lambda: sandwich([_node("Conv", ["a", "w", "bias"], pads=[1, 1, 1, 1], group=2)], [_weights("w", (C, C // 2, 3, 3)), _weights("bias", (C,), 0.1)]), "nn.conv2d"),
    "Conv-depthwise": Case(lambda: sandwich([_node("Conv", ["a", "w"], pads=[1, 1, 1, 1], group=C)], [_weights("w", (C, 1, 3, 3))]), "nn.conv2d"),
    "ConvTranspose": Case(lambda: sandwich([_node("ConvTranspose", ["a", "w", "bias"], strides=[2, 2], kernel_shape=[2, 2])], [_weights("w", (C, C, 2, 2)), _weights("bias", (C,), 0.1)]), "nn.conv2d_transpose"),
    "ConvTranspose-padded": Case(lambda: sandwich([_node("ConvTranspose", ["a", "w"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])], [_weights("w", (C, C, 3, 3))]), "nn.conv2d_transpose"),
    "ConvTranspose-grouped": Case(lambda: sandwich([_node("ConvTranspose", ["a", "w"], strides=[2, 2], group=2)], [_weights("w", (C, C // 2, 2, 2))]), "nn.conv2d_transpose"),
    "Gemm": Case(lambda: flat_head([_node("Gemm", ["f", "w", "bias"], "g", transB=1), _node("Relu", ["g"], "y")], [_weights("w", (10, C * 64), 0.05), _weights("bias", (10,), 0.1)]), "matmul"),
    "MatMul": Case(lambda: flat_head([_node("MatMul", ["f", "w"], "g"), _node("Add", ["g", "bias"], "y")], [_weights("w", (C * 64, 10), 0.05), _weights("bias", (10,), 0.1)]), "matmul"),
    "Add": Case(_two("Add"), "add"),
    "Mul": Case(_two("Mul"), "multiply"),
    "Concat": Case(_two("Concat", axis=1), "concat"),
    "MaxPool": Case(lambda: sandwich([_node("MaxPool", ["a"], kernel_shape=[2, 2], strides=[2, 2])]), "nn.max_pool2d"),
    "AveragePool": Case(lambda: sandwich([_node("AveragePool", ["a"], kernel_shape=[2, 2], strides=[2, 2])]), "nn.avg_pool2d"),
    # ONNX's default count_include_pad=0: the border windows average fewer values.
    "AveragePool-padded": Case(lambda: sandwich([_node("AveragePool", ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]), "nn.avg_pool2d"),
    "AveragePool-include-pad": Case(lambda: sandwich([_node("AveragePool", ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)]), "nn.avg_pool2d"),
    "GlobalAveragePool": Case(lambda: sandwich([_node("GlobalAveragePool", ["a"])]), "mean"),
    "ReduceMean": Case(lambda: sandwich([_node("ReduceMean", ["a", "axes"], keepdims=1)], [_i64("axes", [2, 3])], opset=18), "mean"),
    "Relu": Case(lambda: sandwich([_node("Relu", ["a"])]), "nn.relu"),
    "Clip": Case(lambda: sandwich([_node("Clip", ["a", "lo", "hi"])], [_f32("lo", 0.0), _f32("hi", 0.5)]), "clip (minimum)"),
    "Reshape": Case(lambda: sandwich([_node("Reshape", ["a", "s1"], "r", name="reshape_1"), _node("Reshape", ["r", "s2"], name="reshape_2")], [_i64("s1", [1, C, 64]), _i64("s2", [1, C, 8, 8])]), "reshape"),
    "Flatten": Case(lambda: sandwich([_node("Flatten", ["a"], "f"), _node("Reshape", ["f", "s"])], [_i64("s", [1, C, 8, 8])]), "reshape"),
    "Transpose": Case(lambda: sandwich([_node("Transpose", ["a"], perm=[0, 1, 3, 2])]), "permute_dims"),
    "Squeeze-Unsqueeze": Case(lambda: sandwich([_node("Unsqueeze", ["a", "ax"], "u"), _node("Squeeze", ["u", "ax"])], [_i64("ax", [2])]), "squeeze"),
    "Split": Case(lambda: sandwich([_node("Split", ["a", "parts"], ["s0", "s1"], axis=1), _node("Concat", ["s1", "s0"], axis=1)], [_i64("parts", [3, 5])]), "split"),
    "Resize-nearest": Case(lambda: sandwich([_node("Resize", ["a", "", "scales"], mode="nearest")], [_f32("scales", [1, 1, 2, 2])]), "resize2d (nearest)"),
    "Resize-linear": Case(lambda: sandwich([_node("Resize", ["a", "", "scales"], mode="linear")], [_f32("scales", [1, 1, 2, 2])]), "resize2d (linear)", min_equal=0.9),
    "Resize-linear-align-corners": Case(lambda: sandwich([_node("Resize", ["a", "", "", "sizes"], mode="linear", coordinate_transformation_mode="align_corners")], [_i64("sizes", [1, C, 12, 16])]),
                                        "resize2d (linear)", min_equal=0.9),
    "Sigmoid": Case(lambda: sandwich([_node("Sigmoid", ["a"])]), "lookup table"),
    "Tanh": Case(lambda: sandwich([_node("Tanh", ["a"])]), "lookup table"),
    # As paddle2onnx writes it: alpha and beta attributes (prim values in Relax, the old crash).
    "HardSigmoid": Case(lambda: sandwich([_node("HardSigmoid", ["a"], alpha=0.2, beta=0.5)]), "lookup table"),
    "HardSwish": Case(lambda: sandwich([_node("HardSwish", ["a"])], opset=14), "lookup table"),
    "LeakyRelu": Case(lambda: sandwich([_node("LeakyRelu", ["a"], alpha=0.1)]), "lookup table"),
    "PRelu": Case(lambda: sandwich([_node("PRelu", ["a", "slope"])], [numpy_helper.from_array(np.linspace(0.05, 0.4, C, dtype=np.float32).reshape(C, 1, 1), "slope")]), "lookup table"),
    "Elu": Case(lambda: sandwich([_node("Elu", ["a"], alpha=1.0)]), "lookup table"),
    "Erf": Case(lambda: sandwich([_node("Erf", ["a"])]), "lookup table"),
    # x * sigmoid(x): one table (no QDQ between the function and the product).
    "SiLU": Case(lambda: sandwich([_node("Sigmoid", ["a"], "s"), _node("Mul", ["a", "s"])]), "lookup table"),
    # GELU as torch exports it, and a chain with Sub: CHAIN_ONLY ops, one table each.
    "GELU-chain": Case(lambda: sandwich([_node("Div", ["a", "root2"], "d"), _node("Erf", ["d"], "e"), _node("Add", ["e", "one"], "e1"), _node("Mul", ["a", "e1"], "g", name="mul_1"),
                                         _node("Mul", ["g", "half"], name="mul_2")], [_f32("root2", 1.4142135), _f32("one", 1.0), _f32("half", 0.5)]), "lookup table"),
    "Sub-chain": Case(lambda: sandwich([_node("Sub", ["a", "shift"], "d"), _node("Tanh", ["d"])], [_f32("shift", 0.25)]), "lookup table"),
    # tf2onnx's clamps: LeakyRelu bounded below by Max, Min bounding a Sigmoid's input (ONNX Max/Min
    # import as a stack and a reduction: variadic_extrema.py makes them elementwise).
    "Max-chain": Case(lambda: sandwich([_node("LeakyRelu", ["a"], "l", alpha=0.2), _node("Max", ["l", "floor"])], [_f32("floor", -0.4)]), "lookup table"),
    "Min-chain": Case(lambda: sandwich([_node("Min", ["a", "ceiling"], "m"), _node("Sigmoid", ["m"])], [_f32("ceiling", 0.5)]), "lookup table"),
}


def test_every_quantizable_op_type_has_a_case():
    covered = {node.op_type for case in CASES.values() for node in case.build().graph.node}
    assert set(QUANTIZERS) - covered == set()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Callable[[str], dict]:
    """Each case built once for the tests of this file."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = build_case(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def build_case(name: str, folder) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.shape_inference.infer_shapes(CASES[name].build())
    onnx.checker.check_model(model, full_check=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=rng.standard_normal((SAMPLES, *IN_SHAPE)).astype(np.float32))
    int8 = edgekit.quantize(path, folder / "calib.npz", folder / f"{name}.int8.onnx")
    # The QDQ graph with every QuantizeLinear result as an extra output (the record stays beside it).
    exposed, _ = with_quantized_outputs(onnx.load(str(int8.model_path)))
    exposed_path = folder / f"{name}.int8.exposed.onnx"
    onnx.save(exposed, str(exposed_path))
    artifact = edgekit.compile(exposed_path, folder / "x86_64", target="x86_64")
    manifest = json.loads((artifact / "manifest.json").read_text())
    return {"record": int8.record, "exposed": exposed_path, "artifact": artifact, "integer": manifest["build"]["integer"], "calib": folder / "calib.npz"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_op_compiles_to_integers_and_agrees_with_onnxruntime(name, built):
    built = built(name)
    quantized_ops = {n["op_type"] for n in built["record"]["nodes"] if n["precision"] == "int8"}
    assert {n.op_type for n in CASES[name].build().graph.node} <= quantized_ops | {"Div", "Sub"}, built["record"]["nodes"]
    integer = built["integer"]
    # (a) nothing float inside a region
    assert integer["float_nodes"] == []
    # (b) the op's integer form ran; the only float left is the input's quantize and the head's dequantize
    assert integer["integer_ops"].get(CASES[name].integer_op, 0) >= 1, integer["integer_ops"]
    summary = integer["ir_dtype_summary"]
    assert summary.get("quantize(float32) -> int8") == 1, summary
    assert not any(key.startswith("dequantize(") for key in summary), summary
    float_kernels = {key for key in summary if "(float32" in key and not key.startswith(("multiply(float32", "add(float32", "clip(float32", "quantize(float32"))}
    assert float_kernels == set(), float_kernels
    assert integer["self_check"]["passed"] is True
    # (c) every int8 tensor to the LSB, the float head within the self-check's tolerance
    compiled, reference = edgekit.load(built["artifact"]), Reference(built["exposed"])
    with np.load(built["calib"]) as data:
        samples = [data["x"][i] for i in (0, 7, 19)]
    for x in samples:
        ours, theirs = compiled(x=x), reference({"x": x})
        quantized = [out for out in ours if ours[out].dtype in (np.int8, np.uint8)]
        assert quantized
        for out in quantized:
            diff = np.abs(ours[out].astype(np.int32) - theirs[out].astype(np.int32))
            assert diff.max() <= MAX_OUTPUT_LSB and np.mean(diff == 0) >= CASES[name].min_equal, (out, int(diff.max()), float(np.mean(diff == 0)))
        assert np.max(np.abs(ours["y"] - theirs["y"])) <= 0.05 * np.max(np.abs(theirs["y"]))


def _exact_linear_upsample(q: np.ndarray, zero_point: int, out_size: int) -> np.ndarray:
    """Half-pixel linear resize of q - zp to out_size x out_size, in exact fractions."""
    size = q.shape[-1]
    sources = [Fraction((2 * x + 1) * size - out_size, 2 * out_size) for x in range(out_size)]
    taps = [(min(max(int(np.floor(s)), 0), size - 1), min(max(int(np.floor(s)) + 1, 0), size - 1), s - int(np.floor(s))) for s in sources]
    centred = q.astype(object) - zero_point
    rows = np.array([[[[(1 - f) * plane[r][a] + f * plane[r][b] for a, b, f in taps] for r in range(size)] for plane in channel] for channel in centred], dtype=object)
    return np.array([[[[(1 - f) * plane[a][c] + f * plane[b][c] for c in range(out_size)] for a, b, f in taps] for plane in channel] for channel in rows], dtype=object)


def test_linear_resize_is_exact_up_to_its_rounding(built):
    """The integer interpolation is the exact interpolation of the input's integers, rounded half up once:
    on the same grid (Resize passes its input's scale through), output = floor(exact + 1/2) + zp."""
    case = built("Resize-linear")
    model = onnx.load(str(case["exposed"]))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    grids = {node.output[0]: (float(constants[node.input[1]]), int(constants[node.input[2]])) for node in model.graph.node if node.op_type == "QuantizeLinear"}
    assert grids["a_quantized"] == grids["o_quantized"]
    zero_point = grids["a_quantized"][1]
    compiled = edgekit.load(case["artifact"])
    with np.load(case["calib"]) as data:
        outputs = compiled(x=data["x"][3])
    exact = _exact_linear_upsample(outputs["a_quantized"], zero_point, 16)
    expected = np.vectorize(lambda v: int(np.floor(v + Fraction(1, 2))))(exact) + zero_point
    assert np.array_equal(outputs["o_quantized"].astype(np.int64), np.clip(expected, -128, 127))
    assert np.mean(np.vectorize(lambda v: (v * 2).denominator == 1 and (v * 2).numerator % 2 == 1)(exact)) > 0.02  # ties occur: the case tests the rounding
