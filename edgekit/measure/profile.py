"""`edgekit profile`: where an artifact's time goes, kernel by kernel, against the target's roofline.

One row per kernel call the Relax VM makes (a fused function such as `fused_conv2d_add_relu`, or
a lone operator such as `max_pool2d`), in execution order. How each figure is found:

- Latency (call_trace.py): each call timed through the VM's instrumentation hook, median over
  `runs` runs. The hook itself costs about a microsecond per call; `totals.timer_floor_us` is
  that cost, measured on the VM's empty `vm.builtin.null_value` calls, so small kernels can be
  read with it in mind. Whole-inference latency comes from plain runs alternating with the
  instrumented ones.
- FLOPs and MACs: counted by compile on the fused, unscheduled kernels and written into the
  manifest (`kernels`; compiler/kernel_costs.py), so profile needs neither the source ONNX nor
  the directory compile ran in. A call is matched to its kernel by name (scheduling renames `f`
  to `f_prepacked` when it packs weights). An artifact without counts (built by an older
  edgekit, or for a GPU) has unknown FLOPs and the report says why; latency and bytes are
  still measured.
- Bytes: a call's parameter bytes are the constant tensors it reads (as stored in the library,
  packed weights included), its activation bytes its other tensor arguments (inputs and
  outputs). Bytes moved = both, each tensor once: the compulsory traffic.
- Roofline (roofline.py): each call against the target descriptor's peaks.
- Peak activation memory (memory_plan.py): from the VM bytecode of the static memory plan. Every
  `vm.builtin.alloc_storage` (sized at run time from its arguments) stays allocated while a
  register holds it or a tensor carved from it; the peak is the largest sum of such storages at
  any instruction. `activation_storage_bytes` is the plan's total (every storage, no reuse).
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit import console
from edgekit.errors import InputError
from edgekit.measure.call_trace import BUILTIN_PREFIX, Trace, trace_calls
from edgekit.measure.memory_plan import parse_main, peak_live_storage
from edgekit.measure.roofline import LayerProfile, layer_row
from edgekit.reference import random_inputs
from edgekit.runtime import load


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
    flops_source: str  # where the FLOPs come from (the manifest), or why they are unknown
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
    InputError for bad counts; a manifest without kernel costs only leaves FLOPs unknown.
    """
    if runs < 1 or warmup < 0:
        raise InputError(f"--runs must be >= 1 and --warmup >= 0 (got {runs}, {warmup})", "give sensible counts")
    model = load(folder, threads=threads)
    manifest = model.manifest
    feeds = random_inputs(model.inputs, seed)
    with console.step(f"profiling {runs} runs, each call timed, alternating with {runs} plain runs"):
        trace = trace_calls(model, feeds, runs, warmup)
    flops_source = "the manifest (counted by compile)" if manifest.kernels else "unknown: the manifest has no kernel costs (recompile with this edgekit)"

    program = parse_main(trace.program_text)
    aligned = program is not None and [i.symbol for i in program if i.op == "call"] == [c.symbol for c in trace.calls]
    constants = [i.args for i in program if i.op == "call"] if aligned else [[""] * len(c.args) for c in trace.calls]
    peak = dataclasses.asdict(manifest.target.peak)
    layers, param_tensors = [], {}
    for position, (call, tokens) in enumerate(zip(trace.calls, constants)):
        if call.symbol.startswith(BUILTIN_PREFIX):
            continue
        param_tensors.update({token: arg for token, arg in zip(tokens, call.args) if arg is not None and token.startswith("c[")})
        latency_us = statistics.median(trace.durations_ns[position]) / 1e3
        layers.append(layer_row(len(layers), call, tokens, manifest.kernel_cost(call.symbol), latency_us, peak))

    notes = []
    if manifest.kernels and (unmatched := sorted({layer.name for layer in layers if layer.flops is None})):
        notes.append(f"the manifest has no kernel costs for {', '.join(unmatched)}: their FLOPs are unknown")
    if not aligned:
        notes.append("the VM bytecode is not straight-line calls: constants counted as activations, no peak activation memory")
    peak_bytes = peak_live_storage(program, [call.storage_bytes for call in trace.calls]) if aligned else None
    totals = _totals(trace, layers, sum(arg.nbytes for arg in param_tensors.values()), peak_bytes, sum(a.nbytes for a in feeds.values()))
    return ProfileReport(
        artifact=str(folder), target=manifest.target.name, peak=dict(peak), threads=model.threads, runs=runs,
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


