"""The `edgekit` command line: thin commands over the library, one error line per failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from edgekit import console
from edgekit.errors import EdgekitError, GateFailure, InputError
from edgekit.files import atomic_file
from edgekit.target_spec import DEFAULT_TARGET

INTERNAL_ERROR = 3


class EdgekitGroup(click.Group):
    """Turns EdgekitError into one line on stderr and its exit code; --debug keeps tracebacks.

    Every gate failure (export parity, accuracy budget, check thresholds, project gates) is a
    GateFailure and leaves here: one `edgekit: gate failed: ...` line per failed gate, exit 1.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except GateFailure as exc:
            # A measured verdict, not a fault: the same lines and exit 1 with or without --debug.
            for failure in exc.failures:
                click.echo(f"edgekit: gate failed: {failure}", err=True)
            ctx.exit(exc.exit_code)
        except EdgekitError as exc:
            if _debug(ctx):
                raise
            click.echo(f"edgekit: error: {exc.one_line()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekit: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - the CLI edge: anything unexpected is one line too
            if _debug(ctx):
                raise
            text = str(exc).strip().splitlines()
            click.echo(f"edgekit: internal error: {type(exc).__name__}: {text[-1] if text else ''} (rerun with --debug for the traceback)", err=True)
            ctx.exit(INTERNAL_ERROR)


def _debug(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or os.environ.get("EDGEKIT_DEBUG") == "1"


@click.group(cls=EdgekitGroup)
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.version_option(package_name="edgekit")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """edgekit: export, compile, run and check edge neural networks, in the open."""
    ctx.obj = {"debug": debug}
    console.quiet = quiet


@main.command()
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="ONNX file to write.")
@click.option("--opset", default=18, show_default=True, help="ONNX opset (>= 18).")
@click.option("--input-name", "input_names", multiple=True, help="Name of each input, in order (repeat).")
@click.option("--output-name", "output_names", multiple=True, help="Name of each output, in order (repeat).")
@click.option("--dynamic", "dynamic", multiple=True, metavar="NAME:AXIS=DIM", help="Make an axis dynamic, e.g. image:0=batch (repeat).")
@click.option("--atol", default=1e-4, show_default=True, help="Absolute tolerance of the ONNX Runtime vs PyTorch check.")
@click.option("--rtol", default=1e-3, show_default=True, help="Relative tolerance of the same check.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the parity report as JSON.")
def export(source, output, opset, input_names, output_names, dynamic, atol, rtol, json_path):
    """PyTorch to ONNX. SOURCE is model.pt2 (torch.export.save) or file.py:factory returning (model, example_inputs)."""
    import edgekit
    from edgekit.errors import GateFailure

    try:
        report = edgekit.export(
            source, output, opset=opset, input_names=list(input_names), output_names=list(output_names),
            dynamic_axes=_parse_dynamic(dynamic), atol=atol, rtol=rtol,
        )
    except GateFailure as failure:
        if failure.report is not None:
            _print_parity(failure.report)
            _maybe_write_json(json_path, failure.report.to_dict())
        raise
    _print_parity(report)
    _maybe_write_json(json_path, report.to_dict())
    console.out.print(f"wrote {output}")


@main.command(name="quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--calib", required=True, type=click.Path(path_type=Path), help="Calibration data: .npz or a folder of them (calibration_data/README.md).")
@click.option("--recipe", default=None, help="Recipe: a preset name (int8-default, int8-entropy, ...) or a .toml file. Default: int8-default.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="QDQ ONNX file to write; the record goes beside it as NAME.quant.json.")
@click.option("--max-drop", type=float, help="Accuracy budget: fall back to float the layers that buy the most accuracy per MAC, until the drop is at most this (the record lists every step).")
@click.option("--eval", "evaluation", default="top1", show_default=True, help="Budget metric: top1 (percent, needs labels), cosine (mean cosine to float), or module.py:function (gets an ONNX path, returns a score).")
@click.option("--eval-data", type=click.Path(path_type=Path), help="Data set for the budget metric (default: the calibration data).")
@click.option("--analyze", is_flag=True, help="Also write the per-layer sensitivity report (NAME.sensitivity.json and .html).")
def quantize_command(model, calib, recipe, output, max_drop, evaluation, eval_data, analyze):
    """Calibrated int8 post-training quantization to a QDQ model, with a full quantization record."""
    import edgekit

    result = edgekit.quantize(model, calib, output, recipe=recipe, max_drop=max_drop, evaluation=evaluation, eval_data=eval_data, analyze=analyze)
    _print_quantize_summary(result)


def _print_quantize_summary(result) -> None:
    record = result.record
    summary = record["summary"]
    table = Table(title=f"{result.model_path}: {summary['int8_nodes']} of {summary['nodes']} nodes int8 ({record['recipe']['name']})")
    for column in ("node", "op", "precision", "reason"):
        table.add_column(column)
    for node in record["nodes"]:
        if node["precision"] == "float":
            table.add_row(node["name"], node["op_type"], "[yellow]float[/]", node["reason"])
    if table.row_count:
        console.out.print(table)
    checks = Table(title="QDQ model vs float model in ONNX Runtime")
    for column in ("output", "SQNR dB", "cosine mean", "cosine min", "max abs"):
        checks.add_column(column, justify="right")
    for row in result.agreement:
        checks.add_row(row.output, f"{row.sqnr_db:.1f}", f"{row.cosine_mean:.6f}", f"{row.cosine_min:.6f}", f"{row.max_abs:.3g}")
    console.out.print(checks)
    if record.get("budget"):
        b = record["budget"]
        sure = b.get("confidence", {})
        spread = f" (over {sure['samples']} samples, standard error {sure['standard_error']:.2g})" if "standard_error" in sure else ""
        console.out.print(f"accuracy budget ({b['metric']} on {b['data']}): float {b['float_score']:.4g}, int8 {b['int8_score']:.4g}{spread}, drop {b['drop']:.4g} <= {b['max_drop']:g} after {b['fallbacks']} fallbacks")
        prefixes = sorted((step for step in b["search"] if "fallbacks" in step), key=lambda step: step["fallbacks"])
        console.out.print("layers in float -> drop, as the search tried them: " + ", ".join(f"{step['fallbacks']} -> {step['drop']:.4g}" for step in prefixes))
        restored = [step["restored"] for step in b["search"] if step.get("kept_int8")]
        if restored:
            console.out.print(f"back in int8 after the search (the budget still holds): {', '.join(restored)}")
    if record["fallbacks"]:
        fallen = Table(title="fell back to float (most noise per MAC first)")
        for column in ("#", "node", "op", "SQNR alone dB", "MACs or elements"):
            fallen.add_column(column, justify="left" if column in ("node", "op") else "right")
        for fallback in record["fallbacks"]:
            fallen.add_row(str(fallback["order"]), fallback["node"], fallback["op_type"], f"{fallback['sqnr_db_alone']:.1f}", f"{fallback['macs']:,}")
        console.out.print(fallen)
    console.out.print(f"wrote {result.model_path} and {result.record_path}")
    for path in result.extra_files:
        console.out.print(f"wrote {path}")


@main.command(name="compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-t", "--target", default=DEFAULT_TARGET, show_default=True, help="Target name (see `edgekit targets`) or a target .toml file.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Artifact folder to write.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x3x224x224", help="Static shape for an input with symbolic dims (repeat).")
@click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE", help="Size of a named symbolic dimension in every input, e.g. sequence=128 (repeat).")
@click.option("--name", default="", help="Artifact name (default: the ONNX file's stem).")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True, help="gpu: run on the target's accelerator (orin: CUDA sm_87, rk3588: Mali OpenCL).")
@click.option("--tuning-db", type=click.Path(path_type=Path), help="Tuning database from `edgekit tune` (default: tuning/TARGET if it exists and matches).")
@click.option("--float-fallback", is_flag=True, help="If the integer rewrite fails, build the QDQ graph in float (recorded in the manifest) instead of failing; any node may then run in float.")
@click.option("--float-nodes", "float_nodes", multiple=True, metavar="NODE[,NODE]", help="Let these nodes run in float inside a quantized region (recorded in the manifest); otherwise that is an error (repeat or comma-separate).")
def compile_command(model, target, output, shapes, dims, name, device, tuning_db, float_fallback, float_nodes):
    """Compile ONNX (any exporter, opset 11+) for a target into an artifact folder."""
    import edgekit
    from edgekit.onnx_model import parse_dim_option, parse_shape_option

    edgekit.compile(
        model, output, target=target, name=name, device=device, tuning_db=tuning_db, float_fallback=float_fallback,
        float_nodes=[node.strip() for option in float_nodes for node in option.split(",")],
        shapes=dict(parse_shape_option(s) for s in shapes), dims=dict(parse_dim_option(d) for d in dims),
    )
    manifest = json.loads((output / "manifest.json").read_text())
    table = Table(title=f"artifact {output}")
    for column in ("tensor", "name", "shape", "dtype"):
        table.add_column(column)
    for kind in ("inputs", "outputs"):
        for spec in manifest[kind]:
            table.add_row(kind[:-1], spec["name"], "x".join(map(str, spec["shape"])), spec["dtype"])
    console.out.print(table)


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("-i", "--input", "inputs", multiple=True, metavar="[NAME=]FILE", help="Input .npy (positional or name=file.npy), or an .npz of named arrays (repeat).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write outputs to .npz (all) or .npy (single output).")
@click.option("--repeat", default=0, show_default=True, help="Time this many runs and print latency statistics.")
@click.option("--warmup", default=10, show_default=True, help="Untimed runs before timing.")
@click.option("--threads", type=int, help="Runtime threads (default: the target's cores from the manifest).")
@click.option("--cpus", help="Pin threads to these cores, e.g. 0-3 or 4,5,6,7.")
@click.option("--rate", type=float, help="Run at this frame rate (Hz), sleeping between frames, and report CPU-seconds per wall-second.")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds to hold --rate.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write timing statistics as JSON.")
def run(artifact, inputs, output, repeat, warmup, threads, cpus, rate, duration, json_path):
    """Run an artifact with the TVM runtime."""
    import edgekit
    from edgekit.runtime.compiled_model import run_at_rate, time_model

    if json_path is not None and not (repeat or rate):
        raise InputError("--json writes timing statistics", "add --repeat N or --rate HZ")
    if repeat and rate:
        raise InputError("--repeat and --rate measure different things", "give one of them")
    if output is not None and output.suffix not in (".npz", ".npy"):
        raise InputError(f"output {output} must end in .npz or .npy", "e.g. -o out.npz")

    model = edgekit.load(artifact, threads=threads, cpu_ids=_parse_cpus(cpus))
    feeds = _read_inputs(inputs, [spec.name for spec in model.inputs])
    results = model(**feeds)
    for name, value in results.items():
        console.out.print(f"{name}: {'x'.join(map(str, value.shape))} {value.dtype}  {_preview(value)}")
    if output is not None:
        _write_outputs(output, results)
        console.out.print(f"wrote {output}")
    if repeat:
        stats = time_model(model, model.bind((), feeds), repeat=repeat, warmup=warmup)
        table = Table(title=f"latency over {stats.runs} runs ({stats.threads} threads)")
        for column in ("p50 ms", "p90 ms", "p99 ms", "mean ms", "CPU ms / inference"):
            table.add_column(column, justify="right")
        table.add_row(*(f"{v:.3f}" for v in (stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.mean_ms, stats.cpu_ms_per_inference)))
        console.out.print(table)
        _maybe_write_json(json_path, stats.to_dict())
    if rate:
        held = run_at_rate(model, model.bind((), feeds), rate, duration)
        table = Table(title=f"{held.frames} frames at {held.rate_hz:g} Hz over {held.duration_s:.1f} s ({model.threads} threads)")
        for column in ("CPU-s / wall-s", "p50 ms", "p99 ms", "missed deadlines"):
            table.add_column(column, justify="right")
        table.add_row(f"{held.cpu_seconds_per_wall_second:.3f}", f"{held.latency.p50_ms:.3f}", f"{held.latency.p99_ms:.3f}", str(held.missed_deadlines))
        console.out.print(table)
        _maybe_write_json(json_path, held.to_dict())


@main.command(name="estimate")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("-i", "--input", "inputs", multiple=True, metavar="[NAME=]FILE", help="Input .npy or .npz, as for `edgekit run` (default: seeded random inputs of the manifest's shapes).")
@click.option("--reference", type=click.Path(path_type=Path), help="ONNX model to estimate ONNX Runtime on beside it (e.g. the QDQ model the artifact was compiled from).")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(min=1), help="Inferences inside the counted window.")
@click.option("-t", "--target", "target_name", help="Target whose [estimate] table to use (default: the artifact's); a .toml file to model another core or clock.")
@click.option("--max-ms", type=float, help="Fail (exit 1) if edgekit's estimated ms per inference exceeds this.")
@click.option("--max-ratio", type=float, help="Fail (exit 1) if edgekit's estimated cycles exceed this multiple of the reference's (needs --reference).")
@click.option("--kernels", default=10, show_default=True, type=click.IntRange(min=0), help="Show this many kernels, costliest first.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the estimates as JSON.")
def estimate_command(artifact, inputs, reference, runs, target_name, max_ms, max_ratio, kernels, json_path):
    """Estimate single-core latency on the board without it: QEMU block counts timed by llvm-mca on the board's core model."""
    from edgekit.artifact import read_manifest
    from edgekit.measure.estimate import default_inputs, estimate_artifact, estimate_onnxruntime, write_json
    from edgekit.target_spec import load_target

    if max_ratio is not None and reference is None:
        raise InputError("--max-ratio compares with ONNX Runtime", "add --reference MODEL.onnx")
    if reference is not None and not reference.is_file():
        raise InputError(f"reference model not found: {reference}", "give the ONNX file the artifact was compiled from")
    model_dir = artifact / "model" if (artifact / "bundle.json").is_file() else artifact
    manifest = read_manifest(model_dir)
    target = load_target(target_name) if target_name else None
    feeds = _read_inputs(inputs, [spec.name for spec in manifest.inputs]) if inputs else default_inputs(manifest.inputs)
    estimates = [estimate_artifact(artifact, feeds, runs=runs, target=target)]
    if reference is not None:
        estimates.append(estimate_onnxruntime(reference, target or load_target(estimates[0].target), feeds, runs=runs))
    _print_estimates(estimates)
    _print_kernel_shares(estimates[0], kernels)
    if json_path is not None:
        write_json(json_path, estimates)
    failures = []
    if max_ms is not None and estimates[0].ms > max_ms:
        failures.append(f"estimated {estimates[0].ms:.3f} ms per inference > --max-ms {max_ms:g}")
    if max_ratio is not None and estimates[0].cycles > max_ratio * estimates[1].cycles:
        failures.append(f"estimated {estimates[0].cycles / estimates[1].cycles:.2f}x ONNX Runtime > --max-ratio {max_ratio:g}")
    if failures:
        raise GateFailure(failures[0], failures=failures)


