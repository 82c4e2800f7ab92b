"""`edgekit check` on a project: measure a build's artifacts on the eval data and evaluate its gates.

Every artifact of the build that runs on this machine is run on every eval sample beside the
float reference (`model.onnx` in ONNX Runtime); the gates of `edgekit.toml` are evaluated on the
two stacks of outputs and the labels, optionally compared with the baseline, and the reports
(`check.json`, `check.junit.xml`, `summary.txt`) are written into the build folder, whose
`build.json` then records their hashes and the verdict.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from edgekit import console
from edgekit.artifact import read_manifest
from edgekit.checker import GateReport, Measured, TargetReport, collect_outputs, evaluate, integer_mac_share, reference_accuracy, write_json, write_junit, write_summary
from edgekit.dataset import load_dataset
from edgekit.errors import InputError
from edgekit.files import sha256_file
from edgekit.project.baselines import apply_baseline
from edgekit.project.build_folder import CHECK_JSON, JUNIT_XML, SUMMARY_TXT, data_sha256, file_entry, read_record, write_record
from edgekit.project.project_file import Project
from edgekit.reference import Reference
from edgekit.runtime import load


def measure_build(project: Project, threads: int | None = None) -> tuple[GateReport, list[Measured]]:
    """Verify the build, run its artifacts and the reference on the eval data, evaluate the gates."""
    started = time.perf_counter()
    record = read_record(project)
    build = project.build_dir
    reference_path = build / record["reference"]
    manifests = {name: read_manifest(build / folder) for name, folder in record["artifacts"].items()}
    not_measured = {name: reason for name, manifest in manifests.items() if (reason := manifest.why_not_here()) is not None}
    runnable = {name: build / record["artifacts"][name] for name in manifests if name not in not_measured}
    if not runnable:
        raise InputError(
            f"no artifact of {build} runs on this machine ({platform.machine()}): targets {', '.join(record['artifacts'])}",
            "add a target for this machine to [compile] targets (gates run the artifact here)",
        )
    for name, reason in not_measured.items():
        console.warn(f"target {name} does not run on this machine ({reason}): its gates are not evaluated here (reported as skipped)")
    targets, measured = [], []
    for name, folder in runnable.items():
        with console.step(f"measuring {name} against ONNX Runtime on {project.relative(project.eval_data)}"):
            result, dataset_size = _measure(name, folder, reference_path, project.eval_data, threads)
        measured.append(result)
        manifest = manifests[name]
        targets.append(TargetReport(
            target=name, artifact=project.relative(folder), library_sha256=manifest.files[manifest.library],
            results=evaluate(project.gates, result), reference_accuracy=reference_accuracy(result), int8_macs=manifest.build.get("macs"),
        ))
    report = GateReport(
        project=project.name, project_file=str(project.path), build=project.relative(build),
        data={"path": project.relative(project.eval_data), "sha256": data_sha256(project.eval_data), "samples": dataset_size, "labels": measured[0].labels is not None},
        reference={"path": record["reference"], "sha256": sha256_file(reference_path)},
        targets=targets,
        not_measured=not_measured,
    )
    report.seconds = time.perf_counter() - started
    return report, measured


def check_build(project: Project, baseline: bool = False, threads: int | None = None) -> GateReport:
    """Evaluate the project's gates on its build (and the baseline); write the reports into the build folder.

    Returns the report (`report.passed`); raises InputError for a missing, stale or unmatched
    build, baseline or data set, ArtifactError for tampered files.
    """
    report, measured = measure_build(project, threads)
    if baseline:
        apply_baseline(report, project, measured)
    write_reports(project, report)
    return report


def write_reports(project: Project, report: GateReport) -> None:
    """check.json, check.junit.xml and summary.txt into the build folder, then their hashes into build.json."""
    build = project.build_dir
    write_json(report, build / CHECK_JSON)
    write_junit(report, build / JUNIT_XML)
    write_summary(report, build / SUMMARY_TXT)
    record = read_record(project)
    record["check"] = {
        "passed": report.passed,
        "baseline": report.baseline,
        "data": report.data,
        "reports": [file_entry(build / name, build) for name in (CHECK_JSON, JUNIT_XML, SUMMARY_TXT)],
        "gates": {t.target: {r.gate: {"value": r.value, "passed": r.passed} for r in t.results} for t in report.targets},
    }
    write_record(build, record)


def _measure(target: str, artifact: Path, reference: Path, data: Path, threads: int | None) -> tuple[Measured, int]:
    """The artifact and the float reference over the eval data (the one collection `check ARTIFACT` uses too)."""
    model = load(artifact, threads=threads)
    dataset = load_dataset(data, model.inputs)
    session = Reference(reference, threads=model.threads)
    missing = [spec.name for spec in model.outputs if spec.name not in session.output_names]
    if missing:
        raise InputError(f"reference {reference} lacks the artifact's outputs {', '.join(missing)}", "rebuild with `edgekit pipeline`")
    return collect_outputs(model, session, dataset, target=target, int8_macs=integer_mac_share(model.manifest)), len(dataset)
