"""How far a quantized model's outputs are from the float model's: SQNR, cosine, top-1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.dataset import Dataset
from edgekit.reference import Reference

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


@dataclass(frozen=True)
class OutputAgreement:
    output: str
    sqnr_db: float
    cosine_mean: float
    cosine_min: float
    max_abs: float

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def run_outputs(session: Reference, dataset: Dataset, count: int | None = None) -> dict[str, np.ndarray]:
    """Outputs per name, stacked over the first `count` samples."""
    count = len(dataset) if count is None else min(count, len(dataset))
    stacked: dict[str, list] = {}
    for index in range(count):
        for name, value in session(dataset.sample(index)).items():
            stacked.setdefault(name, []).append(value)
    return {name: np.stack(values) for name, values in stacked.items()}


def agreement(reference: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> list[OutputAgreement]:
    rows = []
    for name, ref in reference.items():
        ours = test[name]
        if not np.issubdtype(ref.dtype, np.floating):
            equal = float(np.mean(ref == ours))
            rows.append(OutputAgreement(name, SQNR_CAP_DB if equal == 1 else 0.0, equal, equal, float(np.abs(ref.astype(np.float64) - ours).max(initial=0))))
            continue
        cos = cosines(ref, ours)
        rows.append(OutputAgreement(name, sqnr_db(ref, ours), float(cos.mean()), float(cos.min()), float(np.abs(ref - ours).max(initial=0.0))))
    return rows


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose arg-max over the last axis equals the label."""
    flat = logits.reshape(len(logits), -1)
    return float(np.mean(np.argmax(flat, axis=1) == labels))
