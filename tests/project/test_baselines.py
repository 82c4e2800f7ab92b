"""Baselines without a build: save_baseline, load_baseline and apply_baseline on a hand-built gate
report and hand-made outputs, in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from project_files import MINIMAL_PROJECT, project_folder

from edgekit.checker import GateReport, Measured, TargetReport, evaluate
from edgekit.errors import ArtifactError, InputError
from edgekit.files import sha256_file
from edgekit.project import load_project
from edgekit.project.baselines import FORMAT, FORMAT_VERSION, apply_baseline, golden_path, load_baseline, save_baseline

PROJECT = MINIMAL_PROJECT + """tolerance = 0.01

[gates.max_abs]
max = 10.0
tolerance = 5.0
"""

# Four samples, three classes; the first build's artifact matches the reference exactly.
REFERENCE = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [0.0, 3.0, 1.0]], np.float32)[:, None]
LABELS = np.array([0, 1, 2, 1])
LIBRARY = "ab" * 32


@pytest.fixture
def project(tmp_path):
    return load_project(project_folder(tmp_path, PROJECT, samples=4) / "edgekit.toml")


def build(project, logits: np.ndarray, library: str = LIBRARY, data_sha256: str = "cd" * 32) -> tuple[GateReport, list[Measured]]:
    """What measure_build returns for one x86_64 artifact whose outputs are `logits`."""
    measured = Measured("x86_64", {"logits": logits}, {"logits": REFERENCE}, LABELS)
    target = TargetReport("x86_64", "build/p/artifacts/x86_64", library, evaluate(project.gates, measured))
    data = {"path": "eval.npz", "sha256": data_sha256, "samples": len(logits), "labels": True}
    return GateReport("p", str(project.path), "build/p", data, {"path": "model.onnx", "sha256": "ef" * 32}, [target]), [measured]


def worse() -> np.ndarray:
    """Sample 0 now picks class 1: accuracy 1 -> 0.75 (beyond the 0.01 tolerance), max abs 0 -> 3 (within 5)."""
    logits = REFERENCE.copy()
    logits[0, 0, 1] = 4.0
    return logits


def test_save_writes_the_record_and_the_golden_outputs(project):
    report, measured = build(project, REFERENCE.copy())
    path = save_baseline(project, report, measured)

    assert path == project.baseline == project.root / "baselines" / "p.json"
    record, golden = load_baseline(project)
    assert record == json.loads(path.read_text())
    assert (record["format"], record["format_version"], record["project"]) == (FORMAT, FORMAT_VERSION, "p")
    assert record["build"] == {"config_sha256": project.build_config_sha256(), "project_sha256": project.sha256}
    assert record["data"] == {"path": "eval.npz", "sha256": "cd" * 32, "samples": 4}
    assert record["reference"] == {"sha256": "ef" * 32}
    assert record["golden"] == {"file": "p.npz", "sha256": sha256_file(golden_path(path))}
    assert record["targets"] == {"x86_64": {"library_sha256": LIBRARY, "gates": {
        "accuracy": {"metric": "accuracy", "k": None, "output": "logits", "value": 1.0},
        "max_abs": {"metric": "max_abs", "k": None, "output": "logits", "value": 0.0},
    }}}
    assert list(golden) == ["x86_64/logits"]
    np.testing.assert_array_equal(golden["x86_64/logits"], REFERENCE)


def test_the_same_build_matches_its_baseline(project):
    save_baseline(project, *build(project, REFERENCE.copy()))
    report, measured = build(project, REFERENCE.copy())

    apply_baseline(report, project, measured)

    assert report.passed
    assert report.baseline["path"] == "baselines/p.json" and report.baseline["data_sha256"] == "cd" * 32
    (target,) = report.targets
    assert target.artifact_unchanged is True
    assert target.golden == {"logits": {"max_abs_diff": 0.0, "identical": True}}
    assert [(r.baseline, r.change, r.allowed_change) for r in target.results] == [(1.0, 0.0, -0.01), (0.0, 0.0, 5.0)]


def test_a_regression_within_the_thresholds_is_detected(project):
    save_baseline(project, *build(project, REFERENCE.copy()))
    report, measured = build(project, worse(), library="12" * 32)
    assert report.passed  # 0.75 >= 0.5 and 3 <= 10: only the baseline catches it

    apply_baseline(report, project, measured)

    assert report.failures == [
        "x86_64: gate accuracy: accuracy of logits regressed from 1 (baseline) to 0.75: change -0.25, allowed at least -0.01",
    ]
    accuracy, max_abs = report.targets[0].results
    assert max_abs.passed and max_abs.change == 3.0  # rose by 3, allowed 5
    assert report.targets[0].artifact_unchanged is False
    assert report.targets[0].golden == {"logits": {"max_abs_diff": 3.0, "identical": False}}


def test_a_damaged_baseline_is_an_artifact_error(project):
    path = save_baseline(project, *build(project, REFERENCE.copy()))
    golden = golden_path(path)
    data = bytearray(golden.read_bytes())
    data[len(data) // 2] ^= 0x01
    golden.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="golden outputs .*p.npz are missing or do not match p.json"):
        load_baseline(project)
    golden.unlink()
    with pytest.raises(ArtifactError, match="are missing or do not match"):
        load_baseline(project)
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        load_baseline(project)
    path.write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactError, match="is not an edgekit baseline"):
        load_baseline(project)


def test_a_missing_baseline_other_data_or_another_target_is_an_input_error(project):
    report, measured = build(project, REFERENCE.copy())
    with pytest.raises(InputError, match="no baseline at .*p.json"):
        apply_baseline(report, project, measured)
    save_baseline(project, *build(project, REFERENCE.copy()))

    report, measured = build(project, REFERENCE.copy(), data_sha256="99" * 32)
    with pytest.raises(InputError, match=r"recorded on other eval data \(eval.npz, sha256 cdcdcdcdcdcd...\)"):
        apply_baseline(report, project, measured)

    report, measured = build(project, REFERENCE.copy())
    report.targets[0].target = measured[0].target = "arm64"
    with pytest.raises(InputError, match="has no target arm64"):
        apply_baseline(report, project, measured)
