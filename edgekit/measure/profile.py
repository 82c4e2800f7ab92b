"""`edgekit profile`: where an artifact's time goes, kernel by kernel, against the target's roofline.

One row per kernel call the Relax VM makes (a fused function such as `fused_conv2d_add_relu`, or
a lone operator such as `max_pool2d`), in execution order. How each figure is found:

- Latency: TVM 0.27 has no VM profiler any more (`VirtualMachine(..., profile=True)` and
  `vm.profile` were removed), so edgekit times calls with the VM's own instrumentation hook
  (`set_instrument`, called before and after every call instruction): a clock read as the last
  thing before the call and the first thing after it, median over `runs` runs, in the model's
  own context (caches as a real inference leaves them). The hook itself costs about a
  microsecond per call; `totals.timer_floor_us` is that cost, measured on the VM's empty
  `vm.builtin.null_value` calls, so small kernels can be read with it in mind. Whole-inference
  latency comes from plain runs alternating with the instrumented ones.
- FLOPs and MACs: the library holds only machine code, so the fused PrimFuncs are rebuilt from
  the source ONNX recorded in the manifest with compile's own steps (fold, import, integer
  regions for QDQ models, `fused_module`) and counted before any schedule: FLOPs with TVM's
  `estimate_tir_flops` (every arithmetic op, epilogues included), MACs as the iterations of
  multiply-accumulate reduction blocks (conv, matmul). A call is matched to its PrimFunc by name
  (scheduling renames `f` to `f_prepacked` when it packs weights). No source, or a changed
  one: FLOPs are unknown and the report says why; latency and bytes are still measured.
- Bytes: a call's parameter bytes are the constant tensors it reads (as stored in the library,
  packed weights included), its activation bytes its other tensor arguments (inputs and
  outputs). Bytes moved = both, each tensor once: the compulsory traffic.
- Roofline: intensity = FLOPs / bytes moved; attainable = min(peak compute, intensity x
  bandwidth) with the target descriptor's peaks (`int8_gops` for kernels reading int8/uint8
  tensors, else `fp32_gflops`; `memory_bandwidth_gbs`). A compute-bound call's fraction is its
  achieved GFLOP/s over peak compute, a memory-bound one's its achieved GB/s over peak bandwidth.
  Cache-resident tensors can beat the DRAM bandwidth, so small memory-bound calls may exceed 1.
- Peak activation memory: from the VM bytecode of the static memory plan. Every
  `vm.builtin.alloc_storage` (sized at run time from its arguments) stays allocated while a
  register holds it or a tensor carved from it; the peak is the largest sum of such storages at
  any instruction. `activation_storage_bytes` is the plan's total (every storage, no reuse).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekit import console
from edgekit.artifact import Manifest
from edgekit.errors import EdgekitError, InputError
from edgekit.files import sha256_file
from edgekit.reference import random_inputs
from edgekit.runtime import CompiledModel, load
from edgekit.target_spec import AcceleratorSpec, CpuSpec, PeakSpec, TargetSpec

BUILTIN_PREFIX = "vm.builtin."  # VM bookkeeping (allocation, shape checks, views), not kernels
INTEGER_DTYPES = ("int8", "uint8")


@dataclass(frozen=True)
class KernelCost:
    flops: int
    macs: int


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


@dataclass
class ProfileTotals:
    flops: int | None  # sum of the layers' FLOPs: the model's FLOPs per inference
    macs: int | None
    param_bytes: int  # distinct constant tensors the kernels read
    peak_activation_bytes: int | None  # largest live storage of the static memory plan
    activation_storage_bytes: int  # every storage the plan allocates, summed
    input_bytes: int
    kernel_latency_ms: float  # sum of the layers' median latencies
    latency_ms: float  # median of whole uninstrumented inferences (inputs on the device, outputs left there)
    achieved_gflops: float | None  # flops / latency_ms
    timer_floor_us: float | None  # the instrumentation's own cost per call


@dataclass
class ProfileReport:
    artifact: str
    target: str
    peak: dict[str, float]
    threads: int
    runs: int
    flops_source: str  # the ONNX the FLOPs were recomputed from, or why they are unknown
    layers: list[LayerProfile]
    totals: ProfileTotals
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why

    def to_dict(self) -> dict:
        data = asdict(self)
        for layer, entry in zip(self.layers, data["layers"]):
            entry["bytes_moved"] = layer.bytes_moved
        return data


def profile_artifact(folder: Path | str, runs: int = 20, warmup: int = 3, threads: int | None = None, seed: int = 0) -> ProfileReport:
    """Profile the artifact in `folder` on this machine, with seeded random inputs.

    Returns per-call rows and totals (see the module docstring for each figure's method).
    Raises ArtifactError for a missing, tampered, foreign-architecture or GPU artifact and
    InputError for bad counts; a missing or changed source ONNX only leaves FLOPs unknown.
    """
    if runs < 1 or warmup < 0:
        raise InputError(f"--runs must be >= 1 and --warmup >= 0 (got {runs}, {warmup})", "give sensible counts")
    model = load(folder, threads=threads)
    manifest = model.manifest
    feeds = random_inputs(model.inputs, seed)
    with console.step(f"profiling {runs} runs, each call timed, alternating with {runs} plain runs"):
        trace = _trace_calls(model, feeds, runs, warmup)
    with console.step("recomputing FLOPs from the source ONNX"):
        costs, flops_source = kernel_costs(manifest)

    program = parse_main(trace.program_text)
    aligned = program is not None and [i.symbol for i in program if i.op == "call"] == [c.symbol for c in trace.calls]
    constants = [i.args for i in program if i.op == "call"] if aligned else [[""] * len(c.args) for c in trace.calls]
    peak = manifest.target["peak"]
    layers, param_tensors = [], {}
    for position, (call, tokens) in enumerate(zip(trace.calls, constants)):
        if call.symbol.startswith(BUILTIN_PREFIX):
            continue
        param_tensors.update({token: arg for token, arg in zip(tokens, call.args) if arg is not None and token.startswith("c[")})
        latency_us = statistics.median(trace.durations_ns[position]) / 1e3
        layers.append(_layer(len(layers), call, tokens, match_cost(call.symbol, costs), latency_us, peak))

    notes = []
    if costs and (unmatched := sorted({layer.name for layer in layers if layer.flops is None})):
        notes.append(f"no rebuilt function matches {', '.join(unmatched)}: their FLOPs are unknown (was the artifact built by another edgekit version?)")
    if not aligned:
        notes.append("the VM bytecode is not straight-line calls: constants counted as activations, no peak activation memory")
    peak_bytes = peak_live_storage(program, [call.storage_bytes for call in trace.calls]) if aligned else None
    totals = _totals(trace, layers, sum(arg.nbytes for arg in param_tensors.values()), peak_bytes, sum(a.nbytes for a in feeds.values()))
    return ProfileReport(
        artifact=str(folder), target=manifest.target["name"], peak=dict(peak), threads=model.threads, runs=runs,
        flops_source=flops_source, layers=layers, totals=totals, notes=notes,
    )


def _totals(trace: Trace, layers: list[LayerProfile], param_bytes: int, peak_bytes: int | None, input_bytes: int) -> ProfileTotals:
    known = bool(layers) and all(layer.flops is not None for layer in layers)
    flops = sum(layer.flops for layer in layers) if known else None
    floor = [statistics.median(d) / 1e3 for c, d in zip(trace.calls, trace.durations_ns) if c.symbol == BUILTIN_PREFIX + "null_value"]
    latency_ms = statistics.median(trace.whole_ns) / 1e6
    return ProfileTotals(
        flops=flops,
        macs=sum(layer.macs for layer in layers) if known else None,
        param_bytes=param_bytes,
        peak_activation_bytes=peak_bytes,
        activation_storage_bytes=sum(call.storage_bytes for call in trace.calls),
        input_bytes=input_bytes,
        kernel_latency_ms=sum(layer.latency_us for layer in layers) / 1e3,
        latency_ms=latency_ms,
        achieved_gflops=flops / (latency_ms * 1e6) if flops is not None else None,
        timer_floor_us=statistics.median(floor) if floor else None,
    )


# ---- latency: the VM's instrumentation hook ----


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


def _trace_calls(model: CompiledModel, feeds: dict[str, np.ndarray], runs: int, warmup: int) -> Trace:
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


# ---- bytes and memory: the VM bytecode ----


@dataclass(frozen=True)
class Instruction:
    op: str  # "call" or "ret"
    symbol: str
    args: list[str]  # "%3" registers, "c[5]" constants, "i0" immediates, "%vm", "%void"
    dst: str


_CALL = re.compile(r"^\s*call\s+(\S+)\s+in:(.*?)\s*dst:\s*(\S+)\s*$")
_RET = re.compile(r"^\s*ret\s+(\S+)\s*$")


def parse_main(text: str) -> list[Instruction] | None:
    """`main`'s instructions from `VMExecutable.as_text()`; None unless it is straight-line calls."""
    lines = text.splitlines()
    try:
        start = lines.index("@main:") + 1
    except ValueError:
        return None
    program = []
    for line in lines[start:]:
        if not line.strip():
            break
        if match := _CALL.match(line):
            args = [a.strip() for a in match.group(2).split(",") if a.strip()]
            program.append(Instruction("call", match.group(1), args, match.group(3)))
        elif match := _RET.match(line):
            program.append(Instruction("ret", "", [match.group(1)], ""))
        else:
            return None  # goto/if: a data-dependent path, which the lifetime walk below does not follow
    return program


def peak_live_storage(program: list[Instruction], storage_bytes: list[int]) -> int:
    """The most bytes of planned storage alive at once.

    `storage_bytes[k]` is what the k-th call allocates (0 unless it is alloc_storage). A storage
    lives while some register refers to it or to a tensor carved from it (alloc_tensor,
    reshape and other builtins derive their result from their register arguments).
    """
    holds: dict[str, frozenset[int]] = {}
    sizes: dict[int, int] = {}
    peak = 0
    calls = iter(storage_bytes)
    for instruction in program:
        if instruction.op != "call":
            break
        size = next(calls)
        if instruction.dst == "%void":
            continue
        if instruction.symbol == BUILTIN_PREFIX + "alloc_storage":
            sizes[len(sizes)] = size
            holds[instruction.dst] = frozenset([len(sizes) - 1])
        else:
            holds[instruction.dst] = frozenset().union(*(holds.get(a, frozenset()) for a in instruction.args if a.startswith("%")))
        live = frozenset().union(*holds.values())
        peak = max(peak, sum(sizes[s] for s in live))
    return peak


# ---- FLOPs: the fused PrimFuncs, rebuilt from the source ONNX ----


def kernel_costs(manifest: Manifest) -> tuple[dict[str, KernelCost], str]:
    """FLOPs and MACs of every fused PrimFunc of the artifact's model, by function name.

    Returns (costs, source): `source` is the ONNX path the counts come from, or the reason
    they are unknown (source ONNX moved or changed since compile): then `costs` is empty.
    """
    path = Path(manifest.source.get("path", ""))
    if not path.is_file():
        return {}, f"unknown: source ONNX {path} not found (FLOPs need the model the artifact was compiled from)"
    if sha256_file(path) != manifest.source.get("sha256"):
        return {}, f"unknown: source ONNX {path} changed since the artifact was compiled"
    from tvm import tirx

    try:
        module = _fused_module(manifest, path)
    except EdgekitError as exc:
        return {}, f"unknown: rebuilding {path} failed ({exc.one_line()})"
    costs = {}
    for gvar, func in module.functions_items():
        if isinstance(func, tirx.PrimFunc):
            cost = _count(func)
            if cost is not None:
                costs[gvar.name_hint] = cost
    return costs, str(path)


def match_cost(symbol: str, costs: dict[str, KernelCost]) -> KernelCost | None:
    """The cost of the PrimFunc a VM symbol was compiled from: same name, or the longest
    `name_...` prefix (schedules that pack weights rename `f` to `f_prepacked`)."""
    if symbol in costs:
        return costs[symbol]
    prefixes = [name for name in costs if symbol.startswith(name + "_")]
    return costs[max(prefixes, key=len)] if prefixes else None


def _fused_module(manifest: Manifest, source: Path):
    # The compile stage's own steps (as `edgekit tune` replays them), so names and fusion match.
    from edgekit.compiler import fold_model, fused_module, has_qdq, import_onnx, integer_regions
    from edgekit.onnx_model import load_onnx

    folded, _ = fold_model(load_onnx(source), manifest.inputs)
    mod = import_onnx(folded, manifest.inputs)
    if manifest.build.get("integer") and has_qdq(mod):  # only if compile rewrote this artifact's QDQ regions
        mod, _ = integer_regions(mod)
    return fused_module(mod, manifest_target(manifest))


def _count(func) -> KernelCost | None:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        flops = int(estimate_tir_flops(func.body))
    except Exception:  # noqa: BLE001 - the estimator rejects some loop shapes: that kernel's FLOPs stay unknown
        return None
    return KernelCost(flops, _macs(func))


def _macs(func) -> int:
    """Iterations of the function's multiply-accumulate reduction blocks (`acc = acc + a * b`,
    casts allowed): conv, matmul, dense. Unscheduled TIR: a block's iterators span its domain."""
    from tvm import s_tir, tirx

    sch = s_tir.Schedule(func)
    total = 0
    for block_rv in sch.get_child_blocks(sch.get_sblock("root")):
        block = sch.get(block_rv)
        if not any(iv.iter_type == tirx.IterVar.CommReduce for iv in block.iter_vars):
            continue
        value = getattr(block.body, "value", None)
        if not isinstance(value, tirx.Add) or not any(isinstance(_uncast(side), tirx.Mul) for side in (value.a, value.b)):
            continue
        total += math.prod(int(iv.dom.extent) for iv in block.iter_vars)
    return total


def _uncast(expr):
    from tvm import tirx

    while isinstance(expr, tirx.Cast):
        expr = expr.value
    return expr


def manifest_target(manifest: Manifest) -> TargetSpec:
    """The TargetSpec the artifact was built for, from the manifest (the TOML may have changed since)."""
    data = manifest.target
    cpu = dict(data["cpu"], features=tuple(data["cpu"]["features"]), cpu_ids=tuple(data["cpu"]["cpu_ids"]))
    accelerator = AcceleratorSpec(**data["accelerator"]) if data.get("accelerator") else None
    return TargetSpec(name=data["name"], description=data["description"], cpu=CpuSpec(**cpu), peak=PeakSpec(**data["peak"]), accelerator=accelerator)


# ---- the roofline ----


def _layer(index: int, call: TracedCall, tokens: list[str], cost: KernelCost | None, latency_us: float, peak: dict) -> LayerProfile:
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
        intensity = cost.flops / moved
        achieved = cost.flops / seconds / 1e9
        if compute_peak > 0 and bandwidth > 0:
            # Ridge point: below peak / bandwidth FLOP per byte, memory limits the kernel.
            bound = "compute" if intensity * bandwidth >= compute_peak else "memory"
            fraction = achieved / compute_peak if bound == "compute" else achieved_gbs / bandwidth
    return LayerProfile(
        index=index, name=call.symbol, precision="int8" if integer else "fp32",
        flops=cost.flops if cost else None, macs=cost.macs if cost else None,
        param_bytes=param_bytes, activation_bytes=activation_bytes, latency_us=latency_us,
        intensity=intensity, achieved_gflops=achieved, achieved_gbs=achieved_gbs, bound=bound, fraction=fraction,
        args=[("param " if constant else "") + arg.describe() for constant, arg in tensors],
    )
