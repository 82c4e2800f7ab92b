"""What `edgekit report` shows, gathered from a build folder: its records, and its artifacts measured here.

A build folder (build_folder.py describes it) already holds the model summary, the target, the
quantization record, the sensitivity report and the gate results. Latency is not recorded by the
pipeline, so every artifact that runs on this machine is measured now: `profile_artifact` for the
per-kernel latency and roofline, and `runs` whole inferences for the latency histogram.

`collect_report` returns one JSON-ready dict, the only thing page.py reads:

    project {name, file}, build, created, versions, deployed_model,
    model {source, opset, reference {path, bytes, sha256}, deployed {...}, inputs, outputs, parity},
    stages [{stage, command, seconds}],
    targets [{name, artifact, description, cpu, peak, accelerator, device, pipeline, integer,
              library {path, bytes, sha256}, runs_here, profile (ProfileReport.to_dict()) | None,
              latency {runs, warmup, threads, ms [...], stats (LatencyStats)} | None}],
    quantization (the .quant.json record) | None, sensitivity (the .sensitivity.json report) | None,
    check (check.json, ci_report.py describes it)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit import console
from edgekit.artifact import Manifest, read_manifest
from edgekit.project import BUILD_JSON, CHECK_JSON, FORMAT, FORMAT_VERSION, data_sha256
from edgekit.errors import ArtifactError, InputError
from edgekit.files import read_versioned_json, sha256_file

QUANT_RECORD_SUFFIX = ".quant.json"
SENSITIVITY_SUFFIX = ".sensitivity.json"
_REBUILD = "rebuild with `edgekit pipeline`"


def collect_report(build: Path | str, runs: int = 200, profile_runs: int = 20, warmup: int = 10, threads: int | None = None) -> dict[str, Any]:
    """Read the complete build in `build` and measure its artifacts that run on this machine.

    Raises InputError for a missing folder, an incomplete build (no build.json, no gate results)
    or bad counts, ArtifactError for a build whose recorded files are missing or changed.
    """
    if runs < 1 or profile_runs < 1 or warmup < 0:
        raise InputError(f"--runs and --profile-runs must be >= 1 and warmup >= 0 (got {runs}, {profile_runs}, {warmup})", "give sensible counts")
    build = Path(build)
    record = read_build(build)
    quantize = next((stage for stage in record["stages"] if stage["stage"] == "quantize"), None)
    export = next((stage for stage in record["stages"] if stage["stage"] == "export"), {})
    manifests = {name: read_manifest(build / folder) for name, folder in record["artifacts"].items()}
    if not manifests:
        raise ArtifactError(f"{build / BUILD_JSON} lists no artifacts", _REBUILD)
    first = next(iter(manifests.values()))
    return {
        "project": {"name": record["project"]["name"], "file": record["project"]["file"]},
        "build": str(build),
        "created": record.get("created", ""),
        "versions": record.get("versions", {}),
        "deployed_model": record["deployed_model"],
        "model": {
            "source": record["project"].get("config", {}).get("model", {}).get("source", ""),
            "opset": first.source.get("opset"),
            "reference": _file(build, record["reference"]),
            "deployed": _file(build, record["deployed_model"]),
            "inputs": [spec.to_dict() for spec in first.inputs],
            "outputs": [spec.to_dict() for spec in first.outputs],
            "parity": export.get("parity"),
        },
        "stages": [{"stage": s["stage"], "command": s["command"], "seconds": s.get("seconds")} for s in record["stages"]],
        "targets": [
            _target(build, name, record["artifacts"][name], manifest, runs, profile_runs, warmup, threads) for name, manifest in manifests.items()
        ],
        "quantization": _stage_output(build, quantize, QUANT_RECORD_SUFFIX),
        "sensitivity": _stage_output(build, quantize, SENSITIVITY_SUFFIX),
        "check": _read_json(build / CHECK_JSON),
    }


def read_build(build: Path) -> dict[str, Any]:
    """build.json of a complete, checked build, every recorded output re-hashed.

    Unlike build_folder.read_record this needs no project file: the report describes the
    folder as it is, so only what the folder itself holds (outputs, reports) is verified.
    """
    if not build.is_dir():
        raise InputError(f"build folder not found: {build}", "give the folder `edgekit pipeline` wrote (the project's build_dir, e.g. build/digits)")
    path = build / BUILD_JSON
    if not path.is_file():
        raise InputError(f"no complete build in {build} ({BUILD_JSON} missing)", "run `edgekit pipeline` first")
    record = read_versioned_json(path, FORMAT, FORMAT_VERSION, "an edgekit build record", _REBUILD)
    if "check" not in record:
        raise InputError(f"{build} has no gate results (the pipeline stopped before its check)", f"run `edgekit check --project {record['project']['file']}`")
    entries = [(f"{stage['stage']} output", entry) for stage in record["stages"] for entry in stage["outputs"]]
    entries += [("check report", entry) for entry in record["check"]["reports"]]
    for what, entry in entries:
        file = build / entry["path"]
        if not file.exists():
            raise ArtifactError(f"{what} {file} is missing", _REBUILD)
        if data_sha256(file) != entry["sha256"]:
            raise ArtifactError(f"{what} {file} changed since the build", _REBUILD)
    return record


def time_inferences(folder: Path, runs: int, warmup: int, threads: int | None = None) -> dict[str, Any]:
    """`runs` whole inferences of the artifact on seeded random inputs, each timed (inputs on the device)."""
    from edgekit.reference import random_inputs
    from edgekit.runtime import Timer, load

    model = load(folder, threads=threads)
    device_inputs = model.to_device(model.bind((), random_inputs(model.inputs)))
    for _ in range(warmup):
        model.run_bound(device_inputs)
    timer = Timer()
    for _ in range(runs):
        with timer:
            model.run_bound(device_inputs)
    stats = timer.stats(warmup=warmup, threads=model.threads)
    return {"runs": runs, "warmup": warmup, "threads": model.threads, "ms": [seconds * 1e3 for seconds in timer.wall], "stats": stats.to_dict()}


def _target(build: Path, name: str, folder: str, manifest: Manifest, runs: int, profile_runs: int, warmup: int, threads: int | None) -> dict[str, Any]:
    from edgekit.measure import profile_artifact

    here = manifest.runs_here()
    profile = latency = None
    if here:
        profile = profile_artifact(build / folder, runs=profile_runs, threads=threads).to_dict()
        with console.step(f"timing {runs} inferences of {name}"):
            latency = time_inferences(build / folder, runs, warmup, threads)
    else:
        console.warn(f"target {name} does not run on this machine ({manifest.why_not_here()}): no latency in the report")
    return {
        "name": name,
        "artifact": folder,
        "description": manifest.target.description,
        "cpu": manifest.target.to_dict()["cpu"],
        "peak": manifest.target.to_dict()["peak"],
        "accelerator": manifest.target.to_dict()["accelerator"],
        "device": manifest.build.get("options", {}).get("device", "cpu"),
        "pipeline": manifest.build.get("pipeline", ""),
        "integer": manifest.build.get("integer"),
        "library": _file(build, f"{folder}/{manifest.library}"),
        "runs_here": here,
        "profile": profile,
        "latency": latency,
    }


def _stage_output(build: Path, stage: dict | None, suffix: str) -> dict | None:
    """The JSON output of `stage` whose name ends in `suffix`; None when the stage or the file is not in the build."""
    if stage is None:
        return None
    path = next((entry["path"] for entry in stage["outputs"] if entry["path"].endswith(suffix)), None)
    return _read_json(build / path) if path is not None else None


def _file(build: Path, relative: str) -> dict[str, Any]:
    path = build / relative
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", _REBUILD)
    return {"path": relative, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing", _REBUILD) from None
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc})", _REBUILD) from None
