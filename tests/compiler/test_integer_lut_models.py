"""Networks whose activations are lookup tables run integer end to end: a YOLO-style detector block
(Conv-BN-SiLU, C2f split/residual/concat, nearest upsample), a MobileNetV3-style block (hard-swish,
squeeze-excite with hard-sigmoid), an MTCNN-style PReLU net, a GELU net (the chain torch exports) and PP-LCNetV3-style blocks (affine, hard-swish as paddle2onnx writes it, affine). Quantized with the default recipe,
compiled for x86_64 and x86_64-avx512: no float op is left between the input quantize and the head's
dequantize, the outputs agree with ONNX Runtime on the QDQ model, and both targets compute the same bits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgekit
from conftest import REPO
from edgekit.checker.agreement import with_quantized_outputs
from edgekit.compiler.integer_check import MAX_OUTPUT_LSB, output_lsbs
from edgekit.reference import Reference

MODELS = {
    # name: (input shape, table functions the quantizer must make, tables the compiler must emit)
    "yolo_block": ((1, 3, 64, 64), {"Sigmoid": 10}, 10),
    "mobile_v3_block": ((1, 3, 32, 32), {"HardSwish": 3, "HardSigmoid": 1}, 4),
    "prelu_net": ((1, 3, 24, 24), {"PRelu": 3, "LeakyRelu": 1}, 4),
    # GELU as torch exports it: Div, Erf, Add, Mul, Mul of one source, one table each.
    "gelu_net": ((1, 3, 16, 16), {"Erf": 3, "Div": 3}, 3),
    # paddle2onnx's affine, hard-swish as Add/Clip/Mul/Div, affine: one table of eight nodes each.
    "lcnet_net": ((1, 3, 32, 32), {"Div": 2, "Clip": 2}, 2),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def built(request, workdir) -> dict:
    name = request.param
    shape, _, _ = MODELS[name]
    folder = workdir / "lut" / name
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / f"{name}.onnx"
    edgekit.export(f"{REPO / 'tests' / 'lut_models.py'}:{name}", onnx_path, input_names=["x"])
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=rng.standard_normal((32, *shape)).astype(np.float32))
    int8 = edgekit.quantize(onnx_path, folder / "calib.npz", folder / f"{name}.int8.onnx").model_path
    artifacts = {target: edgekit.compile(int8, folder / target, target=target) for target in ("x86_64", "x86_64-avx512")}
    return {"name": name, "int8": Path(int8), "artifacts": artifacts, "calib": folder / "calib.npz"}


def integer_report(artifact: Path) -> dict:
    return json.loads((artifact / "manifest.json").read_text())["build"]["integer"]


def test_the_quantizer_puts_each_table_function_on_int8_grids(built):
    _, functions, _ = MODELS[built["name"]]
    record = json.loads(built["int8"].with_suffix(".quant.json").read_text())
    for op_type, count in functions.items():
        nodes = [n for n in record["nodes"] if n["op_type"] == op_type]
        assert len(nodes) == count and all(n["precision"] == "int8" for n in nodes), nodes
        assert all(any(note.startswith("lookup table:") and "into the int8 grid of" in note for note in n["notes"]) for n in nodes), nodes
    if built["name"] == "yolo_block":  # SiLU: no QDQ between the sigmoid and its product
        assert len(record["table_products"]) == 10
    if built["name"] == "gelu_net":  # GELU: no QDQ inside the chain, whose five nodes are one table
        assert [len(c["nodes"]) for c in record["lookup_chains"]] == [5, 5, 5]
    if built["name"] == "lcnet_net":
        assert [len(c["nodes"]) for c in record["lookup_chains"]] == [8, 8]
        quantized = {t["name"] for t in record["tensors"]}
        assert not quantized & {t for c in record["lookup_chains"] for t in c["unquantized_tensors"]}


@pytest.mark.parametrize("target", ["x86_64", "x86_64-avx512"])
def test_no_float_op_is_left_between_the_input_quantize_and_the_head(built, target):
    _, _, tables = MODELS[built["name"]]
    integer = integer_report(built["artifacts"][target])
    assert integer["integer_ops"]["lookup table"] == tables
    assert len(integer["lookup_tables"]) == tables and all(t["entries"] % 256 == 0 for t in integer["lookup_tables"])
    # What stays float is each head's dequantize (one multiply by the output scale per float output).
    outputs = len(json.loads((built["artifacts"][target] / "manifest.json").read_text())["outputs"])
    assert integer["float_ops"] == {"multiply": outputs}, integer["float_ops"]
    summary = integer["ir_dtype_summary"]
    assert not any(key.startswith(("sigmoid", "add(float", "clip(float", "divide", "nn.prelu", "nn.leakyrelu", "image.resize2d(float", "split(float")) for key in summary), summary
    assert summary["take(int8) -> int8"] == tables
    assert integer["self_check"]["passed"] is True


def test_outputs_agree_with_onnxruntime_and_are_bit_identical_across_targets(built):
    reference = Reference(built["int8"])
    lsbs = output_lsbs(__import__("onnx").load(str(built["int8"])))
    plain, avx512 = (edgekit.load(built["artifacts"][t]) for t in ("x86_64", "x86_64-avx512"))
    with np.load(built["calib"]) as data:
        samples = [data["x"][i] for i in range(0, 32, 4)]
    for x in samples:
        ours, vnni, theirs = plain(x=x), avx512(x=x), reference({"x": x})
        for name, value in ours.items():
            assert value.tobytes() == vnni[name].tobytes(), f"{name} differs between x86_64 and x86_64-avx512"
            lsb = lsbs.get(name)
            if lsb:
                assert np.max(np.abs(value - theirs[name])) / lsb <= MAX_OUTPUT_LSB, name
            else:
                # A float head (a conv not quantized at its output): the integer self-check's tolerance.
                assert np.max(np.abs(value - theirs[name])) <= 0.05 * np.max(np.abs(theirs[name])), name


def test_every_int8_tensor_agrees_with_onnxruntime_to_the_lsb(built, tmp_path):
    """Tables round like QuantizeLinear, products and sums requantize half up: a tensor differs from ONNX
    Runtime's by an LSB now and then. A table whose output grid is finer than its input's (SiLU's
    output range is narrower than its input's: codes 76 and 77 map to 57 and 59) turns an upstream one-LSB flip into two: within the
    self-check's tolerance, and rare: flips compound layer by layer, so a deep tensor has a few in a
    thousand (0.13% in the detector block's last C2f), never a wrong value beyond the tolerance."""
    import onnx

    variant, _ = with_quantized_outputs(onnx.load(str(built["int8"])))
    path = tmp_path / "exposed.onnx"
    onnx.save(variant, str(path))
    compiled = edgekit.load(edgekit.compile(path, tmp_path / "exposed", target="x86_64"))
    reference = Reference(path)
    with np.load(built["calib"]) as data:
        x = data["x"][1]
    ours, theirs = compiled(x=x), reference({"x": x})
    quantized = [name for name in ours if ours[name].dtype in (np.int8, np.uint8)]
    assert len(quantized) >= 8
    for name in quantized:
        diff = np.abs(ours[name].astype(np.int32) - theirs[name].astype(np.int32))
        assert diff.max() <= MAX_OUTPUT_LSB and np.mean(diff == 0) >= 0.99, (name, diff.max(), np.mean(diff == 0))


@pytest.mark.slow
def test_rk3588_build_under_qemu_computes_the_x86_bits(built, tmp_path):
    """Tables are gathers computed at compile time: the A76 build (sdot kernels, under qemu with
    that core's features) computes every output bit for bit as the x86_64 build does."""
    import subprocess

    from edgekit.runtime.bundle import make_bundle

    artifact = edgekit.compile(built["int8"], tmp_path / "rk3588", target="rk3588")
    assert integer_report(artifact)["integer_ops"]["lookup table"] == MODELS[built["name"]][2]
    bundle = make_bundle(artifact, tmp_path / "bundle").folder
    x86 = edgekit.load(built["artifacts"]["x86_64"], threads=1)
    with np.load(built["calib"]) as data:
        x = np.ascontiguousarray(data["x"][3])
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    command = ["qemu-aarch64", "-cpu", "cortex-a76", "-L", "/usr/aarch64-linux-gnu", str(bundle / "edgekit-runner"), str(bundle),
               "--input", f"x={tmp_path / 'x.npy'}", "--output", str(out), "--cpus", "0", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=bundle)
    assert result.returncode == 0, result.stderr
    expected = x86(x=x)
    with np.load(out) as got:
        assert set(got.files) == set(expected)
        for name, value in expected.items():
            assert got[name].tobytes() == value.tobytes(), f"{name} differs between x86_64 and rk3588"
