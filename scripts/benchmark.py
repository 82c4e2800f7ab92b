"""The benchmark suite: edgekit (untuned and tuned) against ONNX Runtime on four models, into BENCHMARKS.md.

    python scripts/benchmark.py [--models demo,resnet18,...] [--targets x86_64,x86_64-avx512]
                                [--repeat 50] [--tuned build/tuning]

Per model and target: export (once), compile untuned, and compile with the model's tuning
database if `--tuned DIR` holds one (DIR/MODEL-TARGET, as written by `edgekit tune --db`).
Then the untuned artifact, the tuned one and ONNX Runtime are timed in one run, interleaved in
blocks, same input, same threads. Last, the CPU cost of a 30 Hz frame loop for edgekit and for
ONNX Runtime with and without spinning, at 1 and 2 threads. The tables replace the part of
BENCHMARKS.md between the `benchmark.py` markers; the rest of the file is kept.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import edgekit
from edgekit import console
from edgekit.measure.bench import interleave, machine_description
from edgekit.measure.flops import count_flops
from edgekit.onnx_model import load_onnx
from edgekit.reference import Reference, random_inputs
from edgekit.runtime.timing import LatencyStats, hold_rate

REPO = Path(__file__).resolve().parent.parent
MODELS = {
    "demo": f"{REPO / 'edgekit' / 'demo' / 'digits_cnn.py'}:factory",
    "resnet18": f"{REPO / 'scripts' / 'bench_models.py'}:resnet18",
    "mobilenet_v2": f"{REPO / 'scripts' / 'bench_models.py'}:mobilenet_v2",
    "transformer": f"{REPO / 'scripts' / 'bench_models.py'}:transformer_encoder",
}
# The int8 and board-less benchmarks' extra models (scripts/bench_int8.py, the estimate tables).
MORE_MODELS = {
    name: f"{REPO / 'scripts' / 'bench_models.py'}:{name}" for name in ("resnet18_112", "mobilenet_v2_112", "yolo_style")
}
BEGIN, END = "<!-- benchmark.py: begin -->", "<!-- benchmark.py: end -->"
ORT = "ONNX Runtime"
HARNESS = "the loop alone (no inference)"


@dataclass
class Row:
    model: str
    target: str
    gflop: float
    peak_gflops: float
    compile_s: dict[str, float]
    tuning: dict | None  # the database's summary (trials, minutes), if tuned
    latency: dict[str, LatencyStats]  # "untuned", "tuned" (if any), ORT

    def ratio(self, build: str) -> float:
        return self.latency[build].p50_ms / self.latency[ORT].p50_ms

    def gflops(self, build: str) -> float:
        return self.gflop / (self.latency[build].p50_ms / 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--targets", default="x86_64,x86_64-avx512")
    parser.add_argument("--tuned", type=Path, help="folder of tuning databases named MODEL-TARGET (edgekit tune --db)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-frame-loop", action="store_true", help="skip the 30 Hz CPU measurement")
    args = parser.parse_args()

    rows = [measure(name, target, args) for name in args.models.split(",") for target in args.targets.split(",")]
    cpu_use = {}
    if "demo" in args.models and not args.no_frame_loop:
        target = args.targets.split(",")[-1]
        cpu_use = {threads: frame_loop_cpu(args.out / f"demo_{target}_untuned", args.out / "demo.onnx", threads) for threads in (1, 2)}
    write_section(args.markdown, markdown(rows, cpu_use, args))
    (args.out / "benchmarks.json").write_text(
        json.dumps({"machine": machine_description(), "rows": [asdict(r) for r in rows], "frame_loop": cpu_use}, indent=2, default=str)
    )
    console.out.print(args.markdown.read_text())


def measure(name: str, target: str, args) -> Row:
    onnx_path = args.out / f"{name}.onnx"
    if not onnx_path.exists():
        edgekit.export(MODELS[name], onnx_path)
    database = args.tuned / f"{name}-{target}" if args.tuned else None
    builds = {"untuned": None} | ({"tuned": database} if database and database.is_dir() else {})
    models, compile_s = {}, {}
    for build, tuning_db in builds.items():
        artifact = args.out / f"{name}_{target}_{build}"
        started = time.perf_counter()
        edgekit.compile(onnx_path, artifact, target=target, tuning_db=tuning_db)
        compile_s[build] = time.perf_counter() - started
        models[build] = edgekit.load(artifact, threads=args.threads)
    first = next(iter(models.values()))
    feeds = random_inputs(first.inputs, seed=0)
    session = Reference(onnx_path, threads=args.threads, spinning=True)  # as its users run it: defaults
    runtimes = {build: _runner(model, feeds) for build, model in models.items()} | {ORT: lambda: session(feeds)}
    latency = interleave(runtimes, args.threads, repeat=args.repeat, warmup=10)
    cpu = first.manifest.target
    row = Row(
        model=name,
        target=target,
        gflop=count_flops(load_onnx(onnx_path), first.inputs).gflops,
        peak_gflops=cpu.peak.fp32_gflops * args.threads / cpu.cpu.cores,
        compile_s=compile_s,
        tuning=_tuning_summary(database) if "tuned" in builds else None,
        latency=latency,
    )
    console.info(f"{name} {target}: " + ", ".join(f"{b} {row.ratio(b):.2f}x" for b in builds) + f" of {ORT}")
    return row


def _runner(model, feeds):
    device_inputs = model.to_device(model.bind((), feeds))
    return lambda: model.run_bound(device_inputs)


def _tuning_summary(database: Path) -> dict | None:
    """Trials in the database, and the minutes spent: every `edgekit tune --json DATABASE*.json` report beside it."""
    summary = database / "edgekit-tuning.json"
    reports = sorted(database.parent.glob(f"{database.name}*.json"))
    if not summary.exists() or not reports:
        return None
    seconds = sum(json.loads(report.read_text()).get("seconds", 0.0) for report in reports)
    trials = sum(model["trials"] for model in json.loads(summary.read_text()).get("models", []))
    return {"trials": trials, "minutes": seconds / 60}


def frame_loop_cpu(artifact: Path, reference: Path, threads: int, rate: float = 30.0, duration: float = 10.0) -> dict[str, dict]:
    """CPU-seconds per wall-second holding `rate` Hz: edgekit, ONNX Runtime default and no-spin."""
    model = edgekit.load(artifact, threads=threads)
    feeds = random_inputs(model.inputs)
    run = _runner(model, feeds)
    run()
    # The loop's own cost (waking from sleep, timers): the floor every runtime's figure sits on.
    results = {HARNESS: hold_rate(lambda: None, rate, duration, threads), "edgekit": hold_rate(run, rate, duration, threads)}
    for label, spinning in ((f"{ORT} (default: spinning)", True), (f"{ORT} (allow_spinning=0)", False)):
        session = Reference(reference, threads=threads, spinning=spinning)
        session(feeds)
        results[label] = hold_rate(lambda session=session: session(feeds), rate, duration, threads)
    return {label: stats.to_dict() for label, stats in results.items()}


def markdown(rows: list[Row], cpu_use: dict[int, dict], args) -> str:
    command = "python scripts/benchmark.py" + (f" --tuned {args.tuned}" if args.tuned else "")
    lines = [
        BEGIN,
        f"Machine: {machine_description()}. edgekit {edgekit.__version__}, TVM 0.27.0.post1, {args.threads} threads for every runtime.",
        "",
        f"Reproduce: `{command}` (one run; {time.strftime('%Y-%m-%d')}). Per model and target, the untuned artifact, the tuned one",
        f"and {ORT} (default session options) run the same random input in one process, in alternating blocks of 5",
        f"inferences with a 20 ms pause at each switch: {args.repeat} timed runs each after 10 warm-up runs.",
        f"Latency is p50 ms with p99 after it; ratio = edgekit p50 / {ORT} p50 (below 1: edgekit is faster).",
        "GFLOP counts Conv/MatMul/Gemm multiply-adds x 2 (edgekit.measure.flops); % of peak is against the target descriptor's fp32 peak.",
        "",
        (
            "| model | target | GFLOP | compile s (untuned / tuned) | tuning | untuned p50 (p99) | tuned p50 (p99) "
            f"| {ORT} p50 (p99) | untuned ratio | tuned ratio | best GFLOP/s (% of peak) | CPU ms/inf: edgekit best / {ORT} |"
        ),
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        tuned = "tuned" in row.latency
        best = min(row.latency.keys() - {ORT}, key=lambda build: row.latency[build].p50_ms)
        cells = [
            row.model,
            row.target,
            f"{row.gflop:.3f}",
            f"{row.compile_s['untuned']:.1f} / " + (f"{row.compile_s['tuned']:.1f}" if tuned else "-"),
            f"{row.tuning['trials']} trials, {row.tuning['minutes']:.0f} min" if row.tuning else "-",
            _latency(row.latency["untuned"]),
            _latency(row.latency["tuned"]) if tuned else "-",
            _latency(row.latency[ORT]),
            f"**{row.ratio('untuned'):.2f}x**",
            f"**{row.ratio('tuned'):.2f}x**" if tuned else "-",
            f"{row.gflops(best):.1f} ({row.gflops(best) / row.peak_gflops:.0%})",
            f"{row.latency[best].cpu_ms_per_inference:.3f} / {row.latency[ORT].cpu_ms_per_inference:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if cpu_use:
        target = args.targets.split(",")[-1]
        lines += [
            "",
            f"### CPU use at 30 Hz (demo model, untuned, target {target}, 10 s per row)",
            "",
            "CPU-s / wall-s is the process's CPU time over the wall time of the whole loop, sleep included;",
            "busy = mean latency x 30, the wall time inference itself takes per second; the goal is CPU-s / wall-s at most 1.1x busy.",
            "The first row of each thread count is the measuring loop with no inference (sleeping and waking 30 times a second);",
            "net = CPU-s / wall-s minus that floor, the CPU the runtime itself adds.",
            "",
            "| runtime | threads | CPU-s / wall-s | mean latency ms | busy (latency x 30) | CPU / busy | net / busy | missed frames |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for threads, results in cpu_use.items():
            floor = results[HARNESS]["cpu_seconds_per_wall_second"]
            for label, stats in results.items():
                busy = stats["latency"]["mean_ms"] * 30 / 1e3
                cpu = stats["cpu_seconds_per_wall_second"]
                if label == HARNESS:
                    lines.append(f"| {label} | {threads} | {cpu:.4f} | - | - | - | - | {stats['missed_deadlines']} |")
                    continue
                lines.append(
                    f"| {label} | {threads} | {cpu:.4f} | {stats['latency']['mean_ms']:.3f} | {busy:.4f} | {cpu / busy:.2f}x | {(cpu - floor) / busy:.2f}x | {stats['missed_deadlines']} |"
                )
    return "\n".join([*lines, END])


def _latency(stats: LatencyStats) -> str:
    return f"{stats.p50_ms:.3f} ({stats.p99_ms:.2f})"


def write_section(path: Path, section: str) -> None:
    """Replace the generated section of `path` (between the markers), keeping the hand-written rest."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = f"{text.rstrip()}\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(head + section + tail)
    temporary.replace(path)


if __name__ == "__main__":
    main()
