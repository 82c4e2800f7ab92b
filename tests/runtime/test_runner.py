"""The C++ on-device runner (edgekit/runner): built for x86_64 and run here; built for rk3588 and
run under qemu-aarch64. Its outputs must match the Python path bit for bit on the same machine,
and every bad input must end in one error line, a non-zero exit and no output file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edgekit
from edgekit.runtime.runner import RunnerBuild, build_runner
from edgekit.target_spec import load_target

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]


@pytest.fixture(scope="session")
def runner(workdir) -> RunnerBuild:
    return build_runner(load_target("x86_64"), workdir / "runner-x86_64")


def run_runner(build: RunnerBuild, *args, prefix: list[str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [*(prefix or []), str(build.binary), *map(str, args)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)


def report_of(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return json.loads(lines[0])


def python_outputs(artifact: Path, sample: Path) -> np.ndarray:
    return edgekit.load(artifact)(image=np.load(sample))["logits"]


def test_build_ships_binary_beside_its_runtime(runner):
    assert runner.binary.name == "edgekit-runner" and os.access(runner.binary, os.X_OK)
    assert sorted(lib.name for lib in runner.runtime_libs) == ["libtvm_ffi.so", "libtvm_runtime.so"]
    assert all(lib.parent == runner.binary.parent and lib.stat().st_size > 1_000_000 for lib in runner.runtime_libs)
    assert runner.triple == "x86_64-linux-gnu"


def test_output_is_bit_identical_to_python(runner, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "logits.npy"
    report_of(run_runner(runner, demo_artifact, "--input", demo_sample, "--output", out))
    produced, expected = np.load(out), python_outputs(demo_artifact, demo_sample)
    assert produced.dtype == expected.dtype == np.float32 and produced.shape == expected.shape == (1, 10)
    assert np.array_equal(produced, expected)


def test_repeated_runs_give_identical_bytes(runner, demo_artifact, demo_sample, tmp_path):
    paths = [tmp_path / f"run{i}.npy" for i in range(3)]
    for i, path in enumerate(paths):
        report_of(run_runner(runner, demo_artifact, "--input", f"image={demo_sample}", "--output", path, "--iters", 1 + 5 * i))
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()


def test_npz_output_holds_outputs_by_name(runner, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "outputs.npz"
    report_of(run_runner(runner, demo_artifact, "--input", demo_sample, "--output", out))
    with np.load(out) as npz:
        assert npz.files == ["logits"]
        assert np.array_equal(npz["logits"], python_outputs(demo_artifact, demo_sample))


def test_bundle_with_artifact_in_model_folder(runner, demo_artifact, demo_sample, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(demo_artifact, bundle / "model")
    out = tmp_path / "logits.npy"
    report_of(run_runner(runner, bundle, "--input", demo_sample, "--output", out))
    assert np.array_equal(np.load(out), python_outputs(demo_artifact, demo_sample))


def test_json_report_fields_are_sane(runner, demo_artifact, demo_sample):
    report = report_of(run_runner(runner, demo_artifact, "--input", demo_sample, "--iters", 20, "--warmup", 2))
    manifest = json.loads((demo_artifact / "manifest.json").read_text())
    assert report["model"] == manifest["name"] == "digits"
    assert (report["iters"], report["warmup"]) == (20, 2)
    assert report["threads"] == manifest["runtime"]["threads"]
    assert report["cpus"] == sorted(os.sched_getaffinity(0))
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert 0 < latency["mean"] <= latency["max"]
    assert 0 < report["cpu_ms_per_inference"] < 10 * latency["max"]
    assert 0 < report["max_rss_mb"] < 200  # the Python VM process needs ~400 MB
    assert report["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    assert "rate_hz" not in report and "cpu_seconds_per_wall_second" not in report


def test_fixed_rate_uses_less_than_one_core(runner, demo_artifact, demo_sample):
    report = report_of(run_runner(runner, demo_artifact, "--input", demo_sample, "--rate", 50, "--duration", 1))
    assert report["rate_hz"] == 50
    assert report["iters"] == 50
    assert 0 < report["cpu_seconds_per_wall_second"] < 1.0
    assert report["missed_deadlines"] >= 0


def test_pinned_to_core_zero(runner, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "logits.npy"
    report = report_of(run_runner(runner, demo_artifact, "--input", demo_sample, "--cpus", "0", "--output", out))
    assert report["cpus"] == [0] and report["threads"] == 1  # threads default: at most one per core
    assert np.array_equal(np.load(out), python_outputs(demo_artifact, demo_sample))


@pytest.fixture(scope="module")
def two_in_two_out(workdir) -> Path:
    """A model with inputs a, b and outputs sum, product: exercises naming and .npz outputs."""
    import onnx
    from onnx import TensorProto, helper

    a, b = (helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3]) for name in "ab")
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3]) for name in ("sum", "product")]
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["product"])]
    model = helper.make_model(helper.make_graph(nodes, "two", [a, b], outputs), opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, workdir / "two.onnx")
    return edgekit.compile(workdir / "two.onnx", workdir / "two", target="x86_64")


def test_several_inputs_and_outputs_by_name(runner, two_in_two_out, tmp_path):
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal((2, 3)).astype(np.float32) for name in "ab"}
    for name, array in feeds.items():
        np.save(tmp_path / f"{name}.npy", array)
    out = tmp_path / "outputs.npz"
    # Inputs are matched by name, not by order.
    report = report_of(run_runner(runner, two_in_two_out, "--input", f"b={tmp_path / 'b.npy'}", "--input", f"a={tmp_path / 'a.npy'}", "--output", out))
    assert [o["name"] for o in report["outputs"]] == ["sum", "product"]
    expected = edgekit.load(two_in_two_out)(**feeds)
    with np.load(out) as npz:
        assert sorted(npz.files) == ["product", "sum"]
        assert all(np.array_equal(npz[name], expected[name]) for name in ("sum", "product"))


@pytest.mark.parametrize(
    ("inputs", "output", "words"),
    [
        (["a.npy"], "o.npz", "needs NAME="),
        (["a=a.npy"], "o.npz", "input 'b' is missing"),
        (["a=a.npy", "b=a.npy"], "o.npy", "is not .npz"),
    ],
)
def test_several_inputs_and_outputs_misuse(runner, two_in_two_out, tmp_path, inputs, output, words):
    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    args = [arg for given in inputs for arg in ("--input", given.replace("a.npy", str(tmp_path / "a.npy")))]
    result = run_runner(runner, two_in_two_out, *args, "--output", tmp_path / output)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert not (tmp_path / output).exists()


def _tampered(artifact: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tampered"
    shutil.copytree(artifact, copy)
    library = bytearray((copy / "model.so").read_bytes())
    library[len(library) // 2] ^= 0x01
    (copy / "model.so").write_bytes(library)
    return copy


def _write_npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _bad_header(path: Path) -> Path:
    path.write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (1,}  \n")
    return path


def _overflowing_shape(path: Path) -> Path:
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (281474976710656, 281474976710656), }"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    return path


def _truncated(path: Path) -> Path:
    np.save(path, np.zeros((1, 1, 32, 32), np.float32))
    path.write_bytes(path.read_bytes()[:-4])
    return path


# case -> (make the arguments from artifact, sample, tmp_path; a word the error line must contain)
BAD_INPUTS = {
    "missing file": (lambda a, s, t: [a, "--input", t / "nope.npy"], "not found"),
    "bad npy header": (lambda a, s, t: [a, "--input", _bad_header(t / "bad.npy")], "header"),
    "overflowing shape": (lambda a, s, t: [a, "--input", _overflowing_shape(t / "huge.npy")], "too large"),
    "truncated data": (lambda a, s, t: [a, "--input", _truncated(t / "short.npy")], "data bytes"),
    "wrong shape": (lambda a, s, t: [a, "--input", _write_npy(t / "x.npy", np.zeros((1, 1, 28, 28), np.float32))], "1x1x28x28"),
    "wrong dtype": (lambda a, s, t: [a, "--input", _write_npy(t / "x.npy", np.zeros((1, 1, 32, 32), np.float64))], "float64"),
    "fortran order": (lambda a, s, t: [a, "--input", _write_npy(t / "x.npy", np.asfortranarray(np.ones((1, 1, 32, 32), np.float32)))], "Fortran"),
    "big endian": (lambda a, s, t: [a, "--input", _write_npy(t / "x.npy", np.zeros((1, 1, 32, 32), ">f4"))], ">f4"),
    "unknown input name": (lambda a, s, t: [a, "--input", f"pixels={s}"], "'pixels' is not an input"),
    "input given twice": (lambda a, s, t: [a, "--input", f"image={s}", "--input", f"image={s}"], "twice"),
    "no input": (lambda a, s, t: [a], "no --input"),
    "tampered model.so": (lambda a, s, t: [_tampered(a, t), "--input", s], "model.so does not match"),
    "missing bundle": (lambda a, s, t: [t / "no-such-artifact", "--input", s], "not found"),
    "unavailable cores": (lambda a, s, t: [a, "--input", s, "--cpus", "1023"], "not available"),
    "bad option value": (lambda a, s, t: [a, "--input", s, "--iters", "0"], "--iters"),
    "unknown option": (lambda a, s, t: [a, "--input", s, "--fast"], "--fast"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_one_line_and_no_output(case, runner, demo_artifact, demo_sample, tmp_path):
    make_args, expected_words = BAD_INPUTS[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_runner(runner, *make_args(demo_artifact, demo_sample, tmp_path), "--output", out_dir / "logits.npy")
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgekit-runner: error: ") and expected_words in lines[0], lines[0]
    assert result.stdout == ""
    assert list(out_dir.iterdir()) == []  # neither the output nor a temporary file


def test_library_that_is_not_a_model_is_a_runtime_failure(runner, demo_artifact, demo_sample, tmp_path):
    artifact = tmp_path / "impostor"
    shutil.copytree(demo_artifact, artifact)
    library = artifact / "model.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-x", "c++", "-", "-o", str(library)], input="int answer() { return 42; }\n", text=True, check=True)
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"]["model.so"] = hashlib.sha256(library.read_bytes()).hexdigest()  # a consistent, wrong artifact
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    result = run_runner(runner, artifact, "--input", demo_sample)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "has no function 'vm_load_executable'" in result.stderr


@pytest.mark.slow
def test_arm64_runner_under_qemu_agrees_with_onnx_runtime(workdir, runner, demo_onnx, demo_sample, tmp_path):
    artifact = edgekit.compile(demo_onnx, workdir / "digits-rk3588", target="rk3588")
    build = build_runner(load_target("rk3588"), workdir / "runner-rk3588")
    assert build.triple == "aarch64-linux-gnu"
    assert b"\xb7\x00" == build.binary.read_bytes()[18:20]  # ELF e_machine: AArch64
    out = tmp_path / "logits.npy"
    report = report_of(run_runner(build, artifact, "--input", demo_sample, "--output", out, "--cpus", "0", "--threads", "1", prefix=QEMU))
    assert report["cpus"] == [0] and report["threads"] == 1

    x = np.load(demo_sample)
    session = ort.InferenceSession(str(demo_onnx), providers=["CPUExecutionProvider"])
    reference = session.run(None, {"image": x})[0]
    produced = np.load(out)
    assert produced.shape == reference.shape and produced.dtype == reference.dtype
    assert float(np.abs(produced - reference).max()) < 1e-5

    # The x86 runner refuses an aarch64 artifact before loading it.
    result = run_runner(runner, artifact, "--input", demo_sample)
    assert result.returncode == 2 and "built for aarch64-linux-gnu but this runner is for x86_64" in result.stderr

    # rk3588's manifest pins to its A76 cores (cpu_ids in its TOML): where they do not exist, a clear error.
    result = run_runner(build, artifact, "--input", demo_sample, prefix=QEMU)
    big_cores = load_target("rk3588").cpu.cpu_ids
    if not set(big_cores) <= os.sched_getaffinity(0):
        assert result.returncode == 2 and f"cores {','.join(map(str, big_cores))} are not available" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
