"""Latency and CPU-time statistics, measured the same way for every runtime."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgekit.errors import InputError


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


@dataclass(frozen=True)
class RateStats:
    """A fixed frame rate held for a while: how much CPU it cost per second of wall time."""

    rate_hz: float
    duration_s: float
    frames: int
    missed_deadlines: int
    cpu_seconds_per_wall_second: float
    latency: LatencyStats

    def to_dict(self) -> dict:
        return asdict(self)


def hold_rate(infer: Callable[[], object], rate_hz: float, duration_s: float, threads: int) -> RateStats:
    """Call `infer` once per frame at `rate_hz` for `duration_s`, sleeping between frames.

    This is how a perception model runs in a car: the cost that matters is CPU time per wall
    second (a busy-waiting runtime burns cores between frames even when inference is fast).
    """
    if rate_hz <= 0 or duration_s <= 0:
        raise InputError(f"--rate and --duration must be positive (got {rate_hz}, {duration_s})", "e.g. --rate 30 --duration 10")
    period, frames = 1.0 / rate_hz, int(round(rate_hz * duration_s))
    timer, missed = Timer(), 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for frame in range(frames):
        pause = wall0 + frame * period - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        elif frame:
            missed += 1
        with timer:
            infer()
    if (pause := wall0 + frames * period - time.perf_counter()) > 0:
        time.sleep(pause)  # the last frame's period counts too
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return RateStats(rate_hz, round(wall, 3), frames, missed, cpu / wall, timer.stats(warmup=1, threads=threads))