def _print_kernel_shares(estimate, count: int) -> None:
    if not count or not estimate.kernels:
        return
    table = Table(title=f"{estimate.program}: estimated cycles by kernel")
    for column in ("kernel", "M cycles", "share", "M instructions", "IPC"):
        table.add_column(column, justify="left" if column == "kernel" else "right")
    for kernel in estimate.kernels[:count]:
        ipc = kernel.instructions / kernel.cycles if kernel.cycles else 0.0
        table.add_row(kernel.name, f"{kernel.cycles / 1e6:.3f}", f"{100 * kernel.share:.1f}%", f"{kernel.instructions / 1e6:.3f}", f"{ipc:.2f}")
    console.out.print(table)


def _print_estimates(estimates) -> None:
    first = estimates[0]
    title = f"estimated on {first.target}: {first.mca_cpu} model at {first.clock_ghz:g} GHz, 1 thread, QEMU {first.qemu_cpu}"
    table = Table(title=title)
    table.add_column("")
    for e in estimates:
        table.add_column(e.program, justify="right")
    if len(estimates) == 2:
        table.add_column("ratio", justify="right")
    rows = [
        ("ms / inference", [e.ms for e in estimates], "{:.3f}"),
        ("M cycles", [e.cycles / 1e6 for e in estimates], "{:.2f}"),
        ("M instructions", [e.instructions / 1e6 for e in estimates], "{:.2f}"),
        ("IPC", [e.ipc for e in estimates], "{:.2f}"),
    ]
    families = sorted({name for e in estimates for name in e.families}, key=lambda n: -first.families.get(n, 0))
    rows += [(f"  {name} (M)", [e.families.get(name, 0) / 1e6 for e in estimates], "{:.2f}") for name in families]
    rows.append(("timed by llvm-mca", [100 * e.modelled for e in estimates], "{:.1f}%"))
    for label, values, fmt in rows:
        cells = [fmt.format(v) for v in values]
        if len(values) == 2:
            cells.append(f"{values[0] / values[1]:.2f}x" if values[1] else "-")
        table.add_row(label, *cells)
    console.out.print(table)


