"""The quantization record on its own: every field is what the tensor's QuantParams say, and the
record and the params round-trip through JSON byte for byte.

A three-node model (Conv -> Relu -> MaxPool) built with onnx.helper is calibrated for real (ONNX
Runtime, 32 samples); the record is then made from parameters chosen by hand, and the real
parameters are checked against the formulas of params.py worked out here.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.files import sha256_file
from edgekit.quantizer.costs import node_costs
from edgekit.quantizer.evaluation import OutputAgreement
from edgekit.quantizer.job import build_qdq, start_job
from edgekit.quantizer.params import QuantParams, quantize
from edgekit.quantizer.qdq import QuantizedConstant
from edgekit.quantizer.record import RECORD_FORMAT, make_record, record_path_for, write_record

RNG = np.random.default_rng(7)
WEIGHT = RNG.normal(size=(3, 2, 1, 1)).astype(np.float32)
BIAS = RNG.normal(size=3).astype(np.float32)

# Exact binary fractions, so a failure shows the record changed a number, not JSON rounding it.
HAND = {
    "x": QuantParams("int8", (0.03125,), (-3,)),
    "r": QuantParams("uint8", (0.0078125,), (0,)),
    "w@axis0": QuantParams("int8", (0.5, 0.25, 0.125), (0, 0, 0), 0),
    "b@conv": QuantParams("int32", (0.015625, 0.0078125, 0.00390625), (0, 0, 0), 0),
}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("record")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], [numpy_helper.from_array(WEIGHT, "w"), numpy_helper.from_array(BIAS, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), folder / "tiny.onnx")
    np.savez(folder / "calib.npz", x=RNG.normal(size=(32, 1, 2, 4, 4)).astype(np.float32))
    return start_job(folder / "tiny.onnx", folder / "calib.npz")


def hand_built(job):
    """The job's real plan and graph with every parameter replaced by HAND; one bias value clipped."""
    real = build_qdq(job)
    assert set(real.activations) == {"x", "r"} and set(real.constants) == {"w@axis0", "b@conv"}
    values = {"w@axis0": WEIGHT, "b@conv": BIAS}
    constants = {key: QuantizedConstant(HAND[key], quantize(values[key], HAND[key])) for key in values}
    return dataclasses.replace(real, activations={t: HAND[t] for t in real.activations}, constants=constants, bias_clipped={"b@conv": 1})


def record_of(job, path):
    verification = [OutputAgreement("y", 41.5, 0.999, 0.99, 0.0625)]
    return make_record(job, hand_built(job), {"x": 0.25}, verification, [], path)


def entry_key(entry: dict) -> str:
    return entry["quantized_name"].removesuffix("_quantized") if "quantized_name" in entry else entry["name"]


def test_every_tensor_entry_carries_its_params(job, tmp_path):
    record = record_of(job, tmp_path / "tiny.int8.onnx")
    entries = {entry_key(e): e for e in record["tensors"]}
    assert list(entries) == ["x", "r", "w@axis0", "b@conv"]  # activations in graph order, then constants
    for key, params in HAND.items():
        entry = entries[key]
        assert QuantParams.from_dict(entry) == params
        assert {k: entry[k] for k in ("dtype", "granularity", "axis", "scale", "zero_point")} == {
            "dtype": params.dtype, "granularity": "per_tensor" if params.axis is None else "per_channel",
            "axis": params.axis, "scale": list(params.scale), "zero_point": list(params.zero_point),
        }
    assert [entries[k]["role"] for k in entries] == ["activation", "activation", "weight", "bias"]
    assert entries["x"]["clipped_fraction"] == 0.25 and entries["r"]["clipped_fraction"] == 0.0
    assert entries["b@conv"]["clipped_fraction"] == 1 / BIAS.size
    assert entries["b@conv"]["scale_from"] == {"input": "x", "weight": "w@axis0"}
    assert entries["w@axis0"]["observed_range"] == [float(WEIGHT.min()), float(WEIGHT.max())]
    assert entries["r"]["producer"] == "relu" and entries["r"]["consumers"] == ["pool"]


