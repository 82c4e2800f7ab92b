"""No silent float: an op inside a quantized region that no integer rule takes fails compile (exit 2,
one line naming the node, its op and why) unless somebody chose float for it: edgekit's quantizer in
its record, the user with --float-nodes, or --float-fallback for the whole model. Each choice is in
the manifest, with the share of conv/matmul MACs that run in integers, which check prints, writes
and can gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from conftest import one_line_error
from edgekit.compiler.mac_share import mac_share
from edgekit.compiler.relax_import import import_onnx
from edgekit.errors import InputError
from edgekit.onnx_model import model_inputs

SHAPE = (1, 3, 8, 8)


def _weights(name: str, shape: tuple[int, ...], seed: int) -> onnx.TensorProto:
    return numpy_helper.from_array((np.random.default_rng(seed).standard_normal(shape) * 0.3).astype(np.float32), name)


def model_with(nodes: list[onnx.NodeProto], opset: int = 17) -> onnx.ModelProto:
    """x -> Conv(3x3, 8) -> a -> NODES -> o -> Conv(1x1, 4) -> y."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w_in"], ["a"], name="conv_in", pads=[1, 1, 1, 1]), *nodes, helper.make_node("Conv", ["o", "w_out"], ["y"], name="conv_out")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_weights("w_in", (8, 3, 3, 3), 1), _weights("w_out", (4, 8, 1, 1), 2)],
    )
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9))


def quantized(folder: Path, model: onnx.ModelProto) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "m.onnx"))
    np.savez(folder / "calib.npz", x=np.random.default_rng(0).standard_normal((32, *SHAPE)).astype(np.float32))
    return edgekit.quantize(folder / "m.onnx", folder / "calib.npz", folder / "m.int8.onnx").model_path


@pytest.fixture(scope="module")
def sin_cos(tmp_path_factory) -> dict[str, Path]:
    """Sin and Cos (no int8 rule in edgekit) between int8 convolutions: edgekit's record keeps them float;
    the same QDQ file without the record is what another QDQ tool would hand over."""
    folder = tmp_path_factory.mktemp("sin_cos")
    with_record = quantized(folder / "edgekit", model_with([helper.make_node("Sin", ["a"], ["s"], name="sin_0"), helper.make_node("Cos", ["s"], ["o"], name="cos_0")]))
    foreign = folder / "foreign" / "m.int8.onnx"
    foreign.parent.mkdir()
    shutil.copy(with_record, foreign)
    return {"record": with_record, "foreign": foreign, "calib": folder / "edgekit" / "calib.npz"}


def manifest(artifact: Path) -> dict:
    return json.loads((artifact / "manifest.json").read_text())


def test_sin_and_cos_sit_between_integer_convolutions(sin_cos):
    """conv_in runs in int8 and its result is dequantized for Sin (its output is not quantized: its one
    consumer is float); Cos's output is quantized for conv_out: Sin and Cos are inside the region."""
    model = onnx.load(str(sin_cos["foreign"]))
    producers = {out: node for node in model.graph.node for out in node.output}
    sin = next(n for n in model.graph.node if n.name == "sin_0")
    cos = next(n for n in model.graph.node if n.name == "cos_0")
    assert producers[sin.input[0]].name == "conv_in" and producers[producers[sin.input[0]].input[0]].op_type == "DequantizeLinear"
    assert [n.op_type for n in model.graph.node if cos.output[0] in n.input] == ["QuantizeLinear"]


