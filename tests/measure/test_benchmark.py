"""bench and FLOP counting: the numbers behind BENCHMARKS.md."""

from __future__ import annotations

import importlib.util
import json
import sys

import onnx
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import edgekit
from edgekit.measure.bench import BenchReport, SideBySide
from edgekit.measure.flops import count_flops
from edgekit.onnx_model import model_inputs, resolve_static_shapes
from edgekit.runtime import LatencyStats

from conftest import DEMO_FACTORY, REPO


def _factory(spec: str):
    path, name = spec.rsplit(":", 1)
    module_spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def _torch_flops(source: str) -> int:
    """FLOPs of one inference as PyTorch's own counter sees them: convolutions and matrix products
    (addmm, mm, bmm), each multiply-add 2 FLOPs, as edgekit counts."""
    model, example = _factory(source)()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*example)
    return sum(v for op, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(op) or "mm" in str(op))


@pytest.mark.parametrize("source", [DEMO_FACTORY, f"{REPO / 'tests' / 'torch_models.py'}:mobile", f"{REPO / 'tests' / 'torch_models.py'}:two_heads"])
def test_flops_agree_with_torchs_own_counter(source, tmp_path):
    path = tmp_path / "m.onnx"
    edgekit.export(source, path)
    proto = onnx.load(path)
    counted = count_flops(proto, resolve_static_shapes(model_inputs(proto), {}))
    assert counted.total == _torch_flops(source)


def test_bench_reports_a_consistent_side_by_side(cli, demo_artifact, demo_onnx, tmp_path):
    path = tmp_path / "bench.json"
    result = cli("bench", demo_artifact, "--reference", demo_onnx, "--repeat", "20", "--warmup", "2", "--json", path)

    assert result.exit_code == 0, result.stderr
    assert "edgekit / ONNX Runtime p50" in result.stdout
    report = json.loads(path.read_text())
    timing = report["timing"]
    assert timing["edgekit"]["runs"] == timing["onnxruntime"]["runs"] == 20
    assert report["gflop_per_inference"] == pytest.approx(_torch_flops(DEMO_FACTORY) / 1e9)
    assert report["ratio_p50"] > 0 and report["edgekit_gflops"] > 0 and report["onnxruntime_gflops"] > 0
    assert 0 < report["edgekit_fraction_of_peak"] < 1


def _latency(p50_ms: float) -> LatencyStats:
    return LatencyStats(runs=10, warmup=1, threads=2, p50_ms=p50_ms, p90_ms=p50_ms, p99_ms=p50_ms, mean_ms=p50_ms, min_ms=p50_ms, max_ms=p50_ms, cpu_ms_per_inference=p50_ms)


def test_bench_report_figures_on_hand_made_timings():
    # 0.01 GFLOP per inference: 2 ms is 5 GFLOP/s, 4 ms 2.5 GFLOP/s; edgekit takes half of ONNX Runtime's
    # time, and 5 of a 10 GFLOP/s peak is half of it.
    timing = SideBySide(machine="test", threads=2, edgekit=_latency(2.0), onnxruntime=_latency(4.0))
    report = BenchReport(model="m", target="x86_64", gflop_per_inference=0.01, peak_gflops=10.0, timing=timing).to_dict()
    assert report["ratio_p50"] == pytest.approx(0.5)
    assert report["edgekit_gflops"] == pytest.approx(5.0) and report["onnxruntime_gflops"] == pytest.approx(2.5)
    assert report["edgekit_fraction_of_peak"] == pytest.approx(0.5)
    unknown_peak = BenchReport(model="m", target="x86_64", gflop_per_inference=0.01, peak_gflops=0.0, timing=timing)
    assert unknown_peak.to_dict()["edgekit_fraction_of_peak"] is None


def _script(name: str):
    module_spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses look their module up there
    module_spec.loader.exec_module(module)
    return module


def test_benchmark_script_replaces_only_its_section(tmp_path):
    benchmark = _script("benchmark")
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\nintro by hand\n\n{benchmark.BEGIN}\nold table\n{benchmark.END}\n\n## int8\n\nkept\n")
    benchmark.write_section(path, f"{benchmark.BEGIN}\nnew table\n{benchmark.END}")
    text = path.read_text()
    assert "new table" in text and "old table" not in text
    assert text.startswith("# Benchmarks\n\nintro by hand") and text.endswith("## int8\n\nkept\n")
    assert not list(tmp_path.glob("*.tmp"))


def test_time_by_kind_names_the_kernels_the_profile_times():
    from edgekit.measure.profile import LayerProfile

    def layer(name, args, latency, flops=None):
        return LayerProfile(0, name, "fp32", flops, None, 0, 0, latency, None, None, 0.0, None, None, args)

    layers = [
        layer("fused_conv2d6_maximum3_minimum3_prepacked", ["1x24x56x56 float32", "param 3x24x1x1x48 float32"], 100.0, 2_000_000),
        layer("fused_conv2d4_maximum2_minimum2", ["1x96x112x112 float32", "param 96x1x3x3 float32"], 50.0),
        layer("fused_conv2d1_add_prepacked", ["1x64x56x56 float32", "param 8x64x3x3x8 float32"], 30.0),
        layer("fused_matmul5_add8_prepacked", ["128x1024 float32", "param 4x1024x64 float32"], 20.0),
        layer("fused_reshape7_divide_erf_add7_multiply2", ["128x1024 float32"], 10.0),
        layer("softmax", ["1x4x128x128 float32"], 5.0),
    ]
    totals = {t.kind: t for t in _script("time_by_kind").by_kind(layers)}
    assert list(totals) == ["conv 1x1", "conv depthwise 3x3", "conv 3x3", "matmul / dense", "GELU (erf)", "softmax"]
    assert totals["conv 1x1"].gflops == pytest.approx(20.0)  # 2 MFLOP in 100 us
