"""GPU builds: the Relax graph's compute as CUDA (Jetson Orin) or OpenCL (Mali) kernels.

What TVM 0.27.0.post1 does, read in its source (site-packages/tvm and apache/tvm):

- `tvm.compile` already lowers with the GPU default pipeline when the target's keys contain
  "gpu" (relax/vm_build.py `build`, the `_is_gpu` branch): LegalizeOps, FuseOps/FuseTIR, then
  dlight's GPU schedules (relax/backend/cuda/pipeline.py, gpu_generic/pipeline.py). We run
  that pipeline ourselves so the fused PrimFuncs can be matched against the kernels.
- The kernels hang one level down: VMExecutable -> host `llvm` module -> `cuda`/`opencl`.
- CUDA codegen (src/backend/cuda/codegen/codegen_cuda.cc `BuildCUDA`) emits CUDA C++ source
  and passes it to the factory `ffi.Module.create.cuda`. That factory lives in
  libtvm_runtime_cuda.so, which `import tvm` does not load, so codegen keeps the *source* in a
  CUDAFallbackModuleNode (format "cuda"); `tvm_callback_cuda_compile` is not called at build
  time. The board's loader (cuda_module.cc `CUDAModuleLoadFromBytes`) would then call that
  Python callback at load time, i.e. need Python plus nvcc or NVRTC on the board.
  So we compile the source to an sm_XX cubin here, with TVM's own nvcc wrapper and flags, and
  put it in place of the source when model.so is packed (`export_gpu_library`). The loader
  passes any format other than "cuda" straight to cuModuleLoadData: no compiler on the board.
- OpenCL kernels stay OpenCL C source; the board's driver compiles them when the module is
  first used, as OpenCL intends. The PyPI runtimes (x86_64 and aarch64) have no OpenCL loader.

Runtime calling convention (src/runtime/vm/vm.cc): `vm_initialization` takes the GPU triple
first and the CPU triple last; constants (the weights) are copied to the first device there.
`main` called directly does not move its arguments: inputs must already be GPU tensors, and
outputs come back as GPU tensors (set_input/invoke_stateful would copy inputs over instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import tvm
import tvm_ffi
from tvm import relax

from edgekit.compiler.packed_library import GpuLibrary, cubin_contents, inspect_gpu_library, with_cuda_code
from edgekit.errors import InputError, UnsupportedModelError
from edgekit.target_spec import AcceleratorSpec, TargetSpec

# The accelerator part of the TVM target, by [accelerator] kind in targets/*.toml.
DEVICE_TARGETS: dict[str, Callable[[AcceleratorSpec], dict]] = {
    "cuda": lambda acc: {"kind": "cuda", "arch": acc.arch},
    "opencl": lambda acc: {"kind": "opencl", "device": acc.arch},
}
# DLDeviceType codes for the runner's vm_initialization.
DL_DEVICE_TYPES = {"cuda": 2, "opencl": 4, "cpu": 1}
KERNEL_PATTERNS = {
    "cuda": re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\('),
    "opencl": re.compile(r"__kernel void (?:__attribute__\(\(.*?\)\) )?(\w+)\("),
}
# GpuBuildInfo.binary_format -> the format string the board's loader finds in model.so.
PACKED_FORMATS = {"cubin": "cubin", "opencl-c": "cl"}


@dataclass(frozen=True)
class GpuBuildInfo:
    """What went to the GPU: recorded in the artifact's manifest."""

    kind: str  # "cuda" | "opencl"
    arch: str  # "sm_87" | "mali"
    kernels: int
    binary_format: str  # "cubin": SASS loaded as is | "opencl-c": source built by the board's driver
    cuda_version: str  # nvcc release that compiled the cubin; "" for OpenCL
    notes: tuple[str, ...] = ()
    fused_ops: int = 0  # PrimFuncs after fusion; every one became at least one kernel

    def __post_init__(self) -> None:
        if self.kind not in DEVICE_TARGETS:
            raise ValueError(f"GPU kind '{self.kind}' is not one of {', '.join(DEVICE_TARGETS)}")
        if self.kernels < self.fused_ops:
            raise ValueError(f"{self.kernels} kernels for {self.fused_ops} fused ops: some ops stayed on the host")

    def to_dict(self) -> dict:
        return {**asdict(self), "notes": list(self.notes)}


