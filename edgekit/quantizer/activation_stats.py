"""Calibration: run the float model in ONNX Runtime over the data set and observe activation tensors.

Pass 1 finds each tensor's finite range and flags extreme values; pass 2 fills histograms over
that range for the tensors whose method needs one; pass 3 (after the parameters are chosen)
counts exactly how many calibration values each tensor's grid clips.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx

from edgekit import console
from edgekit.dataset import Dataset
from edgekit.quantizer.histogram import Histogram
from edgekit.quantizer.params import QuantParams
from edgekit.reference import Reference


def observed_tensors(model: onnx.ModelProto, tensors: list[str], dataset: Dataset, label: str) -> Iterator[dict[str, np.ndarray]]:
    """Yield, per calibration sample, the float32 values of `tensors` (graph inputs included)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    inputs = set(dataset.arrays)
    for name in tensors:
        if name not in existing and name not in inputs:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    # No graph optimisation: fusions would remove the intermediate tensors asked for.
    session = Reference(probe, threads=1, optimize=False)
    wanted = set(tensors)
    with console.progress(len(dataset), label) as advance:
        for index in range(len(dataset)):
            feeds = dataset.sample(index)
            outputs = session(feeds)
            values = {name: feeds[name] for name in wanted & inputs}
            values.update({name: outputs[name] for name in wanted - inputs})
            yield {name: v for name, v in values.items() if isinstance(v, np.ndarray) and v.dtype == np.float32}
            advance()


def collect_ranges(model: onnx.ModelProto, tensors: list[str], dataset: Dataset, extreme_abs: float) -> tuple[dict[str, Histogram], dict[str, str]]:
    """Pass 1: finite min/max per tensor, and tensors holding extreme values -> description."""
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    extreme: dict[str, str] = {}
    for values in observed_tensors(model, tensors, dataset, "calibration pass 1/3: ranges"):
        for name, value in values.items():
            finite = value[np.isfinite(value)]
            if finite.size != value.size:
                extreme[name] = "holds Inf or NaN (a mask or sentinel value)"
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
                lows[name] = min(lo, lows.get(name, lo))
                highs[name] = max(hi, highs.get(name, hi))
                if max(-lo, hi) >= extreme_abs and name not in extreme:
                    extreme[name] = f"holds values with |x| >= {extreme_abs:g} (a mask or sentinel value, e.g. {lo if -lo >= hi else hi:.3g})"
    ranges = {name: Histogram(lows[name], highs[name]) for name in lows}
    return ranges, extreme


def collect_histograms(model: onnx.ModelProto, histograms: dict[str, Histogram], dataset: Dataset) -> None:
    """Pass 2: fill the given histograms (their range comes from pass 1)."""
    if not histograms:
        return
    for values in observed_tensors(model, sorted(histograms), dataset, "calibration pass 2/3: histograms"):
        for name, value in values.items():
            histograms[name].add(value)


def count_clipped(model: onnx.ModelProto, params: dict[str, QuantParams], dataset: Dataset) -> dict[str, float]:
    """Pass 3: per tensor, the fraction of calibration values outside the quantized grid."""
    outside = dict.fromkeys(params, 0)
    total = dict.fromkeys(params, 0)
    bounds = {name: tuple(float(b[0]) for b in p.representable_range()) for name, p in params.items()}
    for values in observed_tensors(model, sorted(params), dataset, "calibration pass 3/3: clipping"):
        for name, value in values.items():
            lo, hi = bounds[name]
            # Half a step of slack: values that round onto the end of the grid are not clipped.
            half = params[name].scale[0] / 2
            outside[name] += int(np.count_nonzero((value < lo - half) | (value > hi + half)))
            total[name] += value.size
    return {name: (outside[name] / total[name] if total[name] else 0.0) for name in params}
