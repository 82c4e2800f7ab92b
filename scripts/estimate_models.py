"""Board-less estimates of the benchmark models, and the estimate's validation on this host.

    python scripts/estimate_models.py boards   [--models ...] [--targets rk3588,orin] [--markdown F]
    python scripts/estimate_models.py validate [--models ...] [--mca-cpu sapphirerapids] [--markdown F]

boards: per model, the fp32 and int8 builds for each board and ONNX Runtime's aarch64 build on
the same QDQ model, estimated with `edgekit estimate` (1 thread, the board's [estimate] core
model and clock).

validate: the same method against the truth where it can be measured. Each workload is an
x86_64 (AVX2) build; it is estimated under QEMU with llvm-mca on this host's core model, and
run natively with the same runner, 1 thread, pinned. Measured cycles are the median latency
times this core's clock, which is itself measured (a chain of dependent adds runs one per
cycle on every x86 core), so turbo clocks do not bias the comparison. ONNX Runtime is left out
of the validation because it picks its kernels at run time from CPUID: natively AVX-512 ones,
under QEMU (no AVX-512) AVX2 ones, so the two runs would not be the same program.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from bench_int8 import prepare  # scripts/ is on the path when a script runs
from rich.table import Table

import edgekit
from edgekit import console
from edgekit.artifact import read_manifest
from edgekit.measure.bench import machine_description
from edgekit.measure.estimate import estimate_artifact, estimate_onnxruntime
from edgekit.runtime import cached_runner
from edgekit.target_spec import EstimateSpec, load_target

REPO = Path(__file__).resolve().parent.parent
CLOCK_PROBE = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
  long n = 400000000, x = 0, one = 1;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i += 8)
    __asm__ volatile("add %1,%0\n add %1,%0\n add %1,%0\n add %1,%0\n add %1,%0\n add %1,%0\n add %1,%0\n add %1,%0" : "+r"(x) : "r"(one));
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%f\n", n / ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)));
  long y = 3;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i += 8)
    __asm__ volatile("imul %0,%0\n imul %0,%0\n imul %0,%0\n imul %0,%0\n imul %0,%0\n imul %0,%0\n imul %0,%0\n imul %0,%0" : "+r"(y));
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%f\n", 3 * n / ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)));
  return 0;
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("boards", "validate"))
    parser.add_argument("--models", default="mobilenet_v2_112,resnet18_112,yolo_style,transformer")
    parser.add_argument("--targets", default="rk3588,orin")
    parser.add_argument("--runs", type=int, default=2, help="Inferences per estimate.")
    parser.add_argument("--repeat", type=int, default=30, help="Native timed runs per validation workload.")
    parser.add_argument("--mca-cpu", default="sapphirerapids", help="llvm-mca model of this host's core (validate).")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_int8")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    lines = boards(args) if args.mode == "boards" else validate(args)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")


def boards(args) -> list[str]:
    columns = ("model", "board", "edgekit fp32 ms", "edgekit int8 ms", "ONNX Runtime int8 ms", "int8 / ORT int8", "int8 / fp32", "sdot M (edgekit / ORT)")
    table, lines = _table("estimated single-core latency, 1 thread (QEMU block counts x llvm-mca)", columns)
    for name in args.models.split(","):
        fp32, int8, feeds = prepare(name, args.out)
        for board in args.targets.split(","):
            target = load_target(board)
            with console.step(f"{name}: compiling fp32 and int8 for {board}"):
                fp32_art = _compile(fp32, args.out / f"{name}_fp32_{board}", board)
                int8_art = _compile(int8, args.out / f"{name}_int8_{board}", board)
            ours_fp32 = estimate_artifact(fp32_art, feeds, runs=args.runs)
            ours_int8 = estimate_artifact(int8_art, feeds, runs=args.runs)
            ort = estimate_onnxruntime(int8, target, feeds, runs=args.runs)
            sdot = "dot product (sdot/udot)"
            cells = (name, f"{board} ({target.estimate.mca_cpu} @ {target.estimate.clock_ghz:g} GHz)", f"{ours_fp32.ms:.2f}", f"{ours_int8.ms:.2f}", f"{ort.ms:.2f}",
                     f"{ours_int8.cycles / ort.cycles:.2f}x", f"{ours_int8.cycles / ours_fp32.cycles:.2f}x",
                     f"{ours_int8.families.get(sdot, 0) / 1e6:.2f} / {ort.families.get(sdot, 0) / 1e6:.2f}")
            _add(table, lines, cells)
            _save(args.out / f"{name}_{board}.estimate.json", [ours_fp32, ours_int8, ort])
    console.out.print(table)
    return lines + ["", f"Estimated on: {machine_description()}; QEMU {_qemu_version()}, llvm-mca 19."]


def validate(args) -> list[str]:
    ghz = measured_clock_ghz()
    columns = ("workload (x86_64, AVX2)", "measured ms", "measured M cycles", "estimated M cycles", "estimated / measured")
    table, lines = _table(f"the estimate against this host ({args.mca_cpu}, measured clock {ghz:.2f} GHz, 1 thread)", columns)
    target = load_target("x86_64")
    target = dataclasses.replace(target, estimate=EstimateSpec(qemu_cpu="max", mca_cpu=args.mca_cpu, clock_ghz=ghz))
    results = {}
    for name in args.models.split(","):
        fp32, int8, feeds = prepare(name, args.out)
        for precision, model in (("fp32", fp32), ("int8", int8)):
            artifact = _compile(model, args.out / f"{name}_{precision}_x86_64", "x86_64")
            estimated = estimate_artifact(artifact, feeds, runs=args.runs, target=target)
            measured_ms = native_ms(artifact, feeds, args.repeat)
            results[(name, precision)] = (measured_ms * ghz * 1e6, estimated.cycles)
            measured, est = results[(name, precision)]
            _add(table, lines, (f"{name} {precision}", f"{measured_ms:.3f}", f"{measured / 1e6:.2f}", f"{est / 1e6:.2f}", f"{est / measured:.2f}"))
    console.out.print(table)
    ratio_lines = _ratio_table(results)
    return lines + [""] + ratio_lines + ["", f"Host: {machine_description()}; measured core clock {ghz:.2f} GHz; QEMU {_qemu_version()} (-cpu max), llvm-mca 19 -mcpu={args.mca_cpu}."]


def _ratio_table(results: dict) -> list[str]:
    """Pairs of programs: how far the estimated ratio is from the measured one."""
    columns = ("ratio", "measured", "estimated", "error")
    table, lines = _table("ratios between two programs, estimated vs measured", columns)
    models = list(dict.fromkeys(m for m, _ in results))
    pairs = [((m, "int8"), (m, "fp32")) for m in models]  # does int8 pay, as the estimate says?
    pairs += [((a, "fp32"), (b, "fp32")) for a, b in zip(models, models[1:])]  # which model is heavier
    for a, b in pairs:
        measured = results[a][0] / results[b][0]
        estimated = results[a][1] / results[b][1]
        _add(table, lines, (f"{' '.join(a)} / {' '.join(b)}", f"{measured:.3f}", f"{estimated:.3f}", f"{100 * (estimated / measured - 1):+.1f}%"))
    console.out.print(table)
    return lines


def native_ms(artifact: Path, feeds: dict[str, np.ndarray], repeat: int) -> float:
    """Median latency of the runner on this machine, 1 thread on core 0."""
    runner = cached_runner(read_manifest(artifact).target).binary
    with tempfile.TemporaryDirectory() as work:
        inputs = []
        for name, value in feeds.items():
            np.save(Path(work) / f"{name}.npy", value)
            inputs += ["--input", f"{name}={Path(work) / f'{name}.npy'}"]
        medians = []
        for _ in range(3):  # three blocks: the median of medians resists a noisy neighbour
            done = subprocess.run([str(runner), str(artifact), *inputs, "--iters", str(repeat), "--warmup", "5", "--threads", "1", "--cpus", "0"],
                                  capture_output=True, text=True, check=True)
            medians.append(json.loads(done.stdout)["latency_ms"]["p50"])
    return statistics.median(medians)


def measured_clock_ghz() -> float:
    """This core's clock under load: a chain of dependent register adds (1 cycle each; an add of
    an immediate is not used, since Golden Cove eliminates those at rename) and a chain of
    dependent multiplies (3 cycles each on current Intel and AMD cores) must agree."""
    with tempfile.TemporaryDirectory() as work:
        source, binary = Path(work) / "clock.c", Path(work) / "clock"
        source.write_text(CLOCK_PROBE)
        subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True)
        readings = [[float(v) for v in subprocess.run(["taskset", "-c", "0", str(binary)], capture_output=True, text=True, check=True).stdout.split()] for _ in range(5)]
    adds, multiplies = max(r[0] for r in readings), max(r[1] for r in readings)  # a slower reading is a preempted one
    if abs(adds / multiplies - 1) > 0.05:
        raise SystemExit(f"clock probes disagree: {adds:.2f} GHz (adds) vs {multiplies:.2f} GHz (multiplies)")
    return adds


def _compile(model: Path, out: Path, target: str) -> Path:
    if (out / "manifest.json").is_file():
        return out
    return edgekit.compile(model, out, target=target)


def _table(title: str, columns: tuple[str, ...]) -> tuple[Table, list[str]]:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    return table, ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _add(table: Table, lines: list[str], cells: tuple[str, ...]) -> None:
    table.add_row(*cells)
    lines.append("| " + " | ".join(cells) + " |")


def _save(path: Path, estimates) -> None:
    path.write_text(json.dumps([e.to_dict() for e in estimates], indent=2) + "\n")


def _qemu_version() -> str:
    done = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True)
    return done.stdout.split("version", 1)[1].split()[0] if "version" in done.stdout else "?"


if __name__ == "__main__":
    main()
