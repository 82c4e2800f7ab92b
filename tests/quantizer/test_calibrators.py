"""Calibrators: clipping ranges checked against numbers worked out by hand or by brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.quantizer.calibrators import (
    CALIBRATORS,
    METHOD_PARAMS,
    ClipRange,
    calibrate,
    calibrate_entropy,
    calibrate_minmax,
    calibrate_mse,
    calibrate_percentile,
)
from edgekit.quantizer.histogram import Histogram
from edgekit.quantizer.params import activation_params, dequantize, quantize


def hist_from_folded(folded, split: int = 0) -> Histogram:
    """A signed histogram whose |x| histogram is `folded` (bin width 1); `split` puts part of each bin on the negative side.

    Built by hand, so min/max only set absmax = len(folded); calibrators other than min-max read only the counts.
    """
    folded = np.asarray(folded, np.int64)
    negative = np.minimum(folded, split)
    counts = np.concatenate([negative[::-1], folded - negative])
    hist = Histogram(-float(len(folded)), float(len(folded)), len(folded), counts)
    assert np.array_equal(hist.folded(), folded) and hist.bin_width == 1.0
    return hist


# --- min-max ---------------------------------------------------------------------------------------


def test_minmax_signed_data():
    hist = Histogram(-1.0, 3.0)  # only the range, no counts: min-max needs nothing more
    assert calibrate_minmax(hist, "int8", symmetric=True) == ClipRange(-3.0, 3.0)
    assert calibrate_minmax(hist, "int8", symmetric=False) == ClipRange(-1.0, 3.0)


def test_minmax_non_negative_data():
    hist = Histogram.from_values(np.array([0.5, 1.25, 2.0]), bins=8)
    assert calibrate_minmax(hist, "uint8", symmetric=False) == ClipRange(0.5, 2.0)
    # Symmetric on data >= 0: no negative half, the grid starts at 0.
    assert calibrate_minmax(hist, "int8", symmetric=True) == ClipRange(0.0, 2.0)


# --- percentile ------------------------------------------------------------------------------------


def test_percentile_ignores_one_far_outlier():
    values = np.append((np.arange(10_000) + 0.5) / 10_000, 100.0)  # evenly over (0, 1), plus 100
    hist = Histogram.from_values(values, bins=2048)
    width = 100 / 2048
    clip = calibrate_percentile(hist, "int8", symmetric=True, percentile=99.9)
    # 99.9% of 10001 values is 9990.999, so the cumulative count must reach 9991: the 9991st value,
    # 9990.5 / 10000 = 0.99905, lies in bin floor(0.99905 / width) = 20, whose upper edge is 21 * width.
    assert clip.lo == 0.0 and clip.hi == pytest.approx(21 * width)
    assert abs(clip.hi - 0.999) <= width
    assert clip.hi < 2


def test_percentile_symmetric_on_signed_data():
    hist = hist_from_folded([5, 3, 1, 1], split=2)
    # 90% of 10 is 9: cumulative |x| counts 5, 8, 9, 10 first reach 9 in bin 2, upper edge 3.
    assert calibrate_percentile(hist, "int8", symmetric=True, percentile=90) == ClipRange(-3.0, 3.0)


def test_percentile_asymmetric_signed_hand_computed():
    # bins=4 over [-4, 4]: edges -4, -3, ..., 4; 20 values; cumulative counts 1, 3, 6, 10, 14, 17, 19, 20.
    counts = np.array([1, 2, 3, 4, 4, 3, 2, 1])
    hist = Histogram(-3.5, 4.0, bins=4, counts=counts)
    # 90: low target 2 -> first bin reaching it is bin 1, lower edge -3; high target 18 -> bin 6, upper edge 3.
    assert calibrate_percentile(hist, "int8", symmetric=False, percentile=90) == ClipRange(-3.0, 3.0)
    # 95: low target 1 -> bin 0, lower edge -4, clamped to the observed min -3.5; high target 19 -> bin 6.
    assert calibrate_percentile(hist, "int8", symmetric=False, percentile=95) == ClipRange(-3.5, 3.0)
    # 100: nothing clipped, the observed range.
    assert calibrate_percentile(hist, "int8", symmetric=False, percentile=100) == ClipRange(-3.5, 4.0)


def test_percentile_out_of_range_is_refused():
    hist = hist_from_folded([5, 3, 1, 1])
    with pytest.raises(ValueError, match="percentile"):
        calibrate_percentile(hist, "int8", True, percentile=120)


# --- entropy ---------------------------------------------------------------------------------------


def test_entropy_keeps_everything_when_nothing_lies_beyond_l_bins():
    levels = 128
    folded = np.zeros(4 * levels, np.int64)
    folded[:levels] = 1000 - 7 * np.arange(levels)  # decreasing, so no two neighbouring bins are equal
    hist = hist_from_folded(folded, split=300)
    # At i = L every level is one bin, so Q == P and KL = 0, the smallest a KL can be; any larger i
    # has nothing to clip and only merges unequal bins (KL > 0), so the answer is i = L: T = L * width.
    assert calibrate_entropy(hist, "int8", symmetric=True) == ClipRange(-128.0, 128.0)


def test_entropy_uses_256_levels_for_non_negative_asymmetric_data():
    folded = np.zeros(512, np.int64)
    folded[:256] = 1000 - 3 * np.arange(256) + 400 * (np.arange(256) % 2)  # a ramp with alternating bins
    hist = Histogram(0.0, 512.0, 512, np.concatenate([np.zeros(512, np.int64), folded]))
    # Same reasoning with L = 256: i = 256 gives Q == P and KL = 0.
    assert calibrate_entropy(hist, "uint8", symmetric=False) == ClipRange(0.0, 256.0)
    # A symmetric grid has L = 128: at i = 256 each level merges an unequal pair of bins (KL > 0), and
    # the search settles elsewhere (at 383 bins), so the 256-level case really differs.
    assert calibrate_entropy(hist, "uint8", symmetric=True).hi != 256.0


def test_entropy_gaussian_with_outliers():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.standard_normal(100_000), [20.0, -19.5, 18.0]])
    hist = Histogram.from_values(values, bins=2048)
    clip = calibrate_entropy(hist, "int8", symmetric=True)
    # Candidates run from 128 bins (20 * 128 / 2048 = 1.25 sigma) to 20 sigma. TensorRT's calibrator lands
    # at roughly 3-5 sigma on Gaussians: clipping at 1-2 sigma folds too much mass into the last bin, and
    # thresholds past the tail only coarsen the 128 levels over the bulk. Allow a generous 2.5..6 sigma.
    assert clip.lo == -clip.hi
    assert 2.5 < clip.hi < 6.0


def brute_force_kl(folded, i: int, levels: int) -> float:
    """KL(P || Q) for candidate i, written out with plain loops (independent of the vectorised code)."""
    folded = [float(c) for c in folded]
    folded[0] = folded[1]  # the calibrator flattens the spike at 0 first (pytorch-quantization's rule)
    p = [float(c) for c in folded[:i]]
    for c in folded[i:]:
        p[i - 1] += float(c)
    q = [0.0] * i
    for level in range(levels):
        members = [j for j in range(i) if j * levels // i == level]
        mass = sum(float(folded[j]) for j in members)
        support = [j for j in members if p[j] > 0]
        for j in support:
            q[j] = mass / len(support)
    total_p, total_q = sum(p), sum(q)
    kl = 0.0
    for pj, qj in zip(p, q):
        if pj == 0:
            continue
        if qj == 0:
            return math.inf
        kl += pj / total_p * math.log((pj / total_p) / (qj / total_q))
    return kl


def test_entropy_matches_brute_force_on_a_tiny_histogram():
    # Bins 0 and 1 are equal, so flattening the zero bin changes nothing and the hand sums stay simple.
    folded = [8, 8, 6, 3, 2, 0, 0, 1]
    # i = 5 by hand: P = [8, 8, 6, 3, 2 + 0 + 0 + 1] (sum 28); bins 0,1 form level 0 (16 spread as 8, 8),
    # bins 2, 3, 4 one level each, so Q = [8, 8, 6, 3, 2] (sum 27).
    by_hand = sum(p / 28 * math.log((p / 28) / (q / 27)) for p, q in zip([8, 8, 6, 3, 3], [8, 8, 6, 3, 2]))
    assert brute_force_kl(folded, 5, 4) == pytest.approx(by_hand)
    # i = 6, 7: the tail's single count lands in a bin whose level holds no kept mass, so Q = 0 < P there.
    assert brute_force_kl(folded, 6, 4) == math.inf and brute_force_kl(folded, 7, 4) == math.inf
    kls = {i: brute_force_kl(folded, i, 4) for i in range(4, 9)}
    best = min(kls, key=kls.get)
    assert best == 5  # interior: neither the smallest nor the largest candidate
    clip = calibrate_entropy(hist_from_folded(folded, split=3), "int8", symmetric=True, levels=4)
    assert clip == ClipRange(-5.0, 5.0)


def test_entropy_ignores_the_spike_at_zero():
    # Post-ReLU: 90% exact zeros, the rest uniform on (0, 4]. Without flattening bin 0 the spike
    # dominates KL and the threshold collapses towards 128 bins (0.25); with it, T stays near the top.
    rng = np.random.default_rng(0)
    values = np.concatenate([np.zeros(90_000), rng.uniform(0, 4, 10_000)])
    clip = calibrate_entropy(Histogram.from_values(values, bins=2048), "int8", symmetric=False)
    assert clip.lo == 0.0 and clip.hi > 3.0


def test_entropy_matches_brute_force_on_random_histograms():
    rng = np.random.default_rng(3)
    for _ in range(25):
        bins = int(rng.integers(8, 17))
        folded = rng.integers(0, 10, bins) * (rng.random(bins) < 0.8)
        folded[-1] = max(folded[-1], 1)  # the bin holding absmax is never empty in real data
        kls = [brute_force_kl(folded, i, 4) for i in range(4, bins + 1)]
        clip = calibrate_entropy(hist_from_folded(folded, split=4), "int8", symmetric=True, levels=4)
        chosen = round(clip.hi)
        # The chosen candidate is a minimum, and the first one (ties go to the smallest i).
        assert kls[chosen - 4] == pytest.approx(min(kls), abs=1e-12)
        assert all(kl > min(kls) + 1e-12 for kl in kls[: chosen - 4])


def test_entropy_few_bins_falls_back_to_minmax():
    hist = Histogram.from_values(np.array([-0.5, 0.25, 2.0]), bins=64)  # 64 bins <= 128 levels
    assert calibrate_entropy(hist, "int8", symmetric=True) == ClipRange(-2.0, 2.0)


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse"])
def test_histogram_methods_on_all_zero_tensor(method):
    hist = Histogram.from_values(np.zeros(10), bins=16)
    assert calibrate(method, hist, "int8", True) == ClipRange(0.0, 0.0)
    assert calibrate(method, hist, "uint8", False) == ClipRange(0.0, 0.0)


# --- MSE -------------------------------------------------------------------------------------------


def test_mse_clips_a_far_outlier():
    n = 1_000_000
    values = np.append(np.random.default_rng(0).random(n), 100.0)
    hist = Histogram.from_values(values, bins=2048)
    clip = calibrate_mse(hist, "int8", symmetric=True)
    # For T >= 1 every uniform value is inside: error(T) = n * (T/127)^2 / 12 + (c - T)^2, c = 100 - w/2
    # the outlier bin's centre (w = 100/2048). Its minimum is at T* = c / (1 + n / (12 * 127^2)) = 16.21;
    # candidates are multiples of 100/200 = 0.5 and the error is a parabola, so 16.0 is the nearest.
    centre = 100 - 100 / 2048 / 2
    assert centre / (1 + n / (12 * 127**2)) == pytest.approx(16.21, abs=0.01)
    assert clip.lo == 0.0 and clip.hi == pytest.approx(16.0)


def test_mse_no_clipping_on_uniform_data():
    values = np.random.default_rng(1).uniform(-1, 1, 20_000)
    hist = Histogram.from_values(values, bins=2048)
    clip = calibrate_mse(hist, "int8", symmetric=True)
    # Per unit density, error(T) ~ T^3 / (3 * 127^2 * 4) + (1 - T)^3 / 3: optimum at 1 - T = T / 254,
    # T = 0.996, so the answer is absmax or one candidate step (absmax / 200) below it.
    step = hist.absmax / 200
    assert clip.lo == -clip.hi
    assert hist.absmax - step * (1 + 1e-9) <= clip.hi <= hist.absmax


def exact_mse(values: np.ndarray, lo: float, hi: float, dtype: str, symmetric: bool) -> float:
    params = activation_params(lo, hi, dtype, symmetric)
    x = values.astype(np.float32)
    return float(np.mean((dequantize(quantize(x, params), params).astype(np.float64) - x) ** 2))


def raw_values(name: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if name == "gaussian":  # plus two outliers
        return np.append(rng.standard_normal(20_000), [15.0, 12.0])
    if name == "skewed":  # signed, long right tail, one outlier each side
        return np.append(rng.gamma(2.0, 1.0, 20_000) - 1.5, [-6.0, 25.0])
    if name == "exponential":  # non-negative, plus two outliers
        return np.append(rng.exponential(1.0, 20_000), [15.0, 12.0])
    return rng.laplace(0.0, 1.0, 20_000)  # heavy tails, no outliers: clipping trades off against the bulk


@pytest.mark.parametrize(
    ("name", "dtype", "symmetric"),
    [("gaussian", "int8", True), ("skewed", "int8", False), ("exponential", "uint8", False), ("laplace", "int8", True)],
)
def test_mse_close_to_brute_force_on_raw_values(name, dtype, symmetric):
    values = raw_values(name)
    hist = Histogram.from_values(values, bins=2048)
    clip = calibrate_mse(hist, dtype, symmetric)
    fractions = np.arange(1, 201) / 200
    # The same candidate ranges the calibrator searches, scored by really quantizing the raw values.
    if symmetric or hist.min >= 0:
        candidates = [(-t if hist.min < 0 else 0.0, t) for t in hist.absmax * fractions]
    else:
        candidates = [(a * hist.min, a * hist.max) for a in fractions]
    errors = [exact_mse(values, lo, hi, dtype, symmetric) for lo, hi in candidates]
    chosen = exact_mse(values, clip.lo, clip.hi, dtype, symmetric)
    # The histogram's estimate (bin centres, uniform rounding error) picks a range within 2% of the best;
    # not clipping at all (the last candidate) is 3-10% worse on these data, so the bound discriminates.
    assert chosen <= 1.02 * min(errors)
    assert errors[-1] > 1.025 * min(errors)
    largest = candidates[-1][1] - candidates[-1][0]
    assert clip.hi - clip.lo < 0.99 * largest  # an interior optimum, not the largest candidate


# --- dispatch --------------------------------------------------------------------------------------


def test_registry_lists_every_method_with_its_params():
    assert set(CALIBRATORS) == set(METHOD_PARAMS) == {"minmax", "percentile", "entropy", "mse"}


def test_dispatch_passes_params():
    hist = hist_from_folded([5, 3, 1, 1], split=2)
    assert calibrate("percentile", hist, "int8", True, percentile=90) == ClipRange(-3.0, 3.0)
    assert calibrate("minmax", hist, "int8", True) == ClipRange(-4.0, 4.0)


def test_dispatch_errors():
    hist = hist_from_folded([5, 3, 1, 1])
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibrate("kl", hist, "int8", True)
    with pytest.raises(ValueError, match="percentile"):
        calibrate("minmax", hist, "int8", True, percentile=99.0)
    with pytest.raises(ValueError, match="bins"):
        calibrate("percentile", hist, "int8", True, bins=10)
    with pytest.raises(ValueError, match="int32"):
        calibrate("minmax", hist, "int32", True)


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse"])
def test_histogram_methods_need_counts(method):
    with pytest.raises(ValueError, match="needs a histogram"):
        calibrate(method, Histogram(-1.0, 1.0), "int8", True)


def test_clip_range_validates_itself():
    with pytest.raises(ValueError, match="empty"):
        ClipRange(1.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        ClipRange(0.0, float("inf"))
