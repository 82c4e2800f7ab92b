"""Patterns other exporters write, found on real pretrained models (scripts/real_models.py), through
edgekit's quantizer and integer compile: paddle2onnx's hard-swish before a MaxPool and its unfused
BatchNormalization (PP-OCR), tf2onnx's LeakyRelu clamped by Max (openWakeWord), ONNX Max/Min with
several inputs. Each must compile with every op inside its quantized regions in integers, and agree
with ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.compiler.relax_import import import_onnx
from edgekit.compiler.variadic_extrema import pairwise_extrema
from edgekit.onnx_model import model_inputs
from edgekit.quantizer.batch_norm import fold_batch_norms

from test_float_nodes import SHAPE, model_with, quantized


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32), name))


def manifest(artifact: Path) -> dict:
    return json.loads((artifact / "manifest.json").read_text())


def compiled_integer(tmp_path: Path, model: onnx.ModelProto) -> tuple[dict, dict]:
    """Quantize with the default recipe and compile; (the manifest's build.integer, the quantization record)."""
    int8 = quantized(tmp_path, model)
    edgekit.compile(int8, tmp_path / "art", target="x86_64")
    record = json.loads(int8.with_suffix(".quant.json").read_text())
    return manifest(tmp_path / "art")["build"], record


def paddle_hard_swish(source: str, out: str) -> list[onnx.NodeProto]:
    """x * clip(x + 3, 0, 6) / 6 with Constant operands, as paddle2onnx writes hard-swish."""
    return [
        _const("three", 3.0), _const("zero", 0.0), _const("six", 6.0), _const("six_d", 6.0),
        helper.make_node("Add", [source, "three"], ["hs_a"], name="hs_add"),
        helper.make_node("Clip", ["hs_a", "zero", "six"], ["hs_c"], name="hs_clip"),
        helper.make_node("Mul", [source, "hs_c"], ["hs_m"], name="hs_mul"),
        helper.make_node("Div", ["hs_m", "six_d"], [out], name="hs_div"),
    ]


def test_hard_swish_before_a_max_pool_is_one_table_and_the_pool_stays_integer(tmp_path):
    """PP-OCR's direction classifier: hard-swish then MaxPool, with no QuantizeLinear between them.
    The pool follows a chain-only op (Div) that only the chain makes int8: it stays int8 too."""
    nodes = [*paddle_hard_swish("a", "hs"), helper.make_node("MaxPool", ["hs"], ["o"], name="pool", kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1])]
    build, record = compiled_integer(tmp_path, model_with(nodes))
    decisions = {n["name"]: n["precision"] for n in record["nodes"]}
    assert decisions["pool"] == "int8" and all(decisions[n] == "int8" for n in ("hs_add", "hs_clip", "hs_mul", "hs_div"))
    assert build["integer"]["float_nodes"] == [] and build["integer"]["integer_ops"]["lookup table"] == 1
    assert build["macs"]["integer_share"] == 1.0


