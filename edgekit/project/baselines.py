"""Baselines: a good build's gate values and golden outputs, which later builds must not regress from.

`edgekit baseline save` writes `[project] baseline` (default `baselines/<name>.json`) and beside it
`<name>.npz`, the artifact's outputs on every eval sample (arrays named `<target>/<output>`, shape
(N, *output_shape)). Commit both: `edgekit check --baseline` in CI compares with them.

    {"format": "edgekit-baseline", "format_version": 1, "project": "digits", "created": "2025-...Z",
     "build": {"config_sha256", "project_sha256"}, "data": {"path", "sha256", "samples"},
     "reference": {"sha256"}, "golden": {"file": "digits.npz", "sha256"}, "versions": {...},
     "targets": {"x86_64": {"library_sha256": "...",
                            "gates": {"accuracy": {"metric": "accuracy", "k": null, "output": "logits", "value": 0.9916}}}}}

A baseline belongs to one eval data set: checking on other data is an InputError (the values would
not be comparable), not a regression.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgekit import versions
from edgekit.checker import Gate, GateReport, Measured, compare_with_baseline
from edgekit.dataset import read_npz
from edgekit.errors import ArtifactError, InputError
from edgekit.files import atomic_file, read_versioned_json, sha256_file
from edgekit.project.project_file import Project

FORMAT = "edgekit-baseline"
FORMAT_VERSION = 1


def golden_path(baseline: Path) -> Path:
    return Path(baseline).with_suffix(".npz")


def save_baseline(project: Project, report: GateReport, measured: list[Measured]) -> Path:
    """Write the baseline JSON and its golden outputs for the measured build; returns the JSON path."""
    path = project.baseline
    golden = golden_path(path)
    arrays = {f"{m.target}/{name}": value for m in measured for name, value in m.outputs.items()}
    gates = {gate.name: gate for gate in project.gates}
    targets = {
        t.target: {
            "library_sha256": t.library_sha256,
            "gates": {r.gate: {**gates[r.gate].key(), "output": r.output, "value": r.value} for r in t.results},
        }
        for t in report.targets
    }
    with atomic_file(golden) as tmp_golden, atomic_file(path) as tmp_json:
        with open(tmp_golden, "wb") as f:
            np.savez(f, **arrays)
        record = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "project": project.name,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "build": {"config_sha256": project.build_config_sha256(), "project_sha256": project.sha256},
            "data": {"path": report.data["path"], "sha256": report.data["sha256"], "samples": report.data["samples"]},
            "reference": {"sha256": report.reference["sha256"]},
            "golden": {"file": golden.name, "sha256": sha256_file(tmp_golden)},
            "versions": versions.collect(),
            "targets": targets,
        }
        tmp_json.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_baseline(project: Project) -> tuple[dict, dict[str, np.ndarray]]:
    """The baseline record and its golden outputs. InputError if missing, ArtifactError if damaged."""
    path = project.baseline
    if not path.is_file():
        raise InputError(f"no baseline at {path}", "record one from a good build with `edgekit baseline save`")
    record = read_versioned_json(path, FORMAT, FORMAT_VERSION, "an edgekit baseline", "record it again with `edgekit baseline save`")
    golden = path.with_name(record["golden"]["file"])
    if not golden.is_file() or sha256_file(golden) != record["golden"]["sha256"]:
        raise ArtifactError(f"golden outputs {golden} are missing or do not match {path.name}", "commit both files of the baseline, or save it again")
    return record, read_npz(golden)


def apply_baseline(report: GateReport, project: Project, measured: list[Measured]) -> None:
    """Compare every gate of `report` with the baseline, and the outputs with the golden ones."""
    record, golden = load_baseline(project)
    if record["data"]["sha256"] != report.data["sha256"]:
        raise InputError(
            f"the baseline {project.baseline.name} was recorded on other eval data ({record['data']['path']}, sha256 {record['data']['sha256'][:12]}...) "
            f"than {report.data['path']} (sha256 {report.data['sha256'][:12]}...)",
            "compare on the same data set, or save a new baseline with `edgekit baseline save`",
        )
    report.baseline = {"path": project.relative(project.baseline), "created": record["created"], "data_sha256": record["data"]["sha256"]}
    gates: dict[str, Gate] = {gate.name: gate for gate in project.gates}
    by_target = {m.target: m for m in measured}
    for target in report.targets:
        old = record["targets"].get(target.target)
        if old is None:
            raise InputError(f"the baseline {project.baseline.name} has no target {target.target}", "save a new baseline with `edgekit baseline save`")
        target.artifact_unchanged = old["library_sha256"] == target.library_sha256
        for result in target.results:
            compare_with_baseline(result, gates[result.gate], old["gates"].get(result.gate))
        for name, value in by_target[target.target].outputs.items():
            reference = golden.get(f"{target.target}/{name}")
            if reference is not None and reference.shape == value.shape:
                diff = float(np.abs(value.astype(np.float64) - reference.astype(np.float64)).max(initial=0.0))
                target.golden[name] = {"max_abs_diff": diff, "identical": bool(np.array_equal(value, reference))}
