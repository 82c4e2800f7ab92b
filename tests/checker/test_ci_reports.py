"""CI reports (edgekit/checker/ci_reports.py): targets this machine cannot measure are skipped, visibly."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np

from edgekit.checker import Gate, GateReport, Measured, TargetReport, evaluate, junit_xml, summary_text


def report_with_a_foreign_target() -> GateReport:
    logits = np.array([[[2.0, 1.0]], [[0.0, 3.0]]], np.float32)
    measured = Measured("x86_64", {"logits": logits}, {"logits": logits}, np.array([0, 1]))
    gates = (Gate(name="accuracy", metric="accuracy", output="logits", min=0.5),)
    target = TargetReport("x86_64", "artifacts/x86_64", "ab" * 32, evaluate(gates, measured))
    data = {"path": "eval.npz", "sha256": "cd" * 32, "samples": 2, "labels": True}
    return GateReport("p", "edgekit.toml", "build/p", data, {"path": "model.onnx", "sha256": "ef" * 32}, [target],
                      not_measured={"rk3588": "it is built for aarch64 (rk3588) and this machine is x86_64"})


def test_a_target_not_measured_here_is_a_skipped_case_in_every_format():
    report = report_with_a_foreign_target()
    assert report.passed  # skipping is not failing, but it is never silent:
    suite = ET.fromstring(junit_xml(report).split("\n", 1)[1]).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
    skipped = [case for case in suite.findall("testcase") if case.find("skipped") is not None]
    assert [case.get("classname") for case in skipped] == ["p.rk3588"]
    assert "built for aarch64" in skipped[0].find("skipped").get("message")
    assert "target rk3588: gates NOT measured on this machine (it is built for aarch64" in summary_text(report)
    assert json.loads(json.dumps(report.to_dict()))["not_measured"] == {"rk3588": "it is built for aarch64 (rk3588) and this machine is x86_64"}
