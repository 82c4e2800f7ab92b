"""edgekit's int8 quantizer against ONNX Runtime's quantize_static, same models, same data.

    python scripts/compare_quantizers.py [--models demo,concat] [--out DIR] [--markdown PATH]

Per model: export the fp32 ONNX once (cached in --out), quantize it with every edgekit preset
and with ONNX Runtime's quantize_static (QDQ, per-channel int8 weights, int8 activations) for
each of its calibration methods, all calibrated on calibration_data/digits_calib.npz; then run
every model, fp32 included, in ONNX Runtime on the held-out calibration_data/digits_eval.npz.
Prints one table (top-1, drop against fp32, output SQNR against the fp32 logits, time) and, per
model, edgekit's best against ONNX Runtime's best.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing edgekit

import edgekit
from edgekit import console, versions
from edgekit.measure.bench import machine_description

MODELS = {
    "demo": REPO / "edgekit" / "demo" / "digits_cnn.py",
    "concat": REPO / "edgekit" / "demo" / "digits_concat.py",
}
FACTORIES = {"demo": "factory", "concat": "digits_concat"}
CALIB_DATA = REPO / "calibration_data" / "digits_calib.npz"
EVAL_DATA = REPO / "calibration_data" / "digits_eval.npz"
INPUT_NAME, OUTPUT_NAME = "image", "logits"

# Calibration method -> edgekit preset (quant/*.toml) and -> ONNX Runtime's CalibrationMethod.
EDGEKIT_RECIPES = {"minmax": "int8-default", "entropy": "int8-entropy", "percentile": "int8-percentile", "mse": "int8-mse"}
ORT_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}

EDGEKIT, ORT, FP32 = "edgekit", "onnxruntime", "fp32"


@dataclass(frozen=True)
class Row:
    """One model variant evaluated on the held-out set; top1 and drop in percent (points)."""

    model: str
    quantizer: str
    method: str
    top1: float
    drop: float
    sqnr_db: float
    seconds: float
    path: Path


def compare(models: list[str], out_dir: Path) -> list[Row]:
    """Every variant of every model in `models` (keys of MODELS), built under `out_dir`.

    Raises KeyError for an unknown model name and EdgekitError if export or quantization fails.
    """
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        raise KeyError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    images, labels = load_eval()
    rows: list[Row] = []
    steps = len(models) * (2 + len(EDGEKIT_RECIPES) + len(ORT_METHODS))
    with progress(steps) as advance:
        for name in models:
            rows += compare_model(name, out_dir / name, images, labels, advance)
    return rows


def compare_model(name: str, out_dir: Path, images: np.ndarray, labels: np.ndarray, advance: Callable[[str], None]) -> list[Row]:
    """fp32, edgekit per preset and ONNX Runtime per method for one model; fp32 row first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    advance(f"{name}: export fp32")
    fp32 = out_dir / f"{name}.fp32.onnx"
    export_seconds = export_fp32(name, fp32)
    reference = run_model(fp32, images)
    rows = [make_row(name, FP32, "-", reference, reference, labels, None, export_seconds, fp32)]

    def evaluate(quantizer: str, method: str, path: Path, seconds: float) -> None:
        rows.append(make_row(name, quantizer, method, run_model(path, images), reference, labels, rows[0].top1, seconds, path))

    for method, recipe in EDGEKIT_RECIPES.items():
        advance(f"{name}: edgekit {recipe}")
        path = out_dir / f"{name}.edgekit-{method}.onnx"
        evaluate(EDGEKIT, method, path, timed(quantize_edgekit, fp32, recipe, path))

    advance(f"{name}: ONNX Runtime quant_pre_process")
    preprocessed = out_dir / f"{name}.ort-pre.onnx"
    pre_seconds = timed(quiet_call, quant_pre_process, str(fp32), str(preprocessed))
    for method, calibrate_method in ORT_METHODS.items():
        advance(f"{name}: ONNX Runtime {method}")
        path = out_dir / f"{name}.ort-{method}.onnx"
        # Per-row time includes the one shared pre-processing pass: it is part of ORT's recipe.
        evaluate(ORT, method, path, pre_seconds + timed(quantize_ort, preprocessed, calibrate_method, path))
    return rows


def export_fp32(name: str, path: Path) -> float:
    """Export the model to `path` unless a copy newer than its source and weights exists.

    Returns the seconds taken, NaN when the cached copy was used.
    """
    source = MODELS[name]
    inputs = [source, *source.parent.glob(f"{source.stem}*.pt")]
    if path.exists() and path.stat().st_mtime >= max(p.stat().st_mtime for p in inputs):
        return float("nan")
    return timed(edgekit.export, f"{source}:{FACTORIES[name]}", path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])


