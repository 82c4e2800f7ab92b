"""Output-agreement metrics shared by every stage that compares a model with a reference:
SQNR, per-sample cosine, top-1 (pure numpy on stacked outputs, samples along the first axis)."""

from __future__ import annotations

import numpy as np

# SQNR of identical outputs is infinite; the record needs a finite, comparable number.
SQNR_CAP_DB = 200.0


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - test)^2)."""
    ref = np.asarray(reference, np.float64).ravel()
    noise = float(np.sum((ref - np.asarray(test, np.float64).ravel()) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0:
        return SQNR_CAP_DB
    if signal == 0:
        return -SQNR_CAP_DB
    return min(SQNR_CAP_DB, 10 * np.log10(signal / noise))


def cosines(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Cosine similarity per sample (first axis); 1 where both are zero."""
    a = np.asarray(reference, np.float64).reshape(len(reference), -1)
    b = np.asarray(test, np.float64).reshape(len(test), -1)
    dot = np.sum(a * b, axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = norms == 0
    return np.where(both_zero, 1.0, dot / np.where(both_zero, 1.0, norms))


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose arg-max over the last axis equals the label."""
    flat = logits.reshape(len(logits), -1)
    return float(np.mean(np.argmax(flat, axis=1) == labels))
