"""edgekit pipeline, baseline save and check --baseline on the demo project (edgekit.toml), end to end.

The demo project is copied into a temporary folder (its model and data linked, not copied) and
the README's commands run there as written; a second copy with a recipe that clips every ReLU
output to [0, 0.05] must then fail against the first one's baseline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import EVAL_DATA, REPO, one_line_error

import edgekit
from edgekit.files import sha256_file
from edgekit.reference import Reference

pytestmark = pytest.mark.slow

GATES = ["accuracy", "top3_accuracy", "top1_agreement", "cosine_min", "sqnr_db", "max_abs"]
TERRIBLE_RECIPE = """\
name = "int8-terrible-relu"
description = "int8-default, but every ReLU output clipped to [0, 0.05]: broken on purpose"

[op_types.Relu]
range = [0.0, 0.05]
"""


def _readme_commands() -> str:
    section = (REPO / "README.md").read_text().split("## Projects and CI gates", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


def _copy_project(folder: Path, recipe: str | None = None) -> Path:
    folder.mkdir(parents=True)
    for name in ("edgekit", "calibration_data"):
        (folder / name).symlink_to(REPO / name)
    text = (REPO / "edgekit.toml").read_text()
    if recipe is not None:
        (folder / "terrible.toml").write_text(recipe)
        text = text.replace('recipe = "int8-default"', 'recipe = "terrible.toml"')
        assert "terrible.toml" in text
    (folder / "edgekit.toml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo project after the README's `pipeline`, `baseline save`, `check --baseline`."""
    folder = _copy_project(tmp_path_factory.mktemp("projects") / "demo")
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", _readme_commands()], cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # pipeline and check --baseline each print the summary
    assert result.stdout.count("PASSED: 6 of 6 gates passed") == 2, result.stdout
    return folder


def _build(folder: Path) -> Path:
    return folder / "build" / "digits"


def _eval_set() -> tuple[np.ndarray, np.ndarray]:
    with np.load(EVAL_DATA) as data:
        return data["image"], data["label"]


def _artifact_logits(build: Path) -> np.ndarray:
    """The build's x86_64 artifact run here on every eval sample: (N, 1, 10)."""
    model = edgekit.load(build / "artifacts" / "x86_64")
    return np.stack([model(image=image)["logits"] for image in _eval_set()[0]])


def _onnx_logits(path: Path) -> np.ndarray:
    reference = Reference(path)
    return np.stack([reference({"image": image})["logits"] for image in _eval_set()[0]])


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.reshape(len(logits), -1).argmax(1) == labels))


