"""One kernel call placed on the target's roofline.

Intensity = FLOPs / bytes moved; attainable = min(peak compute, intensity x bandwidth) with the
target descriptor's peaks (`int8_gops` for kernels reading int8/uint8 tensors, else
`fp32_gflops`; `memory_bandwidth_gbs`). A compute-bound call's fraction is its achieved GFLOP/s
over peak compute, a memory-bound one's its achieved GB/s over peak bandwidth. Cache-resident
tensors can beat the DRAM bandwidth, so small memory-bound calls may exceed 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.measure.call_trace import TracedCall

INTEGER_DTYPES = ("int8", "uint8")


@dataclass
class LayerProfile:
    """One kernel call of the VM, measured and placed on the target's roofline."""

    index: int  # position among the kernel calls, in execution order
    name: str  # the compiled function the VM calls
    precision: str  # "int8" when it reads int8/uint8 tensors, else "fp32"
    flops: int | None
    macs: int | None
    param_bytes: int
    activation_bytes: int
    latency_us: float  # median over the profiled runs
    intensity: float | None  # FLOPs per byte moved
    achieved_gflops: float | None
    achieved_gbs: float
    bound: str | None  # "compute" or "memory" (None: FLOPs unknown)
    fraction: float | None  # of the peak compute (compute-bound) or bandwidth (memory-bound)
    args: list[str] = field(default_factory=list)  # "1x64x56x56 float32", "param 64x3x7x7 float32"

    @property
    def bytes_moved(self) -> int:
        return self.param_bytes + self.activation_bytes


def layer_row(index: int, call: TracedCall, tokens: list[str], cost: dict[str, int] | None, latency_us: float, peak: dict) -> LayerProfile:
    """One call's row: `tokens` are its bytecode arguments (constants are "c[k]")."""
    tensors = [(token.startswith("c["), arg) for token, arg in zip(tokens, call.args) if arg is not None]
    integer = any(arg.dtype in INTEGER_DTYPES for _, arg in tensors)
    param_bytes = sum(arg.nbytes for constant, arg in tensors if constant)
    activation_bytes = sum(arg.nbytes for constant, arg in tensors if not constant)
    moved = param_bytes + activation_bytes
    seconds = max(latency_us, 1e-3) / 1e6  # a nanosecond floor: the clock never reads a call as free
    achieved_gbs = moved / seconds / 1e9
    compute_peak = peak["int8_gops"] if integer else peak["fp32_gflops"]
    bandwidth = peak["memory_bandwidth_gbs"]
    intensity = achieved = bound = fraction = None
    if cost is not None and moved:
        intensity = cost["flops"] / moved
        achieved = cost["flops"] / seconds / 1e9
        if compute_peak > 0 and bandwidth > 0:
            # Ridge point: below peak / bandwidth FLOP per byte, memory limits the kernel.
            bound = "compute" if intensity * bandwidth >= compute_peak else "memory"
            fraction = achieved / compute_peak if bound == "compute" else achieved_gbs / bandwidth
    return LayerProfile(
        index=index, name=call.symbol, precision="int8" if integer else "fp32",
        flops=cost["flops"] if cost else None, macs=cost["macs"] if cost else None,
        param_bytes=param_bytes, activation_bytes=activation_bytes, latency_us=latency_us,
        intensity=intensity, achieved_gflops=achieved, achieved_gbs=achieved_gbs, bound=bound, fraction=fraction,
        args=[("param " if constant else "") + arg.describe() for constant, arg in tensors],
    )
