"""`edgekit bundle`: everything a board needs to run an artifact, in one folder (or tarball).

    BUNDLE/
      edgekit-runner        the C++ runner for the target's architecture
      libtvm_runtime.so     the TVM runtime the model was built against (same version, same arch)
      libtvm_ffi.so
      libtvm_runtime_cuda.so  TVM's CUDA backend, for a CUDA artifact only (loaded by the runner)
      model/                the artifact folder: model.so + manifest.json
      bundle.json           what is inside, with sha256 of every file
      README.md             how to run it on the board

A GPU artifact's vendor libraries (libcudart, libcuda, libOpenCL) are the board's own: the
README says which ones, from the manifest.

Runners are cached per target and runner source (a rebuild only happens when either changes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from edgekit import console, versions
from edgekit.artifact import Manifest, verify_artifact
from edgekit.errors import InputError
from edgekit.files import atomic_dir, atomic_file, sha256_file
from edgekit.runtime.runner.runner_build import BINARY, RUNNER_SOURCE, RUNTIME_LIBS, RunnerBuild, build_runner, cache_dir, device_runtime_libs
from edgekit.target_spec import TargetSpec, load_target

MODEL_DIR = "model"


@dataclass(frozen=True)
class Bundle:
    folder: Path
    target: str
    files: dict[str, int]  # relative path -> size in bytes
    tarball: Path | None = None


def make_bundle(artifact: Path, output: Path, target: str | None = None, tarball: bool = False) -> Bundle:
    """Bundle the artifact with a runner built for its target; verify the artifact first."""
    artifact = Path(artifact)
    manifest = verify_artifact(artifact)
    # The target the artifact was built for, as the manifest recorded it; another one only to
    # bundle for a compatible board (same triple).
    spec = load_target(target) if target else manifest.target
    if spec.cpu.triple != manifest.target.cpu.triple:
        raise InputError(
            f"artifact {artifact} is built for {manifest.target.cpu.triple}, target {spec.name} is {spec.cpu.triple}",
            f"bundle it for its own target ({manifest.target.name}) or recompile",
        )
    runner = cached_runner(spec)
    gpu = manifest.runtime.get("gpu")
    device_libs = device_runtime_libs(spec, gpu["device"]) if gpu else []
    with atomic_dir(Path(output)) as folder:
        for path in (runner.binary, *runner.runtime_libs, *device_libs):
            shutil.copy2(path, folder / path.name)
        shutil.copytree(artifact, folder / MODEL_DIR)
        (folder / "README.md").write_text(_board_readme(manifest, spec))
        files = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
        (folder / "bundle.json").write_text(json.dumps(_bundle_record(manifest, spec, files), indent=2) + "\n")
    output = Path(output)
    sizes = {str(p.relative_to(output)): p.stat().st_size for p in sorted(output.rglob("*")) if p.is_file()}
    archive = _tar(output) if tarball else None
    return Bundle(folder=output, target=spec.name, files=sizes, tarball=archive)


def cached_runner(spec: TargetSpec) -> RunnerBuild:
    """The runner for `spec`, built once per (target, compiler, runner source, TVM versions)."""
    folder = cache_dir() / "runners" / f"{spec.name}-{_runner_key(spec)}"
    binary = folder / BINARY
    libs = tuple(folder / name for name in RUNTIME_LIBS)
    if binary.is_file() and all(lib.is_file() for lib in libs):
        console.info(f"using the cached runner {binary}")
        return RunnerBuild(binary=binary, runtime_libs=libs, triple=spec.cpu.triple)
    return build_runner(spec, folder)


def _runner_key(spec: TargetSpec) -> str:
    digest = hashlib.sha256()
    found = versions.collect()
    digest.update(f"{spec.cpu.triple} {spec.cpu.cross_compiler} {found['tvm']} {found['tvm_ffi']}".encode())
    for path in sorted(RUNNER_SOURCE.rglob("*")):
        if path.is_file() and path.suffix in (".cc", ".h", ".txt", ".py"):
            digest.update(path.relative_to(RUNNER_SOURCE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _bundle_record(manifest: Manifest, spec: TargetSpec, files: dict[str, str]) -> dict:
    return {
        "format": "edgekit-bundle",
        "format_version": 1,
        "model": manifest.name,
        "target": spec.name,
        "triple": spec.cpu.triple,
        "runner": BINARY,
        "versions": versions.collect(),
        "files": files,
    }


def _tar(folder: Path) -> Path:
    archive = folder.with_name(folder.name + ".tar.gz")
    with atomic_file(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def _board_readme(manifest: Manifest, spec: TargetSpec) -> str:
    inputs = " ".join(f"--input {s.name}={s.name}.npy" for s in manifest.inputs)
    shapes = "\n".join(f"- `{s.name}`: {'x'.join(map(str, s.shape))} {s.dtype}" for s in manifest.inputs)
    outputs = "\n".join(f"- `{s.name}`: {'x'.join(map(str, s.shape))} {s.dtype}" for s in manifest.outputs)
    cpus = ",".join(map(str, spec.cpu.cpu_ids))
    pinning = f" --cpus {cpus}" if cpus else ""
    gpu = manifest.runtime.get("gpu")
    gpu_note = GPU_README[gpu["device"]](gpu, manifest.versions) if gpu else ""
    return f"""# {manifest.name} for {spec.name}