def _gate_values(ours: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """edgekit.toml's six gates computed here, in numpy, from the outputs themselves (not from edgekit.metrics)."""
    ours, reference = (a.reshape(len(a), -1).astype(np.float64) for a in (ours, reference))
    top3 = np.argsort(-ours, axis=1)[:, :3]
    cosine = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    return {
        "accuracy": _accuracy(ours, labels),
        "top3_accuracy": float(np.mean((top3 == labels[:, None]).any(1))),
        "top1_agreement": float(np.mean(ours.argmax(1) == reference.argmax(1))),
        "cosine_min": float(cosine.min()),
        "sqnr_db": float(10 * np.log10((reference**2).sum() / ((ours - reference) ** 2).sum())),
        "max_abs": float(np.abs(ours - reference).max()),
    }


def _gate_settings(project: Path, gate: str) -> dict:
    return tomllib.loads(project.read_text())["gates"][gate]


@pytest.fixture(scope="module")
def expected(demo) -> dict[str, float]:
    """The demo build's gate values, measured by this test: its int8 artifact against the float ONNX."""
    return _gate_values(_artifact_logits(_build(demo)), _onnx_logits(_build(demo) / "model.onnx"), _eval_set()[1])


def test_check_baseline_passes_with_the_gate_values(demo, expected):
    report = json.loads((_build(demo) / "check.json").read_text())
    assert report["passed"] is True and report["failures"] == []
    assert report["baseline"]["path"] == "baselines/digits.json"
    assert report["data"] == {"path": "calibration_data/digits_eval.npz", "sha256": sha256_file(EVAL_DATA), "samples": len(_eval_set()[1]), "labels": True}
    assert report["reference"] == {"path": "model.onnx", "sha256": sha256_file(_build(demo) / "model.onnx")}
    (target,) = report["targets"]
    assert target["target"] == "x86_64" and target["artifact_unchanged"] is True
    assert target["golden"] == {"logits": {"max_abs_diff": 0.0, "identical": True}}
    assert target["reference_accuracy"] == pytest.approx(_accuracy(_onnx_logits(_build(demo) / "model.onnx"), _eval_set()[1]))
    gates = {g["gate"]: g for g in target["gates"]}
    assert list(gates) == GATES
    assert {name: gate["value"] for name, gate in gates.items()} == pytest.approx(expected, rel=1e-6)
    for gate in gates.values():
        assert gate["passed"] and gate["baseline"] == gate["value"] and gate["change"] == 0.0


def test_junit_has_one_passing_testcase_per_gate(demo):
    root = ET.parse(_build(demo) / "check.junit.xml").getroot()
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "edgekit.digits" and suite.get("tests") == "6" and suite.get("failures") == "0"
    assert [case.get("name") for case in suite.findall("testcase")] == GATES
    assert all(case.find("failure") is None for case in suite.findall("testcase"))


def test_summary_fits_a_screen(demo):
    lines = (_build(demo) / "summary.txt").read_text().splitlines()
    assert len(lines) < 40
    assert lines[-1] == "PASSED: 6 of 6 gates passed"
    assert "against baseline baselines/digits.json" in lines[0]


def test_build_json_links_every_stage_by_hash(demo):
    build = _build(demo)
    record = json.loads((build / "build.json").read_text())
    assert record["format"] == "edgekit-build" and record["project"]["sha256"] == sha256_file(demo / "edgekit.toml")
    assert record["versions"]["tvm"] and record["reference"] == "model.onnx" and record["deployed_model"] == "model.int8.onnx"
    assert [s["stage"] for s in record["stages"]] == ["export", "quantize", "compile"]
    export, quantize, compile_ = record["stages"]
    assert export["command"].startswith("edgekit export ") and export["parity"]["passed"]
    assert {e["role"] for e in quantize["inputs"]} == {"model", "calib", "recipe"}
    # each stage's input is the previous stage's output, byte for byte
    assert quantize["inputs"][0]["sha256"] == export["outputs"][0]["sha256"]
    assert compile_["inputs"][0]["sha256"] == quantize["outputs"][0]["sha256"]
    assert {e["path"] for e in compile_["outputs"]} == {"artifacts/x86_64/manifest.json", "artifacts/x86_64/model.so"}
    for stage in record["stages"]:
        for entry in stage["outputs"]:
            assert sha256_file(build / entry["path"]) == entry["sha256"], entry
    manifest = json.loads((build / "artifacts" / "x86_64" / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == quantize["outputs"][0]["sha256"]
    assert record["check"]["passed"] is True
    assert {e["path"]: e["sha256"] for e in record["check"]["reports"]} == {n: sha256_file(build / n) for n in ("check.json", "check.junit.xml", "summary.txt")}


def test_baseline_holds_values_hashes_and_golden_outputs(demo, expected):
    baseline = json.loads((demo / "baselines" / "digits.json").read_text())
    golden = np.load(demo / "baselines" / "digits.npz")
    np.testing.assert_array_equal(golden["x86_64/logits"], _artifact_logits(_build(demo)))  # the build's own outputs, (N, 1, 10)
    assert baseline["golden"]["sha256"] == sha256_file(demo / "baselines" / "digits.npz")
    assert baseline["data"]["sha256"] == sha256_file(EVAL_DATA)
    assert baseline["targets"]["x86_64"]["library_sha256"] == sha256_file(_build(demo) / "artifacts" / "x86_64" / "model.so")
    gates = baseline["targets"]["x86_64"]["gates"]
    assert {key: value for key, value in gates["top3_accuracy"].items() if key != "value"} == {"metric": "topk_accuracy", "k": 3, "output": "logits"}
    assert {name: gate["value"] for name, gate in gates.items()} == pytest.approx(expected, rel=1e-6)


def test_a_regression_within_the_thresholds_fails_against_the_baseline(cli, demo, expected):
    # A baseline that claims two tolerances more accuracy than this build has: the build still
    # passes its minimum (the demo fixture saw 6 of 6 gates pass) but lost more than the tolerance.
    tolerance = _gate_settings(demo / "edgekit.toml", "accuracy")["tolerance"]
    claimed = expected["accuracy"] + 2 * tolerance
    baseline = json.loads((demo / "baselines" / "digits.json").read_text())
    baseline["targets"]["x86_64"]["gates"]["accuracy"]["value"] = claimed
    (demo / "baselines" / "better.json").write_text(json.dumps(baseline))
    project = demo / "better.toml"
    project.write_text((demo / "edgekit.toml").read_text().replace("baselines/digits.json", "baselines/better.json"))

    result = cli("check", "--baseline", "--project", project, "--json", demo / "better-check.json")

    assert result.exit_code == 1
    assert json.loads((demo / "better-check.json").read_text())["failures"] == [failure.removeprefix("edgekit: gate failed: ") for failure in result.stderr.split("\n") if failure]
    (failure,) = [line for line in result.stderr.splitlines() if line.strip()]
    value = expected["accuracy"]
    assert failure == (
        f"edgekit: gate failed: x86_64: gate accuracy: accuracy of logits regressed from {claimed:.6g} (baseline) to {value:.6g}: "
        f"change {value - claimed:+.6g}, allowed at least {-tolerance:+.6g}"
    )


def test_degraded_recipe_fails_with_exit_1_naming_the_metric(cli, demo, tmp_path):
    degraded = _copy_project(tmp_path / "degraded", recipe=TERRIBLE_RECIPE)
    shutil.copytree(demo / "baselines", degraded / "baselines")

    built = cli("pipeline", "--project", degraded / "edgekit.toml")
    assert built.exit_code == 1  # the absolute thresholds fail already
    assert "FAILED: 0 of 6 gates passed" in built.stdout

    result = cli("check", "--baseline", "--project", degraded / "edgekit.toml")

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    # The figures the lines must carry, measured here: the degraded artifact on the labels, the saved baseline.
    degraded_logits = _artifact_logits(_build(degraded))
    accuracy = _accuracy(degraded_logits, _eval_set()[1])
    settings = _gate_settings(degraded / "edgekit.toml", "accuracy")
    was = json.loads((degraded / "baselines" / "digits.json").read_text())["targets"]["x86_64"]["gates"]["accuracy"]["value"]
    assert f"edgekit: gate failed: x86_64: gate accuracy: accuracy of logits = {accuracy:.6g}, below the minimum {settings['min']:g}" in result.stderr
    assert (
        f"gate accuracy: accuracy of logits regressed from {was:.6g} (baseline) to {accuracy:.6g}: "
        f"change {accuracy - was:+.6g}, allowed at least {-settings['tolerance']:+.6g}"
    ) in result.stderr
    max_abs_tolerance = _gate_settings(degraded / "edgekit.toml", "max_abs")["tolerance"]
    assert "gate max_abs: max_abs of logits regressed from" in result.stderr and f"allowed at most {max_abs_tolerance:+.6g}" in result.stderr
    report = json.loads((_build(degraded) / "check.json").read_text())
    assert report["passed"] is False and report["targets"][0]["artifact_unchanged"] is False
    golden = np.load(degraded / "baselines" / "digits.npz")["x86_64/logits"]
    assert report["targets"][0]["golden"]["logits"]["max_abs_diff"] == pytest.approx(np.abs(degraded_logits.astype(np.float64) - golden).max())
    suite = ET.parse(_build(degraded) / "check.junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "6"
    messages = [case.find("failure").get("message") for case in suite.findall("testcase")]
    assert all(f"gate {gate}: " in message for gate, message in zip(GATES, messages))

    refused = cli("baseline", "save", "--project", degraded / "edgekit.toml")
    assert refused.exit_code == 1 and "the build fails its gates" in one_line_error(refused, prefix="edgekit: gate failed: ")


def test_stale_and_tampered_builds_and_other_data_are_exit_2(cli, demo):
    project = demo / "edgekit.toml"
    original = project.read_text()
    record = _build(demo) / "model.int8.quant.json"
    saved = record.read_bytes()
    try:
        project.write_text(original.replace('targets = ["x86_64"]', 'targets = ["x86_64", "arm64"]'))
        result = cli("check", "--baseline", "--project", project)
        assert result.exit_code == 2 and "was built from other settings than edgekit.toml" in one_line_error(result)
        project.write_text(original)

        record.write_bytes(saved + b" ")
        result = cli("check", "--project", project)
        assert result.exit_code == 2 and "quantize output" in one_line_error(result) and "changed since the build" in result.stderr
        record.write_bytes(saved)

        with np.load(EVAL_DATA) as data:
            np.savez(demo / "subset.npz", image=data["image"][:50], label=data["label"][:50])
        project.write_text(original.replace("calibration_data/digits_eval.npz", "subset.npz"))
        result = cli("check", "--baseline", "--project", project)
        assert result.exit_code == 2 and "was recorded on other eval data" in one_line_error(result)
    finally:
        project.write_text(original)
        record.write_bytes(saved)