@dataclass(frozen=True)
class GpuBuild:
    """A built model before export: export with `export_gpu_library`, not the executable's own
    export_library, which would pack the CUDA source instead of the cubin."""

    executable: relax.VMExecutable
    info: GpuBuildInfo
    tvm_target: dict
    device_binary: bytes = b""  # the cubin that replaces the CUDA source in model.so


def tvm_gpu_target(target: TargetSpec) -> dict:
    """The board's GPU with its CPU as host, as the JSON dict TVM 0.27 takes."""
    if target.accelerator is None or target.accelerator.kind not in DEVICE_TARGETS:
        hint = "use --device cpu, or add an [accelerator] table of kind cuda or opencl to its TOML file"
        raise InputError(f"target {target.name} has no GPU edgekit can build for", hint)
    return {**DEVICE_TARGETS[target.accelerator.kind](target.accelerator), "host": target.tvm_cpu_target()}


def build_gpu(mod: tvm.IRModule, target: TargetSpec) -> GpuBuild:
    """Build the imported Relax module `mod` for the accelerator named in `target`."""
    tvm_gpu_target(target)  # raises for a board without a supported GPU
    return GPU_BUILDERS[target.accelerator.kind](mod, target)


def build_cuda(mod: tvm.IRModule, target: TargetSpec) -> GpuBuild:
    """Lower `mod` for the board's CUDA GPU and compile its kernels to a cubin with nvcc.

    Raises InputError when nvcc is missing or fails, UnsupportedModelError when a fused op did
    not become a GPU kernel.
    """
    tvm_target = tvm_gpu_target(target)
    executable, source, fused = _build(mod, tvm_target)
    cuda_version = nvcc_version()
    cubin = _compile_cubin(source, tvm_target)
    arch, names = cubin_contents(cubin)
    wanted = int(target.accelerator.arch.removeprefix("sm_"))
    if arch != wanted:
        raise InputError(f"nvcc built the kernels for sm_{arch}, not {target.accelerator.arch}", "check the nvcc on PATH")
    if names != kernel_names(source, "cuda"):
        raise InputError("the cubin's kernels differ from the CUDA source's", "report this model")
    _check_every_op_has_a_kernel(fused, names)
    major = cuda_version.split(".")[0]
    info = GpuBuildInfo(
        kind="cuda",
        arch=target.accelerator.arch,
        kernels=len(names),
        binary_format="cubin",
        cuda_version=cuda_version,
        fused_ops=len(fused),
        notes=(
            f"SASS for {target.accelerator.arch} only (no PTX): the board loads it without a compiler",
            f"needs libtvm_runtime_cuda.so (TVM 0.27) loaded before model.so, libcudart.so.{major} and a driver for CUDA {major}",
            "nvcc flags are TVM's (tvm.support.nvcc): -O3 --use_fast_math",
        ),
    )
    return GpuBuild(executable, info, tvm_target, cubin)


def build_opencl(mod: tvm.IRModule, target: TargetSpec) -> GpuBuild:
    """Lower `mod` for the board's OpenCL GPU; kernels stay OpenCL C for the board's driver."""
    tvm_target = tvm_gpu_target(target)
    executable, source, fused = _build(mod, tvm_target)
    names = kernel_names(source, "opencl")
    _check_every_op_has_a_kernel(fused, names)
    info = GpuBuildInfo(
        kind="opencl",
        arch=target.accelerator.arch,
        kernels=len(names),
        binary_format="opencl-c",
        cuda_version="",
        fused_ops=len(fused),
        notes=(
            "OpenCL C source: the board's OpenCL driver compiles it when the model is first run",
            "needs a TVM 0.27 runtime built with USE_OPENCL=ON: the PyPI runtimes have no OpenCL loader",
        ),
    )
    return GpuBuild(executable, info, tvm_target)


