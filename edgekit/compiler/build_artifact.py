"""`edgekit compile`: ONNX in, a self-describing TVM artifact folder out."""

from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import tvm

from edgekit import console, versions
from edgekit.artifact import Manifest, write_manifest
from edgekit.compiler.frontend import FloatChoice, integer_rewrite, lower
from edgekit.compiler.gpu import build_gpu, export_gpu_library, gpu_summary, nvcc_version
from edgekit.compiler.integer_check import IntegerAgreement, check_integer_rewrite
from edgekit.compiler.kernel_costs import kernel_costs
from edgekit.compiler.relax_import import node_name
from edgekit.compiler.relax_pipeline import fused_module, schedule_pipeline
from edgekit.compiler.tuning.database import find_database
from edgekit.errors import InputError
from edgekit.files import atomic_dir, sha256_file
from edgekit.onnx_model import load_onnx, model_inputs, opset_version, resolve_static_shapes
from edgekit.target_spec import DEFAULT_TARGET, TargetSpec, load_target
from edgekit.threads import DEFAULT_SPIN_COUNT

LIBRARY = "model.so"


@dataclass(frozen=True)
class CompileOptions:
    """What to build, resolved and validated once: `spec` is the target's descriptor, read when the options are made."""

    target: str = DEFAULT_TARGET  # a bundled target name or a target .toml path, as the user gave it
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    name: str = ""
    device: str = "cpu"  # "gpu": the target's [accelerator] runs the compute
    tuning_db: Path | None = None  # a MetaSchedule database from `edgekit tune`
    float_fallback: bool = False  # a failed integer rewrite builds the QDQ graph in float instead of failing
    float_nodes: tuple[str, ...] = ()  # nodes that may run in float inside a quantized region (the user's choice)
    spec: TargetSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "float_nodes", tuple(dict.fromkeys(self.float_nodes)))
        if any(not name for name in self.float_nodes):
            raise InputError("--float-nodes names an empty node", "give node names separated by commas, e.g. --float-nodes Sin_0,Cos_3")
        object.__setattr__(self, "spec", load_target(self.target))
        _require_device(self.spec, self.device)
        _require_toolchain(self.spec)

    def command(self, source: Path, output: Path) -> str:
        parts = ["edgekit", "compile", str(source), "--target", self.target, "-o", str(output)]
        for input_name, shape in sorted(self.shapes.items()):
            parts += ["--shape", f"{input_name}={'x'.join(map(str, shape))}"]
        for dim_name, size in sorted(self.dims.items()):
            parts += ["--dim", f"{dim_name}={size}"]
        if self.name:
            parts += ["--name", self.name]
        if self.device != "cpu":
            parts += ["--device", self.device]
        if self.tuning_db is not None:
            parts += ["--tuning-db", str(self.tuning_db)]
        if self.float_fallback:
            parts += ["--float-fallback"]
        if self.float_nodes:
            parts += ["--float-nodes", ",".join(self.float_nodes)]
        return shlex.join(parts)

    def to_dict(self) -> dict:
        return {
            "target": self.target, "shapes": {k: list(v) for k, v in self.shapes.items()}, "dims": self.dims, "name": self.name,
            "device": self.device, "tuning_db": str(self.tuning_db) if self.tuning_db else None, "float_fallback": self.float_fallback,
            "float_nodes": list(self.float_nodes),
        }


