"""Shared fixtures: the demo model exported and compiled once per session, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
from edgekit import console
from edgekit.cli import main

REPO = Path(__file__).resolve().parent.parent
DEMO_FACTORY = f"{REPO / 'edgekit' / 'demo' / 'digits_cnn.py'}:factory"
EVAL_DATA = REPO / "calibration_data" / "digits_eval.npz"
CALIB_DATA = REPO / "calibration_data" / "digits_calib.npz"

console.quiet = True  # spinners and progress bars only clutter captured test output


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("edgekit")


@pytest.fixture(scope="session")
def demo_onnx(workdir) -> Path:
    path = workdir / "digits.onnx"
    edgekit.export(DEMO_FACTORY, path, input_names=["image"], output_names=["logits"])
    return path


@pytest.fixture(scope="session")
def demo_artifact(workdir, demo_onnx) -> Path:
    return edgekit.compile(demo_onnx, workdir / "digits", target="x86_64")


@pytest.fixture(scope="session")
def demo_sample(workdir) -> Path:
    path = workdir / "sample.npy"
    with np.load(EVAL_DATA) as data:
        np.save(path, data["image"][0])
    return path


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["--quiet", *map(str, args)], catch_exceptions=False)

    return invoke


def one_line_error(result) -> str:
    """Assert the CLI failed with exactly one error line and no traceback; return that line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgekit: error: "), lines[0]
    return lines[0]
