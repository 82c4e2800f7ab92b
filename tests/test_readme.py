"""The README's examples run as written, and the demo runs end to end, writing nothing into the repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_repository_untouched, files_outside_git

BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.DOTALL)
# What the README's commands read, by the relative paths they name; their outputs go to out/readme.
README_INPUTS = ("edgekit", "calibration_data", "quant", "targets", "scripts", "edgekit.toml")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    return env


def _readme_folder(folder: Path) -> Path:
    """A folder where the README's relative paths work: its inputs linked from the repository, out/readme empty."""
    for name in README_INPUTS:
        (folder / name).symlink_to(REPO / name)
    (folder / "out" / "readme").mkdir(parents=True)
    return folder


@pytest.mark.slow
def test_readme_examples_run(tmp_path):
    before = files_outside_git()
    folder = _readme_folder(tmp_path)
    blocks = BLOCK.findall((REPO / "README.md").read_text())
    assert len(blocks) >= 6
    for language, code in blocks:
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        result = subprocess.run(command, cwd=folder, env=_env(), capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, f"README {language} block failed:\n{code}\n{result.stderr[-2000:]}"
    out = folder / "out" / "readme"
    check = json.loads((out / "check.json").read_text())
    assert check["passed"] and check["outputs"][0]["top1_agreement"] == 1.0
    # The rk3588 bundle, run under qemu, computes what ONNX Runtime computes on x86.
    import numpy as np

    from edgekit.reference import Reference

    expected = Reference(out / "digits.onnx")({"image": np.load(out / "sample.npy")})["logits"]
    assert np.abs(np.load(out / "rk3588_logits.npy") - expected).max() <= 1e-5
    assert json.loads((out / "rate.json").read_text())["cpu_seconds_per_wall_second"] < 0.6
    assert_repository_untouched(before)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    before = files_outside_git()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path), "--repeat", "30"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "check (max abs <= 0.0001, identical top-1): PASS" in result.stdout
    assert "edgekit / ONNX Runtime p50 latency" in result.stdout
    check = json.loads((tmp_path / "check.json").read_text())
    logits = check["outputs"][0]
    assert logits["max_abs"] <= 1e-4 and logits["top1_agreement"] == 1.0
    latency = json.loads((tmp_path / "latency.json").read_text())
    assert latency["edgekit"]["runs"] == latency["onnxruntime"]["runs"] == 30
    assert_repository_untouched(before)
