"""Lookup tables: every elementwise function of one int8 tensor, on all 256 input codes, against
ONNX Runtime running the same QDQ model; chains that cannot be tabulated stay float."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

from edgekit.compiler.integer import integer_regions
from edgekit.compiler.integer_check import host_target
from edgekit.compiler.integer_tables import Source, TableFunction, tabulate
from edgekit.compiler.integer_values import Term
from edgekit.compiler.relax_import import import_onnx
from edgekit.compiler.relax_pipeline import cpu_pipeline
from edgekit.onnx_model import model_inputs
from edgekit.reference import Reference

CHANNELS = 3
SHAPE = [1, CHANNELS, 16, 16]  # 256 elements per channel: every code once in each channel


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


# name -> (nodes from "d" (the dequantized input) to "f" (the float result), initializers, output range)
FUNCTIONS = {
    "sigmoid": ([helper.make_node("Sigmoid", ["d"], ["f"])], [], (0.0, 1.0)),
    "silu": ([helper.make_node("Sigmoid", ["d"], ["s"]), helper.make_node("Mul", ["d", "s"], ["f"])], [], (-0.3, 6.0)),
    "tanh": ([helper.make_node("Tanh", ["d"], ["f"])], [], (-1.0, 1.0)),
    "gelu-erf": (
        [
            helper.make_node("Div", ["d", "sqrt2"], ["a"]),
            helper.make_node("Erf", ["a"], ["b"]),
            helper.make_node("Add", ["b", "one"], ["c"]),
            helper.make_node("Mul", ["d", "c"], ["e"]),
            helper.make_node("Mul", ["e", "half"], ["f"]),
        ],
        [const("sqrt2", 1.4142135), const("one", 1.0), const("half", 0.5)],
        (-0.2, 6.0),
    ),
    "hard-sigmoid": ([helper.make_node("HardSigmoid", ["d"], ["f"], alpha=1 / 6, beta=0.5)], [], (0.0, 1.0)),
    "hard-swish": ([helper.make_node("HardSwish", ["d"], ["f"])], [], (-0.4, 6.0)),
    "leaky-relu": ([helper.make_node("LeakyRelu", ["d"], ["f"], alpha=0.1)], [], (-0.6, 6.0)),
    "prelu-per-channel": ([helper.make_node("PRelu", ["d", "slope"], ["f"])], [const("slope", np.array([0.25, 0.02, 0.7]).reshape(3, 1, 1))], (-4.0, 6.0)),
    "prelu-scalar": ([helper.make_node("PRelu", ["d", "slope"], ["f"])], [const("slope", [0.3])], (-2.0, 6.0)),
    "elu": ([helper.make_node("Elu", ["d"], ["f"], alpha=1.0)], [], (-1.0, 6.0)),
    "exp-times-constant": ([helper.make_node("Exp", ["d"], ["e"]), helper.make_node("Mul", ["e", "k"], ["f"])], [const("k", 0.1)], (0.0, 40.0)),
}
IN_SCALE, IN_ZERO = 0.0431, -20  # int8 codes -128..127 cover [-4.65, 6.34]


def qdq_model(name: str, in_dtype: int = TensorProto.INT8) -> onnx.ModelProto:
    nodes, inits, (lo, hi) = FUNCTIONS[name]
    zero = IN_ZERO if in_dtype == TensorProto.INT8 else IN_ZERO + 128
    out_scale = (hi - lo) / 255
    out_zero = int(np.clip(round(-128 - lo / out_scale), -128, 127))
    inits = [
        *inits,
        const("in_scale", IN_SCALE), numpy_helper.from_array(np.array(zero, np.int8 if in_dtype == TensorProto.INT8 else np.uint8), "in_zero"),
        const("out_scale", out_scale), numpy_helper.from_array(np.array(out_zero, np.int8), "out_zero"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "in_scale", "in_zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "in_scale", "in_zero"], ["d"]),
            *nodes,
            helper.make_node("QuantizeLinear", ["f", "out_scale", "out_zero"], ["fq"]),
            helper.make_node("DequantizeLinear", ["fq", "out_scale", "out_zero"], ["y"]),
        ],
        name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)], [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def every_code(dtype: str = "int8") -> np.ndarray:
    """An input whose quantization is each of the 256 codes once per channel (a different order per channel)."""
    low = -128 if dtype == "int8" else 0
    zero = IN_ZERO if dtype == "int8" else IN_ZERO + 128
    codes = np.stack([np.roll(np.arange(low, low + 256), 37 * c) for c in range(CHANNELS)]).reshape(SHAPE)
    return ((codes - zero) * np.float32(IN_SCALE)).astype(np.float32)


def rewrite_and_run(model: onnx.ModelProto, x: np.ndarray):
    mod, report = integer_regions(import_onnx(model, model_inputs(model)))
    target = host_target()
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target(target.tvm_cpu_target()), relax_pipeline=cpu_pipeline(target)), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy(), report


def out_grid(model: onnx.ModelProto) -> tuple[float, int]:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(inits["out_scale"]), int(inits["out_zero"])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_is_one_table_equal_to_onnxruntime_on_every_code(name, dtype):
    model = qdq_model(name, TensorProto.INT8 if dtype == "int8" else TensorProto.UINT8)
    x = every_code(dtype)
    ours, report = rewrite_and_run(model, x)
    theirs = Reference(model)({"x": x})["y"]
    scale, _ = out_grid(model)
    lsb = np.abs(ours.astype(np.float64) - theirs) / scale
    assert report.integer_ops.get("lookup table") == 1, report.integer_ops
    # Nothing of the function is left in float: only the input quantize and the output dequantize.
    assert report.float_ops == {}, report.float_ops
    assert np.max(lsb) <= 1.0 + 1e-6, (name, np.max(lsb))
    # Exact except where ONNX Runtime's float32 lands within float rounding of a rounding tie.
    (table,) = report.tables
    assert np.mean(lsb < 1e-6) >= 0.99, (name, np.mean(lsb < 1e-6), table)
    assert table["input"]["dtype"] == dtype and table["output"]["scale"] == pytest.approx(scale)
    assert table["tables"] == (CHANNELS if name == "prelu-per-channel" else 1)


def test_tables_are_the_quantized_function_of_each_code_rounding_ties_to_even():
    source = Term(relax.Var("q", relax.TensorType([4], "int8")), "int8", np.array(0.5), np.array(0, np.int64))
    table = tabulate(TableFunction(source, Source()), 1.0, 0, "int8")
    codes = np.arange(-128, 128)
    # x = code / 2: ties at every odd code, which round half to even as QuantizeLinear does.
    assert np.array_equal(table[0].astype(np.int64), np.rint(codes / 2).astype(np.int64))
    assert table[0][128 + 1] == 0 and table[0][128 + 3] == 2 and table[0][128 - 1] == 0


def test_a_chain_whose_table_is_not_finite_stays_float():
    nodes = [helper.make_node("Div", ["one", "d"], ["f"])]  # 1 / x is infinite at the zero point
    FUNCTIONS["reciprocal"] = (nodes, [const("one", 1.0)], (-4.0, 4.0))
    try:
        model = qdq_model("reciprocal")
        mod, report = integer_regions(import_onnx(model, model_inputs(model)))
    finally:
        del FUNCTIONS["reciprocal"]
    assert "lookup table" not in report.integer_ops and report.float_ops.get("divide") == 1


def test_a_float_consumer_of_a_chain_keeps_its_float_meaning():
    """SiLU's sigmoid also read by a float output: the table serves the integer path, the float sigmoid stays for the output."""
    model = qdq_model("silu")
    model.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, SHAPE))
    mod, report = integer_regions(import_onnx(model, model_inputs(model)))
    assert report.integer_ops.get("lookup table") == 1 and report.float_ops.get("sigmoid") == 1
    x = every_code()
    target = host_target()
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target(target.tvm_cpu_target()), relax_pipeline=cpu_pipeline(target)), tvm.cpu())
    ours = [t.numpy() for t in vm["main"](tvm.runtime.tensor(x))]
    theirs = Reference(model)({"x": x})
    np.testing.assert_allclose(ours[1], theirs["s"], rtol=1e-6, atol=1e-7)
