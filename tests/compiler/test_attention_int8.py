"""Two activations multiplied in int8 (attention's Q x K^T and P x V): the packed dense with a batch
loop and B packed at run time, exact against the centred int32 matmul it replaced, across
x86_64 (AVX2), x86_64-avx512 (VNNI), rk3588 (sdot) and arm64 (NEON), the Arm builds under
qemu-aarch64, and within float rounding of ONNX Runtime's QDQ model. Depth 20 (not a multiple of 4) and 24 columns (not of 16) take
the padded paths; both operands are asymmetric, so all three zero-point corrections are live."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgekit
from edgekit.checker.agreement import with_quantized_outputs
from edgekit.compiler import integer_rules
from edgekit.reference import Reference

QEMU_CPUS = {"rk3588": "cortex-a76", "arm64": "cortex-a72"}  # sdot, and Armv8.0 NEON (smull + saddlp)
HEADS, ROWS, COLUMNS = 2, 8, 24
# 20: K padded to whole 4-deep steps; 64: whole 16s, where sdot takes four steps per load.
DEPTHS = (20, 64)


def _attention(depth: int) -> onnx.ModelProto:
    # Operands off-centre (inputs shifted in _feeds) so both grids have nonzero zero points.
    nodes = [
        helper.make_node("MatMul", ["q", "k"], ["scores"]),
        helper.make_node("Relu", ["scores"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, HEADS, ROWS, depth]), helper.make_tensor_value_info("k", TensorProto.FLOAT, [1, HEADS, depth, COLUMNS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))


def _feeds(seed: int, depth: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"q": (rng.standard_normal((1, HEADS, ROWS, depth)) + 0.7).astype(np.float32), "k": (rng.standard_normal((1, HEADS, depth, COLUMNS)) * 2 - 0.5).astype(np.float32)}


@pytest.fixture(scope="module", params=DEPTHS, ids=[f"depth{d}" for d in DEPTHS])
def exposed(request, tmp_path_factory):
    depth = request.param
    folder = tmp_path_factory.mktemp(f"attention{depth}")
    onnx.save(_attention(depth), folder / "attention.onnx")
    samples = [_feeds(seed, depth) for seed in range(16)]
    np.savez(folder / "calib.npz", q=np.stack([s["q"] for s in samples]), k=np.stack([s["k"] for s in samples]))
    int8 = edgekit.quantize(folder / "attention.onnx", folder / "calib.npz", folder / "attention.int8.onnx").model_path
    variant, _ = with_quantized_outputs(onnx.load(str(int8)))
    onnx.save(variant, folder / "exposed.onnx")
    return folder, depth


def _without_packed_activation_matmul(monkeypatch) -> None:
    rules = tuple(dataclasses.replace(r, when=lambda m: False) if r.name == "matmul-activations-packed" else r for r in integer_rules.RULES)
    monkeypatch.setattr(integer_rules, "_BY_OP", {op: tuple(r for r in rules if r.op == op) for op in dict.fromkeys(r.op for r in rules)})


@pytest.mark.parametrize("target", ["x86_64", "x86_64-avx512"])
def test_packed_activation_matmul_is_the_centred_matmuls_integers(exposed, target, tmp_path, monkeypatch):
    exposed, depth = exposed
    packed = edgekit.compile(exposed / "exposed.onnx", tmp_path / "packed", target=target)
    summary = json.loads((packed / "manifest.json").read_text())["build"]["integer"]["ir_dtype_summary"]
    assert any(key.startswith("batch_dense_") for key in summary), summary
    _without_packed_activation_matmul(monkeypatch)
    plain = edgekit.load(edgekit.compile(exposed / "exposed.onnx", tmp_path / "plain", target=target))
    fast = edgekit.load(packed)
    reference = Reference(onnx.load(str(exposed / "exposed.onnx")))
    for seed in (100, 101):
        feeds = _feeds(seed, depth)
        # y is the int32 accumulator times one scale (no requantization follows the matmul): the
        # same bytes mean the same integers.
        got, expected = fast(**feeds), plain(**feeds)
        assert set(got) == set(expected) >= {"y", "q_quantized", "k_quantized"}
        for name in expected:
            assert got[name].tobytes() == expected[name].tobytes(), name
        y = reference(feeds)["y"]
        assert float(np.abs(got["y"] - y).max()) <= 1e-5 * float(np.abs(y).max()), "not the QDQ model's products"


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(QEMU_CPUS))
def test_arm_packed_activation_matmul_under_qemu_is_bit_identical_to_x86(exposed, target, tmp_path):
    from edgekit.runtime.bundle import make_bundle

    exposed, depth = exposed
    artifact = edgekit.compile(exposed / "exposed.onnx", tmp_path / target, target=target)
    bundle = make_bundle(artifact, tmp_path / "bundle").folder
    x86 = edgekit.load(edgekit.compile(exposed / "exposed.onnx", tmp_path / "x86_64", target="x86_64"))
    feeds = _feeds(100, depth)
    arguments = []
    for name, value in feeds.items():
        np.save(tmp_path / f"{name}.npy", value)
        arguments += ["--input", f"{name}={tmp_path / f'{name}.npy'}"]
    out = tmp_path / "out.npz"
    command = ["qemu-aarch64", "-cpu", QEMU_CPUS[target], "-L", "/usr/aarch64-linux-gnu", str(bundle / "edgekit-runner"), str(bundle), *arguments, "--output", str(out), "--cpus", "0", "--threads", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=bundle)
    assert result.returncode == 0, result.stderr
    expected = x86(**feeds)
    assert "y" in expected
    with np.load(out) as got:
        for name, value in expected.items():
            assert got[name].tobytes() == value.tobytes(), f"{name} differs between x86_64 and {target}"