def foreign_qdq(path: Path) -> Path:
    """A QDQ graph as another tool writes it: x -> Q -> DQ -> Softplus -> Q -> DQ -> Conv (int8 weights) -> y."""
    q = lambda name, x, out, s, z: helper.make_node(name, [x, s, z], [out], name=f"{out}_{name}")
    weights = np.random.default_rng(3).integers(-127, 128, (4, 3, 1, 1)).astype(np.int8)
    constants = [numpy_helper.from_array(np.float32(v), n) for n, v in (("s_x", 0.02), ("s_p", 0.01), ("s_w", 0.005))]
    constants += [numpy_helper.from_array(np.int8(0), n) for n in ("z_x", "z_p", "z_w")] + [numpy_helper.from_array(weights, "w_q")]
    nodes = [q("QuantizeLinear", "x", "xq", "s_x", "z_x"), q("DequantizeLinear", "xq", "xd", "s_x", "z_x"),
             helper.make_node("Softplus", ["xd"], ["p"], name="softplus_7"),
             q("QuantizeLinear", "p", "pq", "s_p", "z_p"), q("DequantizeLinear", "pq", "pd", "s_p", "z_p"),
             q("DequantizeLinear", "w_q", "w", "s_w", "z_w"), helper.make_node("Conv", ["pd", "w"], ["y"], name="head")]
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], constants)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_a_foreign_qdq_graph_around_an_op_without_an_integer_kernel_fails_naming_the_node(tmp_path, cli):
    model = foreign_qdq(tmp_path / "foreign.onnx")
    result = cli("compile", model, "-o", tmp_path / "art")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "node 'softplus_7' (Softplus, " in line and line.endswith("--float-nodes softplus_7 runs these in float, recorded in the manifest")
    accepted = cli("compile", model, "-o", tmp_path / "art", "--float-nodes", "softplus_7")
    assert accepted.exit_code == 0, accepted.stderr
    (node,) = manifest(tmp_path / "art")["build"]["integer"]["float_nodes"]
    assert node["node"] == "softplus_7" and node["op_type"] == "Softplus" and node["accepted_by"] == "--float-nodes"


def test_a_float_op_inside_a_quantized_region_fails_compile_naming_the_node(tmp_path, cli, sin_cos):
    result = cli("compile", sin_cos["foreign"], "-o", tmp_path / "art")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "node 'sin_0' (Sin, sin): edgekit has no integer rule for sin" in line
    assert "node 'cos_0' (Cos, cos): edgekit has no integer rule for cos" in line
    assert line.endswith("--float-nodes sin_0,cos_0 runs these in float, recorded in the manifest")
    assert not (tmp_path / "art").exists()


def test_float_nodes_accepts_the_named_nodes_and_the_manifest_records_them(tmp_path, cli, sin_cos):
    partly = cli("compile", sin_cos["foreign"], "-o", tmp_path / "partly", "--float-nodes", "sin_0")
    assert partly.exit_code == 2 and "node 'cos_0' (Cos" in one_line_error(partly) and "sin_0" not in one_line_error(partly).split(":")[1]
    result = cli("compile", sin_cos["foreign"], "-o", tmp_path / "art", "--float-nodes", "sin_0,cos_0")
    assert result.exit_code == 0, result.stderr
    built = manifest(tmp_path / "art")
    nodes = {n["node"]: n for n in built["build"]["integer"]["float_nodes"]}
    assert set(nodes) == {"sin_0", "cos_0"}
    assert nodes["sin_0"]["op_type"] == "Sin" and nodes["sin_0"]["ops"] == ["sin"] and nodes["sin_0"]["accepted_by"] == "--float-nodes"
    assert "no integer rule for sin" in nodes["sin_0"]["why"]
    assert built["build"]["options"]["float_nodes"] == ["sin_0", "cos_0"]
    assert built["build"]["command"].endswith("--float-nodes sin_0,cos_0")
    # Both convolutions still run in integers.
    assert built["build"]["macs"]["integer_share"] == 1.0


def test_the_quantizers_record_is_a_choice_of_float(tmp_path, sin_cos):
    record = json.loads(sin_cos["record"].with_name("m.int8.quant.json").read_text())
    reasons = {n["name"]: n["reason"] for n in record["nodes"] if n["precision"] == "float"}
    assert set(reasons) == {"sin_0", "cos_0"}
    artifact = edgekit.compile(sin_cos["record"], tmp_path / "art", target="x86_64")
    accepted = {n["node"]: n["accepted_by"] for n in manifest(artifact)["build"]["integer"]["float_nodes"]}
    assert accepted == {name: f"quantization record m.int8.quant.json: {reason}" for name, reason in reasons.items()}