def test_the_record_names_its_inputs_and_counts_the_plan(job, tmp_path):
    record = record_of(job, tmp_path / "tiny.int8.onnx")
    assert record["format"] == RECORD_FORMAT
    assert record["source_model"] == {"path": str(job.source), "sha256": sha256_file(job.source)}
    assert record["quantized_model"] == {"path": "tiny.int8.onnx"}
    assert record["calibration"] == {"data": str(job.calib), "samples": 32}
    assert record["recipe"] == job.recipe.to_dict()
    assert [n["name"] for n in record["nodes"]] == ["conv", "relu", "pool"]
    int8 = sum(n["precision"] == "int8" for n in record["nodes"])
    conv_macs = node_costs(job.view)["conv"]
    assert record["summary"] == {"nodes": 3, "int8_nodes": int8, "float_nodes": 3 - int8, "macs": conv_macs, "int8_mac_share": 1.0,
                                 "quantized_activations": 2, "quantized_constants": 2}
    assert record["verification"] == [{"output": "y", "sqnr_db": 41.5, "cosine_mean": 0.999, "cosine_min": 0.99, "max_abs": 0.0625}]
    assert record_path_for(tmp_path / "tiny.int8.onnx") == tmp_path / "tiny.int8.quant.json"


def test_the_record_round_trips_byte_identically(job, tmp_path):
    first, again = tmp_path / "a.quant.json", tmp_path / "b.quant.json"
    write_record(record_of(job, tmp_path / "tiny.int8.onnx"), first)
    write_record(json.loads(first.read_text()), again)
    assert again.read_bytes() == first.read_bytes()
    write_record(record_of(job, tmp_path / "tiny.int8.onnx"), again)  # same inputs, same bytes
    assert again.read_bytes() == first.read_bytes()
    with pytest.raises(ValueError):
        write_record({"scale": float("nan")}, again)  # the record is strict JSON


@pytest.mark.parametrize("params", [
    *HAND.values(),
    QuantParams("int8", (float(np.float32(1 / 3)),), (7,)),  # a float32 scale that is no short decimal
    QuantParams("uint8", (float(np.float32(0.1)), float(np.float32(2e-7))), (128, 255), 1),
])
def test_params_round_trip_through_json(params):
    text = json.dumps(params.to_dict())
    back = QuantParams.from_dict(json.loads(text))
    assert back == params and json.dumps(back.to_dict()) == text


@pytest.mark.parametrize(("args", "message"), [
    (("int4", (1.0,), (0,)), "unknown quantized dtype"),
    (("int8", (1.0, 2.0), (0, 0)), "per-tensor parameters have one scale"),
    (("int8", (0.0,), (0,)), "positive and finite"),
    (("int8", (float("inf"),), (0,)), "positive and finite"),
    (("uint8", (1.0,), (-1,)), "zero point outside uint8"),
    (("int8", (1.0,), (0, 0), 0), "same, non-zero length"),
])
def test_params_check_themselves(args, message):
    with pytest.raises(ValueError, match=message):
        QuantParams(*args)


def test_the_real_params_follow_the_formulas_of_params_py(job, tmp_path):
    record = make_record(job, build_qdq(job), {}, [], [], tmp_path / "tiny.int8.onnx")
    entries = {entry_key(e): e for e in record["tensors"]}
    for tensor in ("x", "r"):  # asymmetric int8 over the clip range widened to include 0
        entry = entries[tensor]
        lo, hi = min(entry["clip_range"][0], 0.0), max(entry["clip_range"][1], 0.0)
        scale = float(np.float32((hi - lo) / 255))
        assert entry["scale"] == [scale]
        assert entry["zero_point"] == [int(np.clip(np.rint(-128 - lo / scale), -128, 127))]
    absmax = np.abs(WEIGHT.reshape(3, -1).astype(np.float64)).max(axis=1)
    assert entries["w@axis0"]["scale"] == [float(np.float32(a / 127)) for a in absmax]
    x_scale = entries["x"]["scale"][0]
    assert entries["b@conv"]["scale"] == [float(np.float32(np.float32(x_scale) * np.float32(w))) for w in entries["w@axis0"]["scale"]]
