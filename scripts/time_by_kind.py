"""Where an artifact's time goes, by kind of kernel, beside ONNX Runtime: the profile behind BENCHMARKS.md's notes.

    python scripts/time_by_kind.py ARTIFACT [ARTIFACT ...] [--runs 20] [--threads 2] [--markdown out.md]

Runs `edgekit profile` on each artifact and sums the per-kernel median latencies by kind
(1x1, 3x3 and depthwise convolutions, matmuls, softmax, normalization, elementwise, ...).
Then ONNX Runtime's own profiler on the artifact's source ONNX (the manifest names it), same
threads, its per-node times summed by the same kinds: which kinds edgekit loses time on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgekit import console
from edgekit.artifact import read_manifest
from edgekit.measure.profile import LayerProfile, profile_artifact
from edgekit.reference import random_inputs


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


ORT_KINDS = {
    "MatMul": "matmul / dense",
    "Gemm": "matmul / dense",
    "FusedMatMul": "matmul / dense",
    "FusedGemm": "matmul / dense",
    "Softmax": "softmax",
    "LayerNormalization": "normalization",
    "SkipLayerNormalization": "normalization",
    "Erf": "GELU (erf)",
    "Gelu": "GELU (erf)",
    "BiasGelu": "GELU (erf)",
    "MaxPool": "pooling",
    "AveragePool": "pooling",
    "GlobalAveragePool": "pooling",
    "ReduceMean": "pooling",
    "Gather": "embedding / gather",
}


def onnxruntime_by_kind(source: Path, feeds: dict[str, np.ndarray], threads: int, runs: int) -> tuple[dict[str, float], float]:
    """ONNX Runtime's profiler on `source`: microseconds per run by kind, and the mean run in ms."""
    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")  # the nodes the profile names
        options.enable_profiling, options.profile_file_prefix = True, str(Path(scratch) / "ort")
        session = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        optimized = {node.name: node for node in onnx.load(options.optimized_model_filepath).graph.node}
        session.run(None, feeds)  # warm-up, excluded below
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs_us = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][1:]
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            node = optimized.get(event["name"][: -len("_kernel_time")])
            totals[_ort_kind(event["args"].get("op_name", ""), node, optimized)] += event["dur"] / (runs + 1)
    return dict(totals), float(np.mean(runs_us)) / 1e3 if runs_us else float("nan")


def _ort_kind(op: str, node, graph) -> str:
    if op in ("Conv", "FusedConv", "NchwcConv") and node is not None:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kernel = "x".join(str(k) for k in attrs.get("kernel_shape", [])) or "?"
        return f"conv depthwise {kernel}" if attrs.get("group", 1) > 1 and kernel != "1x1" else f"conv {kernel}"
    return ORT_KINDS.get(op, "elementwise / layout")


def markdown(artifact: Path, totals: list[KindTotal], latency_ms: float, theirs: dict[str, float], their_ms: float) -> str:
    kernel_us = sum(t.latency_us for t in totals)
    lines = [
        f"`{artifact.name}`: edgekit inference {latency_ms:.3f} ms (kernels {kernel_us / 1e3:.3f} ms); ONNX Runtime profiled run {their_ms:.3f} ms",
        "",
        "| kind | calls | edgekit ms | share | GFLOP/s | ONNX Runtime ms | edgekit - ORT ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    kinds = list(dict.fromkeys([t.kind for t in totals] + sorted(theirs)))
    by_name = {t.kind: t for t in totals}
    for kind in kinds:
        total = by_name.get(kind, KindTotal(kind))
        gflops = f"{total.gflops:.1f}" if total.gflops else "-"
        ours_ms, their_kind_ms = total.latency_us / 1e3, theirs.get(kind, 0.0) / 1e3
        lines.append(
            f"| {kind} | {total.calls} | {ours_ms:.3f} | {total.latency_us / kernel_us:.0%} | {gflops} | {their_kind_ms:.3f} | {ours_ms - their_kind_ms:+.3f} |"
        )
    return "\n".join(lines)


def _source_onnx(artifact: Path) -> Path:
    """The ONNX the artifact was compiled from: the manifest's path (relative to where compile ran), else beside the artifact."""
    recorded = Path(read_manifest(artifact).source["path"])
    return recorded if recorded.is_file() else artifact.parent / recorded.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    sections = []
    for artifact in args.artifacts:
        report = profile_artifact(artifact, runs=args.runs, threads=args.threads)
        source = _source_onnx(artifact)
        theirs, their_ms = onnxruntime_by_kind(source, random_inputs(read_manifest(artifact).inputs), args.threads, args.runs)
        sections.append(markdown(artifact, by_kind(report.layers), report.totals.latency_ms, theirs, their_ms))
        console.out.print(sections[-1] + "\n")
    if args.markdown:
        args.markdown.write_text("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
