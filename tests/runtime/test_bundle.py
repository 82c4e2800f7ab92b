"""bundle: what a board gets, run here natively (x86_64) and under qemu-aarch64 (arm boards)."""

from __future__ import annotations

import json
import subprocess
import tarfile

import numpy as np
import pytest

import edgekit
from edgekit.files import sha256_file
from edgekit.reference import Reference

from conftest import one_line_error

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]


def _run_bundle(bundle, sample, out, prefix=(), *extra):
    command = [*prefix, str(bundle / "edgekit-runner"), str(bundle), "--input", f"image={sample}", "--output", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=bundle)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_x86_bundle_runner_is_bit_identical_to_edgekit_run(cli, demo_artifact, demo_sample, tmp_path):
    result = cli("bundle", demo_artifact, "-o", tmp_path / "bundle", "--tar")
    assert result.exit_code == 0, result.stderr
    bundle = tmp_path / "bundle"

    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert names == {"edgekit-runner", "libtvm_runtime.so", "libtvm_ffi.so", "model/model.so", "model/manifest.json", "README.md", "bundle.json"}
    record = json.loads((bundle / "bundle.json").read_text())
    assert record["target"] == "x86_64" and record["triple"] == "x86_64-linux-gnu"
    assert all(record["files"][name] == sha256_file(bundle / name) for name in names - {"bundle.json"})
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        assert "bundle/edgekit-runner" in tar.getnames()

    report = _run_bundle(bundle, demo_sample, tmp_path / "runner.npy", (), "--iters", "5")
    assert cli("run", demo_artifact, "--input", demo_sample, "-o", tmp_path / "python.npy").exit_code == 0
    assert np.array_equal(np.load(tmp_path / "runner.npy"), np.load(tmp_path / "python.npy"))
    assert report["iters"] == 5 and report["max_rss_mb"] < 100


def test_bundle_refuses_another_targets_artifact(cli, demo_artifact, tmp_path):
    result = cli("bundle", demo_artifact, "-o", tmp_path / "b", "--target", "rk3588")
    assert result.exit_code == 2
    assert "built for x86_64-linux-gnu, target rk3588 is aarch64-linux-gnu" in one_line_error(result)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["rk3588", "arm64", "orin"])
def test_arm_bundle_under_qemu_agrees_with_onnxruntime(target, demo_onnx, demo_sample, tmp_path):
    artifact = edgekit.compile(demo_onnx, tmp_path / f"digits_{target}", target=target)
    from edgekit.runtime.bundle import make_bundle

    bundle = make_bundle(artifact, tmp_path / f"bundle_{target}").folder
    out = tmp_path / "out.npy"

    report = _run_bundle(bundle, demo_sample, out, QEMU, "--cpus", "0", "--threads", "1")

    expected = Reference(demo_onnx)({"image": np.load(demo_sample)})["logits"]
    assert np.abs(np.load(out) - expected).max() <= 1e-5
    assert int(np.load(out).argmax()) == int(expected.argmax())
    assert report["threads"] == 1 and report["cpus"] == [0]


@pytest.mark.slow
def test_orin_gpu_artifact_carries_sm87_cubin_and_aarch64_host(cli, demo_onnx, tmp_path):
    result = cli("compile", demo_onnx, "--target", "orin", "--device", "gpu", "-o", tmp_path / "orin")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "orin" / "manifest.json").read_text())
    gpu = manifest["runtime"]["gpu"]
    assert gpu["device"] == "cuda" and gpu["arch"] == "sm_87" and gpu["binary_format"] == "cubin"
    assert gpu["kernels"] == gpu["fused_ops"] > 0
    assert gpu["cuda_version"].split(".")[0] == str(gpu["runtime"]["cuda_major"])
    from edgekit.compiler.packed_library import inspect_gpu_library

    library = inspect_gpu_library(tmp_path / "orin" / "model.so")
    assert (library.machine, library.device, library.code_format, library.arch) == ("aarch64", "cuda", "cubin", "sm_87")
    assert len(library.kernels) == gpu["kernels"]
