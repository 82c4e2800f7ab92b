"""edgekit artifact against ONNX Runtime, same input, same threads, interleaved in one process."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit import console
from edgekit.reference import Reference
from edgekit.runtime import CompiledModel, LatencyStats, Timer


@dataclass(frozen=True)
class SideBySide:
    machine: str
    threads: int
    edgekit: LatencyStats
    onnxruntime: LatencyStats

    @property
    def ratio(self) -> float:
        """edgekit p50 over ONNX Runtime p50: below 1 means edgekit is faster."""
        return self.edgekit.p50_ms / self.onnxruntime.p50_ms

    def to_dict(self) -> dict:
        return asdict(self) | {"ratio_p50": self.ratio}


BLOCK = 5  # runs of one runtime before switching to the other
SETTLE_S = 0.02  # pause at each switch, long enough for ONNX Runtime's spinning threads to park


def compare_latency(model: CompiledModel, reference: Path, feeds: dict[str, np.ndarray], repeat: int = 100, warmup: int = 10) -> SideBySide:
    """Alternate blocks of edgekit and ONNX Runtime inferences until each has run `repeat` times.

    Alternating spreads machine noise (other processes, frequency changes) over both runtimes
    equally, so their ratio means something even on a busy CI machine. Blocks with a short
    pause, not single runs: ONNX Runtime's default threads keep spinning after each inference
    and would otherwise steal the cores edgekit's threads run on, which no user running either
    runtime alone would see. CPU time per inference is measured afterwards, one runtime at a time.
    """
    # ONNX Runtime as its users run it: default settings (spinning on), same thread count.
    session = Reference(Path(reference), threads=model.threads, spinning=True)
    device_inputs = model.to_device(model.bind((), feeds))
    runtimes = ((lambda: model.run_bound(device_inputs), Timer()), (lambda: session(feeds), Timer()))
    for infer, _ in runtimes:
        for _ in range(warmup):
            infer()
    with console.progress(2 * repeat, "timing edgekit and ONNX Runtime, alternating") as advance:
        for start in range(0, repeat, BLOCK):
            for infer, timer in runtimes:
                time.sleep(SETTLE_S)
                for _ in range(min(BLOCK, repeat - start)):
                    with timer:
                        infer()
                    advance()
    (ours_infer, ours), (theirs_infer, theirs) = runtimes
    ours.cpu = _cpu_seconds(ours_infer, repeat)
    theirs.cpu = _cpu_seconds(theirs_infer, repeat)
    return SideBySide(
        machine=machine_description(),
        threads=model.threads,
        edgekit=ours.stats(warmup, model.threads),
        onnxruntime=theirs.stats(warmup, model.threads),
    )


def interleave(runtimes: dict[str, Callable[[], object]], threads: int, repeat: int = 100, warmup: int = 10) -> dict[str, LatencyStats]:
    """Latency of several runtimes on the same machine, in alternating blocks (as compare_latency)."""
    timers = {name: Timer() for name in runtimes}
    for infer in runtimes.values():
        for _ in range(warmup):
            infer()
    with console.progress(len(runtimes) * repeat, f"timing {', '.join(runtimes)}, alternating") as advance:
        for start in range(0, repeat, BLOCK):
            for name, infer in runtimes.items():
                time.sleep(SETTLE_S)
                for _ in range(min(BLOCK, repeat - start)):
                    with timers[name]:
                        infer()
                    advance()
    for name, infer in runtimes.items():
        timers[name].cpu = _cpu_seconds(infer, repeat)
    return {name: timer.stats(warmup, threads) for name, timer in timers.items()}


def _cpu_seconds(infer, repeat: int) -> float:
    time.sleep(0.2)  # let the other runtime's threads stop spinning and park
    start = time.process_time()
    for _ in range(repeat):
        infer()
    return time.process_time() - start


@dataclass(frozen=True)
class BenchReport:
    """A side-by-side timing plus what the model costs and what fraction of peak each runtime reaches."""

    model: str
    target: str
    gflop_per_inference: float
    peak_gflops: float
    timing: SideBySide

    @property
    def edgekit_gflops(self) -> float:
        return self.gflop_per_inference / (self.timing.edgekit.p50_ms / 1e3)

    @property
    def onnxruntime_gflops(self) -> float:
        return self.gflop_per_inference / (self.timing.onnxruntime.p50_ms / 1e3)

    def to_dict(self) -> dict:
        return asdict(self) | {
            "ratio_p50": self.timing.ratio,
            "edgekit_gflops": self.edgekit_gflops,
            "onnxruntime_gflops": self.onnxruntime_gflops,
            "edgekit_fraction_of_peak": self.edgekit_gflops / self.peak_gflops if self.peak_gflops else None,
        }


def bench(artifact: Path, reference: Path, repeat: int = 100, warmup: int = 10, threads: int | None = None, seed: int = 0) -> BenchReport:
    """Time the artifact against ONNX Runtime on the same random input, interleaved."""
    from edgekit.measure.flops import count_flops
    from edgekit.onnx_model import load_onnx
    from edgekit.reference import random_inputs
    from edgekit.runtime import load

    model = load(artifact, threads=threads)
    feeds = random_inputs(model.inputs, seed=seed)
    flops = count_flops(load_onnx(Path(reference)), model.inputs)
    timing = compare_latency(model, Path(reference), feeds, repeat=repeat, warmup=warmup)
    peak = model.manifest.target.peak.fp32_gflops * model.threads / model.manifest.target.cpu.cores
    return BenchReport(model=model.manifest.name, target=model.manifest.target.name, gflop_per_inference=flops.gflops, peak_gflops=peak, timing=timing)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
