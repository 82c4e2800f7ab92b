"""Project folders for parser-level tests: an edgekit.toml beside the files it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The smallest project the parser accepts: a model, an eval set and one gate.
MINIMAL_PROJECT = """
[project]
name = "p"

[model]
source = "model.onnx"

[data]
eval = "eval.npz"

[gates.accuracy]
min = 0.5
"""


def project_folder(folder: Path, text: str | None = None, samples: int = 2, calib: bool = False, labels: bool = False) -> Path:
    """`folder` with a placeholder model.onnx (the parser never reads a model before export), an
    eval.npz of `samples` images (with labels if asked), a calib.npz if asked, and edgekit.toml
    holding `text` when given. Returns `folder`."""
    (folder / "model.onnx").write_bytes(b"not read by the parser")
    images = np.zeros((samples, 1, 4), np.float32)
    arrays = {"image": images} | ({"label": np.zeros(samples, np.int64)} if labels else {})
    np.savez(folder / "eval.npz", **arrays)
    if calib:
        np.savez(folder / "calib.npz", image=images)
    if text is not None:
        (folder / "edgekit.toml").write_text(text)
    return folder