def compile_onnx(source: Path, output: Path, options: CompileOptions | None = None) -> Path:
    """Compile the ONNX file `source` into the artifact folder `output`; return `output`.

    Raises InputError for unreadable input or unknown targets and UnsupportedModelError when
    TVM cannot import the model. The folder appears only when everything succeeded.
    """
    options = options or CompileOptions()
    source, output = Path(source), Path(output)
    target = options.spec
    model = load_onnx(source)
    inputs = resolve_static_shapes(model_inputs(model), options.shapes, options.dims)
    choice = float_choice(source, model, options.float_nodes)

    started = time.perf_counter()
    lowered = lower(model, inputs, target, integer=options.device != "gpu", float_fallback=options.float_fallback, float_choice=choice)
    self_check = None
    if lowered.integer is not None:
        # Like folding, the rewrite proves itself: a mismatch is an error, never a silent float build.
        with console.step("checking the integer rewrite against the QDQ model in ONNX Runtime"):
            self_check = check_integer_rewrite(lowered.folded, inputs, integer_rewrite(inputs, target))
        console.info(_self_check_summary(self_check))
    database = None if options.device == "gpu" else find_database(target, options.tuning_db)
    if database is not None:
        console.info(f"using tuning records from {database}")
    gpu, costs, schedules = None, {}, {}
    if options.device == "gpu":
        accelerator = target.accelerator
        with console.step(f"building for {target.name}'s {accelerator.name} ({accelerator.kind} {accelerator.arch})"):
            gpu = build_gpu(lowered.module, target)
        console.info(f"{gpu.info.kernels} {gpu.info.kind} kernels for {gpu.info.fused_ops} fused ops ({gpu.info.binary_format})")
    else:
        with console.step(f"building for {target.name} ({target.cpu.triple}, {target.cpu.mcpu})"):
            fused = fused_module(lowered.module, target)
            costs = kernel_costs(fused)
            executable = tvm.compile(fused, target=tvm.target.Target(target.tvm_cpu_target()), relax_pipeline=schedule_pipeline(target, database, schedules))

    found_versions = versions.collect()
    with atomic_dir(output) as folder:
        if gpu is not None:
            export_gpu_library(gpu, folder / LIBRARY, target)  # reads the library back and checks it
        else:
            _export_library(executable, folder / LIBRARY, target)
        manifest = Manifest(
            name=options.name or source.stem,
            library=LIBRARY,
            inputs=inputs,
            outputs=lowered.outputs,
            target=target,
            tvm_target=gpu.tvm_target if gpu else target.tvm_cpu_target(),
            source={"path": str(source), "sha256": sha256_file(source), "opset": opset_version(model), "producer": _producer(model)},
            versions=found_versions,
            build={
                "command": options.command(source, output),
                "options": options.to_dict(),
                "tuning_records": str(database) if database else None,
                "folding": lowered.fold.to_dict(),
                "pipeline": _pipeline_name(gpu, database),
                "integer": (lowered.integer.to_dict() | {"self_check": self_check.to_dict()}) if lowered.integer else ({"failed": lowered.integer_failure} if lowered.integer_failure else None),
                "macs": lowered.macs,
                "seconds": round(time.perf_counter() - started, 2),
            },
            runtime=_runtime_defaults(target, found_versions) | ({"gpu": gpu_summary(gpu.info)} if gpu else {}),
            kernels={name: cost.to_dict() | ({"schedule": schedules[name]} if name in schedules else {}) for name, cost in costs.items()},
        )
        write_manifest(folder, manifest)
    console.info(f"wrote {output} ({manifest.build['seconds']} s){_mac_summary(manifest.build['macs'])}")
    return output


def float_choice(source: Path, model: onnx.ModelProto, float_nodes: tuple[str, ...]) -> FloatChoice:
    """Who chose float for which node: the user (`--float-nodes`, names checked against the model)
    and edgekit's quantizer, whose record beside the model (`NAME.quant.json`) lists each node it
    left float with the reason."""
    names = {node_name(node) for node in model.graph.node}  # an unnamed node goes by its first output, as errors name it
    unknown = [name for name in float_nodes if name not in names]
    if unknown:
        raise InputError(f"--float-nodes: {source} has no node named {', '.join(repr(n) for n in unknown)}", "give node names as the ONNX file spells them (e.g. from Netron or the error that listed them)")
    chosen = {name: reason for name, reason in _quantizer_float_nodes(source).items() if name in names}
    chosen.update({name: "--float-nodes" for name in float_nodes})
    return FloatChoice(chosen)


