"""`edgekit pipeline`: export, quantize, compile and check a project (`edgekit.toml`) in one go.

Each stage is the library call a user would make by hand (`export_model`, `quantize`,
`compile_onnx`, as `edgekit.export`, `edgekit.quantize` and `edgekit.compile` call them), writing into the project's build folder (build_folder.py describes the
layout); `build.json` records each stage's command, inputs and outputs with their sha256, and
the versions of everything involved. The gates then run on the result (build_check.py).

    from edgekit.project.project_file import load_project
    from edgekit.project.pipeline import run_pipeline
    result = run_pipeline(load_project("edgekit.toml"))
    assert result.report.passed, result.report.failures
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgekit import console, versions
from edgekit.compiler import CompileOptions, compile_onnx
from edgekit.exporter import ExportOptions, export_model
from edgekit.quantizer import quantize
from edgekit.project.build_check import check_build
from edgekit.project.build_folder import FLOAT_MODEL, INT8_MODEL, artifact_dir, file_entry, folder_entries, start_build, target_name, write_record
from edgekit.checker import GateReport
from edgekit.files import atomic_file
from edgekit.resources import is_preset_path
from edgekit.project.project_file import Project


@dataclass
class PipelineResult:
    build_dir: Path
    stages: list[dict]
    report: GateReport


def run_pipeline(project: Project, baseline: bool = False, threads: int | None = None) -> PipelineResult:
    """Build `project` into its build folder and evaluate its gates (and the baseline, if asked).

    Returns the result; `result.report.passed` says whether every gate held. Raises what the
    stages raise: InputError for bad input, GateFailure when export parity fails,
    UnsupportedModelError when TVM cannot compile the model.
    """
    build = project.build_dir
    start_build(build)
    stages = [_export(project)]
    model = build / FLOAT_MODEL
    if project.recipe is not None:
        stages.append(_quantize(project))
        model = build / INT8_MODEL
    for target in project.targets:
        stages.append(_compile(project, model, target))
    write_record(build, {
        "project": {"name": project.name, "file": str(project.path), "sha256": project.sha256, "config_sha256": project.build_config_sha256(), "config": project.build_config()},
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions.collect(),
        "reference": FLOAT_MODEL,
        "deployed_model": model.name,
        "artifacts": {target_name(t): str(artifact_dir(build, t).relative_to(build)) for t in project.targets},
        "stages": stages,
    })
    _stage("check: the gates on the eval data")
    report = check_build(project, baseline=baseline, threads=threads)
    return PipelineResult(build, stages, report)


def _export(project: Project) -> dict:
    spec, output = project.model, project.build_dir / FLOAT_MODEL
    started = time.perf_counter()
    if spec.is_onnx:
        _stage(f"export: copy {project.relative(spec.path)}")
        with atomic_file(output) as tmp:
            shutil.copyfile(spec.path, tmp)
        command, details = ["cp", str(spec.path), str(output)], {}
    else:
        _stage(f"export: {project.relative(spec.path)}")
        report = export_model(spec.source, output, ExportOptions(opset=spec.opset, input_names=list(spec.input_names), output_names=list(spec.output_names)))
        command = ["edgekit", "export", spec.source, "-o", str(output), "--opset", str(spec.opset)]
        command += [a for name in spec.input_names for a in ("--input-name", name)] + [a for name in spec.output_names for a in ("--output-name", name)]
        details = {"parity": report.to_dict()}
    return _record("export", command, [file_entry(spec.path, project.root, "source")], [output], project, started) | details


def _quantize(project: Project) -> dict:
    source, output = project.build_dir / FLOAT_MODEL, project.build_dir / INT8_MODEL
    _stage(f"quantize: {project.relative(Path(project.recipe)) if is_preset_path(project.recipe) else project.recipe}")
    started = time.perf_counter()
    # analyze: the per-layer sensitivity report (NAME.sensitivity.json and .html), which `edgekit report` plots.
    result = quantize(source, project.calib_data, output, recipe=project.recipe, analyze=True)
    recipe = result.record["recipe"]
    inputs = [
        file_entry(source, project.root, "model"),
        file_entry(project.calib_data, project.root, "calib"),
        file_entry(Path(recipe["source"]), project.root, "recipe"),
    ]
    command = ["edgekit", "quantize", str(source), "--calib", str(project.calib_data), "--recipe", project.recipe, "-o", str(output), "--analyze"]
    stage = _record("quantize", command, inputs, [output, result.record_path, *result.extra_files], project, started)
    stage["summary"] = result.record["summary"] | {"recipe": recipe["name"], "verification": [row.to_dict() for row in result.agreement]}
    return stage


def _compile(project: Project, model: Path, target: str) -> dict:
    output = artifact_dir(project.build_dir, target)
    _stage(f"compile: {target_name(target)} ({project.device})")
    started = time.perf_counter()
    compile_onnx(model, output, CompileOptions(target=target, name=project.name, device=project.device, float_nodes=project.float_nodes))
    command = ["edgekit", "compile", str(model), "--target", target, "-o", str(output), "--name", project.name, "--device", project.device]
    if project.float_nodes:
        command += ["--float-nodes", ",".join(project.float_nodes)]
    stage = _record("compile", command, [file_entry(model, project.root, "model")], [], project, started)
    stage["target"] = target_name(target)
    stage["outputs"] = folder_entries(output, project.build_dir)
    return stage


def _record(stage: str, command: list[str], inputs: list[dict], outputs: list[Path], project: Project, started: float) -> dict:
    return {
        "stage": stage,
        "command": shlex.join(command),
        "inputs": inputs,
        "outputs": [file_entry(path, project.build_dir) for path in outputs],
        "seconds": round(time.perf_counter() - started, 2),
    }


def _stage(label: str) -> None:
    # Stages run their own spinners (console.step); a spinner around them would nest live displays.
    if not console.quiet:
        console.err.print(f"[bold]▸ {label}[/]")