GPU_BUILDERS: dict[str, Callable[[tvm.IRModule, TargetSpec], GpuBuild]] = {"cuda": build_cuda, "opencl": build_opencl}


def export_gpu_library(build: GpuBuild, path: Path, target: TargetSpec) -> GpuLibrary:
    """Write model.so for the board (host code by its cross compiler, kernels packed in), read it
    back and return what it holds.

    Raises InputError when the cross compiler is missing, UnsupportedModelError when the written
    library is not what was built (wrong machine, source instead of the cubin, kernels missing).
    """
    from tvm.support import cc  # TVM 0.27 moved cc here from tvm.contrib

    options = {}
    if target.is_cross:
        compiler = target.cpu.cross_compiler
        if shutil.which(compiler) is None:
            raise InputError(f"cross compiler {compiler} for target {target.name} is not installed", "run scripts/setup_cross.sh")
        options["fcompile"] = cc.cross_compiler(compiler)
    if build.device_binary:
        options["fpack_imports"] = _packer_with_binary(build)
    build.executable.export_library(str(path), **options)
    library = inspect_gpu_library(path)
    expected = (target.cpu.triple.split("-")[0], build.info.kind, PACKED_FORMATS[build.info.binary_format], build.info.kernels)
    found = (library.machine, library.device, library.code_format, len(library.kernels))
    if found != expected or (build.info.kind == "cuda" and library.arch != build.info.arch):
        problem = f"{path.name} holds {found} ({library.arch}), expected {expected} ({build.info.arch})"
        raise UnsupportedModelError(problem, "report this model")
    return library


def gpu_summary(info: GpuBuildInfo) -> dict:
    """The manifest's `gpu` entry: what the artifact holds and what the board must provide."""
    runtime = {
        "vm_initialization": [[DL_DEVICE_TYPES[info.kind], 0], [DL_DEVICE_TYPES["cpu"], 0]],
        # vm.cc: main() does not move its arguments; weights go to the first device at initialization.
        "inputs_on": f"{info.kind}:0",
        "outputs_on": f"{info.kind}:0",
    }
    if info.kind == "cuda":
        major = info.cuda_version.split(".")[0]
        runtime["libraries"] = ["libtvm_runtime.so", "libtvm_ffi.so", "libtvm_runtime_cuda.so", f"libcudart.so.{major}", "libcuda.so.1"]
        runtime["cuda_major"] = int(major)
    else:
        runtime["libraries"] = ["libtvm_runtime.so (built with USE_OPENCL=ON)", "libtvm_ffi.so", "libOpenCL.so.1"]
    return {
        "device": info.kind,
        "arch": info.arch,
        "kernels": info.kernels,
        "fused_ops": info.fused_ops,
        "binary_format": info.binary_format,
        "cuda_version": info.cuda_version,
        "runtime": runtime,
        "notes": list(info.notes),
    }


def nvcc_version() -> str:
    """Release of the nvcc on PATH (the one tvm.support.nvcc runs), e.g. "13.0.88"."""
    if shutil.which("nvcc") is None:
        raise InputError("nvcc is not on PATH: CUDA kernels are compiled at build time", "install the CUDA toolkit on the build machine")
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"release [\d.]+, V([\d.]+)", out)
    if match is None:
        raise InputError(f"cannot read the version of nvcc: {out.strip()[:200]}", "check the CUDA toolkit installation")
    return match.group(1)


def kernel_names(source: str, kind: str) -> set[str]:
    """Names of the kernels defined or declared in generated CUDA or OpenCL source."""
    return set(KERNEL_PATTERNS[kind].findall(source))


# ---- lowering and building ----