def test_leaky_relu_clamped_by_max_is_one_table(tmp_path):
    """openWakeWord (tf2onnx): LeakyRelu(0.2) then Max with a constant, then MaxPool. ONNX Max imports
    as a stack and a reduction; edgekit makes it an elementwise maximum, one step of the table."""
    nodes = [
        helper.make_node("LeakyRelu", ["a"], ["l"], name="leaky", alpha=0.2),
        _const("floor", np.full((1, 1, 1, 1), -0.4)),
        helper.make_node("Max", ["l", "floor"], ["m"], name="clamp"),
        helper.make_node("MaxPool", ["m"], ["o"], name="pool", kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
    ]
    build, record = compiled_integer(tmp_path, model_with(nodes))
    assert {n["name"]: n["precision"] for n in record["nodes"]}["clamp"] == "int8"
    (table,) = build["integer"]["lookup_tables"]
    assert table["function"].startswith("maximum(leakyrelu(x, 0.2")
    assert build["integer"]["float_nodes"] == [] and build["macs"]["integer_share"] == 1.0


def test_a_chain_no_int8_op_reads_is_recorded_float_and_compiles(tmp_path):
    """Hard-swish feeding an op edgekit cannot quantize (Sin), then a conv: the chain has no grid to
    tabulate into, so the record calls its nodes float and compile accepts them from the record."""
    nodes = [*paddle_hard_swish("a", "hs"), helper.make_node("Sin", ["hs"], ["o"], name="sin")]
    build, record = compiled_integer(tmp_path, model_with(nodes))
    reasons = {n["name"]: (n["precision"], n["reason"]) for n in record["nodes"]}
    assert reasons["hs_div"][0] == "float" and "no int8 op reads" in reasons["hs_div"][1]
    assert record["lookup_chains"] == []
    accepted = {n["node"] for n in build["integer"]["float_nodes"]}
    assert {"hs_add", "hs_clip", "hs_mul", "hs_div", "sin"} >= accepted and "sin" in accepted


def batch_norm_model() -> onnx.ModelProto:
    """conv_in -> BatchNormalization (unfused, paddle2onnx) -> a2; a2 + a -> BatchNormalization -> o."""
    rng = np.random.default_rng(3)
    inits = []
    for prefix in ("bn1", "bn2"):
        inits += [
            numpy_helper.from_array(rng.uniform(0.5, 2.0, 8).astype(np.float32), f"{prefix}_scale"),
            numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), f"{prefix}_bias"),
            numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), f"{prefix}_mean"),
            numpy_helper.from_array(rng.uniform(0.2, 3.0, 8).astype(np.float32), f"{prefix}_var"),
        ]
    nodes = [
        helper.make_node("BatchNormalization", ["a", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"], ["b"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "r"], ["s"], name="add"),
        helper.make_node("BatchNormalization", ["s", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"], ["o"], name="bn2"),
    ]
    model = model_with(nodes)
    model.graph.initializer.extend(inits)
    return model


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_batch_norms_fold_into_the_conv_or_become_a_depthwise_conv_with_the_same_numbers():
    model = batch_norm_model()
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    expected = run_ort(model, x)
    folded, done = fold_batch_norms(onnx.load_from_string(model.SerializeToString()))
    assert [(d.node, d.into) for d in done] == [("bn1", "conv_in"), ("bn2", "depthwise conv")]
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}
    np.testing.assert_allclose(run_ort(folded, x), expected, rtol=1e-5, atol=1e-5)


def test_unfused_batch_norms_quantize_and_compile_fully_integer(tmp_path):
    build, record = compiled_integer(tmp_path, batch_norm_model())
    assert record["batch_norms_folded"] == [{"node": "bn1", "into": "conv_in"}, {"node": "bn2", "into": "depthwise conv"}]
    assert build["integer"]["float_nodes"] == [] and build["macs"]["integer_share"] == 1.0


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_variadic_max_min_become_elementwise_and_match_onnxruntime(tmp_path, op):
    """Max/Min of three tensors and a broadcast constant: no stack left in the module, same numbers."""
    nodes = [
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Neg", ["a"], ["n"], name="neg"),
        _const("c", np.linspace(-0.5, 0.5, 8).reshape(1, 8, 1, 1)),
        helper.make_node(op, ["a", "r", "n", "c"], ["o"], name="extremum"),
    ]
    model = model_with(nodes)
    mod = pairwise_extrema(import_onnx(model, model_inputs(model)))
    assert "relax.stack" not in mod.script() and "R.stack" not in mod.script()
    onnx.save(model, str(tmp_path / "m.onnx"))
    edgekit.compile(tmp_path / "m.onnx", tmp_path / "art", target="x86_64")
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    np.testing.assert_allclose(edgekit.load(tmp_path / "art")(x=x)["y"], run_ort(model, x), rtol=1e-4, atol=1e-4)
