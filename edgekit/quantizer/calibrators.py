"""Calibrators: from what was observed of one activation tensor to the clipping range [lo, hi] it keeps.

Each calibrator takes a `Histogram` (only min/max for min-max; the counts for the others), the
quantized dtype and whether the grid is symmetric, and returns a `ClipRange`. The range need not
contain 0: `params.activation_params` widens it to include 0 when it makes the scale and zero point.

Methods, in `CALIBRATORS`:
- minmax: the observed range, nothing clipped.
- percentile: clip the given fraction of the |x| (or signed) distribution's tail.
- entropy: TensorRT's KL-divergence threshold (Migacz, "8-bit Inference with TensorRT", 2017).
- mse: the threshold minimising the squared quantization error estimated from the histogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.quantizer.histogram import Histogram
from edgekit.quantizer.params import QRANGES, SYMMETRIC_QMAX

# Activations are 8-bit; int32 is for biases only.
ACTIVATION_DTYPES = ("int8", "uint8")
# MSE search grid: thresholds absmax*k/K (or alpha = k/K of the observed range), k = 1..K.
MSE_CANDIDATES = 200
# Two KL divergences closer than this are a tie (float noise, e.g. two exact matches at KL = 0).
KL_TIE = 1e-12


@dataclass(frozen=True)
class ClipRange:
    """The float range a tensor's grid should cover; values outside it saturate."""

    lo: float
    hi: float

    def __post_init__(self):
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            raise ValueError(f"clipping range must be finite, got [{self.lo}, {self.hi}]")
        if self.lo > self.hi:
            raise ValueError(f"clipping range is empty: lo {self.lo} > hi {self.hi}")


def calibrate_minmax(hist: Histogram, dtype: str, symmetric: bool) -> ClipRange:
    """The observed range (hist.min, hist.max); symmetric gives (-absmax, absmax), or (0, absmax) for data >= 0.

    Uses only hist.min and hist.max, so `hist.counts` may be None. Never fails.
    """
    if not symmetric:
        return ClipRange(float(hist.min), float(hist.max))
    return _symmetric_range(hist, hist.absmax)


def calibrate_percentile(hist: Histogram, dtype: str, symmetric: bool, percentile: float = 99.99) -> ClipRange:
    """Clip the tails beyond the `percentile`-th percentile.

    Symmetric grids, and data >= 0, use the |x| histogram: T = upper edge of the bin where the
    cumulative count first reaches percentile% of the total; returns (-T, T), or (0, T) for data >= 0.
    Asymmetric grids on signed data use the signed histogram: lo = lower edge of the bin at the
    (100 - percentile)-th percentile, hi = upper edge of the bin at the percentile-th, kept within
    [hist.min, hist.max]. Edges are bin edges, so the threshold is exact to one bin width.

    Raises ValueError without counts, for an empty histogram, or for a percentile outside (50, 100].
    """
    _require_counts(hist, "percentile")
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile must satisfy 50 < p <= 100, got {percentile}")
    if hist.absmax == 0:
        return ClipRange(0.0, 0.0)
    if symmetric or hist.min >= 0:
        index = _first_reaching(np.cumsum(hist.folded()), percentile * hist.total / 100)
        return _symmetric_range(hist, min((index + 1) * hist.bin_width, hist.absmax))
    cumulative = np.cumsum(hist.counts)
    low = _first_reaching(cumulative, (100 - percentile) * hist.total / 100)
    high = _first_reaching(cumulative, percentile * hist.total / 100)
    edges = hist.edges
    return ClipRange(max(float(edges[low]), hist.min), min(float(edges[high + 1]), hist.max))


