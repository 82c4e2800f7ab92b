"""Shared fixtures: the demo model exported and compiled once per session, and a CLI runner."""

from __future__ import annotations

import subprocess
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


def one_line_error(result, prefix: str = "edgekit: error: ") -> str:
    """Assert the CLI failed with exactly one `prefix` line and no traceback; return that line.

    Bad input and internal errors start "edgekit: error: ", failed gates "edgekit: gate failed: "."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


# What tools keep beside the sources: the virtual environment and the caches of Python, pytest and ruff.
_TOOL_FILES = (".venv/", ".pytest_cache/", ".ruff_cache/")


def _git_others(*options: str) -> set[str]:
    listing = subprocess.run(["git", "ls-files", "--others", "-z", *options, "--", ".", ":!.venv"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
    return {name for name in listing.split("\0") if name and not name.startswith(_TOOL_FILES) and "__pycache__/" not in name}


def files_outside_git() -> dict[str, int | None]:
    """Every file of the repository that git does not track: name -> mtime in ns for ignored files, None for the rest.

    A test that writes into the tree adds a name, or rewrites an ignored file (an `out/` left by a manual
    run is listed file by file); tests compare this before and after. Untracked sources carry no time:
    they are someone's work in progress, not a test's output."""
    ignored = _git_others("--ignored", "--exclude-standard")
    return {name: (REPO / name).stat().st_mtime_ns if name in ignored else None for name in sorted(_git_others()) if (REPO / name).exists()}


def assert_repository_untouched(before: dict[str, int | None]) -> None:
    """Fail naming what appeared or was rewritten in the repository since `before` (files_outside_git())."""
    after = files_outside_git()
    added = sorted(set(after) - set(before))
    rewritten = sorted(name for name in set(after) & set(before) if after[name] != before[name])
    assert not added and not rewritten, f"written into the repository: new {added[:10]}, rewritten {rewritten[:10]}"
