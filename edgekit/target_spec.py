"""Target descriptors: one TOML file per board in `targets/`, read and validated here.

A board's facts (triple, CPU, features, cores, peaks) live only in its TOML file; code asks
a `TargetSpec` for them. Adding a board is adding a file.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.resources import data_dir, preset_names, resolve_preset
from edgekit.toml_file import TomlReader, parse_toml

ACCELERATOR_KINDS = ("cuda", "opencl")
# What --target means when it is not given: the common x86_64 build machine.
DEFAULT_TARGET = "x86_64"


@dataclass(frozen=True)
class CpuSpec:
    triple: str
    mcpu: str
    features: tuple[str, ...]
    cores: int
    simd_bits: int
    vector_registers: int = 0  # architectural SIMD registers (0: unknown, as in manifests older than the key)
    cpu_ids: tuple[int, ...] = ()
    cross_compiler: str = ""


@dataclass(frozen=True)
class AcceleratorSpec:
    kind: str
    name: str
    arch: str


@dataclass(frozen=True)
class PeakSpec:
    fp32_gflops: float
    int8_gops: float
    memory_bandwidth_gbs: float
    accelerator_fp32_gflops: float = 0.0
    accelerator_int8_gops: float = 0.0


@dataclass(frozen=True)
class EstimateSpec:
    """How `edgekit estimate` models this board without it: QEMU's CPU model (the instruction
    set the guest may use), LLVM's scheduling model for llvm-mca (the core's pipelines), and
    the clock that turns cycles into milliseconds."""

    qemu_cpu: str
    mca_cpu: str
    clock_ghz: float


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str
    cpu: CpuSpec
    peak: PeakSpec
    accelerator: AcceleratorSpec | None = None
    estimate: EstimateSpec | None = None
    source: str = field(default="", compare=False)

    def tvm_cpu_target(self) -> dict[str, Any]:
        """The LLVM host target as the JSON dict TVM 0.27 takes (the string form is rejected)."""
        target: dict[str, Any] = {
            "kind": "llvm",
            "mtriple": self.cpu.triple,
            "mcpu": self.cpu.mcpu,
            "num-cores": self.cpu.cores,
        }
        if self.cpu.features:
            target["mattr"] = list(self.cpu.features)
        return target

    @property
    def machine(self) -> str:
        """The CPU architecture as `uname -m` names it, e.g. "aarch64"."""
        return self.cpu.triple.split("-", 1)[0]

    @property
    def is_cross(self) -> bool:
        return bool(self.cpu.cross_compiler)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        """The inverse of `to_dict`: a manifest's target as it was when the artifact was built
        (the bundled TOML may have changed since)."""
        cpu = dict(data["cpu"], features=tuple(data["cpu"]["features"]), cpu_ids=tuple(data["cpu"].get("cpu_ids", ())))
        accelerator = AcceleratorSpec(**data["accelerator"]) if data.get("accelerator") else None
        estimate = EstimateSpec(**data["estimate"]) if data.get("estimate") else None
        return cls(name=data["name"], description=data["description"], cpu=CpuSpec(**cpu), peak=PeakSpec(**data["peak"]), accelerator=accelerator, estimate=estimate)

    def why_not_here(self) -> str | None:
        """Why code built for this target cannot run on this machine's CPU, or None if it can."""
        here = platform.machine()
        if self.machine != here:
            return f"it is built for {self.machine} ({self.name}) and this machine is {here}"
        missing = [f for f in self.cpu.features if f.startswith("+") and not host_has_feature(f[1:])]
        if missing:
            return f"this {here} CPU lacks {', '.join(missing)}, which {self.name} code uses"
        return None

    def runs_here(self) -> bool:
        return self.why_not_here() is None


def targets_dir() -> Path:
    return data_dir("targets")


def known_targets() -> list[str]:
    return preset_names("target")


def load_target(name_or_path: str | Path) -> TargetSpec:
    """Load a target by bundled name (`x86_64`) or by path to a TOML file of the same schema."""
    return parse_target(resolve_preset(name_or_path, "target"))


def list_targets() -> list[TargetSpec]:
    return [load_target(name) for name in known_targets()]


def parse_target(path: Path) -> TargetSpec:
    raw = parse_toml(path, path.read_bytes(), "see targets/x86_64.toml")
    reader = _TableReader(path)
    reader.keys(raw, "", required={"name", "description", "cpu", "peak"}, optional={"accelerator", "estimate"})
    name = reader.value(raw, "name", str)
    if name != path.stem:
        raise InputError(f"{path}: key 'name' is '{name}' but the file is {path.name}", "make them equal")
    cpu = _parse_cpu(reader, reader.table(raw, "cpu"))
    peak = _parse_peak(reader, reader.table(raw, "peak"))
    accelerator = None
    if "accelerator" in raw:
        accelerator = _parse_accelerator(reader, reader.table(raw, "accelerator"))
    estimate = _parse_estimate(reader, reader.table(raw, "estimate")) if "estimate" in raw else None
    return TargetSpec(
        name=name,
        description=reader.value(raw, "description", str),
        cpu=cpu,
        peak=peak,
        accelerator=accelerator,
        estimate=estimate,
        source=str(path),
    )


