"""The runner on GPU artifacts (edgekit/runtime/runner/src/gpu.cc), with no GPU on this machine.

- Orin (CUDA) and RK3588 (OpenCL) GPU bundles hold what the board needs, and their aarch64
  runner, under qemu, checks the artifact and the inputs first, then stops with one line naming
  what the machine lacks (libcudart.so.13; an OpenCL-enabled TVM runtime).
- The same model built for an x86_64 host with Orin's sm_87 kernels runs end to end through
  the real runner and TVM's real CUDA runtime (libtvm_runtime_cuda.so) over a fake CUDA driver
  (tests/runtime/fake_cuda): a cubin-only driver that logs every call. The log proves the cubin from
  model.so is loaded as is (no compiler), each inference launches every kernel once and ends
  with a synchronize, and the input crosses to the device once, before the timed runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.runtime.bundle import make_bundle
from edgekit.compiler.packed_library import inspect_gpu_library

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
FAKE_CUDA = Path(__file__).resolve().parent / "fake_cuda"
EM_AARCH64 = 183
# This machine's CPU with Orin's GPU, so the x86 runner can load the model (same sm_87 cubin).
X86_WITH_ORIN_GPU = """\
name = "x86_64_sm87"
description = "x86_64 host with Orin's sm_87 GPU: the Orin kernels on a host this machine runs"

[cpu]
triple = "x86_64-linux-gnu"
mcpu = "x86-64-v3"
features = []
cores = 2
simd_bits = 256
vector_registers = 16

[accelerator]
kind = "cuda"
name = "Ampere GPU (sm_87)"
arch = "sm_87"

