"""The run stage: load an artifact and call it from Python, time it, and pack it for a board.

    compiled_model.py  load(folder) -> CompiledModel: the manifest checked, the library loaded
    timing.py          latency and fixed-rate CPU-use measurements
    bundle.py          artifact + on-device runner + runtime libraries, as one folder to copy
    runner/            the C++ runner (no Python on the device) and its cross build
"""

from edgekit.runtime.compiled_model import CompiledModel, load, run_at_rate, time_model, validate_array
from edgekit.runtime.timing import LatencyStats, RateStats, Timer
from edgekit.runtime.bundle import cached_runner
from edgekit.runtime.runner.runner_build import cache_dir

__all__ = ["CompiledModel", "LatencyStats", "RateStats", "Timer", "cache_dir", "cached_runner", "load", "run_at_rate", "time_model", "validate_array"]
