"""`edgekit profile`: per-layer FLOPs, bytes, latency and roofline, checked against counts from the shapes."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil

import pytest
import torch
from conftest import CALIB_DATA, REPO, one_line_error

import edgekit
from edgekit.measure.memory_plan import Instruction, parse_main, peak_live_storage
from edgekit.measure.profile import profile_artifact


def test_profile_demo_prints_a_table_and_writes_json(cli, demo_artifact, tmp_path):
    path = tmp_path / "profile.json"
    result = cli("profile", demo_artifact, "--runs", "5", "--json", path)
    assert result.exit_code == 0, result.stderr
    assert "fused_conv2d" in result.stdout and "% roof" in result.stdout and "peak activations" in result.stdout
    report = json.loads(path.read_text())
    layers, totals = report["layers"], report["totals"]
    assert [layer["index"] for layer in layers] == list(range(len(layers))) and len(layers) >= 5
    assert totals["flops"] == sum(layer["flops"] for layer in layers) > 0
    assert totals["macs"] == sum(layer["macs"] for layer in layers)
    assert all(layer["latency_us"] > 0 and layer["fraction"] > 0 for layer in layers)
    assert all(layer["bound"] in ("compute", "memory") for layer in layers)
    assert 0 < totals["peak_activation_bytes"] <= totals["activation_storage_bytes"]
    assert totals["param_bytes"] > 0 and totals["latency_ms"] > 0 and report["notes"] == []
    conv = next(layer for layer in layers if layer["name"].startswith("fused_conv2d"))
    assert conv["bytes_moved"] == conv["param_bytes"] + conv["activation_bytes"]
    assert conv["intensity"] == pytest.approx(conv["flops"] / conv["bytes_moved"])


def test_profile_needs_neither_the_source_onnx_nor_the_compile_directory(demo_artifact, tmp_path, monkeypatch):
    # The manifest hashes the other files, not itself: pointing source.path elsewhere keeps the artifact valid.
    moved = tmp_path / "digits"
    shutil.copytree(demo_artifact, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"]["path"] = str(tmp_path / "gone.onnx")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = profile_artifact(moved, runs=2, warmup=1)
    assert report.totals.flops == sum(layer.flops for layer in report.layers) > 0 and report.notes == []
    assert all(layer.latency_us > 0 and layer.activation_bytes > 0 for layer in report.layers)


def test_profile_of_an_artifact_without_kernel_costs_says_flops_are_unknown(demo_artifact, tmp_path):
    old = tmp_path / "digits"
    shutil.copytree(demo_artifact, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["kernels"]  # as an edgekit that did not count them wrote it
    (old / "manifest.json").write_text(json.dumps(manifest))
    report = profile_artifact(old, runs=2, warmup=1)
    assert report.flops_source.startswith("unknown") and report.totals.flops is None
    assert all(layer.flops is None and layer.latency_us > 0 and layer.activation_bytes > 0 for layer in report.layers)


@pytest.mark.slow
def test_profile_of_a_vnni_int8_artifact_from_another_directory_counts_every_compute_kernel(cli, demo_onnx, tmp_path, monkeypatch):
    """The VNNI integer rewrite renames kernels (conv2d_u8i8_packed): counted at compile, they match at run time."""
    monkeypatch.chdir(tmp_path)
    int8 = tmp_path / "digits.int8.onnx"
    assert cli("quantize", demo_onnx, "--calib", CALIB_DATA, "-o", int8).exit_code == 0
    build = tmp_path / "build"
    build.mkdir()
    monkeypatch.chdir(build)
    assert cli("compile", "../digits.int8.onnx", "--target", "x86_64-avx512", "-o", "int8-avx512").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = profile_artifact(build / "int8-avx512", runs=2, warmup=1)
    compute = [layer for layer in report.layers if "conv2d" in layer.name or "matmul" in layer.name]
    assert sum("conv2d_u8i8_packed" in layer.name for layer in compute) == 4
    assert all(layer.flops > 0 and layer.macs > 0 for layer in compute), [(layer.name, layer.flops, layer.macs) for layer in compute]
    assert report.totals.flops == sum(layer.flops for layer in report.layers) and report.notes == []


def test_profile_missing_artifact_is_one_error_line(cli, tmp_path):
    result = cli("profile", tmp_path / "nope")
    assert result.exit_code == 2
    assert "artifact folder not found" in one_line_error(result)


def test_peak_live_storage_follows_tensors_carved_from_storage():
    # s1 (100 B) holds t2 past s1's own release; s3 (10 B) is allocated while t2 lives.
    program = [
        Instruction("call", "vm.builtin.alloc_storage", ["%vm", "c[0]"], "%1"),
        Instruction("call", "vm.builtin.alloc_tensor", ["%1", "i0", "c[1]"], "%2"),
        Instruction("call", "vm.builtin.null_value", [], "%1"),
        Instruction("call", "vm.builtin.alloc_storage", ["%vm", "c[2]"], "%3"),
        Instruction("call", "kernel", ["%2", "c[3]"], "%void"),
        Instruction("call", "vm.builtin.null_value", [], "%2"),
        Instruction("call", "vm.builtin.alloc_storage", ["%vm", "c[0]"], "%4"),
        Instruction("ret", "", ["%3"], ""),
    ]
    assert peak_live_storage(program, [100, 0, 0, 10, 0, 0, 50]) == 110


def test_parse_main_reads_calls_and_refuses_branches():
    text = "@main:\n  call  f in: %0, c[1] dst: %void\n  ret   %0\n\n@f packed_func;\n"
    assert parse_main(text) == [Instruction("call", "f", ["%0", "c[1]"], "%void"), Instruction("ret", "", ["%0"], "")]
    assert parse_main("@main:\n  goto  3\n") is None


# ---- ResNet-18 at 224x224 against an analytic count ----


def _resnet18():
    spec = importlib.util.spec_from_file_location("bench_models", REPO / "scripts" / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.resnet18()


def _analytic(model: torch.nn.Module, inputs) -> tuple[int, int]:
    """(FLOPs, weight bytes) of the conv and linear layers from their shapes: 2 FLOPs per MAC."""
    flops: list[int] = []

    def conv(layer, _inputs, output):
        _, c_out, h_out, w_out = output.shape
        kh, kw = layer.kernel_size
        flops.append(2 * layer.in_channels // layer.groups * kh * kw * c_out * h_out * w_out * output.shape[0])

    def linear(layer, _inputs, output):
        flops.append(2 * layer.in_features * layer.out_features * math.prod(output.shape[:-1]))

    hooks = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    weights = [p for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for p in m.parameters(recurse=False)]
    return sum(flops), sum(p.numel() * p.element_size() for p in weights)


@pytest.fixture(scope="module")
def resnet18_artifact(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet18")
    onnx_path = folder / "resnet18.onnx"
    edgekit.export(f"{REPO / 'scripts' / 'bench_models.py'}:resnet18", onnx_path)
    return edgekit.compile(onnx_path, folder / "resnet18_x86_64", target="x86_64")


@pytest.mark.slow
def test_profile_resnet18_totals_match_the_analytic_count(resnet18_artifact):
    flops, weight_bytes = _analytic(*_resnet18())
    assert flops == pytest.approx(3.628e9, rel=1e-3)  # torchvision's resnet18: 1.814 GMAC
    report = profile_artifact(resnet18_artifact, runs=5, warmup=1)
    totals = report.totals
    assert totals.flops == sum(layer.flops for layer in report.layers)
    assert totals.flops == pytest.approx(flops, rel=0.01)  # the rest is ReLU, residual adds, pooling
    assert 2 * totals.macs == flops  # the multiply-accumulates alone are exactly the conv and linear layers
    assert totals.param_bytes == pytest.approx(weight_bytes, rel=0.01)
    assert sum(layer.name.startswith(("fused_conv2d", "conv2d")) for layer in report.layers) == 20
    assert all(layer.latency_us > 0 for layer in report.layers)
    assert all(0 < layer.fraction <= 1.5 for layer in report.layers), [(layer.name, layer.fraction) for layer in report.layers]
    # The largest activation (64x112x112 fp32, 3.06 MiB) must fit in the plan's peak, which is below its total.
    assert 64 * 112 * 112 * 4 < totals.peak_activation_bytes <= totals.activation_storage_bytes
