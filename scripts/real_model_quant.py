"""edgekit's int8 quantizer against ONNX Runtime's, on the real pretrained models of scripts/real_models.py.

    python scripts/real_model_quant.py [--models a,b] [--samples 32] [--jobs 2] [--force] [--markdown PATH]

For each cached model (out/real_models/NAME, made by scripts/real_models.py) five variants are
scored against the fp32 model in ONNX Runtime on the first --samples samples of NAME/eval.npz,
with the model's own metric (real_models.metric) and the min/mean output cosine:

    edgekit_default   edgekit.quantize(model, calib, out), the QDQ model run in ONNX Runtime
    edgekit_compiled  that QDQ model through edgekit.compile(target=x86_64-avx512), run with edgekit.load
    edgekit_budget    edgekit.quantize(..., max_drop=0.01, evaluation="cosine", eval_data=eval.npz)
    ort_static        quant_pre_process, then quantize_static (QDQ, per-channel, int8, MinMax) on calib.npz
    ort_dynamic       quantize_dynamic with its defaults

Each variant runs in its own subprocess under a time limit (LIMITS), so a slow or crashing
variant becomes "timeout" or "fails: <one line>" in its cell and the others go on. Every cell's
result is cached as out/real_model_quant/NAME/VARIANT.json beside the quantized model, and is
reused unless --force. Results: a table on screen, out/real_model_quant/results.json, and with
--markdown a Markdown table (the one in README's "Quantization on real models").
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing edgekit

MODELS_CACHE = REPO / "out" / "real_models"
OUT = REPO / "out" / "real_model_quant"
TARGET = "x86_64-avx512"

# Variant -> seconds its subprocess may take (quantization, or compile, plus the eval run).
LIMITS = {"edgekit_default": 300, "edgekit_compiled": 360, "ort_static": 240, "ort_dynamic": 180, "edgekit_budget": 360}
VARIANTS = list(LIMITS)
CELL_CHARS = 110  # a failure's line is cut to this in the table; results.json keeps 300 characters
COLUMNS = {"edgekit_default": "edgekit default (QDQ)", "edgekit_compiled": "edgekit default (compiled)",
           "edgekit_budget": "edgekit budget (+time)", "ort_static": "ORT static", "ort_dynamic": "ORT dynamic"}


def load_real_models():
    """scripts/real_models.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("real_models_script", REPO / "scripts" / "real_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- one variant, in a worker subprocess ------------------------------------------------------

def eval_feeds(name: str, samples: int) -> list[dict[str, np.ndarray]]:
    """The first `samples` eval samples of model `name`, one feed per sample (label dropped)."""
    with np.load(MODELS_CACHE / name / "eval.npz") as data:
        arrays = {k: data[k][:samples] for k in data.files if k != "label"}
    n = len(next(iter(arrays.values())))
    return [{k: np.asarray(v[i]) for k, v in arrays.items()} for i in range(n)]


def run_ort(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """ONNX Runtime CPU outputs per feed, in output order."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [session.run(None, feed) for feed in feeds]


def reference_outputs(name: str, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """fp32 outputs of the eval feeds, cached in OUT/NAME/fp32_outputs.npz (keyed by sample count)."""
    cache = OUT / name / f"fp32_outputs_{len(feeds)}.npz"
    if cache.exists():
        with np.load(cache) as data:
            count = int(data["outputs"])
            return [[data[f"s{i}_o{j}"] for j in range(count)] for i in range(len(feeds))]
    outputs = run_ort(MODELS_CACHE / name / "model.onnx", feeds)
    arrays = {f"s{i}_o{j}": out for i, sample in enumerate(outputs) for j, out in enumerate(sample)}
    np.savez(cache, outputs=np.array(len(outputs[0])), **arrays)
    return outputs


def quiet_call(function, *args, **kwargs):
    """Call ONNX Runtime's quantization tools without their progress logging."""
    logging.getLogger().setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return function(*args, **kwargs)


class NpzReader:
    """calib.npz as ONNX Runtime's CalibrationDataReader, one sample per get_next()."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k != "label"}
        n = len(next(iter(arrays.values())))
        self.samples = iter([{k: np.asarray(v[i]) for k, v in arrays.items()} for i in range(n)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.samples, None)


def quantize_edgekit(name: str, budget: bool) -> tuple[Path, dict]:
    """edgekit.quantize on the model's calib.npz (with the cosine budget on eval.npz if `budget`).

    Returns the QDQ path and what the record says about the split into int8 and float nodes."""
    import edgekit

    folder = MODELS_CACHE / name
    output = OUT / name / ("edgekit_budget.onnx" if budget else "edgekit_default.onnx")
    options = {"max_drop": 0.01, "evaluation": "cosine", "eval_data": folder / "eval.npz"} if budget else {}
    started = time.time()
    result = edgekit.quantize(folder / "model.onnx", folder / "calib.npz", output, recipe=None, **options)
    summary = result.record.get("summary", {})
    info = {"quantize_seconds": round(time.time() - started, 1), "summary": summary}
    if summary.get("nodes"):
        info["int8_node_share"] = round(summary.get("int8_nodes", 0) / summary["nodes"], 3)
    if summary.get("int8_mac_share") is not None:
        info["int8_mac_share"] = summary["int8_mac_share"]
    if budget:
        info["budget"] = result.record.get("budget")
    return output, info


def quantize_ort_static(name: str) -> tuple[Path, dict]:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder = MODELS_CACHE / name
    preprocessed, output = OUT / name / "ort_pre.onnx", OUT / name / "ort_static.onnx"
    info = {"pre_process": "default"}
    try:
        quiet_call(quant_pre_process, str(folder / "model.onnx"), str(preprocessed))
    except Exception as error:  # noqa: BLE001
        # ORT's symbolic shape inference asserts on some graphs (a Concat of shapes on an axis
        # other than 0 in PaddlePaddle exports); its own option skips it and keeps ONNX's inference.
        info = {"pre_process": f"skip_symbolic_shape=True (symbolic shape inference: {one_line(error)})"}
        quiet_call(quant_pre_process, str(folder / "model.onnx"), str(preprocessed), skip_symbolic_shape=True)
    reader = type("Reader", (NpzReader, CalibrationDataReader), {})(folder / "calib.npz")
    quiet_call(quantize_static, str(preprocessed), str(output), reader, quant_format=QuantFormat.QDQ, per_channel=True,
               activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return output, info


def quantize_ort_dynamic(name: str) -> Path:
    from onnxruntime.quantization import quantize_dynamic

    output = OUT / name / "ort_dynamic.onnx"
    quiet_call(quantize_dynamic, str(MODELS_CACHE / name / "model.onnx"), str(output))
    return output


def run_compiled(name: str, feeds: list[dict[str, np.ndarray]]) -> tuple[list[list[np.ndarray]], dict]:
    """Compile edgekit_default.onnx (made by the edgekit_default variant) and run it on `feeds`."""
    import edgekit

    qdq = OUT / name / "edgekit_default.onnx"
    if not qdq.exists():
        raise FileNotFoundError("no edgekit_default.onnx: the edgekit default quantization failed")
    started = time.time()
    folder = edgekit.compile(qdq, OUT / name / "edgekit_compiled", target=TARGET)
    info = {"compile_seconds": round(time.time() - started, 1)}
    model = edgekit.load(folder)
    names = [spec.name for spec in model.outputs]
    return [[result[n] for n in names] for result in (model(**feed) for feed in feeds)], info


def run_variant(name: str, variant: str, samples: int) -> dict:
    """Build and score one variant of one model; the cell's JSON content (raises on failure)."""
    metrics = load_real_models()
    (OUT / name).mkdir(parents=True, exist_ok=True)
    feeds = eval_feeds(name, samples)
    reference = reference_outputs(name, feeds)
    info: dict = {}
    started = time.time()
    if variant == "edgekit_compiled":
        candidate, info = run_compiled(name, feeds)
    else:
        if variant in ("edgekit_default", "edgekit_budget"):
            path, info = quantize_edgekit(name, budget=variant == "edgekit_budget")
        elif variant == "ort_static":
            path, info = quantize_ort_static(name)
        else:
            path = quantize_ort_dynamic(name)
        candidate = run_ort(path, feeds)
    scores = metrics.metric(name, reference, candidate)
    return {"status": "ok", "seconds": round(time.time() - started, 1), "samples": len(feeds), **info,
            "metric": scores["metric"], "value": scores[scores["metric"]], "scores": scores}


def worker_main(name: str, variant: str, samples: int, result_path: Path) -> int:
    try:
        result = run_variant(name, variant, samples)
    except BaseException as error:  # noqa: BLE001 - every failure becomes the cell's one line
        result = {"status": "fails", "error": one_line(error)}
    result_path.write_text(json.dumps(result, indent=1, default=float))
    return 0


def one_line(error: BaseException) -> str:
    """An exception as one line: type and the first line of its message (plus edgekit's exit hint)."""
    text = str(error).strip().splitlines()
    if text:
        return f"{type(error).__name__}: {text[0]}"[:300]
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno} `{frame.line}`" if frame else ""
    return f"{type(error).__name__}{where}"[:300]


# ---- the driver -------------------------------------------------------------------------------

def run_cell(name: str, variant: str, samples: int, force: bool) -> dict:
    """One cell's result: cached JSON, or a fresh worker subprocess under LIMITS[variant]."""
    result_path = OUT / name / f"{variant}.json"
    if result_path.exists() and not force:
        cached = json.loads(result_path.read_text())
        if cached.get("samples", samples) == samples or cached["status"] != "ok":
            return cached
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--worker", variant, "--models", name, "--samples", str(samples)]
    started = time.time()
    # A session of its own, so a timeout ends the worker and whatever it started (TVM's builders).
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=LIMITS[variant])
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        result = {"status": "timeout", "limit_seconds": LIMITS[variant]}
    else:
        if result_path.exists():
            result = json.loads(result_path.read_text())
        else:  # the worker died without writing (a segfault in native code)
            last = stderr.decode(errors="replace").strip().splitlines()
            result = {"status": "fails", "error": f"worker exit {process.returncode}: {last[-1] if last else ''}"[:300]}
    result["wall_seconds"] = round(time.time() - started, 1)
    result_path.write_text(json.dumps(result, indent=1, default=float))
    return result