def quantize_edgekit(fp32: Path, recipe: str, output: Path) -> None:
    """edgekit's Python API, exactly as `edgekit quantize FP32 --calib CALIB --recipe RECIPE -o OUTPUT`."""
    edgekit.quantize(fp32, CALIB_DATA, output, recipe=recipe)


def quantize_ort(preprocessed: Path, method: CalibrationMethod, output: Path) -> None:
    """quantize_static with its own defaults apart from format, granularity and int8 types."""
    quiet_call(
        quantize_static,
        str(preprocessed),
        str(output),
        NpzReader(CALIB_DATA),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
    )


class NpzReader(CalibrationDataReader):
    """The calibration .npz, one sample per get_next(), as edgekit reads it."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self.samples = iter(data[INPUT_NAME])

    def get_next(self) -> dict[str, np.ndarray] | None:
        sample = next(self.samples, None)
        return None if sample is None else {INPUT_NAME: sample}


def load_eval() -> tuple[np.ndarray, np.ndarray]:
    """Held-out inputs (N, 1, 1, 32, 32) and labels (N,)."""
    with np.load(EVAL_DATA) as data:
        return data[INPUT_NAME], data["label"]


def run_model(path: Path, images: np.ndarray) -> np.ndarray:
    """Logits (N, classes) from ONNX Runtime's CPU provider, default graph optimizations, one thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: image})[0] for image in images])


def make_row(
    model: str,
    quantizer: str,
    method: str,
    logits: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    fp32_top1: float | None,
    seconds: float,
    path: Path,
) -> Row:
    top1 = top1_percent(logits, labels)
    drop = 0.0 if fp32_top1 is None else fp32_top1 - top1
    return Row(model, quantizer, method, top1, drop, sqnr_db(reference, logits), seconds, path)


def top1_percent(logits: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean(np.argmax(logits, axis=1) == labels))


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - test)^2) over all samples; inf when identical."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - test.astype(np.float64)) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref**2) / noise))


def best(rows: list[Row], model: str, quantizer: str, key: Callable[[Row], float]) -> Row:
    return max((r for r in rows if r.model == model and r.quantizer == quantizer), key=key)


def verdicts(rows: list[Row]) -> list[str]:
    """Per model: edgekit's best against ONNX Runtime's best, by SQNR and by top-1."""
    lines = []
    for model in dict.fromkeys(r.model for r in rows):
        ours_s, theirs_s = best(rows, model, EDGEKIT, lambda r: r.sqnr_db), best(rows, model, ORT, lambda r: r.sqnr_db)
        ours_t, theirs_t = best(rows, model, EDGEKIT, lambda r: r.top1), best(rows, model, ORT, lambda r: r.top1)
        lines.append(
            f"{model}: by SQNR edgekit {ours_s.method} {ours_s.sqnr_db:.1f} dB vs ONNX Runtime {theirs_s.method} {theirs_s.sqnr_db:.1f} dB "
            f"({ours_s.sqnr_db - theirs_s.sqnr_db:+.1f} dB, {outcome(ours_s.sqnr_db, theirs_s.sqnr_db)}); "
            f"by top-1 edgekit {ours_t.method} {ours_t.top1:.2f} % vs ONNX Runtime {theirs_t.method} {theirs_t.top1:.2f} % "
            f"({ours_t.top1 - theirs_t.top1:+.2f} pt, {outcome(ours_t.top1, theirs_t.top1)})"
        )
    return lines


def outcome(ours: float, theirs: float) -> str:
    return "edgekit ahead" if ours > theirs else "tie" if ours == theirs else "ONNX Runtime ahead"