def test_float_fallback_accepts_every_node_and_says_so(tmp_path, sin_cos):
    artifact = edgekit.compile(sin_cos["foreign"], tmp_path / "art", target="x86_64", float_fallback=True)
    assert {n["accepted_by"] for n in manifest(artifact)["build"]["integer"]["float_nodes"]} == {"--float-fallback"}


def test_float_nodes_must_name_nodes_of_the_model(tmp_path, cli, sin_cos):
    result = cli("compile", sin_cos["foreign"], "-o", tmp_path / "art", "--float-nodes", "sin_0,not_a_node")
    assert result.exit_code == 2
    assert "has no node named 'not_a_node'" in one_line_error(result)


def test_hard_sigmoid_and_hard_swish_compile_fully_integer(tmp_path, cli):
    """HardSigmoid as paddle2onnx writes it (alpha 0.2, beta 0.5: prim values after import, the old crash)
    and ONNX HardSwish (opset 14): one lookup table, no float node, every MAC in integers."""
    int8 = quantized(tmp_path, model_with([helper.make_node("HardSigmoid", ["a"], ["h"], name="hard_sigmoid", alpha=0.2, beta=0.5),
                                           helper.make_node("HardSwish", ["h"], ["o"], name="hard_swish")], opset=14))
    result = cli("compile", int8, "-o", tmp_path / "art")
    assert result.exit_code == 0, result.stderr
    integer = manifest(tmp_path / "art")["build"]["integer"]
    assert integer["float_nodes"] == [] and integer["integer_ops"]["lookup table"] == 1
    assert integer["float_ops"] == {"multiply": 1}  # the head's dequantize
    assert manifest(tmp_path / "art")["build"]["macs"]["integer_share"] == 1.0


def test_macs_are_counted_from_the_model_shapes():
    model = model_with([helper.make_node("Relu", ["a"], ["o"], name="relu")])
    inputs = model_inputs(model)
    share = mac_share(import_onnx(model, inputs)["main"])
    # conv_in: 8 x 8 x 8 outputs x 3 x 3 x 3; conv_out: 4 x 8 x 8 outputs x 8
    assert share == {"total": 8 * 64 * 27 + 4 * 64 * 8, "integer": 0, "integer_share": 0.0}


def test_check_prints_writes_and_gates_the_integer_mac_share(tmp_path, cli, sin_cos):
    artifact = edgekit.compile(sin_cos["record"], tmp_path / "int8", target="x86_64")
    float_model = sin_cos["record"].with_name("m.onnx")
    floats = edgekit.compile(float_model, tmp_path / "fp32", target="x86_64")
    loose = ("--max-abs", "10", "--min-cosine", "0.5")
    result = cli("check", artifact, "--reference", sin_cos["record"], "--data", sin_cos["calib"], *loose, "--min-int8-macs", "0.99", "--json", tmp_path / "c.json")
    assert result.exit_code == 0, result.stderr
    assert "conv/matmul MACs in integers: 100.0% (" in result.stdout
    assert json.loads((tmp_path / "c.json").read_text())["int8_macs"]["integer_share"] == 1.0
    failed = cli("check", floats, "--reference", float_model, "--data", sin_cos["calib"], *loose, "--min-int8-macs", "0.99")
    assert failed.exit_code == 1
    assert one_line_error(failed, "edgekit: gate failed: ").endswith("gate min_int8_macs: int8_macs = 0, below the minimum 0.99")


def test_an_unnamed_node_goes_by_its_first_output(tmp_path):
    from edgekit.compiler.build_artifact import float_choice

    model = foreign_qdq(tmp_path / "foreign.onnx")
    loaded = onnx.load(str(model))
    next(n for n in loaded.graph.node if n.op_type == "Softplus").name = ""
    onnx.save(loaded, str(model))
    assert float_choice(model, loaded, ("p",)).chosen_by("p") == "--float-nodes"
    with pytest.raises(InputError, match="has no node named 'softplus_7'"):
        float_choice(model, loaded, ("softplus_7",))
