"""Per-call latency of an artifact, through the Relax VM's instrumentation hook.

TVM 0.27 has no VM profiler any more (`VirtualMachine(..., profile=True)` and `vm.profile` were
removed), so calls are timed with the VM's own hook (`set_instrument`, called before and after
every call instruction): a clock read as the last thing before the call and the first thing
after it, in the model's own context (caches as a real inference leaves them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from edgekit.errors import InputError
from edgekit.runtime import CompiledModel

BUILTIN_PREFIX = "vm.builtin."  # VM bookkeeping (allocation, shape checks, views), not kernels


@dataclass(frozen=True)
class TensorArg:
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        return f"{'x'.join(map(str, self.shape)) or 'scalar'} {self.dtype}"


@dataclass
class TracedCall:
    symbol: str
    args: list[TensorArg | None]  # None for non-tensor arguments
    storage_bytes: int = 0  # for vm.builtin.alloc_storage: the bytes it allocates


@dataclass
class Trace:
    calls: list[TracedCall]
    durations_ns: list[list[int]]  # per call position, one duration per run
    whole_ns: list[int]  # uninstrumented inferences, interleaved with the instrumented ones
    program_text: str


class _CallTimer:
    """The instrument: times every call instruction; describes the arguments on the first run only."""

    def __init__(self) -> None:
        self.calls: list[TracedCall] = []
        self.runs: list[list[int]] = []
        self.describe = True
        self._start = 0

    def __call__(self, func, symbol, before, ret, *args):
        if before:
            self._start = time.perf_counter_ns()  # last: nothing of ours lands inside the call
            return 0
        elapsed = time.perf_counter_ns() - self._start
        self.runs[-1].append(elapsed)
        if self.describe:
            self.calls.append(_describe_call(str(symbol), args))
        return 0


def trace_calls(model: CompiledModel, feeds: dict[str, np.ndarray], runs: int, warmup: int) -> Trace:
    """Alternate instrumented and plain runs, so machine noise hits the per-call and the
    whole-inference figures alike (a busy machine otherwise skews one against the other)."""
    # A VM of our own on the same library, so the model's VM is never left instrumented.
    import tvm
    from tvm import relax

    library = tvm.runtime.load_module(str((model.folder / model.manifest.library).resolve()))
    vm = relax.VirtualMachine(library, tvm.cpu())
    device_inputs = model.to_device(model.bind((), feeds))
    main = vm["main"]
    for _ in range(warmup):
        main(*device_inputs)
    timer, whole = _CallTimer(), []
    for run in range(runs):
        timer.runs.append([])
        vm.set_instrument(timer)
        main(*device_inputs)
        vm.set_instrument(None)
        timer.describe = False
        if len(timer.runs[-1]) != len(timer.calls):
            raise InputError(f"the model made {len(timer.runs[-1])} calls in run {run + 1} and {len(timer.calls)} in the first", "profile needs a model with static control flow")
        start = time.perf_counter_ns()
        main(*device_inputs)
        whole.append(time.perf_counter_ns() - start)
    durations = [list(column) for column in zip(*timer.runs)]
    return Trace(timer.calls, durations, whole, relax.VMExecutable(library).as_text())


def _describe_call(symbol: str, args) -> TracedCall:
    import tvm

    described: list[TensorArg | None] = [
        TensorArg(tuple(int(d) for d in arg.shape), str(arg.dtype)) if isinstance(arg, tvm.runtime.Tensor) else None for arg in args
    ]
    storage = 0
    if symbol == BUILTIN_PREFIX + "alloc_storage":
        # (vm, size shape, device index, dtype, scope): TVM 0.27's argument order.
        storage = math.prod(int(d) for d in args[1]) * np.dtype(str(args[3])).itemsize
    return TracedCall(symbol, described, storage)
