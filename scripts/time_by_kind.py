"""Where an artifact's time goes, by kind of kernel: the profile behind BENCHMARKS.md's notes.

    python scripts/time_by_kind.py ARTIFACT [ARTIFACT ...] [--runs 20] [--markdown out.md]

Runs `edgekit profile` on each artifact and sums the per-kernel median latencies by kind
(1x1, 3x3 and depthwise convolutions, matmuls, softmax, normalization, elementwise, ...),
with each kind's share of the kernel time and its achieved GFLOP/s.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from edgekit import console
from edgekit.profile import LayerProfile, profile_artifact


@dataclass
class KindTotal:
    kind: str
    calls: int = 0
    latency_us: float = 0.0
    flops: int = 0

    @property
    def gflops(self) -> float | None:
        return self.flops / self.latency_us / 1e3 if self.flops and self.latency_us else None


def kind_of(layer: LayerProfile) -> str:
    name = layer.name
    if "conv2d" in name:
        return _conv_kind(layer.args)
    for token, kind in (
        ("matmul", "matmul / dense"),
        ("dense", "matmul / dense"),
        ("softmax", "softmax"),
        ("layer_norm", "normalization"),
        ("erf", "GELU (erf)"),
        ("pool", "pooling"),
        ("mean", "pooling"),
        ("take", "embedding / gather"),
    ):
        if token in name:
            return kind
    return "elementwise / layout"


def _conv_kind(args: list[str]) -> str:
    weight = next((a for a in args if a.startswith("param ") and len(a.split()[1].split("x")) in (4, 5)), None)
    if weight is None:
        return "conv (other)"
    dims = [int(d) for d in weight.split()[1].split("x")]
    kernel = f"{dims[2]}x{dims[3]}"
    if len(dims) == 4 and dims[1] == 1 and kernel != "1x1":
        return f"conv depthwise {kernel}"
    return f"conv {kernel}"


def by_kind(layers: list[LayerProfile]) -> list[KindTotal]:
    totals: dict[str, KindTotal] = defaultdict(lambda: KindTotal(""))
    for layer in layers:
        kind = kind_of(layer)
        total = totals[kind]
        total.kind = kind
        total.calls += 1
        total.latency_us += layer.latency_us
        total.flops += layer.flops or 0
    return sorted(totals.values(), key=lambda t: -t.latency_us)


def markdown(artifact: Path, totals: list[KindTotal], latency_ms: float) -> str:
    kernel_us = sum(t.latency_us for t in totals)
    lines = [
        f"`{artifact.name}`: inference {latency_ms:.3f} ms, kernels {kernel_us / 1e3:.3f} ms",
        "",
        "| kind | calls | ms | share | GFLOP/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for total in totals:
        gflops = f"{total.gflops:.1f}" if total.gflops else "-"
        lines.append(f"| {total.kind} | {total.calls} | {total.latency_us / 1e3:.3f} | {total.latency_us / kernel_us:.0%} | {gflops} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    sections = []
    for artifact in args.artifacts:
        report = profile_artifact(artifact, runs=args.runs)
        sections.append(markdown(artifact, by_kind(report.layers), report.totals.latency_ms))
        console.out.print(sections[-1] + "\n")
    if args.markdown:
        args.markdown.write_text("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
