"""The README's examples run as written, and the demo runs end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    return env


@pytest.mark.slow
def test_readme_examples_run():
    (REPO / "out" / "readme").mkdir(parents=True, exist_ok=True)
    blocks = BLOCK.findall((REPO / "README.md").read_text())
    assert len(blocks) >= 6
    for language, code in blocks:
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"README {language} block failed:\n{code}\n{result.stderr[-2000:]}"
    out = REPO / "out" / "readme"
    check = json.loads((out / "check.json").read_text())
    assert check["passed"] and check["outputs"][0]["top1_agreement"] == 1.0
    # The rk3588 bundle, run under qemu, computes what ONNX Runtime computes on x86.
    import numpy as np

    from edgekit.reference import Reference

    expected = Reference(out / "digits.onnx")({"image": np.load(out / "sample.npy")})["logits"]
    assert np.abs(np.load(out / "rk3588_logits.npy") - expected).max() <= 1e-5
    assert json.loads((out / "rate.json").read_text())["cpu_seconds_per_wall_second"] < 0.6


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path), "--repeat", "30"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "check (max abs <= 0.0001, identical top-1): PASS" in result.stdout
    assert "edgekit / ONNX Runtime p50 latency" in result.stdout
    check = json.loads((tmp_path / "check.json").read_text())
    logits = check["outputs"][0]
    assert logits["max_abs"] <= 1e-4 and logits["top1_agreement"] == 1.0
    latency = json.loads((tmp_path / "latency.json").read_text())
    assert latency["edgekit"]["runs"] == latency["onnxruntime"]["runs"] == 30
