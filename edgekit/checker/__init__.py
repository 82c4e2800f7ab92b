"""The check stage: does an artifact compute what its reference computes, within the gates?

    gates.py           the metrics table and gates: one engine for `check ARTIFACT` and projects
    outputs.py         the artifact and its reference run over a data set: the stacks gates measure
    artifact_check.py  `edgekit check ARTIFACT`: its thresholds as gates, against an ONNX reference
    ci_reports.py      the verdict as JSON, JUnit XML and a text summary
    agreement.py       int8 tensors of an integer artifact against ONNX Runtime, in LSBs
"""

from edgekit.checker.artifact_check import CheckReport, Thresholds, check
from edgekit.checker.ci_reports import GateReport, TargetReport, junit_xml, summary_text, write_json, write_junit, write_summary
from edgekit.checker.gates import (
    METRICS, Gate, GateResult, Measured, MetricSpec, compare_with_baseline, evaluate, is_classifier, metric_value, reference_accuracy, require_passed,
)
from edgekit.checker.outputs import collect_outputs, integer_mac_share

__all__ = [
    "METRICS", "CheckReport", "Gate", "GateReport", "GateResult", "Measured", "MetricSpec", "TargetReport", "Thresholds",
    "check", "collect_outputs", "compare_with_baseline", "evaluate", "integer_mac_share", "is_classifier", "junit_xml", "metric_value",
    "reference_accuracy", "require_passed", "summary_text", "write_json", "write_junit", "write_summary",
]