@main.command(name="check")
@click.argument("artifact", type=click.Path(path_type=Path), required=False)
@click.option("--reference", type=click.Path(path_type=Path), help="The ONNX model to compare with (run by ONNX Runtime); required with ARTIFACT.")
@click.option("--data", type=click.Path(path_type=Path), help="Data set: .npz or a folder of them (calibration_data/README.md); required with ARTIFACT.")
@click.option("--max-abs", type=float, default=1e-3, show_default=True, help="Fail if any output's max abs error exceeds this.")
@click.option("--min-cosine", type=float, default=0.999, show_default=True, help="Fail if any sample's cosine similarity falls below this.")
@click.option("--min-top1", type=float, help="Fail if a classifier's top-1 agreement falls below this fraction.")
@click.option("--min-int8-macs", type=float, help="Fail if the artifact runs a smaller share of its conv/matmul MACs in integers (0-1).")
@click.option("--threads", type=int, help="Threads for both runtimes.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full report as JSON.")
@click.option("--project", "project_path", type=click.Path(path_type=Path), help="Without ARTIFACT: the project file (default: ./edgekit.toml).")
@click.option("--baseline", is_flag=True, help="Without ARTIFACT: also fail when a gate regresses from the project's baseline beyond its tolerance.")
def check_command(artifact, reference, data, max_abs, min_cosine, min_top1, min_int8_macs, threads, json_path, project_path, baseline):
    """Compare an artifact with ONNX Runtime on every sample; exit 1 if a threshold is violated.

    Without ARTIFACT, evaluate the gates of edgekit.toml on the project's build folder instead.
    """
    import edgekit
    from edgekit.checker import require_passed
    from edgekit.checker.artifact_check import int8_macs_line, write_report

    if artifact is None:
        return _check_project(project_path, baseline, threads, json_path)
    if baseline or project_path is not None:
        raise InputError("--baseline and --project check a project's build, not an ARTIFACT", "drop ARTIFACT (edgekit check --baseline) or drop the option")
    if reference is None or data is None:
        raise InputError("check ARTIFACT needs --reference and --data", "give both, or run `edgekit check` without ARTIFACT beside an edgekit.toml")

    report = edgekit.check(artifact, reference, data, max_abs=max_abs, min_cosine=min_cosine, min_top1_agreement=min_top1, min_int8_macs=min_int8_macs, threads=threads)
    table = Table(title=f"{artifact} vs ONNX Runtime, {report.samples} samples")
    for column in ("output", "max abs", "mean abs", "cosine min", "cosine mean", "top-1 agree", "acc artifact", "acc ORT"):
        table.add_column(column, justify="right")
    for m in report.outputs:
        table.add_row(
            m.name, f"{m.max_abs:.3g}", f"{m.mean_abs:.3g}", f"{m.cosine_min:.6f}", f"{m.cosine_mean:.6f}",
            _fraction(m.top1_agreement), _fraction(m.accuracy_artifact), _fraction(m.accuracy_reference),
        )
    console.out.print(table)
    console.out.print(int8_macs_line(report.int8_macs))
    if json_path is not None:
        write_report(report, json_path)
    require_passed(report)
    console.out.print("[green]check passed[/]")


