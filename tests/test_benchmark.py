"""bench and FLOP counting: the numbers behind BENCHMARKS.md."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import edgekit
from edgekit.flops import count_flops
from edgekit.onnx_model import model_inputs, resolve_static_shapes

from conftest import DEMO_FACTORY, REPO


def _factory(spec: str):
    path, name = spec.rsplit(":", 1)
    module_spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.parametrize("source", [DEMO_FACTORY, f"{REPO / 'tests' / 'torch_models.py'}:mobile", f"{REPO / 'tests' / 'torch_models.py'}:two_heads"])
def test_flops_agree_with_torchs_own_counter(source, tmp_path):
    model, example = _factory(source)()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*example)
    # torch counts convolutions and matrix products (addmm, mm, bmm) as 2 x multiply-adds, as edgekit does.
    expected = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(op) or "mm" in str(op))
    path = tmp_path / "m.onnx"
    edgekit.export(source, path)
    proto = onnx.load(path)
    counted = count_flops(proto, resolve_static_shapes(model_inputs(proto), {}))
    assert counted.total == expected


def test_bench_reports_a_consistent_side_by_side(cli, demo_artifact, demo_onnx, tmp_path):
    path = tmp_path / "bench.json"
    result = cli("bench", demo_artifact, "--reference", demo_onnx, "--repeat", "20", "--warmup", "2", "--json", path)

    assert result.exit_code == 0, result.stderr
    assert "edgekit / ONNX Runtime p50" in result.stdout
    report = json.loads(path.read_text())
    timing = report["timing"]
    assert timing["edgekit"]["runs"] == timing["onnxruntime"]["runs"] == 20
    assert report["ratio_p50"] == pytest.approx(timing["edgekit"]["p50_ms"] / timing["onnxruntime"]["p50_ms"])
    assert report["gflop_per_inference"] == pytest.approx(0.009733376)  # the demo's convolutions and linear layer
    assert report["edgekit_gflops"] == pytest.approx(report["gflop_per_inference"] / (timing["edgekit"]["p50_ms"] / 1e3))
    assert 0 < report["edgekit_fraction_of_peak"] < 1
