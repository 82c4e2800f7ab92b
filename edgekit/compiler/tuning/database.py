"""A tuning database folder: MetaSchedule's JSON records plus edgekit's descriptor of them.

    tuning/<target>/
        database_workload.json        MetaSchedule: one line per tuned PrimFunc (workload)
        database_tuning_record.json   MetaSchedule: one line per measured trial
        edgekit-tuning.json           edgekit: the CPU the records were measured on, TVM's
                                      version, and one summary per tuned model
        logs/                         MetaSchedule's per-run logs

MetaSchedule looks records up by workload alone; it never checks the target they were measured
on. Records for another CPU (other ISA, other core count) would compile and run, just slowly or
not at all, so the descriptor is what lets compile refuse them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit import console, versions
from edgekit.errors import InputError
from edgekit.files import atomic_file
from edgekit.target_spec import TargetSpec

DESCRIPTOR = "edgekit-tuning.json"
WORKLOADS = "database_workload.json"  # the names MetaScheduleApplyDatabase(work_dir) opens
RECORDS = "database_tuning_record.json"
FORMAT = 1
DEFAULT_ROOT = Path("tuning")


def cpu_descriptor(target: TargetSpec) -> dict[str, Any]:
    """What the records depend on: the code generated (triple, CPU, features) and the cores it ran on."""
    return {
        "name": target.name,
        "triple": target.cpu.triple,
        "mcpu": target.cpu.mcpu,
        "features": sorted(target.cpu.features),
        "cores": target.cpu.cores,
    }


def read_descriptor(folder: Path) -> dict[str, Any] | None:
    path = folder / DESCRIPTOR
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is unreadable ({exc})", "restore it or delete the tuning folder and tune again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("target"), dict):
        raise InputError(f"{path} is not an edgekit tuning descriptor (format {FORMAT})", "delete the tuning folder and tune again")
    return data


def write_descriptor(folder: Path, data: dict[str, Any]) -> None:
    with atomic_file(folder / DESCRIPTOR) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def mismatch(descriptor: dict[str, Any], target: TargetSpec) -> str:
    """Why records described by `descriptor` must not be used for `target` ("" if they may)."""
    tuned, wanted = descriptor["target"], cpu_descriptor(target)
    for key in ("triple", "mcpu", "features", "cores"):
        if tuned.get(key) != wanted[key]:
            return f"it was tuned for {_describe(tuned)}, not {_describe(wanted)} ({key} differs)"
    tuned_tvm = descriptor.get("versions", {}).get("tvm")
    if tuned_tvm != versions.collect()["tvm"]:
        # A trace replays schedule primitives by name and argument; another TVM may reject it.
        return f"it was tuned with TVM {tuned_tvm}, this is TVM {versions.collect()['tvm']}"
    return ""


def open_for_tuning(folder: Path, target: TargetSpec) -> dict[str, Any]:
    """Create `folder` as a database for `target`, or check an existing one is for it; return its descriptor."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--db {folder} exists and is not a folder", "give a folder, e.g. --db tuning/" + target.name)
    descriptor = read_descriptor(folder) if folder.exists() else None
    if descriptor is None:
        if folder.exists() and ((folder / RECORDS).exists() or (folder / WORKLOADS).exists()):
            raise InputError(
                f"{folder} holds MetaSchedule records but no {DESCRIPTOR}: the CPU they were measured on is unknown",
                "tune into a new folder",
            )
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = {"format": FORMAT, "target": cpu_descriptor(target), "tvm_target": target.tvm_cpu_target(), "versions": _versions(), "models": []}
        write_descriptor(folder, descriptor)
        return descriptor
    problem = mismatch(descriptor, target)
    if problem:
        raise InputError(f"tuning database {folder} cannot take records for {target.name}: {problem}", f"use another folder, e.g. --db tuning/{target.name}")
    return descriptor


def find_database(target: TargetSpec, explicit: Path | None = None) -> Path | None:
    """The tuning database compile should apply for `target`, or None.

    `explicit` (compile's --tuning-db) must be a database tuned for this target's CPU with this
    TVM, else InputError. Without it, `tuning/<target name>/` under the current directory is used
    if it exists and matches; a folder there that does not match is skipped with a warning.
    """
    if explicit is not None:
        folder = Path(explicit)
        if not folder.is_dir():
            raise InputError(f"tuning database not found: {folder}", "give the folder `edgekit tune --db` wrote")
        descriptor = read_descriptor(folder)
        if descriptor is None:
            raise InputError(f"{folder} is not an edgekit tuning database (no {DESCRIPTOR})", f"create one with `edgekit tune MODEL --target {target.name} --db {folder}`")
        problem = mismatch(descriptor, target)
        if problem:
            raise InputError(f"tuning database {folder} does not fit target {target.name}: {problem}", f"tune for {target.name} with `edgekit tune --target {target.name}`, or compile without --tuning-db")
        return folder
    folder = DEFAULT_ROOT / target.name
    if not folder.is_dir():
        return None
    try:
        descriptor = read_descriptor(folder)
    except InputError as exc:
        console.warn(f"not using {folder}: {exc.message}")
        return None
    problem = "it has no " + DESCRIPTOR if descriptor is None else mismatch(descriptor, target)
    if problem:
        console.warn(f"not using tuning database {folder}: {problem}")
        return None
    return folder


def record_model(folder: Path, summary: dict[str, Any]) -> None:
    """Replace (or add) the summary of one model (same sha256 and input shapes) in the descriptor."""
    descriptor = read_descriptor(folder)
    key = (summary["sha256"], json.dumps(summary["inputs"], sort_keys=True))
    models = [m for m in descriptor.get("models", []) if (m.get("sha256"), json.dumps(m.get("inputs"), sort_keys=True)) != key]
    descriptor["models"] = [*models, summary]
    write_descriptor(folder, descriptor)


def _versions() -> dict[str, str]:
    found = versions.collect()
    return {"tvm": found["tvm"], "tvm_ffi": found["tvm_ffi"], "edgekit": found["edgekit"]}


def _describe(cpu: dict[str, Any]) -> str:
    features = ",".join(cpu.get("features", [])) or "no extra features"
    return f"{cpu.get('name', '?')} ({cpu.get('triple')}, {cpu.get('mcpu')}, {features}, {cpu.get('cores')} cores)"
