"""Run an artifact with the TVM runtime from Python: `edgekit.load(folder)(x=array)`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit.artifact import Manifest, verify_artifact
from edgekit.errors import ArtifactError, InputError, last_line
from edgekit.onnx_model import TensorSpec
from edgekit.threads import DEFAULT_SPIN_COUNT, configure_threads
from edgekit.runtime.timing import LatencyStats, RateStats, Timer, hold_rate



class CompiledModel:
    """A loaded artifact. Call it with numpy arrays by input name; get a dict by output name."""

    def __init__(self, folder: Path, manifest: Manifest, vm, device, threads: int) -> None:
        self.folder = folder
        self.manifest = manifest
        self.threads = threads
        self._vm = vm
        self._device = device

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.manifest.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.manifest.outputs

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        feeds = self.bind(args, named)
        return self.run_bound(self.to_device(feeds))

    def bind(self, args: tuple[np.ndarray, ...], named: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Match positional and named arrays to the inputs, checking names, shapes and dtypes."""
        if len(args) > len(self.inputs):
            raise InputError(f"{len(args)} positional inputs given, the model takes {len(self.inputs)}", self._expected())
        feeds = {spec.name: array for spec, array in zip(self.inputs, args)}
        for name, array in named.items():
            if name not in {spec.name for spec in self.inputs}:
                raise InputError(f"'{name}' is not an input of this model", self._expected())
            if name in feeds:
                raise InputError(f"input '{name}' given twice", self._expected())
            feeds[name] = array
        for spec in self.inputs:
            if spec.name not in feeds:
                raise InputError(f"input '{spec.name}' is missing", self._expected())
            validate_array(spec, np.asarray(feeds[spec.name]))
        return {spec.name: np.ascontiguousarray(feeds[spec.name]) for spec in self.inputs}

    def to_device(self, feeds: dict[str, np.ndarray]) -> list:
        import tvm

        return [tvm.runtime.tensor(feeds[spec.name], self._device) for spec in self.inputs]

    def run_bound(self, device_inputs: list) -> dict[str, np.ndarray]:
        result = self._vm["main"](*device_inputs)
        results = [result] if len(self.outputs) == 1 else list(result)
        return {spec.name: value.numpy() for spec, value in zip(self.outputs, results)}

    def _expected(self) -> str:
        return "expected: " + "; ".join(spec.describe() for spec in self.inputs)


def validate_array(spec: TensorSpec, array: np.ndarray) -> None:
    if tuple(array.shape) != tuple(spec.shape) or array.dtype != np.dtype(spec.dtype):
        given = "x".join(map(str, array.shape)) or "scalar"
        raise InputError(f"input '{spec.name}' is {given} {array.dtype}, expected {spec.describe().split(' ', 1)[1]}", "reshape or convert the array")


def load(folder: Path | str, threads: int | None = None, cpu_ids: list[int] | None = None) -> CompiledModel:
    """Verify the artifact's hashes, then load it on the CPU.

    `threads` and `cpu_ids` default to the manifest's runtime section (the target's cores).
    Raises ArtifactError for a missing, incomplete or tampered artifact.
    """
    folder = Path(folder)
    manifest = verify_artifact(folder)
    _require_this_machine(manifest)
    runtime = manifest.runtime
    threads = runtime.get("threads", 1) if threads is None else threads
    configure_threads(threads, cpu_ids if cpu_ids is not None else runtime.get("cpu_ids", []), runtime.get("spin_count", DEFAULT_SPIN_COUNT))

    import tvm
    from tvm import relax

    try:
        library = _load_library(folder / manifest.library)
    except Exception as exc:  # noqa: BLE001 - dlopen failures arrive as generic TVM errors
        raise ArtifactError(f"cannot load {folder / manifest.library}: {last_line(exc)}", f"was it built for this machine? target: {manifest.target.name}") from None
    device = tvm.cpu()
    vm = relax.VirtualMachine(library, device)
    return CompiledModel(folder, manifest, vm, device, threads)


def _load_library(path: Path):
    """dlopen `path` as a fresh library, under a name this process has never loaded.

    The dynamic loader reuses a library already loaded from the same path, so an artifact rebuilt
    in place would silently run its old code in a long-lived process (and not the file whose
    hashes were just verified). A hard link (a copy across file systems) with a unique name in a
    private folder is loaded instead, then removed; the mapping stays.
    """
    import shutil
    import tempfile

    import tvm

    with tempfile.TemporaryDirectory(prefix="edgekit-load-") as private:
        alias = Path(private) / path.name
        try:
            os.link(path, alias)
        except OSError:
            shutil.copyfile(path, alias)
        return tvm.runtime.load_module(str(alias))


def _require_this_machine(manifest: Manifest) -> None:
    if (reason := manifest.why_not_here()) is not None:
        raise ArtifactError(
            f"artifact {manifest.name} cannot run here: {reason}",
            "run it on the board with `edgekit bundle` and its runner" + (" (or under qemu-aarch64)" if manifest.target.machine == "aarch64" else ""),
        )


def time_model(model: CompiledModel, feeds: dict[str, np.ndarray], repeat: int, warmup: int) -> LatencyStats:
    """Time `repeat` inferences after `warmup`, inputs resident on the device, outputs copied back."""
    if repeat < 1 or warmup < 0:
        raise InputError(f"--repeat must be >= 1 and --warmup >= 0 (got {repeat}, {warmup})", "give sensible counts")
    device_inputs = model.to_device(model.bind((), feeds))
    timer = Timer()
    for _ in range(warmup):
        model.run_bound(device_inputs)
    for _ in range(repeat):
        with timer:
            model.run_bound(device_inputs)
    return timer.stats(warmup=warmup, threads=model.threads)


def run_at_rate(model: CompiledModel, feeds: dict[str, np.ndarray], rate_hz: float, duration_s: float) -> RateStats:
    """Run the model once per frame at `rate_hz` for `duration_s` (see `timing.hold_rate`)."""
    device_inputs = model.to_device(model.bind((), feeds))
    model.run_bound(device_inputs)  # first-call setup outside the measurement
    return hold_rate(lambda: model.run_bound(device_inputs), rate_hz, duration_s, threads=model.threads)