def _build(mod: tvm.IRModule, tvm_target: dict) -> tuple[relax.VMExecutable, str, list[str]]:
    """Lower with the target's default GPU pipeline and build; return the executable, the
    device source and the names of the fused PrimFuncs."""
    target = tvm.target.Target(tvm_target)
    with target:
        lowered = relax.get_default_pipeline(target)(mod)
    fused = sorted(gv.name_hint for gv, func in lowered.functions.items() if isinstance(func, tvm.tirx.PrimFunc))
    with _codegen_keeps_source():
        executable = tvm.compile(lowered, target=target, relax_pipeline=None)
    device = _device_module(executable.mod, tvm_target["kind"])
    return executable, device.inspect_source("cuda" if tvm_target["kind"] == "cuda" else "cl"), fused


@contextlib.contextmanager
def _codegen_keeps_source():
    # In a process that has loaded libtvm_runtime_cuda.so (a build on a machine with a GPU), codegen
    # would JIT-compile through tvm_callback_cuda_compile (NVRTC by default) instead of keeping the
    # source. TVM_COMPILE_FORCE_FALLBACK (cuda_fallback_module.h, read at each codegen call) makes
    # every build take the same path: source out of codegen, cubin from our nvcc call.
    previous = os.environ.get("TVM_COMPILE_FORCE_FALLBACK")
    os.environ["TVM_COMPILE_FORCE_FALLBACK"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TVM_COMPILE_FORCE_FALLBACK"]
        else:
            os.environ["TVM_COMPILE_FORCE_FALLBACK"] = previous


def _device_module(root: tvm.runtime.Module, kind: str) -> tvm.runtime.Module:
    found = [m for m in _import_tree(root) if m.kind == kind]
    if len(found) != 1:
        kinds = [m.kind for m in _import_tree(root)]
        raise UnsupportedModelError(f"expected one {kind} module in the build, found modules {kinds}", "report this model")
    return found[0]


def _import_tree(root: tvm.runtime.Module) -> list[tvm.runtime.Module]:
    modules, stack = [], [root]
    while stack:
        module = stack.pop()
        modules.append(module)
        stack.extend(module.imports)
    return modules


def _check_every_op_has_a_kernel(fused: list[str], kernels: set[str]) -> None:
    # SplitHostDevice names a PrimFunc's kernels `<name>_kernel`, `<name>_kernel_1`, ...
    on_host = [name for name in fused if not any(k == f"{name}_kernel" or k.startswith(f"{name}_kernel_") for k in kernels)]
    if on_host:
        raise UnsupportedModelError(f"ops {', '.join(on_host)} have no GPU kernel and would run on the CPU", "report this model")


def _compile_cubin(source: str, tvm_target: dict) -> bytes:
    from tvm.support import nvcc  # importing registers tvm_callback_cuda_compile; harmless here

    # compile_cuda takes the arch (-gencode compute_XX,sm_XX) from the current target.
    with tvm.target.Target(tvm_target):
        try:
            return bytes(nvcc.compile_cuda(source, target_format="cubin", compiler="nvcc"))
        except RuntimeError as exc:
            error = str(exc).split("Compilation error:")[-1].strip().splitlines()
            raise InputError(f"nvcc failed on the generated kernels: {error[0] if error else exc}", "report this model") from exc


def _packer_with_binary(build: GpuBuild):
    """An `fpack_imports` for Module.export_library that packs the cubin in place of the source."""

    def pack(module, is_system_lib: bool, symbol_prefix: str, workspace_dir: str) -> str:
        blob = bytes(tvm_ffi.get_global_func("runtime.ModulePackImportsToTensor")(module).numpy())
        source = _device_module(module, "cuda").inspect_source("cuda").encode()
        blob = with_cuda_code(blob, source, build.info.binary_format, build.device_binary)
        host = json.dumps({"kind": "llvm", "mtriple": build.tvm_target["host"]["mtriple"]})
        packed = tvm_ffi.get_global_func("codegen.codegen_blob")(blob, is_system_lib, host, symbol_prefix)
        path = os.path.join(workspace_dir, f"{symbol_prefix}devc.o")
        packed.write_to_file(path)
        return path

    return pack
