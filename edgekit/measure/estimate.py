"""A board-less performance estimate: run the program under QEMU user mode on the board's
instruction set, count how often each basic block runs inside the timed loop, and time each
block on the board core's scheduling model with llvm-mca. Cycles per inference are
sum(count x cycles per block execution) / runs; milliseconds use the board clock of the
target's [estimate] table.

Two programs can be estimated the same way: an edgekit artifact (its on-device runner), and
ONNX Runtime on an ONNX model (the guest's own Python with ONNX Runtime's wheel for that
architecture), so a ratio between them is measured with one method on one core model. It is
deterministic: the same program and inputs give the same counts, so it can gate performance in
CI. What it does not see: caches and memory bandwidth (every load hits), branch
mispredictions, and the overlap of one block with the next (each is timed as its own loop).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekit import console
from edgekit.artifact import read_manifest
from edgekit.errors import InputError
from edgekit.measure.block_counts import BlockCounts, count_blocks
from edgekit.measure.block_timing import BlockCost, block_costs, cost_cache_path
from edgekit.measure.elf_symbols import read_symbols
from edgekit.target_spec import EstimateSpec, TargetSpec, known_targets, load_target

GUEST_SCRIPT = Path(__file__).resolve().parent / "ort_guest.py"
# The guest libraries of an arm64 runner: the cross toolchain's (scripts/setup_cross.sh).
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu")
ORT_SETUP_HINT = "run scripts/setup_ort_aarch64.sh (an aarch64 Python with ONNX Runtime for qemu)"
WARMUP = 1  # the first inference pays one-time work (translation, allocation, packing)
HOT_BLOCKS = 8
# Cycles of blocks outside model.so's functions: the runner, the TVM runtime, libc.
OUTSIDE = "(runner, TVM runtime and libc)"


@dataclass
class HotBlock:
    vaddr: str
    executions: int
    cycles_each: float
    share: float  # of the estimate's cycles
    families: dict[str, int]


@dataclass
class KernelShare:
    name: str  # the library function (a fused TVM kernel)
    cycles: float  # per inference
    instructions: float  # per inference
    share: float  # of the estimate's cycles


@dataclass
class Estimate:
    """One program's estimated cost per inference on one core."""

    program: str
    target: str
    qemu_cpu: str
    mca_cpu: str
    clock_ghz: float
    runs: int
    cycles: float
    instructions: float
    families: dict[str, float]  # dynamic instructions per inference, by family
    modelled: float  # fraction of the dynamic instructions llvm-mca timed (the rest: 1 cycle each)
    distinct_blocks: int
    hot_blocks: list[HotBlock] = field(default_factory=list)
    kernels: list[KernelShare] = field(default_factory=list)  # edgekit artifacts: cycles by model.so function

    @property
    def ms(self) -> float:
        return self.cycles / (self.clock_ghz * 1e6)

    @property
    def ipc(self) -> float:
        return self.instructions / self.cycles if self.cycles else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "ms": self.ms, "ipc": self.ipc}


def estimate_spec(target: TargetSpec) -> EstimateSpec:
    if target.estimate is None:
        raise InputError(f"target {target.name} has no [estimate] table (QEMU and llvm-mca models)",
                         "add one to its TOML (see targets/rk3588.toml); x86_64-avx512 has none because QEMU 7.2 cannot run AVX-512")
    return target.estimate


def estimate_artifact(artifact: Path, inputs: dict[str, np.ndarray] | None = None, runs: int = 3, target: TargetSpec | None = None) -> Estimate:
    """Estimate edgekit's runner on `artifact` (an artifact folder or a bundle) for 1 thread."""
    from edgekit.runtime import cached_runner

    artifact = Path(artifact)
    model_dir = artifact / "model" if (artifact / "bundle.json").is_file() else artifact
    manifest = read_manifest(model_dir)
    if manifest.runtime.get("gpu"):
        raise InputError(f"{artifact} is a GPU artifact; the estimate models CPU cores", "compile it with --device cpu")
    target = target or _current_target(manifest.target)
    spec = estimate_spec(target)
    if target.cpu.triple != manifest.target.cpu.triple:
        raise InputError(f"{artifact} is built for {manifest.target.cpu.triple}, target {target.name} is {target.cpu.triple}", "estimate on the target it was compiled for")
    runner = artifact / "edgekit-runner" if (artifact / "bundle.json").is_file() else cached_runner(manifest.target).binary
    feeds = inputs if inputs is not None else default_inputs(manifest.inputs)
    with tempfile.TemporaryDirectory(prefix="edgekit-estimate-") as work:
        arguments = []
        for name, value in feeds.items():
            path = Path(work) / f"{name}.npy"
            np.save(path, value)
            arguments += ["--input", f"{name}={path}"]
        command = [str(runner), str(artifact), *arguments, "--iters", str(runs), "--warmup", str(WARMUP), "--threads", "1", "--cpus", "0"]
        sysroot = AARCH64_SYSROOT if target.machine == "aarch64" else None
        with console.step(f"running {manifest.name} under qemu ({spec.qemu_cpu}), {runs} inferences"):
            counts = count_blocks(target.machine, spec.qemu_cpu, command, Path(work), sysroot=sysroot)
    costs = _block_costs(counts, target, spec)
    estimate = _estimate(f"edgekit {manifest.name}", counts, costs, target, spec, runs)
    estimate.kernels = _kernel_shares(counts, costs, model_dir / manifest.library, estimate.cycles, runs)
    return estimate


