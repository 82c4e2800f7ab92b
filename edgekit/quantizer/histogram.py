"""What calibration observes of one activation tensor: its finite range and a histogram of values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_BINS = 2048


@dataclass
class Histogram:
    """Finite values of one tensor over all calibration samples.

    `counts` has 2*bins equal bins over [-absmax, absmax], so bin `bins + i` holds values in
    [i*w, (i+1)*w) with w = absmax / bins, and folding the two halves gives the |x| histogram
    that symmetric calibrators (entropy, symmetric percentile and MSE) work on. `counts` stays
    None when only the range was collected (min-max needs nothing more). Values at exactly
    +absmax fall into the last bin.
    """

    min: float
    max: float
    bins: int = DEFAULT_BINS
    counts: np.ndarray | None = field(default=None, repr=False)

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))

    @property
    def bin_width(self) -> float:
        return self.absmax / self.bins if self.absmax > 0 else 0.0

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(-self.absmax, self.absmax, 2 * self.bins + 1)

    @property
    def total(self) -> int:
        return int(self.counts.sum()) if self.counts is not None else 0

    def folded(self) -> np.ndarray:
        """The |x| histogram: `bins` bins over [0, absmax]."""
        negative, positive = self.counts[: self.bins], self.counts[self.bins :]
        return positive + negative[::-1]

    def add(self, values: np.ndarray) -> None:
        """Count finite `values` (they must lie within [min, max], as found by the range pass)."""
        if self.counts is None:
            self.counts = np.zeros(2 * self.bins, np.int64)
        values = np.asarray(values, np.float64).ravel()
        values = values[np.isfinite(values)]
        if self.absmax == 0 or values.size == 0:
            self.counts[self.bins] += values.size
            return
        index = np.floor((values + self.absmax) / self.bin_width).astype(np.int64)
        self.counts += np.bincount(np.clip(index, 0, 2 * self.bins - 1), minlength=2 * self.bins)

    @classmethod
    def from_values(cls, values: np.ndarray, bins: int = DEFAULT_BINS) -> Histogram:
        """Both passes at once, for values already in memory (tests, small tensors)."""
        values = np.asarray(values, np.float64).ravel()
        finite = values[np.isfinite(values)]
        hist = cls(float(finite.min()) if finite.size else 0.0, float(finite.max()) if finite.size else 0.0, bins)
        hist.add(finite)
        return hist
