"""The gate report in the three forms CI reads: JSON, JUnit XML (one test case per gate), a text summary.

`check.json` fields: format, project, project_file, build, data {path, sha256, samples, labels},
reference {path, sha256}, baseline (null or {path, created, data_sha256}), targets [{target,
artifact, library_sha256, reference_accuracy, artifact_unchanged, int8_macs (null or {total,
integer, integer_share}), golden {output: {max_abs_diff, identical}}, gates [{gate, metric,
output, value, threshold, tolerance, baseline, change, allowed_change, failures, passed}]}],
failures, passed.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.files import atomic_file
from edgekit.checker.artifact_check import int8_macs_line
from edgekit.checker.gates import GateResult

FORMAT = "edgekit-check"


@dataclass
class TargetReport:
    target: str
    artifact: str
    library_sha256: str
    results: list[GateResult]
    reference_accuracy: float | None = None
    artifact_unchanged: bool | None = None  # None: no baseline
    golden: dict[str, dict] = field(default_factory=dict)  # output -> {max_abs_diff, identical}
    int8_macs: dict | None = None  # the manifest's build.macs: conv/matmul MACs and the share in integers

    def to_dict(self) -> dict:
        return {
            "target": self.target, "artifact": self.artifact, "library_sha256": self.library_sha256,
            "reference_accuracy": self.reference_accuracy, "artifact_unchanged": self.artifact_unchanged,
            "int8_macs": self.int8_macs, "golden": self.golden, "gates": [r.to_dict() for r in self.results],
        }


@dataclass
class GateReport:
    project: str
    project_file: str
    build: str
    data: dict
    reference: dict
    targets: list[TargetReport]
    baseline: dict | None = None
    seconds: float = 0.0
    # Targets of the build whose gates this machine cannot measure (another CPU, a GPU), with why:
    # reported as skipped in every format, so CI sees them rather than a quiet pass.
    not_measured: dict[str, str] = field(default_factory=dict)

    @property
    def results(self) -> list[GateResult]:
        return [r for t in self.targets for r in t.results]

    @property
    def failures(self) -> list[str]:
        return [f for r in self.results for f in r.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "format_version": 1, "project": self.project, "project_file": self.project_file, "build": self.build,
            "data": self.data, "reference": self.reference, "baseline": self.baseline,
            "targets": [t.to_dict() for t in self.targets], "not_measured": self.not_measured, "failures": self.failures, "passed": self.passed,
        }


def write_json(report: GateReport, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


def junit_xml(report: GateReport) -> str:
    """A JUnit XML document: one <testsuite> per project, one <testcase> per gate and target."""
    results = report.results
    skipped = len(report.not_measured)
    counts = {"tests": str(len(results) + skipped), "failures": str(sum(not r.passed for r in results)), "errors": "0"}
    suites = ET.Element("testsuites", name="edgekit", **counts, time=f"{report.seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"edgekit.{report.project}", **counts, skipped=str(skipped), time=f"{report.seconds:.3f}")
    for target, reason in report.not_measured.items():
        case = ET.SubElement(suite, "testcase", classname=f"{report.project}.{target}", name="gates", time="0")
        ET.SubElement(case, "skipped", message=f"not measured on this machine: {reason}")
    for target in report.targets:
        for result in target.results:
            case = ET.SubElement(suite, "testcase", classname=f"{report.project}.{target.target}", name=result.gate, time="0")
            if not result.passed:
                failure = ET.SubElement(case, "failure", message=result.failures[0], type="GateFailure")
                failure.text = "\n".join(result.failures)
            ET.SubElement(case, "system-out").text = _case_text(result)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(report: GateReport, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(junit_xml(report))


def _case_text(result: GateResult) -> str:
    text = f"{result.metric} of {result.output} = {result.value:.6g}"
    if result.threshold:
        text += f" (required {result.threshold})"
    if result.baseline is not None:
        text += f"; baseline {result.baseline:.6g}, change {result.change:+.6g}, allowed {result.allowed_change:+.6g}"
    return text


def summary_text(report: GateReport) -> str:
    """One screen: what was checked against what, a row per gate, and the verdict."""
    data = report.data
    lines = [f"edgekit check: {report.project} ({report.build}) on {data['path']}, {data['samples']} samples"
             + (f", against baseline {report.baseline['path']}" if report.baseline else ", no baseline")]
    for target in report.targets:
        ref = f", reference accuracy {target.reference_accuracy:.4f}" if target.reference_accuracy is not None else ""
        lines.append(f"target {target.target}: {target.artifact} (library {target.library_sha256[:12]}){ref}")
        lines.append(f"  {int8_macs_line(target.int8_macs)}")
        if target.artifact_unchanged is not None:
            drift = ", ".join(f"{name} max abs diff {g['max_abs_diff']:.3g}" for name, g in target.golden.items())
            lines.append(f"  vs baseline: artifact {'unchanged' if target.artifact_unchanged else 'changed'}; golden outputs: {drift or 'none'}")
        rows = [("gate", "metric", "value", "required", "baseline", "change", "allowed", "result")]
        for r in target.results:
            rows.append((
                r.gate, f"{r.metric} ({r.output})", f"{r.value:.6g}", r.threshold or "-",
                "-" if r.baseline is None else f"{r.baseline:.6g}", "-" if r.change is None else f"{r.change:+.4g}",
                "-" if r.allowed_change is None else f"{r.allowed_change:+.4g}", "PASS" if r.passed else "FAIL",
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for target, reason in report.not_measured.items():
        lines.append(f"target {target}: gates NOT measured on this machine ({reason})")
    failed = sum(not r.passed for r in report.results)
    verdict = "PASSED" if report.passed else "FAILED"
    lines.append(f"{verdict}: {len(report.results) - failed} of {len(report.results)} gates passed")
    return "\n".join(lines) + "\n"


def write_summary(report: GateReport, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(summary_text(report))