{spec.description}. Built by edgekit {manifest.versions.get('edgekit')} with TVM {manifest.versions.get('tvm')}.

## Run

Copy this folder to the board, then inside it:

```sh
./{BINARY} . {inputs} --output out.npz
./{BINARY} . {inputs} --iters 200 --warmup 20{pinning} --threads {spec.cpu.cores}
./{BINARY} . {inputs} --rate 30 --duration 10{pinning}
```

The runner verifies every file's sha256 against `model/manifest.json` before loading, checks
each input's name, shape and dtype, and prints one JSON object (latency percentiles, CPU time
per inference, max RSS; with `--rate`, CPU-seconds per wall-second). Inputs are `.npy` files.

Inputs:
{shapes}

Outputs:
{outputs}

No Python is needed on the board: `{BINARY}` loads `libtvm_runtime.so` and `libtvm_ffi.so` from
its own folder (glibc >= 2.34: the runner is built by Debian 12's toolchain). Default threads:
{spec.cpu.cores}{f", pinned to cores {cpus}" if cpus else ""}.
{gpu_note}"""


def _cuda_readme(gpu: dict, versions: dict[str, str]) -> str:
    major = gpu["runtime"]["cuda_major"]
    system = [name for name in gpu["runtime"]["libraries"] if not name.startswith("libtvm")]
    provided = "\n".join(f"- `{name}`" for name in system)
    notes = "".join(f"- {note}\n" for note in gpu["notes"])
    return f"""
## GPU

This model runs on the CUDA GPU ({gpu['arch']}): {gpu['kernels']} kernels, compiled by nvcc
{gpu['cuda_version']} into a {gpu['binary_format']} inside `model/model.so`, so the board compiles nothing.
`{BINARY}` loads TVM's CUDA runtime, `libtvm_runtime_cuda.so` (in this folder), before the model.

The board must provide **CUDA {major}** (JetPack), where the dynamic linker finds it
(`ldconfig -p | grep -E 'libcudart|libcuda'`; else add `/usr/local/cuda/lib64` to `LD_LIBRARY_PATH`):

{provided}

`libcudart.so.{major}` is the CUDA {major} runtime; `libcuda.so.1` is the NVIDIA driver, which must
support CUDA {major}. Without them the runner stops with one line naming the missing library.

The inputs are copied to the GPU once, before the timed runs; each timed run ends with a device
synchronize, so the latency is the GPU's. Without `--spin`, the CPU thread sleeps while it
waits for the GPU (CUDA's blocking sync) instead of spinning on a core.

From the build:

{notes}"""


def _opencl_readme(gpu: dict, versions: dict[str, str]) -> str:
    notes = "".join(f"- {note}\n" for note in gpu["notes"])
    return f"""
## GPU

This model runs on the OpenCL GPU ({gpu['arch']}): {gpu['kernels']} kernels as OpenCL C inside
`model/model.so`, compiled by the board's OpenCL driver when the model is loaded.

The TVM runtime in this bundle (from PyPI) has no OpenCL backend. On the board, build TVM
{versions.get('tvm')} with `USE_OPENCL=ON` and put that build's `libtvm_runtime.so`, `libtvm_ffi.so` and
`libtvm_runtime_opencl.so` in this folder in place of the bundled ones. The board also needs its
OpenCL ICD loader (`libOpenCL.so`) and GPU driver. Until then the runner stops with one line
saying what is missing.

From the build:

{notes}"""


# manifest runtime.gpu.device -> the README section on what the board needs.
GPU_README = {"cuda": _cuda_readme, "opencl": _opencl_readme}
