"""The artifact folder contract between `compile` (writer) and `run`/`check` (readers).

An artifact is a folder holding the compiled library and `manifest.json`. The manifest says
what goes in and out, what it was built for and from, and the sha256 of every other file, so a
reader can refuse a tampered or incomplete artifact before loading any code from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError
from edgekit.files import sha256_file
from edgekit.onnx_model import TensorSpec
from edgekit.target_spec import TargetSpec

MANIFEST = "manifest.json"
FORMAT = "edgekit-artifact"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    name: str
    library: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    target: TargetSpec  # as it was at compile time; written as TargetSpec.to_dict()
    tvm_target: dict[str, Any]
    source: dict[str, Any]
    versions: dict[str, str]
    build: dict[str, Any]
    runtime: dict[str, Any]
    # Fused kernel name -> {flops, macs, bytes, schedule}, counted at compile time (compiler/kernel_costs.py;
    # schedule: the default-schedule rule that scheduled it, "tuned" or "none");
    # empty for GPU builds and for artifacts of edgekit versions that did not count them.
    kernels: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def why_not_here(self) -> str | None:
        """Why this artifact cannot run in this process (another CPU, or a GPU build), or None if it can."""
        if (reason := self.target.why_not_here()) is not None:
            return reason
        if "gpu" in self.runtime:
            gpu = self.runtime["gpu"]
            return f"it runs on a {gpu['device']} GPU ({gpu['arch']}) and the Python runtime here runs CPU artifacts"
        return None

    def runs_here(self) -> bool:
        return self.why_not_here() is None

    def kernel_cost(self, symbol: str) -> dict[str, int] | None:
        """Compile's count for the kernel a VM symbol calls: the same name, or the longest
        `name_...` prefix (schedules that pack weights rename `f` to `f_prepacked`)."""
        if symbol in self.kernels:
            return self.kernels[symbol]
        prefixes = [name for name in self.kernels if symbol.startswith(name + "_")]
        return self.kernels[max(prefixes, key=len)] if prefixes else None

    def to_json(self) -> str:
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}
        data["inputs"] = [spec.to_dict() for spec in self.inputs]
        data["outputs"] = [spec.to_dict() for spec in self.outputs]
        data["target"] = self.target.to_dict()
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ValueError("not an edgekit artifact manifest")
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"manifest format version {version} is not {FORMAT_VERSION}")
        data["inputs"] = [TensorSpec.from_dict(d) for d in data["inputs"]]
        data["outputs"] = [TensorSpec.from_dict(d) for d in data["outputs"]]
        data["target"] = TargetSpec.from_dict(data["target"])
        return cls(**data)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Hash every file in `folder` into the manifest and write it."""
    manifest.files = {
        p.name: sha256_file(p) for p in sorted(Path(folder).iterdir()) if p.is_file() and p.name != MANIFEST
    }
    (Path(folder) / MANIFEST).write_text(manifest.to_json())


def read_manifest(folder: Path) -> Manifest:
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"artifact folder not found: {folder}", "build one with `edgekit compile`")
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} has no {MANIFEST}: not an edgekit artifact", "build one with `edgekit compile`")
    try:
        return Manifest.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a valid edgekit manifest ({exc})", "rebuild the artifact with `edgekit compile`") from None


def verify_artifact(folder: Path) -> Manifest:
    """Read the manifest and check every listed file against its sha256; raise on any mismatch."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.library not in manifest.files:
        raise ArtifactError(f"{folder}/{MANIFEST} does not list its library {manifest.library}", "rebuild the artifact")
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"artifact file {path} is missing", "copy the whole artifact folder or rebuild it")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"artifact file {path} does not match its manifest (sha256 {actual[:12]}..., expected {expected[:12]}...)",
                "the artifact was modified or corrupted: rebuild it with `edgekit compile`",
            )
    return manifest
