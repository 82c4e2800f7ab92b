"""GPU builds (edgekit/compiler/gpu.py): Orin's CUDA kernels as an sm_87 cubin, RK3588's as OpenCL C.

Nothing runs on a GPU here. What is checked: the board library is an aarch64 ELF; it packs an
sm_87 cubin and no CUDA source; every fused op of the demo became a GPU kernel; and TVM's own
CUDA loader (libtvm_runtime_cuda.so, on this x86 machine with a stub driver) accepts the
rewritten module without compiling anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import subprocess
import sys
import textwrap

import onnx
import pytest
import tvm
import tvm_ffi
from tvm import relax

from edgekit.compiler.fold import fold_model
from edgekit.compiler.gpu import build_cuda, build_gpu, build_opencl, export_gpu_library, gpu_summary, tvm_gpu_target
from edgekit.compiler.packed_library import DeviceModule, inspect_gpu_library, read_blob
from edgekit.compiler.relax_import import import_onnx
from edgekit.errors import InputError
from edgekit.onnx_model import model_inputs, resolve_static_shapes
from edgekit.target_spec import load_target

EM_AARCH64, EM_CUDA = 183, 190
# Each compute-heavy ONNX op of the demo, and the token TVM puts in the name of its kernel.
HEAVY_OPS = {"Conv": "conv2d", "Gemm": "matmul", "MaxPool": "max_pool2d", "ReduceMean": "mean"}


@pytest.fixture(scope="module")
def demo_model(demo_onnx) -> onnx.ModelProto:
    return onnx.load(demo_onnx)


@pytest.fixture(scope="module")
def demo_module(demo_model) -> tvm.IRModule:
    inputs = resolve_static_shapes(model_inputs(demo_model), {})
    folded, _ = fold_model(demo_model, inputs)
    return import_onnx(folded, inputs)


@pytest.fixture(scope="module")
def orin(demo_module, tmp_path_factory):
    target = load_target("orin")
    build = build_cuda(demo_module, target)
    path = tmp_path_factory.mktemp("orin") / "model.so"
    library = export_gpu_library(build, path, target)
    return build, path, library


@pytest.fixture(scope="module")
def rk3588(demo_module, tmp_path_factory):
    target = load_target("rk3588")
    build = build_opencl(demo_module, target)
    path = tmp_path_factory.mktemp("rk3588") / "model.so"
    library = export_gpu_library(build, path, target)
    return build, path, library


def elf_header(data: bytes) -> tuple[int, int]:
    """(e_machine, e_flags) read straight from an ELF64 LE header."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    return struct.unpack_from("<H", data, 18)[0], struct.unpack_from("<I", data, 48)[0]


def nvcc_release() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=True).stdout
    return re.search(r", V(\d+\.\d+\.\d+)", out).group(1)


def test_orin_library_is_aarch64_with_an_sm87_cubin_and_no_cuda_source(orin):
    build, path, library = orin
    data = path.read_bytes()

    assert elf_header(data)[0] == EM_AARCH64
    machine, flags = elf_header(build.device_binary)
    assert machine == EM_CUDA
    assert (flags >> 8) & 0xFF == 87  # CUDA ELF ABI v8 (CUDA 13) keeps the SM in bits 8-15
    assert build.device_binary in data
    assert b'extern "C" __global__' not in data  # no source left for a load-time compiler
    assert (library.machine, library.device, library.code_format, library.arch) == ("aarch64", "cuda", "cubin", "sm_87")
    assert len(library.kernels) == build.info.kernels > 0
    assert build.info.binary_format == "cubin"
    assert build.info.cuda_version == nvcc_release()


def test_every_compute_op_of_the_demo_is_a_gpu_kernel(orin, demo_model, demo_module):
    build, _, library = orin
    target = tvm.target.Target(tvm_gpu_target(load_target("orin")))
    with target:
        lowered = relax.get_default_pipeline(target)(demo_module)
    prim_funcs = [gv.name_hint for gv, func in lowered.functions.items() if isinstance(func, tvm.tirx.PrimFunc)]

    assert build.info.fused_ops == len(prim_funcs) > 0
    assert all(f"{name}_kernel" in library.kernels for name in prim_funcs)
    for op_type, token in HEAVY_OPS.items():
        nodes = sum(node.op_type == op_type for node in demo_model.graph.node)
        kernels = [k for k in library.kernels if token in k]
        assert len(kernels) == nodes > 0, (op_type, kernels)


def test_plain_export_would_ship_cuda_source_to_the_board(orin, tmp_path):
    # Why export_gpu_library exists: TVM 0.27 keeps the CUDA source (format "cuda"), which the
    # board's loader can only compile through Python's tvm_callback_cuda_compile.
    from tvm.support import cc

    build, _, _ = orin
    path = tmp_path / "stock.so"
    build.executable.export_library(str(path), fcompile=cc.cross_compiler(load_target("orin").cpu.cross_compiler))

    assert inspect_gpu_library(path).code_format == "cuda"
    assert b'extern "C" __global__' in path.read_bytes()


