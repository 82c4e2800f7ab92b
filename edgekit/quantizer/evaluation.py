"""Running the float and QDQ models over a data set and measuring how far their outputs are apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.dataset import Dataset
from edgekit.metrics import SQNR_CAP_DB, cosines, sqnr_db
from edgekit.reference import Reference


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