[peak]
fp32_gflops = 166.4
int8_gops = 332.8
memory_bandwidth_gbs = 48.0
"""


def run(command: list, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=False, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def error_line(result: subprocess.CompletedProcess) -> str:
    """Assert the runner failed with exactly one error line and printed nothing; return the line."""
    assert result.returncode != 0 and result.returncode < 128, (result.returncode, result.stderr)  # an exit, not a signal
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit-runner: error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def elf_machine(path: Path) -> int:
    data = path.read_bytes()[:20]
    assert data[:4] == b"\x7fELF", path
    return struct.unpack_from("<H", data, 18)[0]


def fnv1a64(data: bytes) -> int:
    value = 1469598103934665603
    for byte in data:
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return value


def packed_cubin(library: Path) -> bytes:
    """The cubin inside model.so: the code string of its CUDA module (u64 size, then the bytes)."""
    size = inspect_gpu_library(library).code_bytes
    data = library.read_bytes()
    start = data.index(struct.pack("<Q", size) + b"\x7fELF") + 8
    return data[start : start + size]


def gpu_bundle(onnx: Path, folder: Path, target: str) -> Path:
    artifact = edgekit.compile(onnx, folder / f"artifact-{Path(target).stem}", target=target, device="gpu")
    return make_bundle(artifact, folder / f"bundle-{Path(target).stem}", target=target).folder


# ---- aarch64 bundles under qemu: what a board without the GPU software sees ----


@pytest.fixture(scope="module")
def orin_bundle(demo_onnx, tmp_path_factory) -> Path:
    return gpu_bundle(demo_onnx, tmp_path_factory.mktemp("orin"), "orin")


@pytest.fixture(scope="module")
def rk3588_bundle(demo_onnx, tmp_path_factory) -> Path:
    return gpu_bundle(demo_onnx, tmp_path_factory.mktemp("rk3588"), "rk3588")


def run_under_qemu(bundle: Path, *args) -> subprocess.CompletedProcess:
    return run([*QEMU, bundle / "edgekit-runner", bundle, *args], cwd=bundle)


@pytest.mark.slow
def test_orin_bundle_carries_tvm_cuda_runtime_but_not_the_boards_cuda(orin_bundle):
    manifest = json.loads((orin_bundle / "model" / "manifest.json").read_text())
    major = manifest["runtime"]["gpu"]["runtime"]["cuda_major"]
    names = {p.relative_to(orin_bundle).as_posix() for p in orin_bundle.rglob("*") if p.is_file()}

    assert names == {"edgekit-runner", "libtvm_runtime.so", "libtvm_ffi.so", "libtvm_runtime_cuda.so",
                     "model/model.so", "model/manifest.json", "README.md", "bundle.json"}  # fmt: skip
    assert elf_machine(orin_bundle / "edgekit-runner") == elf_machine(orin_bundle / "libtvm_runtime_cuda.so") == EM_AARCH64
    # The wheel's CUDA backend links the CUDA runtime of the major version the manifest names.
    assert f"libcudart.so.{major}\0".encode() in (orin_bundle / "libtvm_runtime_cuda.so").read_bytes()
    record = json.loads((orin_bundle / "bundle.json").read_text())
    assert "libtvm_runtime_cuda.so" in record["files"]

    readme = (orin_bundle / "README.md").read_text()
    assert f"CUDA {major}" in readme and f"`libcudart.so.{major}`" in readme and "`libcuda.so.1`" in readme
    assert "sm_87" in readme and "--spin" in readme


@pytest.mark.slow
def test_orin_runner_without_cuda_names_the_missing_library(orin_bundle, demo_sample, tmp_path):
    major = json.loads((orin_bundle / "model" / "manifest.json").read_text())["runtime"]["gpu"]["runtime"]["cuda_major"]
    out = tmp_path / "logits.npy"

    line = error_line(run_under_qemu(orin_bundle, "--input", demo_sample, "--output", out))

    assert f"cannot load libcudart.so.{major} (libcudart.so.{major}: cannot open shared object file" in line, line
    assert f"CUDA {major}" in line
    assert not out.exists()


@pytest.mark.slow
def test_orin_runner_checks_artifact_and_inputs_before_looking_for_cuda(orin_bundle, demo_sample, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(orin_bundle, tampered, symlinks=True)
    library = bytearray((tampered / "model" / "model.so").read_bytes())
    library[len(library) // 2] ^= 0x01
    (tampered / "model" / "model.so").write_bytes(library)
    np.save(tmp_path / "small.npy", np.zeros((1, 1, 28, 28), np.float32))

    tampered_line = error_line(run_under_qemu(tampered, "--input", demo_sample))
    shape_line = error_line(run_under_qemu(orin_bundle, "--input", tmp_path / "small.npy"))

    assert "model.so does not match its manifest" in tampered_line and "libcudart" not in tampered_line
    assert "1x1x28x28" in shape_line and "libcudart" not in shape_line


@pytest.mark.slow
def test_rk3588_runner_says_the_pypi_runtime_has_no_opencl(rk3588_bundle, demo_sample):
    names = {p.name for p in rk3588_bundle.iterdir()}
    assert "libtvm_runtime_cuda.so" not in names and not any("opencl" in name.lower() for name in names)
    readme = (rk3588_bundle / "README.md").read_text()
    assert "USE_OPENCL=ON" in readme and "libtvm_runtime_opencl.so" in readme

    result = run_under_qemu(rk3588_bundle, "--input", demo_sample, "--cpus", "0")  # its A76 cores 4-7 may not exist here

    line = error_line(result)
    assert result.returncode == 2
    assert "no OpenCL backend" in line and "USE_OPENCL=ON" in line


# ---- x86_64 with Orin's kernels, over a fake CUDA driver ----


@dataclass(frozen=True)
class FakeCuda:
    folder: Path  # libcuda.so.1 and libcudart.so.N
    log: Path

    def environment(self, **extra) -> dict:
        # No nvcc on PATH, no Python in the runner: nothing could compile CUDA source.
        return {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(self.folder), "FAKE_CUDA_LOG": str(self.log), **extra}

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture(scope="module")
def x86_bundle(demo_onnx, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("x86_sm87")
    (folder / "x86_64_sm87.toml").write_text(X86_WITH_ORIN_GPU)
    return gpu_bundle(demo_onnx, folder, str(folder / "x86_64_sm87.toml"))


@pytest.fixture(scope="module")
def fake_cuda(x86_bundle, tmp_path_factory) -> FakeCuda:
    folder = tmp_path_factory.mktemp("fake_cuda")
    major = json.loads((x86_bundle / "model" / "manifest.json").read_text())["runtime"]["gpu"]["runtime"]["cuda_major"]
    (folder / "cudart.map").write_text(f"libcudart.so.{major} {{ global: cuda*; local: *; }};\n")
    flags = ["gcc", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-shared", "-fPIC", f"-I{FAKE_CUDA}"]
    for command in (
        [*flags, "-Wl,-soname,libcuda.so.1", "-o", folder / "libcuda.so.1", FAKE_CUDA / "fake_libcuda.c"],
        [*flags, f"-Wl,-soname,libcudart.so.{major}", f"-Wl,--version-script={folder / 'cudart.map'}",
         "-o", folder / f"libcudart.so.{major}", FAKE_CUDA / "fake_libcudart.c"],
    ):  # fmt: skip
        result = run(command)
        assert result.returncode == 0, result.stderr
    return FakeCuda(folder, folder / "calls.log")


def test_fake_driver_defines_every_symbol_tvm_cuda_runtime_needs(x86_bundle, fake_cuda):
    # libtvm_runtime_cuda.so is loaded RTLD_NOW: a missing symbol would fail the load, not a call.
    def symbols(path: Path, undefined: bool) -> set[str]:
        listing = run(["nm", "-D", "--undefined-only" if undefined else "--defined-only", path]).stdout
        return {line.split()[-1].split("@")[0] for line in listing.splitlines() if re.search(r"\bcu(da)?[A-Z]", line)}

    needed = symbols(x86_bundle / "libtvm_runtime_cuda.so", undefined=True)
    provided = set().union(*(symbols(lib, undefined=False) for lib in fake_cuda.folder.glob("lib*.so*")))
    assert len(needed) > 30 and needed <= provided, sorted(needed - provided)


def test_x86_gpu_bundle_runs_the_cubin_over_the_fake_driver(x86_bundle, fake_cuda, demo_sample, tmp_path):
    manifest = json.loads((x86_bundle / "model" / "manifest.json").read_text())
    kernels = manifest["runtime"]["gpu"]["kernels"]
    library = inspect_gpu_library(x86_bundle / "model" / "model.so")
    cubin = packed_cubin(x86_bundle / "model" / "model.so")
    warmup, iters = 2, 5
    out = tmp_path / "logits.npy"
    fake_cuda.log.unlink(missing_ok=True)

    result = run([x86_bundle / "edgekit-runner", x86_bundle, "--input", demo_sample, "--output", out,
                  "--iters", iters, "--warmup", warmup], env=fake_cuda.environment())  # fmt: skip

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["iters"], report["warmup"]) == (iters, warmup)
    assert report["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    calls = fake_cuda.calls()
    assert not [c for c in calls if c.startswith("unexpected") or "refused" in c or "missing" in c], calls

    # The cubin packed in model.so reaches the driver once, byte for byte: no compiler involved.
    [load] = [c for c in calls if c.startswith("cuModuleLoadData")]
    assert load == f"cuModuleLoadData cubin bytes={len(cubin)} sm=87 fnv={fnv1a64(cubin):016x}"

    # Every inference launches its kernels once each, in the same order, then synchronizes the
    # stream they went to; warm-up runs included.
    first_launch = next(i for i, c in enumerate(calls) if c.startswith("cuLaunchKernelEx"))
    launches_and_syncs = [c for c in calls[first_launch:] if c.startswith(("cuLaunchKernelEx", "cudaStreamSynchronize"))]
    between_syncs, launched = [], []
    for call in launches_and_syncs:
        if call.startswith("cudaStreamSynchronize"):
            between_syncs.append(launched)
            launched = []
        else:
            launched.append(call.split()[1])
    assert between_syncs == [between_syncs[0]] * (warmup + iters) + [[]] and not launched  # the last sync: the output's copy
    per_inference = between_syncs[0]
    # The manifest counts every compiled kernel; a reshape runs as a view (vm.builtin.reshape in
    # the VM's code), so its kernel is never launched.
    never_launched = set(library.kernels) - set(per_inference)
    assert never_launched == {name for name in library.kernels if name.startswith("reshape")}
    assert len(per_inference) == len(set(per_inference)) == kernels - len(never_launched) > 0
    looked_up = [c.split()[1] for c in calls if c.startswith("cuModuleGetFunction")]
    assert sorted(looked_up) == sorted(per_inference)  # each resolved once, at its first launch
    streams = {c.rsplit("stream=", 1)[1] for c in launches_and_syncs}
    assert len(streams) == 1  # launches and syncs on one stream (the default one: the runner sets none)

    # Host -> device: the weights at vm_initialization, then the input once (4096 bytes, synced)
    # before the first launch; nothing crosses during the runs. Device -> host: the output, once.
    htod = [i for i, c in enumerate(calls) if c.startswith("cudaMemcpyAsync HtoD")]
    assert htod and max(htod) < first_launch
    assert calls[max(htod)].startswith("cudaMemcpyAsync HtoD 4096 ") and calls[max(htod) + 1].startswith("cudaStreamSynchronize")
    dtoh = [c for c in calls if c.startswith("cudaMemcpyAsync DtoH")]
    assert len(dtoh) == 1 and dtoh[0].startswith("cudaMemcpyAsync DtoH 40 ")
    assert calls.index(dtoh[0]) > max(i for i, c in enumerate(calls) if c.startswith("cuLaunchKernelEx"))
    # The fake kernels compute nothing: zeros read back from "device" memory, not a CPU result.
    produced = np.load(out)
    assert produced.shape == (1, 10) and produced.dtype == np.float32 and not produced.any()
    # Without --spin the waiting thread sleeps: blocking sync, set before the context exists.
    assert calls.index("cudaSetDeviceFlags 4") < calls.index(next(c for c in calls if c.startswith("cudaMalloc")))


def test_spin_keeps_cudas_own_wait_policy(x86_bundle, fake_cuda, demo_sample):
    fake_cuda.log.unlink(missing_ok=True)
    result = run([x86_bundle / "edgekit-runner", x86_bundle, "--input", demo_sample, "--spin"], env=fake_cuda.environment())
    assert result.returncode == 0, result.stderr
    assert not [c for c in fake_cuda.calls() if c.startswith("cudaSetDeviceFlags")]


def test_missing_driver_runtime_or_gpu_is_one_line(x86_bundle, fake_cuda, demo_sample, tmp_path):
    # libcudart present, libcuda.so.1 not: the driver is named.
    no_driver = tmp_path / "no_driver"
    no_driver.mkdir()
    for cudart in fake_cuda.folder.glob("libcudart.so.*"):
        shutil.copy2(cudart, no_driver / cudart.name)
    env = {**fake_cuda.environment(), "LD_LIBRARY_PATH": str(no_driver)}
    line = error_line(run([x86_bundle / "edgekit-runner", x86_bundle, "--input", demo_sample], env=env))
    assert "cannot load libcuda.so.1" in line

    # A bundle that lost TVM's CUDA backend says so, and how to get it back.
    partial = tmp_path / "partial"
    shutil.copytree(x86_bundle, partial)
    (partial / "libtvm_runtime_cuda.so").unlink()
    result = run([partial / "edgekit-runner", partial, "--input", demo_sample], env=fake_cuda.environment())
    line = error_line(result)
    assert result.returncode == 2 and "no libtvm_runtime_cuda.so beside edgekit-runner" in line and "edgekit bundle" in line

    # Libraries all there, but the driver finds no GPU: a runtime failure, in the driver's words.
    result = run([x86_bundle / "edgekit-runner", x86_bundle, "--input", demo_sample], env=fake_cuda.environment(FAKE_CUDA_NO_DEVICE="1"))
    line = error_line(result)
    assert result.returncode == 1 and "no usable CUDA device" in line and "no CUDA-capable device is detected" in line


def test_gpu_manifest_the_runner_cannot_drive_is_refused(x86_bundle, demo_sample, tmp_path):
    cases = {
        "vulkan": (lambda gpu: gpu.update(device="vulkan"), "'vulkan' GPU, which this runner does not support"),
        "cpu first": (lambda gpu: gpu["runtime"].update(vm_initialization=[[1, 0], [2, 0]]), "must list the cuda device first"),
        "not pairs": (lambda gpu: gpu["runtime"].update(vm_initialization=[[2, 0, 2], [1, 0]]), "[device type, device id] pairs"),
    }
    for name, (change, words) in cases.items():
        bundle = tmp_path / name.replace(" ", "_")
        shutil.copytree(x86_bundle, bundle)
        manifest = json.loads((bundle / "model" / "manifest.json").read_text())
        change(manifest["runtime"]["gpu"])
        (bundle / "model" / "manifest.json").write_text(json.dumps(manifest))

        result = run([bundle / "edgekit-runner", bundle, "--input", demo_sample], env={"PATH": os.environ["PATH"]})

        line = error_line(result)
        assert result.returncode == 2 and words in line, (name, line)
