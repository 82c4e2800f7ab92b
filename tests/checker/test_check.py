"""check: per-output metrics against ONNX Runtime, gates, the JSON report."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import numpy_helper

import edgekit

from conftest import EVAL_DATA


def test_demo_artifact_passes_with_identical_top1(cli, demo_artifact, demo_onnx, tmp_path):
    report_path = tmp_path / "report.json"
    result = cli("check", demo_artifact, "--reference", demo_onnx, "--data", EVAL_DATA, "--max-abs", "1e-4", "--min-top1", "1.0", "--json", report_path)

    assert result.exit_code == 0, result.stderr
    assert "check passed" in result.stdout
    report = json.loads(report_path.read_text())
    logits = report["outputs"][0]
    assert report["passed"] is True and report["samples"] == 360
    assert logits["max_abs"] <= 1e-4 and logits["cosine_min"] >= 0.9999
    assert logits["top1_agreement"] == 1.0
    assert logits["accuracy_artifact"] == logits["accuracy_reference"] >= 0.97


def _perturbed_reference(source, path, factor: float):
    model = onnx.load(source)
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * factor, weight.name))
    onnx.save(model, path)
    return path


def test_a_different_reference_fails_with_exit_1_naming_the_metric(cli, demo_artifact, demo_onnx, tmp_path):
    reference = _perturbed_reference(demo_onnx, tmp_path / "other.onnx", 1.05)
    report_path = tmp_path / "report.json"

    result = cli("check", demo_artifact, "--reference", reference, "--data", EVAL_DATA, "--json", report_path)

    assert result.exit_code == 1
    assert "edgekit: check failed: logits: max abs error" in result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    assert report["outputs"][0]["max_abs"] > 1e-3
    assert any("max abs" in v for v in report["violations"])


def test_top1_gate(demo_artifact, demo_onnx, tmp_path):
    reference = _perturbed_reference(demo_onnx, tmp_path / "noisy.onnx", -1.0)
    report = edgekit.check(demo_artifact, reference, EVAL_DATA, max_abs=None, min_cosine=None, min_top1_agreement=0.99)
    assert not report.passed
    assert report.outputs[0].top1_agreement < 0.99
    assert report.violations == [f"logits: top-1 agreement {report.outputs[0].top1_agreement:.4f} < 0.99"]


def test_folder_data_set_and_unlabelled_outputs(demo_artifact, demo_onnx, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    with np.load(EVAL_DATA) as data:
        np.savez(folder / "a.npz", image=data["image"][:5])
        np.savez(folder / "b.npz", image=data["image"][5:8])
    report = edgekit.check(demo_artifact, demo_onnx, folder)
    assert report.passed and report.samples == 8
    assert report.outputs[0].accuracy_artifact is None and report.outputs[0].top1_agreement == 1.0
