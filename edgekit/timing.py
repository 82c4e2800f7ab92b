"""Latency and CPU-time statistics, measured the same way for every runtime."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency in milliseconds and process CPU time per inference."""

    runs: int
    warmup: int
    threads: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    cpu_ms_per_inference: float

    def to_dict(self) -> dict:
        return asdict(self)


class Timer:
    """Accumulates wall and process-CPU time over `with timer:` blocks, one block per inference."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu = 0.0

    def __enter__(self) -> Timer:
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall.append(time.perf_counter() - self._wall0)
        self.cpu += time.process_time() - self._cpu0

    def stats(self, warmup: int, threads: int) -> LatencyStats:
        ms = np.asarray(self.wall) * 1e3
        return LatencyStats(
            runs=len(ms),
            warmup=warmup,
            threads=threads,
            p50_ms=float(np.percentile(ms, 50)),
            p90_ms=float(np.percentile(ms, 90)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()),
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            cpu_ms_per_inference=self.cpu * 1e3 / len(ms),
        )