def run_model(name: str, samples: int, force: bool, report) -> dict:
    cells = {}
    for variant in VARIANTS:
        cells[variant] = run_cell(name, variant, samples, force)
        report(name, variant, cells[variant])
    return cells


def format_cell(result: dict, variant: str) -> str:
    """'metric / min cosine' (budget: plus quantize time, int8 node and MAC shares, fallbacks), or the failure."""
    status = result.get("status")
    if status == "timeout":
        return f"timeout (> {result['limit_seconds']} s)"
    if status != "ok":
        error = result.get("error", "?").replace(f"{REPO}/", "")  # paths as the checkout names them
        return f"fails: {error if len(error) <= CELL_CHARS else error[:CELL_CHARS - 1] + '…'}"
    text = f"{result['value']:.3f} / {result['scores']['cosine_min']:.4f}"
    if variant == "edgekit_budget":
        notes = [f"{result.get('quantize_seconds', result['seconds']):.0f} s"]
        if result.get("int8_node_share") is not None:
            notes.append(f"{result['int8_node_share']:.0%} int8 nodes")
        if result.get("int8_mac_share") is not None:
            notes.append(f"{result['int8_mac_share']:.0%} int8 MACs")
        if (result.get("budget") or {}).get("fallbacks") is not None:
            notes.append(f"{result['budget']['fallbacks']} fallbacks")
        text += f" ({', '.join(notes)})"
    return text


