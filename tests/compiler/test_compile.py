"""compile: foreign ONNX (older opsets, other exporters' idioms), manifests, shapes, atomicity."""

from __future__ import annotations

import json
import tomllib
from importlib import metadata

import numpy as np
import onnx
import pytest

import edgekit
from edgekit.files import sha256_file
from edgekit.reference import Reference
from onnx_zoo import ZOO, sample_inputs, tf2onnx_flatten_reduceprod

from conftest import REPO


@pytest.mark.parametrize("name", sorted(ZOO))
def test_foreign_onnx_compiles_and_matches_onnxruntime(name, tmp_path):
    model = ZOO[name]()
    source = tmp_path / f"{name}.onnx"
    onnx.save(model, source)

    artifact = edgekit.compile(source, tmp_path / name)

    compiled = edgekit.load(artifact)
    feeds = sample_inputs(model, seed=3)
    got = compiled(**feeds)
    want = Reference(model)(feeds)
    assert list(got) == [o.name for o in model.graph.output]
    for output, expected in want.items():
        assert got[output].shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(got[output] - expected).max() <= 1e-4 * scale, output


def test_folding_makes_a_runtime_shape_reshape_importable(tmp_path):
    model = tf2onnx_flatten_reduceprod()
    # TVM alone rejects this model: the Reshape target is computed by ReduceProd over a Shape.
    from tvm.relax.frontend.onnx import from_onnx

    with pytest.raises(Exception, match="Reshape requires the input new shape to be Shape"):
        from_onnx(model, shape_dict={"input": [1, 6, 6, 2]})
    source = tmp_path / "flatten.onnx"
    onnx.save(model, source)

    artifact = edgekit.compile(source, tmp_path / "flatten")

    folding = json.loads((artifact / "manifest.json").read_text())["build"]["folding"]
    assert folding["shape_ops_before"] == 1 and folding["shape_ops_after"] == 0
    assert folding["verified"] is True and folding["max_abs_diff"] <= 1e-6
    feeds = sample_inputs(model, seed=5)
    np.testing.assert_allclose(edgekit.load(artifact)(**feeds)["dense"], Reference(model)(feeds)["dense"], atol=1e-5)


def test_manifest_describes_the_artifact(demo_onnx, demo_artifact):
    manifest = json.loads((demo_artifact / "manifest.json").read_text())
    toml = tomllib.loads((REPO / "targets" / "x86_64.toml").read_text())

    assert manifest["inputs"] == [{"name": "image", "shape": [1, 1, 32, 32], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    assert manifest["target"]["name"] == "x86_64"
    assert manifest["tvm_target"]["mtriple"] == toml["cpu"]["triple"]
    assert manifest["tvm_target"]["mcpu"] == toml["cpu"]["mcpu"]
    assert manifest["source"]["sha256"] == sha256_file(demo_onnx)
    assert manifest["versions"]["tvm"] == metadata.version("apache-tvm") and manifest["versions"]["tvm_ffi"] == metadata.version("apache-tvm-ffi")
    assert manifest["build"]["command"].startswith("edgekit compile ")
    assert manifest["build"]["options"]["target"] == "x86_64"
    files = {p.name for p in demo_artifact.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files == {"model.so"}
    assert all(manifest["files"][f] == sha256_file(demo_artifact / f) for f in files)
    assert manifest["runtime"]["spin_count"] == 0


def test_shape_option_fixes_a_dynamic_batch(tmp_path, cli):
    model = ZOO["dynamic_reshape_cnn"]()
    source = tmp_path / "cnn.onnx"
    onnx.save(model, source)

    result = cli("compile", source, "-o", tmp_path / "cnn4", "--shape", "input=4x3x16x16")

    assert result.exit_code == 0, result.stderr
    compiled = edgekit.load(tmp_path / "cnn4")
    assert compiled.inputs[0].shape == (4, 3, 16, 16)
    assert compiled.outputs[0].shape == (4, 10)
    feeds = sample_inputs(model, seed=1, batch=4)
    np.testing.assert_allclose(compiled(**feeds)["output"], Reference(model)(feeds)["output"], atol=1e-5)


def test_symbolic_batch_defaults_to_one(tmp_path):
    model = ZOO["dynamic_reshape_cnn"]()
    source = tmp_path / "cnn.onnx"
    onnx.save(model, source)
    compiled = edgekit.load(edgekit.compile(source, tmp_path / "cnn1"))
    assert compiled.inputs[0].shape == (1, 3, 16, 16)


def test_same_model_builds_the_same_library(demo_onnx, demo_artifact, tmp_path):
    again = edgekit.compile(demo_onnx, tmp_path / "again")
    assert sha256_file(again / "model.so") == sha256_file(demo_artifact / "model.so")


def test_failed_compile_keeps_the_previous_artifact(demo_artifact, tmp_path, cli):
    import shutil

    target = tmp_path / "kept"
    shutil.copytree(demo_artifact, target)
    before = {p.name: sha256_file(p) for p in target.iterdir()}
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")

    result = cli("compile", broken, "-o", target)

    assert result.exit_code == 2
    assert {p.name: sha256_file(p) for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".kept")] == []


def test_compile_prints_the_interface(cli, demo_onnx, tmp_path):
    result = cli("compile", demo_onnx, "-o", tmp_path / "art", "--name", "digits")
    assert result.exit_code == 0, result.stderr
    assert "image" in result.stdout and "1x1x32x32" in result.stdout and "logits" in result.stdout
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["name"] == "digits"


def _two_input_sequence_model():
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["s"], name="add"), helper.make_node("MatMul", ["s", "w"], ["out"], name="proj")],
        "seq",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "seq", 8]) for n in ("x", "y")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", 4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_dim_option_sizes_a_named_dimension_in_every_input(tmp_path, cli):
    source = tmp_path / "seq.onnx"
    onnx.save(_two_input_sequence_model(), source)

    missing = cli("compile", source, "-o", tmp_path / "no")
    assert missing.exit_code == 2 and "--dim seq=SIZE" in missing.stderr

    result = cli("compile", source, "-o", tmp_path / "seq5", "--dim", "seq=5")
    assert result.exit_code == 0, result.stderr
    compiled = edgekit.load(tmp_path / "seq5")
    assert [spec.shape for spec in compiled.inputs] == [(1, 5, 8), (1, 5, 8)]
    assert compiled.outputs[0].shape == (1, 5, 4)
    assert "--dim seq=5" in json.loads((tmp_path / "seq5" / "manifest.json").read_text())["build"]["command"]