def _parse_cpu(reader: _TableReader, table: dict) -> CpuSpec:
    reader.keys(
        table,
        "cpu.",
        required={"triple", "mcpu", "features", "cores", "simd_bits", "vector_registers"},
        optional={"cpu_ids", "cross_compiler"},
    )
    mcpu = reader.value(table, "mcpu", str, "cpu.")
    if mcpu == "native":
        reader.fail("cpu.mcpu", "'native' is not allowed: name the CPU (LLVM 22 rejects native for cross builds)")
    cores = reader.value(table, "cores", int, "cpu.")
    if cores < 1:
        reader.fail("cpu.cores", f"must be >= 1, got {cores}")
    features = reader.value(table, "features", list, "cpu.")
    if not all(isinstance(f, str) and f[:1] in "+-" and len(f) > 1 for f in features):
        reader.fail("cpu.features", "must be a list of LLVM attributes like \"+neon\"")
    registers = reader.value(table, "vector_registers", int, "cpu.")
    if registers < 8:
        reader.fail("cpu.vector_registers", f"must be the architectural SIMD register count (16 or 32), got {registers}")
    cpu_ids = reader.value(table, "cpu_ids", list, "cpu.", default=[])
    if not all(isinstance(i, int) and i >= 0 for i in cpu_ids):
        reader.fail("cpu.cpu_ids", "must be a list of non-negative core numbers")
    return CpuSpec(
        triple=reader.value(table, "triple", str, "cpu."),
        mcpu=mcpu,
        features=tuple(features),
        cores=cores,
        simd_bits=reader.value(table, "simd_bits", int, "cpu."),
        vector_registers=registers,
        cpu_ids=tuple(cpu_ids),
        cross_compiler=reader.value(table, "cross_compiler", str, "cpu.", default=""),
    )


def _parse_peak(reader: _TableReader, table: dict) -> PeakSpec:
    required = {"fp32_gflops", "int8_gops", "memory_bandwidth_gbs"}
    optional = {"accelerator_fp32_gflops", "accelerator_int8_gops"}
    reader.keys(table, "peak.", required=required, optional=optional)
    values = {}
    for key in sorted(required | optional):
        if key in table:
            value = reader.value(table, key, (int, float), "peak.")
            if value < 0:
                reader.fail(f"peak.{key}", f"must be >= 0, got {value}")
            values[key] = float(value)
    return PeakSpec(**values)


def _parse_accelerator(reader: _TableReader, table: dict) -> AcceleratorSpec:
    reader.keys(table, "accelerator.", required={"kind", "name", "arch"}, optional=set())
    kind = reader.value(table, "kind", str, "accelerator.")
    if kind not in ACCELERATOR_KINDS:
        reader.fail("accelerator.kind", f"'{kind}' is not one of {', '.join(ACCELERATOR_KINDS)}")
    return AcceleratorSpec(
        kind=kind,
        name=reader.value(table, "name", str, "accelerator."),
        arch=reader.value(table, "arch", str, "accelerator."),
    )


def _parse_estimate(reader: _TableReader, table: dict) -> EstimateSpec:
    reader.keys(table, "estimate.", required={"qemu_cpu", "mca_cpu", "clock_ghz"}, optional=set())
    clock = reader.value(table, "clock_ghz", (int, float), "estimate.")
    if clock <= 0:
        reader.fail("estimate.clock_ghz", f"must be > 0, got {clock}")
    return EstimateSpec(
        qemu_cpu=reader.value(table, "qemu_cpu", str, "estimate."),
        mca_cpu=reader.value(table, "mca_cpu", str, "estimate."),
        clock_ghz=float(clock),
    )


class _TableReader(TomlReader):
    """The target schema's typed keys; every error names the file and the full key."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), "fix the target file (see targets/x86_64.toml)")

    def fail(self, key: str, problem: str) -> None:
        super().fail(f"key '{key}' {problem}", self.hint)

    def keys(self, table: dict, prefix: str, required: set[str], optional: set[str]) -> None:
        for key in sorted(set(table) - required - optional):
            self.fail(prefix + key, f"is unknown (allowed: {', '.join(sorted(required | optional))})")
        for key in sorted(required - set(table)):
            self.fail(prefix + key, "is missing")

    def table(self, raw: dict, key: str) -> dict:
        value = raw[key]
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        return value

    def value(self, table: dict, key: str, kind, prefix: str = "", default=None):
        if key not in table:
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.fail(prefix + key, f"must be {names}, got {value!r}")
        return value


# LLVM feature names as Linux's /proc/cpuinfo spells them, where the two differ beyond case,
# "_" and "." (x86 mostly matches: avx512vnni ~ avx512_vnni, sse4.2 ~ sse4_2).
_CPUINFO_NAMES = {"neon": "asimd", "dotprod": "asimddp", "fullfp16": "asimdhp", "i8mm": "i8mm", "sve": "sve", "crypto": "aes"}


def host_has_feature(llvm_feature: str) -> bool:
    """Whether this machine's CPU has an LLVM target feature (`avx512vnni`, `dotprod`), by /proc/cpuinfo.

    A feature cpuinfo cannot tell about (no cpuinfo, or a name it never lists) counts as present:
    the loader would then be the one to fail, as it did before this check existed.
    """
    flags = _cpu_flags()
    if not flags:
        return True
    name = _CPUINFO_NAMES.get(llvm_feature, llvm_feature)
    return _normal(name) in flags or not _is_listed_kind(name)


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(_normal(flag) for flag in value.split())
    return frozenset()


def _normal(name: str) -> str:
    return name.lower().replace("_", "").replace(".", "")


def _is_listed_kind(name: str) -> bool:
    # Feature families cpuinfo reliably lists; anything else (tuning hints such as "fast-gather") is not a CPU flag.
    return _normal(name).startswith(("avx", "sse", "fma", "f16c", "bmi", "amx", "asimd", "sve", "i8mm", "aes", "sha"))