def notes(rows: list[Row]) -> list[str]:
    """What a reader needs to judge the table: data, settings, structural differences, machine."""
    found = versions.collect()
    quantized = [r for r in rows if r.quantizer != FP32]
    int8_logits = sorted({r.quantizer for r in quantized if output_is_int8(r.path)})
    float_logits = sorted({r.quantizer for r in quantized if not output_is_int8(r.path)})
    with np.load(CALIB_DATA) as calib, np.load(EVAL_DATA) as held_out:
        counts = len(calib[INPUT_NAME]), len(held_out[INPUT_NAME])
    return [
        (
            f"Calibration: {CALIB_DATA.relative_to(REPO)} ({counts[0]} samples) for every quantizer; "
            f"evaluation: {EVAL_DATA.relative_to(REPO)} ({counts[1]} held-out samples)."
        ),
        (
            "Every model runs in ONNX Runtime's CPU provider with default graph optimizations, one thread. "
            "SQNR: 10 log10(sum fp32^2 / sum (fp32 - int8)^2) over all eval logits."
        ),
        (
            "ONNX Runtime: quant_pre_process first (for ONNX Runtime only, as it recommends), then quantize_static "
            "with QDQ, per_channel=True, QInt8 activations and weights, otherwise its defaults. Its Entropy calibrator "
            "keeps num_bins = num_quantized_bins = 128, which quantize_static's extra_options cannot change: one candidate "
            "threshold, so it usually returns the min-max range (onnxruntime issue #9597)."
        ),
        (
            "edgekit: the quant/*.toml presets (minmax = int8-default). time s: fp32 = export; "
            "edgekit = quantize incl. its own verification; ONNX Runtime = quant_pre_process + quantize_static."
        ),
        # With equal ranges, an int8 model output alone costs SQNR: say who quantizes it.
        f"Model output (logits) stored as int8 by: {', '.join(int8_logits) or 'none'}; left float by: {', '.join(float_logits) or 'none'}.",
        (
            f"Machine: {machine_description()}. Versions: onnxruntime {found['onnxruntime']}, onnx {found['onnx']}, "
            f"torch {found['torch']}, edgekit {found['edgekit']}."
        ),
    ]


def output_is_int8(path: Path) -> bool:
    """Whether a graph output of the ONNX file at `path` comes out of a DequantizeLinear."""
    graph = onnx.load(str(path)).graph
    producers = {name: node.op_type for node in graph.node for name in node.output}
    return any(producers.get(output.name) == "DequantizeLinear" for output in graph.output)


def table(rows: list[Row]) -> Table:
    result = Table(title="int8 post-training quantization: edgekit vs ONNX Runtime (held-out digits)")
    for column in ("model", "quantizer", "method", "top-1 %", "drop (pt)", "SQNR dB", "time s"):
        result.add_column(column, justify="left" if column in ("model", "quantizer", "method") else "right")
    for model_rows in group_by_model(rows):
        for row in model_rows:
            result.add_row(*cells(row))
        result.add_section()
    return result


def markdown(rows: list[Row]) -> str:
    lines = ["| model | quantizer | method | top-1 % | drop (pt) | SQNR dB | time s |", "|---|---|---|--:|--:|--:|--:|"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(
        ["# edgekit vs ONNX Runtime int8 quantization", "", *lines, "", *[f"- {line}" for line in verdicts(rows) + notes(rows)], ""]
    )


def cells(row: Row) -> list[str]:
    sqnr = "-" if row.quantizer == FP32 else f"{row.sqnr_db:.1f}"
    drop = "-" if row.quantizer == FP32 else f"{row.drop:+.2f}"
    seconds = "cached" if np.isnan(row.seconds) else f"{row.seconds:.1f}"
    return [row.model, row.quantizer, row.method, f"{row.top1:.2f}", drop, sqnr, seconds]


def group_by_model(rows: list[Row]) -> list[list[Row]]:
    return [[r for r in rows if r.model == model] for model in dict.fromkeys(r.model for r in rows)]


def timed(function: Callable, *args, **kwargs) -> float:
    """Seconds that function(*args, **kwargs) took; its result is dropped."""
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def quiet_call(function: Callable, *args, **kwargs):
    """Run an ONNX Runtime quantization call without its logging and prints reaching the terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return function(*args, **kwargs)
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A stderr progress bar; yields a function that starts the next step, named by its label."""
    was_quiet, console.quiet = console.quiet, True  # edgekit's own spinners would clash with the bar
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console.err, transient=True, disable=was_quiet) as bar:
        task = bar.add_task("starting", total=total)
        done = -1

        def advance(label: str) -> None:
            nonlocal done
            done += 1
            bar.update(task, description=label, completed=done)

        try:
            yield advance
        finally:
            console.quiet = was_quiet
            bar.update(task, completed=total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from: {', '.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "compare_quantizers", help="folder for every ONNX file made")
    parser.add_argument("--markdown", type=Path, help="also write the table and notes as Markdown here")
    args = parser.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        parser.error(f"--models: unknown model {unknown[0]!r}" if unknown else "--models: name at least one model")
    rows = compare(models, args.out)
    console.out.print(table(rows))
    for line in verdicts(rows):
        console.out.print(line)
    for line in notes(rows):
        console.out.print(f"[dim]{line}[/]")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows))
        console.err.print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
