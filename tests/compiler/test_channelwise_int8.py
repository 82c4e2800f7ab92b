"""The 8-bit depthwise schedule (edgekit/compiler/schedules/channelwise_int8.py): the integers of the
float-sized schedule it replaced, on odd and even row widths, stride 1 and 2, on x86_64 and on
rk3588 under qemu-aarch64; and ONNX Runtime's to one LSB."""

from __future__ import annotations

import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.checker.agreement import with_quantized_outputs
from edgekit.compiler.schedules import channelwise_int8, conv2d
from edgekit.reference import Reference

QEMU = ["qemu-aarch64", "-cpu", "cortex-a76", "-L", "/usr/aarch64-linux-gnu"]
CHANNELS = 8
# (input size, stride): output rows of 7, 14 and 56 (8-lane pieces) at stride 1; at stride 2 padded
# rows of 16 and 30 (even: deinterleaved) and 9 and 15 (odd: the plain copy).
SHAPES = [(7, 1), (14, 1), (56, 1), (14, 2), (28, 2), (7, 2), (13, 2)]


def _depthwise(size: int, stride: int) -> onnx.ModelProto:
    rng = np.random.default_rng(size * 10 + stride)
    weights = {"w": rng.standard_normal((CHANNELS, 1, 3, 3)) * 0.4, "b": rng.standard_normal(CHANNELS) * 0.1}
    weights |= {"w2": rng.standard_normal((CHANNELS, 1, 3, 3)) * 0.4, "b2": rng.standard_normal(CHANNELS) * 0.1}
    # The strided layer ends in a requantization to int8 (an output here), the second in float.
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], strides=[stride, stride], pads=[1] * 4, group=CHANNELS),
        helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1] * 4, group=CHANNELS),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["y"]),
    ]
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    initializers += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"), numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    graph = helper.make_graph(
        nodes, "depthwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, size, size])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=initializers
    )
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))


def _feeds(size: int, seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, CHANNELS, size, size)).astype(np.float32) * 2}


@pytest.fixture(scope="module", params=SHAPES, ids=[f"{size}px_stride{stride}" for size, stride in SHAPES])
def exposed(request, tmp_path_factory):
    """The quantized depthwise layer with its int8 tensors as outputs, and its input size."""
    size, stride = request.param
    folder = tmp_path_factory.mktemp(f"dw{size}s{stride}")
    onnx.save(_depthwise(size, stride), folder / "dw.onnx")
    np.savez(folder / "calib.npz", x=np.stack([_feeds(size, seed)["x"] for seed in range(32)]))
    int8 = edgekit.quantize(folder / "dw.onnx", folder / "calib.npz", folder / "dw.int8.onnx").model_path
    variant, _ = with_quantized_outputs(onnx.load(str(int8)))
    onnx.save(variant, folder / "exposed.onnx")
    return folder, size


def _int8(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: value for name, value in outputs.items() if value.dtype in (np.int8, np.uint8)}


def test_int8_depthwise_computes_the_float_schedules_integers_and_onnxruntimes(exposed, monkeypatch):
    folder, size = exposed
    fast = edgekit.load(edgekit.compile(folder / "exposed.onnx", folder / "x86_64", target="x86_64"))
    monkeypatch.setattr(conv2d, "schedule_channelwise_int8", lambda *args: False)
    plain = edgekit.load(edgekit.compile(folder / "exposed.onnx", folder / "x86_64_plain", target="x86_64"))
    reference = Reference(onnx.load(str(folder / "exposed.onnx")))
    for seed in (100, 101):
        feeds = _feeds(size, seed)
        got, expected = _int8(fast(**feeds)), _int8(plain(**feeds))
        assert len(expected) >= 2 and set(got) == set(expected)
        for name in expected:
            assert got[name].tobytes() == expected[name].tobytes(), name
        for name, value in _int8(reference(feeds)).items():
            assert np.abs(got[name].astype(np.int32) - value.astype(np.int32)).max() <= 1, name


@pytest.mark.slow
def test_rk3588_int8_depthwise_under_qemu_is_bit_identical_to_x86(exposed, tmp_path):
    from edgekit.runtime.bundle import make_bundle

    folder, size = exposed
    artifact = edgekit.compile(folder / "exposed.onnx", tmp_path / "rk3588", target="rk3588")
    bundle = make_bundle(artifact, tmp_path / "bundle").folder
    x86 = edgekit.load(folder / "x86_64") if (folder / "x86_64").exists() else edgekit.load(edgekit.compile(folder / "exposed.onnx", tmp_path / "x86_64", target="x86_64"))
    feeds = _feeds(size, 100)
    np.save(tmp_path / "x.npy", feeds["x"])
    out = tmp_path / "out.npz"
    command = [*QEMU, str(bundle / "edgekit-runner"), str(bundle), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(out), "--cpus", "0", "--threads", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=bundle)
    assert result.returncode == 0, result.stderr
    expected = _int8(x86(**feeds))
    with np.load(out) as got:
        for name, value in expected.items():
            assert got[name].tobytes() == value.tobytes(), f"{name} differs between x86_64 and rk3588"


def test_stride_two_rows_are_deinterleaved_into_contiguous_taps():
    """The row tile and the strided copy's intrinsic for the shapes MobileNetV2 has."""
    from edgekit.compiler.schedules.common import CpuShape

    neon = CpuShape(lanes=4, vector_registers=32, cores=4)
    assert channelwise_int8._row_tile(56, neon) == (8, 8)
    assert channelwise_int8._row_tile(28, neon) == (28, 28)
    assert channelwise_int8._row_tile(7, neon) == (7, 7)
    assert channelwise_int8._deinterleave_intrinsic(29, "int8") == "edgekit_deinterleave_int8_29"