def calibrate_entropy(hist: Histogram, dtype: str, symmetric: bool, levels: int | None = None) -> ClipRange:
    """TensorRT's entropy calibrator: the |x| threshold whose L-level quantization loses least information.

    On the |x| histogram of B bins, every candidate i in L..B keeps bins [0, i) with the tail
    folded into bin i-1 (distribution P), quantizes those bins to L levels and expands them back
    (Q), and scores KL(P || Q); the smallest KL wins (ties: the smallest i), T = i * bin_width.
    L = 128 levels (one sign's worth of 8 bits) unless the data is >= 0 on an asymmetric grid,
    which then has all 256 levels for |x|; `levels` overrides L (for tests). Returns (-T, T), or
    (0, T) for data >= 0; the min-max range when B <= L; (0, 0) for an all-zero tensor.

    Raises ValueError without counts or for an empty histogram.
    """
    _require_counts(hist, "entropy")
    if hist.absmax == 0:
        return ClipRange(0.0, 0.0)
    if levels is None:
        levels = 256 if hist.min >= 0 and not symmetric else 128
    if hist.bins <= levels:
        return calibrate_minmax(hist, dtype, symmetric)
    folded = hist.folded().astype(np.float64)
    # The bin holding 0 carries a spike (ReLU outputs, padding) that dominates KL and drives the
    # threshold down until most real values clip (the demo CNN lost 74 points of top-1 that way).
    # NVIDIA's pytorch-quantization entropy calibrator flattens it the same way: bins[0] = bins[1].
    folded[0] = folded[1]
    best_i, best_kl = hist.bins, np.inf
    for i in range(levels, hist.bins + 1):
        kl = _clipped_kl(folded, i, levels)
        if kl < best_kl - KL_TIE:
            best_i, best_kl = i, kl
    return _symmetric_range(hist, min(best_i * hist.bin_width, hist.absmax))


def calibrate_mse(hist: Histogram, dtype: str, symmetric: bool) -> ClipRange:
    """The clipping range minimising the squared quantization error, estimated from the histogram.

    Every bin (centre c, count n) contributes n * step^2 / 12 if c is inside the range (uniform
    rounding error) and n * (distance from c to the range)^2 if outside (saturation). Candidates
    are T = absmax * k / K for symmetric grids and data >= 0, else (alpha * min, alpha * max) with
    alpha = k / K, k = 1..K (K = MSE_CANDIDATES); ties go to the largest range. Returns (-T, T),
    (0, T) for data >= 0, or (alpha * min, alpha * max); (0, 0) for an all-zero tensor.

    Raises ValueError without counts or for an empty histogram.
    """
    _require_counts(hist, "mse")
    if hist.absmax == 0:
        return ClipRange(0.0, 0.0)
    fractions = np.arange(1, MSE_CANDIDATES + 1) / MSE_CANDIDATES
    if symmetric or hist.min >= 0:
        thresholds = hist.absmax * fractions
        levels = SYMMETRIC_QMAX[dtype] if symmetric else _steps(dtype)
        centres = (np.arange(hist.bins) + 0.5) * hist.bin_width
        errors = _expected_squared_error(centres, hist.folded(), np.zeros_like(thresholds), thresholds, thresholds / levels)
        return _symmetric_range(hist, float(thresholds[_last_argmin(errors)]))
    lows, highs = hist.min * fractions, hist.max * fractions
    # The grid really covers the range widened to include 0 (activation_params does so); score that
    # grid, which matters only when all data is <= 0.
    grid_lo, grid_hi = np.minimum(lows, 0.0), np.maximum(highs, 0.0)
    edges = hist.edges
    centres = (edges[:-1] + edges[1:]) / 2
    errors = _expected_squared_error(centres, hist.counts, grid_lo, grid_hi, (grid_hi - grid_lo) / _steps(dtype))
    best = _last_argmin(errors)
    return ClipRange(float(lows[best]), float(highs[best]))


# Method name -> calibrator; a recipe's `method` is a key here.
CALIBRATORS = {
    "minmax": calibrate_minmax,
    "percentile": calibrate_percentile,
    "entropy": calibrate_entropy,
    "mse": calibrate_mse,
}
# Method name -> the recipe parameters it accepts (passed on as keyword arguments).
METHOD_PARAMS = {
    "minmax": (),
    "percentile": ("percentile",),
    "entropy": (),
    "mse": (),
}


