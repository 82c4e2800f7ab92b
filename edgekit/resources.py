"""Where the bundled data folders (`targets/`, `quant/`) are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    # A wheel carries the folders inside the package; a source checkout keeps them at the repo root.
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgekit data folder '{name}' is missing from this installation")
