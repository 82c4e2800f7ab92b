"""The benchmark suite: edgekit against ONNX Runtime on four models, written to BENCHMARKS.md.

    python scripts/benchmark.py [--models demo,resnet18,...] [--targets x86_64,x86_64-avx512] [--repeat 50] [--tuned DB]

Per model: export (once), compile untuned (and with the tuning database if given), then time
edgekit and ONNX Runtime interleaved in one process, same input, same threads. Then the CPU
cost of a 30 Hz frame loop for edgekit and for ONNX Runtime with and without spinning.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgekit
from edgekit import console
from edgekit.benchmark import BenchReport, bench, machine_description
from edgekit.reference import Reference, random_inputs
from edgekit.timing import hold_rate

REPO = Path(__file__).resolve().parent.parent
MODELS = {
    "demo": f"{REPO / 'edgekit' / 'demo' / 'digits_cnn.py'}:factory",
    "resnet18": f"{REPO / 'scripts' / 'bench_models.py'}:resnet18",
    "mobilenet_v2": f"{REPO / 'scripts' / 'bench_models.py'}:mobilenet_v2",
    "transformer": f"{REPO / 'scripts' / 'bench_models.py'}:transformer_encoder",
}


@dataclass
class Row:
    model: str
    target: str
    build: str
    compile_s: float
    report: BenchReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--targets", default="x86_64,x86_64-avx512")
    parser.add_argument("--tuned", type=Path, help="a tuning database folder (edgekit tune --db)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()

    rows = []
    for name in args.models.split(","):
        onnx_path = args.out / f"{name}.onnx"
        if not onnx_path.exists():
            edgekit.export(MODELS[name], onnx_path)
        builds = {"untuned": None} | ({"tuned": args.tuned} if args.tuned else {})
        for target in args.targets.split(","):
            for build, database in builds.items():
                artifact = args.out / f"{name}_{target}_{build}"
                started = time.perf_counter()
                edgekit.compile(onnx_path, artifact, target=target, tuning_db=database)
                compile_s = time.perf_counter() - started
                rows.append(Row(name, target, build, compile_s, bench(artifact, onnx_path, repeat=args.repeat, warmup=10)))
                console.info(f"{name} {target} {build}: {rows[-1].report.timing.ratio:.2f}x ONNX Runtime")
    first_target = args.targets.split(",")[0]
    cpu_use = frame_loop_cpu(args.out / f"demo_{first_target}_untuned", args.out / "demo.onnx") if "demo" in args.models else {}
    args.markdown.write_text(markdown(rows, cpu_use, args))
    (args.out / "benchmarks.json").write_text(json.dumps([{"model": r.model, "target": r.target, "build": r.build, "compile_s": r.compile_s, **r.report.to_dict()} for r in rows], indent=2))
    console.out.print(args.markdown.read_text())


def frame_loop_cpu(artifact: Path, reference: Path, rate: float = 30.0, duration: float = 10.0) -> dict[str, dict]:
    """CPU-seconds per wall-second holding `rate` Hz: edgekit, ONNX Runtime default and no-spin."""
    model = edgekit.load(artifact)
    feeds = random_inputs(model.inputs)
    device_inputs = model.to_device(model.bind((), feeds))
    results = {"edgekit": hold_rate(lambda: model.run_bound(device_inputs), rate, duration, model.threads)}
    for label, spinning in (("ONNX Runtime (default: spinning)", True), ("ONNX Runtime (allow_spinning=0)", False)):
        session = Reference(reference, threads=model.threads, spinning=spinning)
        session(feeds)
        results[label] = hold_rate(lambda: session(feeds), rate, duration, model.threads)
    return {label: stats.to_dict() for label, stats in results.items()}


def markdown(rows: list[Row], cpu_use: dict[str, dict], args) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine_description()}. edgekit {edgekit.__version__}, TVM 0.27.0.post1, ONNX Runtime (same thread count).",
        f"Each row: edgekit and ONNX Runtime (default session options) on the same random input, same thread count,",
        f"alternating blocks of 5 inferences with a 20 ms pause at each switch, {args.repeat} timed runs each after 10 warm-up runs. Ratio = edgekit p50 / ONNX Runtime p50.",
        "GFLOP/s counts Conv/MatMul/Gemm multiply-adds (edgekit.flops); peak is the target descriptor's fp32 figure for the threads used.",
        "",
        "Reproduce: `python scripts/benchmark.py" + (f" --tuned {args.tuned}" if args.tuned else "") + "`",
        "",
        "| model | target | build | GFLOP | compile s | threads | edgekit p50 ms | p99 ms | ORT p50 ms | p99 ms | ratio | edgekit GFLOP/s | ORT GFLOP/s | edgekit % of peak | edgekit CPU ms/inf | ORT CPU ms/inf |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        r, t = row.report, row.report.timing
        lines.append(
            f"| {row.model} | {row.target} | {row.build} | {r.gflop_per_inference:.3f} | {row.compile_s:.1f} | {t.threads} | {t.edgekit.p50_ms:.3f} | {t.edgekit.p99_ms:.3f} "
            f"| {t.onnxruntime.p50_ms:.3f} | {t.onnxruntime.p99_ms:.3f} | **{t.ratio:.2f}x** | {r.edgekit_gflops:.1f} | {r.onnxruntime_gflops:.1f} "
            f"| {r.edgekit_gflops / r.peak_gflops:.1%} | {t.edgekit.cpu_ms_per_inference:.3f} | {t.onnxruntime.cpu_ms_per_inference:.3f} |"
        )
    if cpu_use:
        lines += ["", f"## CPU use at 30 Hz (demo model, target {args.targets.split(',')[0]}, 10 s)", "", "| runtime | CPU-s / wall-s | p50 ms | latency x 30 | missed frames |", "| --- | ---: | ---: | ---: | ---: |"]
        for label, stats in cpu_use.items():
            busy = stats["latency"]["mean_ms"] * 30 / 1e3
            lines.append(f"| {label} | {stats['cpu_seconds_per_wall_second']:.3f} | {stats['latency']['p50_ms']:.3f} | {busy:.3f} | {stats['missed_deadlines']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