def test_packed_module_bytes_round_trip(orin):
    build, _, _ = orin
    blob = bytes(tvm_ffi.get_global_func("runtime.ModulePackImportsToTensor")(build.executable.mod).numpy())
    _, _, entries = read_blob(blob)
    [cuda] = [data for kind, data in entries if kind == "cuda"]
    module = DeviceModule.from_bytes(cuda)

    assert module.to_bytes() == cuda
    assert module.fmt == "cuda"
    assert len(module.kernels) == build.info.kernels


LOADER_CHECK = textwrap.dedent(
    """
    import ctypes, os, sys
    import tvm
    # A driver stub with the symbols libtvm_runtime_cuda.so links against: enough to load modules.
    ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(sys.argv[2], mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(os.path.join(os.path.dirname(tvm.__file__), "lib", "libtvm_runtime_cuda.so"), mode=ctypes.RTLD_GLOBAL)
    # No nvcc on PATH: loading a module that still held source would fail in the compile callback.
    os.environ["PATH"] = "/usr/bin:/bin"
    os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"
    library = tvm.runtime.load_module(sys.argv[3])
    [cuda] = [m for m in library.imports[0].imports if m.kind == "cuda"]
    for name in sys.argv[4].split(","):
        assert cuda.get_function(name) is not None, name
    assert cuda.inspect_source("cuda") == ""
    print("loaded", len(sys.argv[4].split(",")), "kernels")
    """
)


def test_tvm_cuda_loader_takes_the_cubin_without_compiling(demo_module, tmp_path):
    # Same build with an x86_64 host so this machine can dlopen it.
    orin = load_target("orin")
    x86 = dataclasses.replace(load_target("x86_64"), accelerator=orin.accelerator)
    build = build_cuda(demo_module, x86)
    library = export_gpu_library(build, tmp_path / "model.so", x86)
    symbols = subprocess.run(["nm", "-D", "--undefined-only", _runtime_cuda()], capture_output=True, text=True, check=True).stdout
    stub = "".join(f"int {name}(void) {{ return 999; }}\n" for name in sorted(set(re.findall(r"\bU (cu[A-Z]\w*)", symbols))))
    (tmp_path / "stub.c").write_text(stub)
    stub_lib = tmp_path / "libcuda.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", stub_lib, tmp_path / "stub.c"], check=True)
    (tmp_path / "check.py").write_text(LOADER_CHECK)

    result = subprocess.run(
        [sys.executable, tmp_path / "check.py", stub_lib, _cudart(), tmp_path / "model.so", ",".join(library.kernels)],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert f"loaded {build.info.kernels} kernels" in result.stdout


def _runtime_cuda() -> str:
    return os.path.join(os.path.dirname(tvm.__file__), "lib", "libtvm_runtime_cuda.so")


def _cudart() -> str:
    # The toolkit's libcudart, the one libtvm_runtime_cuda.so was linked against (its major version).
    out = subprocess.run(["ldd", _runtime_cuda()], capture_output=True, text=True, check=True).stdout
    match = re.search(r"libcudart\.so\.\d+ => (\S+)", out)
    assert match, f"libcudart not found for {_runtime_cuda()}:\n{out}"
    return match.group(1)


def test_rk3588_library_is_aarch64_with_opencl_kernels(rk3588):
    build, path, library = rk3588
    data = path.read_bytes()

    assert elf_header(data)[0] == EM_AARCH64
    assert (library.machine, library.device, library.code_format) == ("aarch64", "opencl", "cl")
    assert len(library.kernels) == build.info.kernels == build.info.fused_ops > 0
    assert all(f"__kernel void {name}(".encode() in data for name in library.kernels)
    assert build.info.binary_format == "opencl-c" and build.info.cuda_version == ""


def test_manifest_summary_says_what_the_board_needs(orin, rk3588):
    cuda, opencl = gpu_summary(orin[0].info), gpu_summary(rk3588[0].info)
    major = nvcc_release().split(".")[0]

    assert json.loads(json.dumps(cuda)) == cuda
    assert cuda["runtime"]["vm_initialization"] == [[2, 0], [1, 0]]  # kDLCUDA first, kDLCPU last
    assert f"libcudart.so.{major}" in cuda["runtime"]["libraries"] and "libtvm_runtime_cuda.so" in cuda["runtime"]["libraries"]
    assert (cuda["device"], cuda["arch"], cuda["binary_format"]) == ("cuda", "sm_87", "cubin")
    assert opencl["runtime"]["vm_initialization"] == [[4, 0], [1, 0]]  # kDLOpenCL first
    assert any("USE_OPENCL=ON" in note for note in opencl["notes"])


def test_board_without_gpu_is_rejected(demo_module):
    with pytest.raises(InputError, match="no GPU"):
        build_gpu(demo_module, load_target("x86_64"))