def _quantizer_float_nodes(source: Path) -> dict[str, str]:
    """Node name -> "quantization record NAME.quant.json: REASON" for every float node of the record beside `source`."""
    stem = source.name[: -len(".onnx")] if source.name.endswith(".onnx") else source.name
    record_path = source.with_name(f"{stem}.quant.json")  # the quantizer's naming: model.int8.onnx -> model.int8.quant.json
    if not record_path.is_file():
        return {}
    try:
        nodes = json.loads(record_path.read_text())["nodes"]
        return {n["name"]: f"quantization record {record_path.name}: {n['reason']}" for n in nodes if n["precision"] == "float"}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"quantization record {record_path} cannot be read ({type(exc).__name__}: {exc})", "re-run edgekit quantize, or move the file away") from None


def _mac_summary(macs: dict | None) -> str:
    if not macs or macs["integer_share"] is None:
        return ""
    return f"; {macs['integer_share']:.1%} of {macs['total'] / 1e6:.3g} M conv/matmul MACs in integers"


def _self_check_summary(agreement: IntegerAgreement) -> str:
    worst = ", ".join(
        f"{out.name} {out.max_lsb:.3g} LSB" if out.max_lsb is not None else f"{out.name} max abs {out.max_abs:.3g} ({out.max_rel:.2%} of its range)"
        for out in agreement.outputs
    )
    tensor = agreement.worst_tensor
    inside = f"; {len(agreement.tensors)} int8 tensors inside, the worst {tensor.name} {tensor.max_lsb:.3g} LSB" if tensor is not None else ""
    return f"integer graph vs the QDQ model in ONNX Runtime, region by region, {agreement.samples} seeded samples: {worst}{inside}"


def _pipeline_name(gpu, database: Path | None) -> str:
    if gpu is not None:
        return "tvm default GPU pipeline (dlight default schedules, untuned)"
    return "edgekit CPU pipeline: " + ("tuning records, then default schedules" if database else "default schedules (untuned)")


def _runtime_defaults(target: TargetSpec, found: dict[str, str]) -> dict:
    return {
        "threads": target.cpu.cores,
        "cpu_ids": list(target.cpu.cpu_ids),
        "spin_count": DEFAULT_SPIN_COUNT,  # threads.py: an idle runtime sleeps instead of burning a core
        # model.so links against exactly these runtime libraries; a bundle ships the same versions.
        "abi": {"machine": target.machine, "tvm_runtime": found["tvm"], "tvm_ffi": found["tvm_ffi"]},
    }


def _require_device(target: TargetSpec, device: str) -> None:
    if device not in ("cpu", "gpu"):
        raise InputError(f"unknown device '{device}'", "use --device cpu or --device gpu")
    if device == "gpu" and target.accelerator is None:
        raise InputError(f"target {target.name} has no GPU", "use --device cpu, or a target with an [accelerator] table (orin, rk3588)")
    if device == "gpu" and target.accelerator.kind == "cuda":
        nvcc_version()  # fails before any work when nvcc is missing


def _require_toolchain(target: TargetSpec) -> None:
    compiler = target.cpu.cross_compiler or "g++"
    if shutil.which(compiler) is None:
        raise InputError(f"the C++ compiler {compiler} needed for target {target.name} is not installed", "run scripts/setup_cross.sh (or scripts/setup.sh for g++)")


def _export_library(executable, path: Path, target: TargetSpec) -> None:
    if not target.is_cross:
        executable.export_library(str(path))
        return
    from tvm.support import cc  # TVM 0.27 moved cc here from tvm.contrib

    executable.export_library(str(path), fcompile=cc.cross_compiler(target.cpu.cross_compiler))


def _producer(model: onnx.ModelProto) -> str:
    return f"{model.producer_name} {model.producer_version}".strip() or "unknown"
