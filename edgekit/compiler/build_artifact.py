"""`edgekit compile`: ONNX in, a self-describing TVM artifact folder out."""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import tvm

from edgekit import console, versions
from edgekit.artifact import Manifest, write_manifest
from edgekit.compiler.fold import fold_model
from edgekit.compiler.gpu import build_gpu, export_gpu_library, gpu_summary, nvcc_version
from edgekit.compiler.relax_pipeline import cpu_pipeline
from edgekit.errors import last_line
from edgekit.compiler.integer import IntegerReport, has_qdq, integer_regions
from edgekit.compiler.schedules.common import has_vnni
from edgekit.compiler.relax_import import import_onnx, output_specs
from edgekit.errors import InputError
from edgekit.files import atomic_dir, sha256_file
from edgekit.onnx_model import load_onnx, model_inputs, model_outputs, opset_version, resolve_static_shapes
from edgekit.target_spec import TargetSpec, load_target
from edgekit.compiler.tuning import find_database

LIBRARY = "model.so"


@dataclass
class CompileOptions:
    target: str = "x86_64"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    name: str = ""
    device: str = "cpu"  # "gpu": the target's [accelerator] runs the compute
    tuning_db: Path | None = None  # a MetaSchedule database from `edgekit tune`

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
        return shlex.join(parts)


def compile_onnx(source: Path, output: Path, options: CompileOptions | None = None) -> Path:
    """Compile the ONNX file `source` into the artifact folder `output`; return `output`.

    Raises InputError for unreadable input or unknown targets and UnsupportedModelError when
    TVM cannot import the model. The folder appears only when everything succeeded.
    """
    options = options or CompileOptions()
    source, output = Path(source), Path(output)
    target = load_target(options.target)
    _require_device(target, options.device)
    _require_toolchain(target)
    model = load_onnx(source)
    inputs = resolve_static_shapes(model_inputs(model), options.shapes, options.dims)
    output_names = [spec.name for spec in model_outputs(model)]

    started = time.perf_counter()
    with console.step("folding constant and shape subgraphs"):
        folded, fold_report = fold_model(model, inputs)
    console.info(
        f"folded {fold_report.nodes_before} -> {fold_report.nodes_after} nodes "
        f"({fold_report.shape_ops_before} -> {fold_report.shape_ops_after} shape ops) with {fold_report.tool}; "
        + (f"max abs diff vs original {fold_report.max_abs_diff:.2g}" if fold_report.verified else fold_report.note)
    )
    with console.step("importing into TVM Relax"):
        mod = import_onnx(folded, inputs)
    outputs = output_specs(mod, output_names)
    integer, integer_failure = None, None
    if options.device != "gpu" and has_qdq(mod):
        try:
            with console.step("rewriting quantized regions into integer kernels"):
                mod, integer = integer_regions(mod, vnni=has_vnni(target))
            console.info(_integer_summary(integer))
        except Exception as exc:  # noqa: BLE001 - a pattern the rewrite mishandles must not cost the build
            integer_failure = f"integer rewrite failed ({type(exc).__name__}: {last_line(exc)}); the QDQ graph runs in float"
            console.warn(integer_failure)
            integer = None
            mod = import_onnx(folded, inputs)  # a fresh module: the failed rewrite may have touched the old
    database = None if options.device == "gpu" else find_database(target, options.tuning_db)
    if database is not None:
        console.info(f"using tuning records from {database}")
    gpu = None
    if options.device == "gpu":
        accelerator = target.accelerator
        with console.step(f"building for {target.name}'s {accelerator.name} ({accelerator.kind} {accelerator.arch})"):
            gpu = build_gpu(mod, target)
        console.info(f"{gpu.info.kernels} {gpu.info.kind} kernels for {gpu.info.fused_ops} fused ops ({gpu.info.binary_format})")
    else:
        with console.step(f"building for {target.name} ({target.cpu.triple}, {target.cpu.mcpu})"):
            executable = tvm.compile(mod, target=tvm.target.Target(target.tvm_cpu_target()), relax_pipeline=cpu_pipeline(target, database))

    with atomic_dir(output) as folder:
        if gpu is not None:
            export_gpu_library(gpu, folder / LIBRARY, target)  # reads the library back and checks it
        else:
            _export_library(executable, folder / LIBRARY, target)
        manifest = Manifest(
            name=options.name or source.stem,
            library=LIBRARY,
            inputs=inputs,
            outputs=outputs,
            target=target.to_dict(),
            tvm_target=gpu.tvm_target if gpu else target.tvm_cpu_target(),
            source={"path": str(source), "sha256": sha256_file(source), "opset": opset_version(model), "producer": _producer(model)},
            versions=versions.collect(),
            build={
                "command": options.command(source, output),
                "options": {"target": options.target, "shapes": {k: list(v) for k, v in options.shapes.items()}, "dims": options.dims, "name": options.name, "device": options.device, "tuning_db": str(options.tuning_db) if options.tuning_db else None},
                "tuning_records": str(database) if database else None,
                "folding": fold_report.to_dict(),
                "pipeline": _pipeline_name(gpu, database),
                "integer": integer.to_dict() if integer else ({"failed": integer_failure} if integer_failure else None),
                "seconds": round(time.perf_counter() - started, 2),
            },
            runtime=_runtime_defaults(target) | ({"gpu": gpu_summary(gpu.info)} if gpu else {}),
        )
        write_manifest(folder, manifest)
    console.info(f"wrote {output} ({manifest.build['seconds']} s)")
    return output


def _integer_summary(report: IntegerReport) -> str:
    ints = ", ".join(f"{op} {n}" for op, n in sorted(report.integer_ops.items()))
    floats = ", ".join(f"{op} {n}" for op, n in sorted(report.float_ops.items())) or "none"
    return f"float ops left (region edges, unquantized ops): {floats}; integer: {ints}"


def _pipeline_name(gpu, database: Path | None) -> str:
    if gpu is not None:
        return "tvm default GPU pipeline (dlight default schedules, untuned)"
    return "edgekit CPU pipeline: " + ("tuning records, then default schedules" if database else "default schedules (untuned)")


def _runtime_defaults(target: TargetSpec) -> dict:
    found = versions.collect()
    return {
        "threads": target.cpu.cores,
        "cpu_ids": list(target.cpu.cpu_ids),
        # 0: an idle runtime sleeps instead of burning a core (TVM's default spins 300000 times).
        "spin_count": 0,
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
