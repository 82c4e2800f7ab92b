"""Data sets for check and calibration: one documented format, validated against the model.

Format (calibration_data/README.md): an `.npz` with one array per model input, named as the
input, of shape `(N, *input_shape)`; optionally `label` of shape `(N,)`; or a folder of such files.
When the model's input has a leading batch dimension of 1, `(N, *input_shape[1:])` is accepted.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import InputError
from edgekit.onnx_model import TensorSpec

LABEL = "label"


@dataclass
class Dataset:
    """Samples per input name, each `(N, *input_shape)`, and optional integer labels `(N,)`."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def sample(self, index: int) -> dict[str, np.ndarray]:
        return {name: array[index] for name, array in self.arrays.items()}

    def head(self, count: int) -> Dataset:
        """The first `count` samples (all of them when there are fewer), labels included."""
        if count >= len(self):
            return self
        labels = self.labels[:count] if self.labels is not None else None
        return Dataset({k: v[:count] for k, v in self.arrays.items()}, labels, self.source)


def load_dataset(path: Path, inputs: list[TensorSpec]) -> Dataset:
    """Read an .npz (or a folder of them) and validate it against the model's static `inputs`."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise InputError(f"data folder {path} holds no .npz files", "see calibration_data/README.md for the format")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"data set not found: {path}", "give an .npz file or a folder of them")
    parts = [_load_file(f, inputs) for f in files]
    arrays = {spec.name: np.concatenate([p.arrays[spec.name] for p in parts]) for spec in inputs}
    labels = None
    if any(p.labels is not None for p in parts):
        missing = [str(f) for f, p in zip(files, parts) if p.labels is None]
        if missing:
            raise InputError(f"{missing[0]} has no '{LABEL}' array but other files in {path} do", "label every file or none")
        labels = np.concatenate([p.labels for p in parts])
    return Dataset(arrays=arrays, labels=labels, source=str(path))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file by name; InputError for anything that is not a readable .npz."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npz file ({exc})", "write it with numpy.savez") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(f"{path} is a single .npy array, not an .npz archive", "write named arrays with numpy.savez")
    try:
        with loaded as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npz file ({exc})", "write it with numpy.savez") from None


def _load_file(path: Path, inputs: list[TensorSpec]) -> Dataset:
    raw = read_npz(path)
    expected = {spec.name for spec in inputs}
    unknown = sorted(set(raw) - expected - {LABEL})
    if unknown:
        raise InputError(
            f"{path}: array '{unknown[0]}' is not a model input",
            f"name arrays after the inputs: {', '.join(sorted(expected))} (and optionally '{LABEL}')",
        )
    arrays = {spec.name: _validate_array(path, spec, raw) for spec in inputs}
    counts = {name: len(a) for name, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise InputError(f"{path}: inputs have different sample counts {counts}", "give every input the same N")
    n = next(iter(counts.values()))
    labels = None
    if LABEL in raw:
        labels = raw[LABEL]
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"{path}: '{LABEL}' must be integer class ids of shape ({n},), got {labels.dtype} {labels.shape}",
                "store labels as an int array with one entry per sample",
            )
        labels = labels.astype(np.int64)
    return Dataset(arrays=arrays, labels=labels, source=str(path))


def _validate_array(path: Path, spec: TensorSpec, raw: dict[str, np.ndarray]) -> np.ndarray:
    if spec.name not in raw:
        raise InputError(f"{path}: no array for model input '{spec.name}'", f"add an array named '{spec.name}' of shape (N, {_dims(spec.shape)})")
    array = raw[spec.name]
    shape = tuple(spec.shape)
    if not _fits(array.shape[1:], shape):
        if shape[:1] == (1,) and _fits(array.shape[1:], shape[1:]):
            array = array[:, None]  # batch-1 models may omit their batch axis
        else:
            raise InputError(
                f"{path}: '{spec.name}' has shape {array.shape}, expected (N, {_dims(shape)})",
                "put the sample axis first, in front of the model's own input shape",
            )
    if len(array) == 0:
        raise InputError(f"{path}: '{spec.name}' holds no samples", "give at least one sample")
    if array.dtype != np.dtype(spec.dtype):
        raise InputError(f"{path}: '{spec.name}' is {array.dtype}, the model expects {spec.dtype}", f"convert with array.astype(np.{spec.dtype})")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if bad.any():
            raise InputError(f"{path}: '{spec.name}' sample {int(np.argmax(bad))} contains NaN or Inf", "clean the data set")
    return array


def _fits(given: tuple, declared: tuple) -> bool:
    # A symbolic dimension (a name such as "sequence") accepts any size.
    return len(given) == len(declared) and all(isinstance(d, str) or d == g for g, d in zip(given, declared))


def _dims(shape: tuple) -> str:
    return ", ".join(str(d) for d in shape)