@main.command(name="tune")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-t", "--target", default=DEFAULT_TARGET, show_default=True, help="Target name (see `edgekit targets`) or a target .toml file.")
@click.option("--trials", type=click.IntRange(min=1), required=True, help="Trials for the whole model, spread over its tasks by FLOPs (each task's default schedule counts as one). Re-running continues up to this total.")
@click.option("--db", "database", type=click.Path(path_type=Path), help="Tuning database folder (default: tuning/TARGET, where compile looks).")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), metavar="MIN", help="Start no new round after this many minutes; run the same command again to continue.")
@click.option("--rpc", metavar="HOST:PORT", help="Time candidates on a board running `python -m tvm.exec.rpc_server` (built here with the target's cross compiler).")
@click.option("--tracker", metavar="HOST:PORT", help="Reach the board through an RPC tracker instead (with --key).")
@click.option("--key", help="The key the board registered with at the tracker.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x3x224x224", help="Static shape for an input with symbolic dims (repeat); as for compile.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE", help="Size of a named symbolic dimension in every input (repeat); as for compile.")
@click.option("--max-trials-per-task", type=click.IntRange(min=1), help="Cap on any one task's trials (default: no cap).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the tuning report as JSON.")
def tune_command(model, target, trials, database, time_budget, rpc, tracker, key, shapes, dims, max_trials_per_task, json_path):
    """Tune MODEL's kernels for a target with MetaSchedule; compile then uses the records."""
    from edgekit.onnx_model import parse_dim_option, parse_shape_option
    from edgekit.compiler.tuning import RpcConfig, tune_onnx

    report = tune_onnx(
        model, target, database, trials,
        time_budget_s=time_budget * 60 if time_budget is not None else None,
        rpc=RpcConfig.from_options(rpc, tracker, key),
        shapes=dict(parse_shape_option(s) for s in shapes), dims=dict(parse_dim_option(d) for d in dims),
        max_trials_per_task=max_trials_per_task,
    )
    table = Table(title=f"{report.database}: {report.target}, timed on {report.measured_on}")
    for column in ("task", "MFLOP", "calls", "trials run", "trials total", "default us", "best us", "speedup"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task in report.tasks:
        table.add_row(
            task.name, f"{task.flops / 1e6:.2f}", str(task.calls), str(task.trials_run), f"{task.trials_total}/{task.allocated}",
            _us_cell(task.untuned_us), _us_cell(task.best_us), f"{task.speedup:.2f}x" if task.speedup else "-",
        )
    console.out.print(table)
    if report.stopped_by_budget:
        console.out.print(f"time budget reached after {report.seconds:.0f} s; the same command continues where this run stopped")
    _maybe_write_json(json_path, report.to_dict())


def _us_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@main.command(name="bench")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--reference", required=True, type=click.Path(path_type=Path), help="The ONNX model ONNX Runtime runs beside the artifact.")
@click.option("--repeat", default=100, show_default=True, help="Timed runs of each runtime (interleaved).")
@click.option("--warmup", default=10, show_default=True, help="Untimed runs of each first.")
@click.option("--threads", type=int, help="Threads for both runtimes (default: the artifact's).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the results as JSON.")
def bench_command(artifact, reference, repeat, warmup, threads, json_path):
    """Time an artifact against ONNX Runtime: same input, same threads, interleaved."""
    from edgekit.measure.bench import bench

    report = bench(artifact, reference, repeat=repeat, warmup=warmup, threads=threads)
    timing = report.timing
    table = Table(title=f"{report.model} on {report.target}: {report.gflop_per_inference:.3f} GFLOP, {timing.threads} threads, {timing.edgekit.runs} runs each")
    for column in ("runtime", "p50 ms", "p99 ms", "CPU ms / inference", "GFLOP/s", "% of peak"):
        table.add_column(column, justify="right")
    for name, stats, gflops in (("edgekit", timing.edgekit, report.edgekit_gflops), ("ONNX Runtime", timing.onnxruntime, report.onnxruntime_gflops)):
        share = f"{gflops / report.peak_gflops:.1%}" if report.peak_gflops else "-"
        table.add_row(name, f"{stats.p50_ms:.3f}", f"{stats.p99_ms:.3f}", f"{stats.cpu_ms_per_inference:.3f}", f"{gflops:.1f}", share)
    console.out.print(table)
    console.out.print(f"edgekit / ONNX Runtime p50: {timing.ratio:.2f}x  (peak {report.peak_gflops:g} GFLOP/s from the target descriptor; {timing.machine})")
    _maybe_write_json(json_path, report.to_dict())


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Bundle folder to write.")
@click.option("-t", "--target", help="Target (default: the artifact's own).")
@click.option("--tar", "tarball", is_flag=True, help="Also write OUTPUT.tar.gz.")
def bundle(artifact, output, target, tarball):
    """Bundle an artifact with the on-device runner and its TVM runtime for the board."""
    from edgekit.runtime.bundle import make_bundle

    made = make_bundle(artifact, output, target=target, tarball=tarball)
    table = Table(title=f"bundle {made.folder} for {made.target}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for name, size in made.files.items():
        table.add_row(name, f"{size:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(made.files.values()):,}[/]")
    console.out.print(table)
    if made.tarball:
        console.out.print(f"wrote {made.tarball} ({made.tarball.stat().st_size:,} bytes)")


@main.group()
def runner():
    """The C++ on-device runner."""


@runner.command(name="build")
@click.option("-t", "--target", default=DEFAULT_TARGET, show_default=True, help="Target to build the runner for.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder for the runner and its runtime libraries.")
def runner_build(target, output):
    """Build edgekit-runner for a target (cross-compiled for arm boards)."""
    from edgekit.runtime.runner.runner_build import build_runner
    from edgekit.target_spec import load_target

    built = build_runner(load_target(target), output)
    for path in (built.binary, *built.runtime_libs):
        console.out.print(f"{path}  {path.stat().st_size:,} bytes")


_PROJECT_OPTION = click.option("--project", "project_path", type=click.Path(path_type=Path), help="The project file (default: ./edgekit.toml).")


@main.command(name="pipeline")
@_PROJECT_OPTION
@click.option("--baseline", is_flag=True, help="Also compare the gates with the project's baseline (see `edgekit baseline save`).")
@click.option("--threads", type=int, help="Threads for the artifact and ONNX Runtime while checking.")
def pipeline_command(project_path, baseline, threads):
    """Export, quantize, compile and check the project in edgekit.toml into its build folder; exit 1 if a gate fails."""
    from edgekit.project.pipeline import run_pipeline
    from edgekit.project.project_file import load_project

    result = run_pipeline(load_project(project_path), baseline=baseline, threads=threads)
    _finish_gates(result.report, result.build_dir)


@main.group(name="baseline")
def baseline_group():
    """Baselines: gate values and golden outputs of a good build, for `check --baseline`."""


@baseline_group.command(name="save")
@_PROJECT_OPTION
@click.option("--force", is_flag=True, help="Save even if the build fails its gates.")
@click.option("--threads", type=int, help="Threads for the artifact and ONNX Runtime.")
def baseline_save(project_path, force, threads):
    """Measure the project's build and record its gate values and outputs as the baseline."""
    from edgekit.project.baselines import golden_path, save_baseline
    from edgekit.project.build_check import measure_build
    from edgekit.project.project_file import load_project

    project = load_project(project_path)
    report, measured = measure_build(project, threads)
    if not report.passed and not force:
        raise GateFailure(f"the build fails its gates ({report.failures[0]})", "a baseline should be a good build: fix it, or pass --force", report=report)
    path = save_baseline(project, report, measured)
    for target in report.targets:
        console.out.print(f"{target.target}: " + ", ".join(f"{r.gate} {r.value:.6g}" for r in target.results))
    console.out.print(f"wrote {path} and {golden_path(path)}")


def _check_project(project_path, baseline, threads, json_path) -> None:
    """`edgekit check` without ARTIFACT: the gates of edgekit.toml on its build folder."""
    from edgekit.project.build_check import check_build
    from edgekit.checker.ci_reports import write_json
    from edgekit.project.project_file import load_project

    project = load_project(project_path)
    report = check_build(project, baseline=baseline, threads=threads)
    if json_path is not None:
        write_json(report, json_path)
    _finish_gates(report, project.build_dir)


def _finish_gates(report, build_dir: Path) -> None:
    from edgekit.checker import require_passed, summary_text
    from edgekit.project.build_folder import CHECK_JSON, JUNIT_XML, SUMMARY_TXT

    click.echo(summary_text(report), nl=False)
    console.out.print(f"wrote {', '.join(str(build_dir / name) for name in (CHECK_JSON, JUNIT_XML, SUMMARY_TXT))}")
    require_passed(report)


@main.command(name="profile")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--runs", default=20, show_default=True, type=click.IntRange(min=1), help="Profiled runs; each layer's latency is their median.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0), help="Unprofiled runs first.")
@click.option("--threads", type=int, help="Runtime threads (default: the target's cores from the manifest).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the per-layer profile and its totals as JSON.")
def profile_command(artifact, runs, warmup, threads, json_path):
    """Per layer: FLOPs, bytes, measured latency and the share of the target's roofline reached."""
    from edgekit.measure.profile import profile_artifact

    report = profile_artifact(artifact, runs=runs, warmup=warmup, threads=threads)
    _print_profile(report)
    _maybe_write_json(json_path, report.to_dict())


def _print_profile(report) -> None:
    peak = report.peak
    title = f"{report.artifact} on {report.target} ({report.threads} threads, median of {report.runs} runs; peaks {peak['fp32_gflops']:g} GFLOP/s fp32, {peak['int8_gops']:g} GOP/s int8, {peak['memory_bandwidth_gbs']:g} GB/s)"
    table = Table(title=title)
    for column in ("#", "layer", "MFLOP", "param KiB", "act KiB", "us", "FLOP/B", "GFLOP/s", "GB/s", "bound", "% roof"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in report.layers:
        table.add_row(
            str(layer.index), layer.name, _optional(layer.flops, 1e-6, ".3f"), f"{layer.param_bytes / 1024:.1f}", f"{layer.activation_bytes / 1024:.1f}",
            f"{layer.latency_us:.1f}", _optional(layer.intensity, 1, ".1f"), _optional(layer.achieved_gflops, 1, ".1f"), f"{layer.achieved_gbs:.1f}",
            layer.bound or "-", _optional(layer.fraction, 100, ".1f"),
        )
    console.out.print(table)
    t = report.totals
    flops = f"{t.flops / 1e9:.4f} GFLOP ({t.macs / 1e9:.4f} GMAC)" if t.flops is not None else "FLOPs unknown"
    peak_memory = f"{t.peak_activation_bytes / 2**20:.2f} MiB" if t.peak_activation_bytes is not None else "unknown"
    console.out.print(f"model: {flops}; parameters {t.param_bytes / 2**20:.2f} MiB; peak activations {peak_memory} (plan total {t.activation_storage_bytes / 2**20:.2f} MiB)")
    speed = f", {t.achieved_gflops:.1f} GFLOP/s" if t.achieved_gflops is not None else ""
    floor = f"; timer floor {t.timer_floor_us:.2f} us per call" if t.timer_floor_us is not None else ""
    console.out.print(f"latency: {t.latency_ms:.3f} ms per inference{speed}; kernels {t.kernel_latency_ms:.3f} ms{floor}")
    console.out.print(f"FLOPs from: {report.flops_source}")
    for note in report.notes:
        console.out.print(f"[yellow]note:[/] {note}")


def _optional(value: float | None, scale: float, spec: str) -> str:
    return "-" if value is None else format(value * scale, spec)


@main.command(name="report")
@click.argument("build", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="HTML file to write (default: BUILD/report.html).")
@click.option("--runs", default=200, show_default=True, type=click.IntRange(min=1), help="Timed inferences for the latency histogram.")
@click.option("--profile-runs", default=20, show_default=True, type=click.IntRange(min=1), help="Profiled runs; each kernel's latency is their median.")
@click.option("--threads", type=int, help="Runtime threads (default: the target's cores from the manifest).")
def report_command(build, output, runs, profile_runs, threads):
    """One self-contained HTML page about a build folder: model, target, quantization, sensitivity, latency, gates."""
    from edgekit.report import write_report

    path = write_report(build, output, runs=runs, profile_runs=profile_runs, threads=threads)
    console.out.print(f"wrote {path}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the descriptors as JSON.")
def targets(as_json):
    """List the target descriptors and their key facts."""
    import edgekit

    specs = edgekit.targets()
    if as_json:
        click.echo(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return
    table = Table(title="edgekit targets")
    for column in ("name", "triple", "cpu", "features", "cores", "accelerator", "fp32 GFLOP/s", "int8 GOP/s", "GB/s"):
        table.add_column(column)
    for spec in specs:
        accel = f"{spec.accelerator.kind} {spec.accelerator.arch}" if spec.accelerator else "-"
        table.add_row(
            spec.name, spec.cpu.triple, spec.cpu.mcpu, ",".join(spec.cpu.features) or "-", str(spec.cpu.cores), accel,
            f"{spec.peak.fp32_gflops:g}", f"{spec.peak.int8_gops:g}", f"{spec.peak.memory_bandwidth_gbs:g}",
        )
    console.out.print(table)


def _parse_dynamic(values: tuple[str, ...]) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for text in values:
        try:
            name, rest = text.split(":", 1)
            axis, dim = rest.split("=", 1)
            axes.setdefault(name, {})[int(axis)] = dim
        except ValueError:
            raise InputError(f"--dynamic '{text}' is not of the form name:axis=dim", "e.g. --dynamic image:0=batch") from None
    return axes


def _parse_cpus(text: str | None) -> list[int] | None:
    if not text:
        return None
    cpus: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise InputError(f"--cpus '{text}' is not a core list", "e.g. --cpus 0-3 or --cpus 4,5,6,7") from None
    return cpus


def _read_inputs(options: tuple[str, ...], input_names: list[str]) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    positional = iter(input_names)
    for option in options:
        name, sep, path_text = option.rpartition("=")
        path = Path(path_text)
        if not path.is_file():
            raise InputError(f"input file not found: {path}", "check the --input path")
        if path.suffix == ".npz":
            feeds.update(_load_npz(path))
            continue
        array = _load_npy(path)
        if not sep:
            name = next(positional, None)
            if name is None:
                raise InputError(f"more --input files than model inputs ({len(input_names)})", f"inputs: {', '.join(input_names)}")
        feeds[name] = array
    if not options:
        raise InputError("no --input given", f"give one per model input: {', '.join(input_names)}")
    return feeds


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npy file ({exc})", "write it with numpy.save") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    from edgekit.dataset import read_npz

    return read_npz(path)


def _write_outputs(path: Path, results: dict[str, np.ndarray]) -> None:
    if path.suffix == ".npy":
        if len(results) != 1:
            raise InputError(f"the model has {len(results)} outputs; .npy holds one", "write .npz instead")
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.save(f, next(iter(results.values())))
    elif path.suffix == ".npz":
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **results)
    else:
        raise InputError(f"output {path} must end in .npz or .npy", "e.g. -o out.npz")


def _maybe_write_json(path: Path | None, data: dict) -> None:
    if path is not None:
        with atomic_file(Path(path)) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")


def _print_parity(report) -> None:
    table = Table(title=f"ONNX Runtime vs PyTorch (atol {report.atol:g}, rtol {report.rtol:g})")
    for column in ("output", "shape", "max abs", "max rel", "result"):
        table.add_column(column)
    for p in report.outputs:
        table.add_row(p.name, "x".join(map(str, p.shape)), f"{p.max_abs:.3g}", f"{p.max_rel:.3g}", "[green]ok[/]" if p.passed else "[red]FAIL[/]")
    console.out.print(table)


def _preview(value: np.ndarray) -> str:
    flat = value.reshape(-1)[:4]
    return "[" + ", ".join(f"{v:.4g}" if value.dtype.kind == "f" else str(v) for v in flat) + (", ...]" if value.size > 4 else "]")


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
