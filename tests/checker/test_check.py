"""check ARTIFACT: per-output metrics against ONNX Runtime, its thresholds as gates, the JSON report."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import edgekit
from edgekit.reference import Reference

from conftest import EVAL_DATA


def _eval_logits(run) -> np.ndarray:
    """`run(image) -> logits` on every eval sample, stacked: (N, 1, 10)."""
    with np.load(EVAL_DATA) as data:
        return np.stack([run(image) for image in data["image"]])


def _labels() -> np.ndarray:
    with np.load(EVAL_DATA) as data:
        return data["label"]


def _onnx_logits(path) -> np.ndarray:
    reference = Reference(path)
    return _eval_logits(lambda image: reference({"image": image})["logits"])


def test_demo_artifact_passes_with_identical_top1(cli, demo_artifact, demo_onnx, tmp_path):
    report_path = tmp_path / "report.json"
    result = cli("check", demo_artifact, "--reference", demo_onnx, "--data", EVAL_DATA, "--max-abs", "1e-4", "--min-top1", "1.0", "--json", report_path)

    assert result.exit_code == 0, result.stderr
    assert "check passed" in result.stdout
    report = json.loads(report_path.read_text())
    logits = report["outputs"][0]
    labels = _labels()
    assert report["passed"] is True and report["samples"] == len(labels)
    assert logits["max_abs"] <= 1e-4 and logits["cosine_min"] >= 0.9999
    assert logits["top1_agreement"] == 1.0
    # Accuracy measured here, in ONNX Runtime: identical top-1 means the artifact's is the same.
    accuracy = float(np.mean(_onnx_logits(demo_onnx).reshape(len(labels), -1).argmax(1) == labels))
    assert logits["accuracy_artifact"] == logits["accuracy_reference"] == pytest.approx(accuracy)


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
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    max_abs = report["outputs"][0]["max_abs"]
    model = edgekit.load(demo_artifact)
    assert max_abs == pytest.approx(float(np.abs(_eval_logits(lambda image: model(image=image)["logits"]) - _onnx_logits(reference)).max()))
    assert max_abs > 1e-3
    # The thresholds are gates: the failure reads like a project gate's, on the same stderr line.
    expected = f"{demo_artifact}: gate max_abs: max_abs of logits = {max_abs:.6g}, above the maximum 0.001"
    assert f"edgekit: gate failed: {expected}" in result.stderr.splitlines()
    assert expected in report["violations"]
    (gate,) = [g for g in report["gates"] if g["gate"] == "max_abs"]
    assert gate["value"] == max_abs and gate["passed"] is False and gate["threshold"] == "<= 0.001"


def test_top1_gate(demo_artifact, demo_onnx, tmp_path):
    reference = _perturbed_reference(demo_onnx, tmp_path / "noisy.onnx", -1.0)
    report = edgekit.check(demo_artifact, reference, EVAL_DATA, max_abs=None, min_cosine=None, min_top1_agreement=0.99)
    assert not report.passed
    assert report.outputs[0].top1_agreement < 0.99
    agreement = report.outputs[0].top1_agreement
    assert report.violations == [f"{demo_artifact}: gate min_top1_agreement: top1_agreement of logits = {agreement:.6g}, below the minimum 0.99"]
    assert [r.gate for r in report.results] == ["min_top1_agreement"]  # max_abs and min_cosine were switched off


def test_folder_data_set_and_unlabelled_outputs(demo_artifact, demo_onnx, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    with np.load(EVAL_DATA) as data:
        np.savez(folder / "a.npz", image=data["image"][:5])
        np.savez(folder / "b.npz", image=data["image"][5:8])
    report = edgekit.check(demo_artifact, demo_onnx, folder)
    assert report.passed and report.samples == 8
    assert report.outputs[0].accuracy_artifact is None and report.outputs[0].top1_agreement == 1.0