def calibrate(method: str, hist: Histogram, dtype: str, symmetric: bool, **params) -> ClipRange:
    """Run calibrator `method` on `hist` for a `dtype` ("int8" or "uint8") grid.

    Raises ValueError for an unknown method, dtype or parameter, and whatever the calibrator raises
    (a histogram method given no counts, a parameter out of range).
    """
    if method not in CALIBRATORS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CALIBRATORS)}")
    if dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"activations quantize to {' or '.join(ACTIVATION_DTYPES)}, not {dtype!r}")
    unknown = sorted(set(params) - set(METHOD_PARAMS[method]))
    if unknown:
        accepted = ", ".join(METHOD_PARAMS[method]) or "none"
        raise ValueError(f"calibration method {method!r} takes no parameter {', '.join(unknown)} (accepted: {accepted})")
    return CALIBRATORS[method](hist, dtype, symmetric, **params)


def _require_counts(hist: Histogram, method: str) -> None:
    if hist.counts is None:
        raise ValueError(f"calibration method {method!r} needs a histogram (counts), only the range was collected")
    # A tensor with a range but no counted values means passes 1 and 2 saw different data.
    if hist.total == 0 and hist.absmax > 0:
        raise ValueError(f"calibration method {method!r} got an empty histogram over [{hist.min}, {hist.max}]")


def _symmetric_range(hist: Histogram, threshold: float) -> ClipRange:
    # Data that is never negative needs no negative half: (0, T) leaves an asymmetric grid all its levels.
    threshold = float(threshold)
    return ClipRange(0.0, threshold) if hist.min >= 0 else ClipRange(-threshold, threshold)


def _steps(dtype: str) -> int:
    qmin, qmax = QRANGES[dtype]
    return qmax - qmin


def _first_reaching(cumulative: np.ndarray, target: float) -> int:
    """Index of the first bin whose cumulative count is >= target."""
    return min(int(np.searchsorted(cumulative, target, side="left")), len(cumulative) - 1)


def _clipped_kl(folded: np.ndarray, i: int, levels: int) -> float:
    """KL(P || Q) for threshold bin i: inf when Q misses mass that P has."""
    kept = folded[:i]
    reference = kept.copy()
    reference[i - 1] += folded[i:].sum()  # outliers saturate into the last kept bin
    # Bin j of [0, i) falls in level j * levels // i: `levels` groups of nearly equal size.
    group = np.arange(i) * levels // i
    nonzero = reference > 0
    group_mass = np.bincount(group, weights=kept, minlength=levels)
    group_nonzero = np.bincount(group, weights=nonzero, minlength=levels)
    # Each level's mass spreads over the bins P has mass in: an empty bin stays empty after dequantizing.
    candidate = np.where(nonzero, group_mass[group] / np.maximum(group_nonzero[group], 1), 0.0)
    if np.any(nonzero & (candidate == 0)):
        return np.inf
    p = reference[nonzero] / reference.sum()
    q = candidate[nonzero] / candidate.sum()
    return float(np.sum(p * np.log(p / q)))


def _expected_squared_error(centres: np.ndarray, counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Per candidate range [lo[k], hi[k]] with grid step step[k]: the histogram's total squared error."""
    lo, hi, step = lo[:, None], hi[:, None], step[:, None]
    inside = (centres >= lo) & (centres <= hi)
    saturation = np.maximum(lo - centres, 0.0) ** 2 + np.maximum(centres - hi, 0.0) ** 2
    per_bin = np.where(inside, step**2 / 12, saturation)
    return per_bin @ np.asarray(counts, np.float64)


def _last_argmin(errors: np.ndarray) -> int:
    # Candidates grow with the index, so the last minimum is the largest range among ties.
    return len(errors) - 1 - int(np.argmin(errors[::-1]))
