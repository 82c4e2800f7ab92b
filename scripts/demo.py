"""The edgekit demo: export the bundled digits CNN, compile it for x86_64, run it, check it
against ONNX Runtime on the held-out set, and time both side by side.

    python scripts/demo.py [--out out/demo] [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.table import Table

import edgekit
from edgekit import console
from edgekit.measure.bench import compare_latency

REPO = Path(__file__).resolve().parent.parent
FACTORY = f"{REPO / 'edgekit' / 'demo' / 'digits_cnn.py'}:factory"
EVAL_DATA = REPO / "calibration_data" / "digits_eval.npz"
MAX_ABS = 1e-4  # the fp32 artifact must match ONNX Runtime this closely


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    onnx_path, artifact_dir = args.out / "digits.onnx", args.out / "digits_x86_64"

    console.err.rule("1. export (PyTorch -> ONNX, parity-checked in ONNX Runtime)")
    export_report = edgekit.export(FACTORY, onnx_path, input_names=["image"], output_names=["logits"])
    console.info(f"max abs error vs PyTorch: {export_report.outputs[0].max_abs:.2g}")

    console.err.rule("2. compile (ONNX -> TVM Relax -> x86_64 artifact)")
    edgekit.compile(onnx_path, artifact_dir, target="x86_64")

    console.err.rule("3. run")
    model = edgekit.load(artifact_dir)
    with np.load(EVAL_DATA) as data:
        image, label = data["image"][0], int(data["label"][0])
    logits = model(image=image)["logits"]
    console.info(f"first held-out digit: label {label}, predicted {int(logits.argmax())}")

    console.err.rule("4. check against ONNX Runtime on the held-out set")
    report = edgekit.check(artifact_dir, onnx_path, EVAL_DATA, max_abs=MAX_ABS, min_cosine=0.9999, min_top1_agreement=1.0)
    (args.out / "check.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")

    console.err.rule("5. latency, side by side")
    timing = compare_latency(model, onnx_path, {"image": image}, repeat=args.repeat, warmup=20)
    (args.out / "latency.json").write_text(json.dumps(timing.to_dict(), indent=2) + "\n")

    print_summary(report, timing)
    return 0 if report.passed else 1


def print_summary(report, timing) -> None:
    logits = report.outputs[0]
    accuracy = Table(title=f"accuracy on {report.samples} held-out digits")
    for column in ("", "top-1 accuracy", "top-1 agreement", "max abs error", "min cosine"):
        accuracy.add_column(column, justify="right")
    accuracy.add_row("edgekit fp32 artifact (TVM)", f"{logits.accuracy_artifact:.2%}", f"{logits.top1_agreement:.2%}", f"{logits.max_abs:.2g}", f"{logits.cosine_min:.7f}")
    accuracy.add_row("ONNX Runtime", f"{logits.accuracy_reference:.2%}", "", "", "")
    console.out.print(accuracy)

    latency = Table(title=f"latency, {timing.edgekit.runs} runs each, alternating, {timing.threads} threads ({timing.machine})")
    for column in ("", "p50 ms", "p99 ms", "mean ms", "CPU ms / inference"):
        latency.add_column(column, justify="right")
    for name, stats in (("edgekit fp32 artifact (TVM, untuned)", timing.edgekit), ("ONNX Runtime", timing.onnxruntime)):
        latency.add_row(name, f"{stats.p50_ms:.3f}", f"{stats.p99_ms:.3f}", f"{stats.mean_ms:.3f}", f"{stats.cpu_ms_per_inference:.3f}")
    console.out.print(latency)
    console.out.print(f"edgekit / ONNX Runtime p50 latency: {timing.ratio:.1f}x  (untuned: edgekit default schedules; `edgekit tune` goes further)")
    verdict = "[green]PASS[/]" if report.passed else "[red]FAIL: " + "; ".join(report.violations) + "[/]"
    console.out.print(f"check (max abs <= {MAX_ABS:g}, identical top-1): {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
