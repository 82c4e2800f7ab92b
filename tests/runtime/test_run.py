"""run: the artifact through the CLI and the Python API, timing statistics, determinism."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import edgekit
from edgekit.reference import Reference

from conftest import EVAL_DATA, REPO


def test_run_writes_outputs_matching_onnxruntime(cli, demo_artifact, demo_onnx, demo_sample, tmp_path):
    out = tmp_path / "out.npz"
    result = cli("run", demo_artifact, "--input", demo_sample, "-o", out)

    assert result.exit_code == 0, result.stderr
    with np.load(out) as saved:
        logits = saved["logits"]
    want = Reference(demo_onnx)({"image": np.load(demo_sample)})["logits"]
    assert logits.shape == (1, 10)
    assert np.abs(logits - want).max() <= 1e-4
    assert int(logits.argmax()) == int(want.argmax())


@pytest.mark.parametrize("form", ["named", "npz"])
def test_inputs_by_name_or_npz(form, cli, demo_artifact, demo_sample, tmp_path):
    if form == "named":
        arg = f"image={demo_sample}"
    else:
        arg = tmp_path / "in.npz"
        np.savez(arg, image=np.load(demo_sample))
    out = tmp_path / "out.npy"
    result = cli("run", demo_artifact, "--input", arg, "-o", out)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(out), edgekit.load(demo_artifact)(image=np.load(demo_sample))["logits"])


def test_repeat_prints_and_writes_latency_statistics(cli, demo_artifact, demo_sample, tmp_path):
    stats_path = tmp_path / "stats.json"
    result = cli("run", demo_artifact, "--input", demo_sample, "--repeat", "20", "--warmup", "2", "--threads", "1", "--json", stats_path)

    assert result.exit_code == 0, result.stderr
    for column in ("p50 ms", "p90 ms", "p99 ms", "mean ms", "CPU ms / inference"):
        assert column in result.stdout
    stats = json.loads(stats_path.read_text())
    assert stats["runs"] == 20 and stats["warmup"] == 2 and stats["threads"] == 1
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["cpu_ms_per_inference"] > 0


def test_python_api_calls_by_name_and_position(demo_artifact):
    model = edgekit.load(demo_artifact)
    with np.load(EVAL_DATA) as data:
        images, labels = data["image"][:20], data["label"][:20]
    by_name = [model(image=x)["logits"] for x in images]
    by_position = [model(x)["logits"] for x in images]
    np.testing.assert_array_equal(by_name, by_position)
    accuracy = np.mean([int(logits.argmax()) == label for logits, label in zip(by_name, labels)])
    assert accuracy >= 0.95  # the bundled model really classifies digits


def test_repeated_runs_are_bit_identical(demo_artifact, demo_sample):
    model = edgekit.load(demo_artifact)
    x = np.load(demo_sample)
    first = model(image=x)["logits"]
    for _ in range(20):
        assert np.array_equal(model(image=x)["logits"], first)


def test_multi_input_multi_output_model(cli, tmp_path):
    source = tmp_path / "two.onnx"
    edgekit.export(f"{REPO / 'tests' / 'torch_models.py'}:two_heads", source)
    artifact = edgekit.compile(source, tmp_path / "two")
    names = [i.name for i in onnx.load(source).graph.input]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((1, 1, 8, 8)).astype(np.float32), rng.standard_normal((1, 6)).astype(np.float32)]
    args = []
    for name, array in zip(names, arrays):
        np.save(tmp_path / f"{name}.npy", array)
        args += ["--input", f"{name}={tmp_path / f'{name}.npy'}"]

    result = cli("run", artifact, *args, "-o", tmp_path / "out.npz")

    assert result.exit_code == 0, result.stderr
    want = Reference(source)(dict(zip(names, arrays)))
    with np.load(tmp_path / "out.npz") as got:
        assert sorted(got.files) == sorted(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_fixed_rate_reports_cpu_per_wall_second(cli, demo_artifact, demo_sample, tmp_path):
    stats_path = tmp_path / "rate.json"
    result = cli("run", demo_artifact, "--input", demo_sample, "--rate", "50", "--duration", "1", "--json", stats_path)

    assert result.exit_code == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == 50 and stats["rate_hz"] == 50
    assert 0.95 <= stats["duration_s"] <= 1.5
    # A ~4 ms inference at 50 Hz is ~20% of a core; idle threads must not spin the rest away.
    assert 0 < stats["cpu_seconds_per_wall_second"] < 0.6
    assert stats["latency"]["runs"] == 50


def test_an_artifact_rebuilt_in_place_loads_its_new_code(tmp_path, demo_onnx):
    """The dynamic loader caches libraries by path; load must still run the file it just verified."""
    import onnx
    from onnx import numpy_helper

    import edgekit

    model = onnx.load(str(demo_onnx))
    gemm_bias = next(n for n in model.graph.node if n.op_type == "Gemm").input[2]
    init = next(i for i in model.graph.initializer if i.name == gemm_bias)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 100.0, gemm_bias))
    shifted = tmp_path / "shifted.onnx"
    onnx.save(model, str(shifted))

    folder = tmp_path / "artifact"
    x = np.zeros((1, 1, 32, 32), np.float32)
    first = edgekit.load(edgekit.compile(demo_onnx, folder))(image=x)["logits"]
    second = edgekit.load(edgekit.compile(shifted, folder))(image=x)["logits"]
    np.testing.assert_allclose(second - first, 100.0, rtol=1e-5)