def kind_of(name: str) -> str:
    meta = json.loads((MODELS_CACHE / name / "meta.json").read_text())
    return meta["kind"].split(" (")[0]


def metric_name(name: str) -> str:
    return json.loads((MODELS_CACHE / name / "meta.json").read_text())["metric"]["name"]


def table_rows(results: dict) -> list[list[str]]:
    return [[name, kind_of(name), metric_name(name), *(format_cell(cells[v], v) for v in COLUMNS)]
            for name, cells in results.items()]


def markdown(results: dict) -> str:
    header = ["model", "kind", "metric", *COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(results)]
    return "\n".join(lines) + "\n"


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="int8 on real models: metric / min output cosine against fp32 (ONNX Runtime)")
    for column in ["model", "kind", "metric", *COLUMNS.values()]:
        table.add_column(column, overflow="fold")
    for row in table_rows(results):
        table.add_row(*row)
    Console(width=200).print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: every cached model)")
    parser.add_argument("--samples", type=int, default=32, help="first N eval samples scored (default 32)")
    parser.add_argument("--jobs", type=int, default=2, help="models worked on at once (default 2)")
    parser.add_argument("--force", action="store_true", help="redo cells already cached")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cached = sorted(p.name for p in MODELS_CACHE.iterdir() if (p / "meta.json").exists()) if MODELS_CACHE.exists() else []
    names = args.models.split(",") if args.models else cached
    missing = [n for n in names if n not in cached]
    if missing:
        raise SystemExit(f"not in {MODELS_CACHE}: {', '.join(missing)} (run scripts/real_models.py first)")
    if args.worker:
        return worker_main(names[0], args.worker, args.samples, OUT / names[0] / f"{args.worker}.json")

    started = time.time()

    def report(name: str, variant: str, result: dict) -> None:
        print(f"[{time.time() - started:6.0f} s] {name:15} {variant:17} {format_cell(result, variant)}", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {name: pool.submit(run_model, name, args.samples, args.force, report) for name in names}
        results = {name: future.result() for name, future in futures.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"samples": args.samples, "target": TARGET, "limits_seconds": LIMITS,
                                                  "models": results}, indent=1, default=float))
    print_table(results)
    if args.markdown:
        args.markdown.write_text(markdown(results))
    print(f"wall time {time.time() - started:.0f} s; results in {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
