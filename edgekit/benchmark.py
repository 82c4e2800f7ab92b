"""edgekit artifact against ONNX Runtime, same input, same threads, interleaved in one process."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit import console
from edgekit.reference import Reference
from edgekit.runtime import CompiledModel
from edgekit.timing import LatencyStats, Timer


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


def compare_latency(model: CompiledModel, reference: Path, feeds: dict[str, np.ndarray], repeat: int = 100, warmup: int = 10) -> SideBySide:
    """Alternate one edgekit and one ONNX Runtime inference `repeat` times after `warmup` each.

    Interleaving spreads machine noise (other processes, frequency changes) over both runtimes
    equally, so their ratio means something even on a busy CI machine.
    """
    session = Reference(Path(reference), threads=model.threads)
    device_inputs = model.to_device(model.bind((), feeds))
    for _ in range(warmup):
        model.run_bound(device_inputs)
        session(feeds)
    ours, theirs = Timer(), Timer()
    with console.progress(repeat, "timing edgekit and ONNX Runtime, interleaved") as advance:
        for _ in range(repeat):
            with ours:
                model.run_bound(device_inputs)
            with theirs:
                session(feeds)
            advance()
    return SideBySide(
        machine=machine_description(),
        threads=model.threads,
        edgekit=ours.stats(warmup, model.threads),
        onnxruntime=theirs.stats(warmup, model.threads),
    )


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
