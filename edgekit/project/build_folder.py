"""The build folder contract between `edgekit pipeline` (writer) and `check` / `baseline save` (readers).

One folder per project (`[project] build_dir`) holds every stage's outputs and `build.json`, the
manifest that links them by hash:

    build/digits/
      build.json               project file + hash, versions, every stage's inputs and outputs (sha256), gate results
      model.onnx               export: the float model, and the reference every gate compares with
      model.int8.onnx          quantize (with [quantize]) + model.int8.quant.json, the quantization record
      artifacts/<target>/      compile: model.so + manifest.json, one folder per target
      check.json               the gate report (JSON), check.junit.xml (one test case per gate), summary.txt

`build.json` is removed when a pipeline starts and written when its stages have finished, so a
folder without it is never mistaken for a complete build. Readers re-hash every recorded file:
a changed output is a tampered build (ArtifactError), a changed input a stale one (InputError).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError, InputError
from edgekit.files import atomic_file, read_versioned_json, sha256_file
from edgekit.project.project_file import Project
from edgekit.resources import preset_name

BUILD_JSON = "build.json"
FORMAT = "edgekit-build"
FORMAT_VERSION = 1
FLOAT_MODEL = "model.onnx"
INT8_MODEL = "model.int8.onnx"
ARTIFACTS = "artifacts"
CHECK_JSON = "check.json"
JUNIT_XML = "check.junit.xml"
SUMMARY_TXT = "summary.txt"


def target_name(target: str) -> str:
    """`x86_64` for a target name, the file stem for a target .toml path."""
    return preset_name(target)


def artifact_dir(build: Path, target: str) -> Path:
    return Path(build) / ARTIFACTS / target_name(target)


def data_sha256(path: Path) -> str:
    """sha256 of a data set: the file's, or for a folder, of its .npz files' names and hashes."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    listing = [f"{p.name} {sha256_file(p)}" for p in sorted(path.glob("*.npz"))]
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()


def file_entry(path: Path, relative_to: Path, role: str = "") -> dict[str, str]:
    """{"path", "sha256"} with `path` relative to `relative_to` when inside it (absolute otherwise)."""
    path, relative_to = Path(path).absolute(), Path(relative_to).absolute()
    shown = os.path.relpath(path, relative_to) if path.is_relative_to(relative_to) else str(path)
    entry = {"role": role} if role else {}
    return entry | {"path": shown, "sha256": data_sha256(path) if path.is_dir() else sha256_file(path)}


def folder_entries(folder: Path, relative_to: Path) -> list[dict[str, str]]:
    return [file_entry(p, relative_to) for p in sorted(Path(folder).rglob("*")) if p.is_file()]


def start_build(build: Path) -> None:
    """Mark `build` incomplete until `write_record` runs: a crash leaves no build.json behind."""
    Path(build).mkdir(parents=True, exist_ok=True)
    (Path(build) / BUILD_JSON).unlink(missing_ok=True)


def write_record(build: Path, record: dict[str, Any]) -> None:
    with atomic_file(Path(build) / BUILD_JSON) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **record}, indent=2) + "\n")


def read_record(project: Project) -> dict[str, Any]:
    """The build.json of `project`'s build folder, verified: InputError if missing or stale, ArtifactError if tampered."""
    build = project.build_dir
    path = build / BUILD_JSON
    if not path.is_file():
        raise InputError(f"no complete build in {build} ({BUILD_JSON} missing)", f"run `edgekit pipeline --project {project.path}` first")
    record = read_versioned_json(path, FORMAT, FORMAT_VERSION, "an edgekit build record", "rebuild with `edgekit pipeline`")
    if record["project"]["config_sha256"] != project.build_config_sha256():
        raise InputError(
            f"{build} was built from other settings than {project.path.name} now holds ([model], [quantize], [data] calib or [compile] changed)",
            "rebuild with `edgekit pipeline`",
        )
    for stage in record["stages"]:
        for entry in stage["inputs"]:
            _verify(project.root / entry["path"], entry, InputError, f"{stage['stage']} input", "the build is stale: rebuild with `edgekit pipeline`")
        for entry in stage["outputs"]:
            _verify(build / entry["path"], entry, ArtifactError, f"{stage['stage']} output", "the build folder was modified: rebuild with `edgekit pipeline`")
    return record


def _verify(path: Path, entry: dict, error: type, what: str, hint: str) -> None:
    if not path.exists():
        raise error(f"{what} {path} is missing", hint)
    actual = data_sha256(path)
    if actual != entry["sha256"]:
        raise error(f"{what} {path} changed since the build (sha256 {actual[:12]}..., recorded {entry['sha256'][:12]}...)", hint)