def estimate_onnxruntime(model: Path, target: TargetSpec, inputs: dict[str, np.ndarray], runs: int = 3) -> Estimate:
    """Estimate ONNX Runtime (1 intra-op thread) on `model` for `target`'s core."""
    spec = estimate_spec(target)
    python, sysroot, env = _guest_python(target.machine)
    with tempfile.TemporaryDirectory(prefix="edgekit-estimate-") as work:
        feeds = Path(work) / "inputs.npz"
        np.savez(feeds, **inputs)
        command = [python, str(GUEST_SCRIPT), str(Path(model).resolve()), str(feeds), str(WARMUP), str(runs)]
        with console.step(f"running ONNX Runtime on {Path(model).name} under qemu ({spec.qemu_cpu}), {runs} inferences"):
            counts = count_blocks(target.machine, spec.qemu_cpu, command, Path(work), sysroot=sysroot, env=env)
    return _estimate(f"onnxruntime {Path(model).name}", counts, _block_costs(counts, target, spec), target, spec, runs)


def default_inputs(specs) -> dict[str, np.ndarray]:
    """Seeded random inputs of the manifest's shapes: the integer kernels' instruction counts do
    not depend on the values, and float kernels' barely do."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in specs:
        if not spec.is_static:
            raise InputError(f"input {spec.name} has a symbolic shape {spec.describe()}", "give --input files")
        if np.issubdtype(np.dtype(spec.dtype), np.floating):
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.integers(0, 2, size=spec.shape).astype(spec.dtype)
    return feeds


def _block_costs(counts: BlockCounts, target: TargetSpec, spec: EstimateSpec) -> dict[bytes, BlockCost]:
    with console.step(f"timing {len(counts.blocks)} blocks on llvm-mca's {spec.mca_cpu}"):
        return block_costs(list(counts.blocks), target.machine, spec.mca_cpu, cache=cost_cache_path(target.machine, spec.mca_cpu))


def _estimate(program: str, counts: BlockCounts, costs: dict[bytes, BlockCost], target: TargetSpec, spec: EstimateSpec, runs: int) -> Estimate:
    blocks = list(counts.blocks)
    cycles, modelled, families = 0.0, 0, Counter()
    per_block = []
    for block in blocks:
        cost = costs[block.code]
        block_cycles = block.count * cost.cycles
        cycles += block_cycles
        if cost.modelled:
            modelled += block.count * block.instructions
        for name, n in Counter(cost.families).items():
            families[name] += block.count * n
        per_block.append((block_cycles, block, cost))
    instructions = counts.dynamic_instructions
    per_block.sort(key=lambda item: -item[0])
    hot = [
        HotBlock(vaddr=f"0x{b.vaddr:x}", executions=b.count // runs, cycles_each=round(c.cycles, 2), share=round(total / cycles, 4) if cycles else 0.0,
                 families=dict(Counter(c.families)))
        for total, b, c in per_block[:HOT_BLOCKS]
    ]
    return Estimate(
        program=program, target=target.name, qemu_cpu=spec.qemu_cpu, mca_cpu=spec.mca_cpu, clock_ghz=spec.clock_ghz, runs=runs,
        cycles=cycles / runs, instructions=instructions / runs, families={k: v / runs for k, v in families.most_common()},
        modelled=modelled / instructions if instructions else 0.0, distinct_blocks=len(costs), hot_blocks=hot,
    )


def _kernel_shares(counts: BlockCounts, costs: dict[bytes, BlockCost], library: Path, total_cycles: float, runs: int) -> list[KernelShare]:
    names = read_symbols(library).functions_of([(b.vaddr, b.code) for b in counts.blocks])
    cycles: Counter = Counter()
    instructions: Counter = Counter()
    for block in counts.blocks:
        name = names.get(block.vaddr, OUTSIDE)
        # TVM outlines a kernel's parallel body as NAME_compute_: one kernel, one row.
        name = name.removesuffix("_compute_")
        cycles[name] += block.count * costs[block.code].cycles / runs
        instructions[name] += block.count * block.instructions / runs
    return [KernelShare(name=n, cycles=c, instructions=instructions[n], share=c / total_cycles if total_cycles else 0.0) for n, c in cycles.most_common()]


def _current_target(built_for: TargetSpec) -> TargetSpec:
    # The [estimate] table describes the board, not the build: take today's TOML of that board.
    return load_target(built_for.name) if built_for.name in known_targets() else built_for


def _guest_python(machine: str) -> tuple[str, Path | None, dict[str, str] | None]:
    if machine == "x86_64":
        return sys.executable, None, None
    from edgekit.runtime import cache_dir

    root = cache_dir() / "ort-aarch64"
    python = root / "sysroot" / "usr" / "bin" / "python3.11"
    if not python.is_file() or not (root / "site" / "onnxruntime").is_dir():
        raise InputError(f"no aarch64 Python with ONNX Runtime at {root}", ORT_SETUP_HINT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(root / "site")
    env["PYTHONNOUSERSITE"] = "1"
    return str(python), root / "sysroot", env


def write_json(path: Path, estimates: list[Estimate]) -> None:
    from edgekit.files import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps({"format": "edgekit-estimate", "format_version": 1, "estimates": [e.to_dict() for e in estimates]}, indent=2) + "\n")
