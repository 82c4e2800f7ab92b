"""Integer-only execution: QDQ models compile into int8 kernels that agree with ONNX Runtime to the
LSB, keep the demo's accuracy, and compute the same bits on every run, thread count and target."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

import edgekit
from conftest import CALIB_DATA, EVAL_DATA, REPO, one_line_error
from edgekit.checker.agreement import compare_with_onnxruntime, with_quantized_outputs
from edgekit.reference import Reference
from quant_models import sentence_batch

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]


@pytest.fixture(scope="module")
def int8_model(workdir, demo_onnx) -> Path:
    return edgekit.quantize(demo_onnx, CALIB_DATA, workdir / "integer" / "digits.int8.onnx").model_path


@pytest.fixture(scope="module")
def exposed(workdir, int8_model) -> Path:
    """The quantized demo with every int8 tensor as an extra output, compiled for x86_64."""
    variant, _ = with_quantized_outputs(onnx.load(str(int8_model)))
    path = workdir / "integer" / "exposed.onnx"
    onnx.save(variant, str(path))
    return path


@pytest.fixture(scope="module")
def exposed_x86(workdir, exposed) -> Path:
    return edgekit.compile(exposed, workdir / "integer" / "exposed_x86_64", target="x86_64")


@pytest.fixture(scope="module")
def samples() -> list[dict[str, np.ndarray]]:
    with np.load(EVAL_DATA) as data:
        return [{"image": data["image"][i]} for i in range(0, 360, 36)]


def test_conv_and_matmul_run_in_int8(tmp_path, int8_model):
    artifact = edgekit.compile(int8_model, tmp_path / "int8", target="x86_64")
    integer = json.loads((artifact / "manifest.json").read_text())["build"]["integer"]
    summary = integer["ir_dtype_summary"]
    # x86_64 has AVX2: the convolutions take the packed int16 kernel (vpmaddwd), and so does the
    # 10-class matmul, on one 16-column block cut back to 10.
    assert packed_convolutions(summary, "int16, int16") == 4
    assert sum(n for key, n in summary.items() if key.startswith("dense_i16i16_packed(")) == 1
    assert not any(key.startswith("matmul(int8") for key in summary)
    assert not any(key.startswith(("nn.conv2d(float", "matmul(float")) for key in summary)
    # Floats are left only at region edges (input quantize, output dequantize); the ReduceMean
    # is an int32 sum on a finer grid.
    assert set(integer["float_ops"]) <= {"add", "multiply", "clip"}
    assert integer["integer_ops"]["mean"] == 1
    assert integer["integer_ops"]["requantize"] >= 5
    # The rewrite checked itself against the QDQ model in ONNX Runtime: a logit is a dequantized
    # float, so it counts against its range, and the demo's integer path lands well inside it.
    check = integer["self_check"]
    assert check["passed"] is True and check["samples"] == 4 and [o["name"] for o in check["outputs"]] == ["logits"]
    assert 0 <= check["outputs"][0]["max_rel"] < check["tolerance"]["float_outputs_max_rel"]


def test_integer_artifact_checks_against_the_qdq_model_and_keeps_accuracy(tmp_path, cli, int8_model):
    artifact = tmp_path / "int8"
    assert cli("compile", int8_model, "-o", artifact).exit_code == 0
    result = cli("check", artifact, "--reference", int8_model, "--data", EVAL_DATA, "--max-abs", "0.1", "--min-cosine", "0.999",
                 "--min-top1", "0.99", "--json", tmp_path / "check.json")
    assert result.exit_code == 0, result.stdout + result.stderr
    logits = json.loads((tmp_path / "check.json").read_text())["outputs"][0]
    # Top-1 through the integer path within 0.2 points of the QDQ model in ONNX Runtime.
    assert abs(logits["accuracy_artifact"] - logits["accuracy_reference"]) <= 0.002


def test_int8_tensors_agree_with_onnxruntime_to_one_lsb(int8_model):
    rows = compare_with_onnxruntime(int8_model, EVAL_DATA, samples=60)
    int8_rows = [r for r in rows if r.kind == "int8"]
    assert len(int8_rows) >= 9
    inputs = quantized_inputs(onnx.load(str(int8_model)))
    assert inputs["relu_3_quantized"] == 2 and inputs["relu_2_quantized"] == 1  # the residual Add
    for row in int8_rows:
        # Integer accumulation is exact; the only differences are rounding ties and float
        # rounding in ONNX Runtime's float-domain QDQ execution: one LSB, rarely, per tensor.
        # Each run computes a tensor from its own inputs, so an op fed by k int8 tensors that
        # each may be one LSB off can land up to k LSB off.
        assert row.max_lsb <= max(1, inputs.get(row.tensor, 1)), row
        assert row.equal_fraction >= 0.999, row


def quantized_inputs(model: onnx.ModelProto) -> dict[str, int]:
    """For each quantized tensor, how many int8 activations feed the float region that computes it."""
    producer = {out: node for node in model.graph.node for out in node.output}
    constants = {init.name for init in model.graph.initializer}

    def sources(tensor: str) -> set[str]:
        node = producer.get(tensor)
        if node is None:
            return set()
        if node.op_type == "DequantizeLinear":
            return set() if node.input[0] in constants else {node.input[0]}
        return set().union(*(sources(name) for name in node.input if name))

    return {node.output[0]: len(sources(node.input[0])) for node in model.graph.node if node.op_type == "QuantizeLinear"}


def test_outputs_are_bit_identical_across_runs_and_thread_counts(exposed_x86, samples):
    one = edgekit.load(exposed_x86, threads=1)
    two = edgekit.load(exposed_x86, threads=2)
    for feeds in samples:
        first, again, threaded = one(**feeds), one(**feeds), two(**feeds)
        for name in first:
            assert first[name].tobytes() == again[name].tobytes(), name
            assert first[name].tobytes() == threaded[name].tobytes(), name


def disassembly(artifact: Path, objdump: str = "objdump") -> str:
    return subprocess.run([objdump, "-d", str(artifact / "model.so")], capture_output=True, text=True, check=True).stdout


def integer_summary(artifact: Path) -> dict[str, int]:
    return json.loads((artifact / "manifest.json").read_text())["build"]["integer"]["ir_dtype_summary"]


def packed_convolutions(summary: dict[str, int], grid: str) -> int:
    return sum(n for key, n in summary.items() if key.startswith("conv2d_") and "_packed" in key.split("(")[0] and key.endswith(f"({grid}) -> int32"))


@pytest.fixture(scope="module")
def exposed_plain(workdir, exposed) -> Path:
    """The exposed demo for a generic x86-64 (no AVX2, no dot products): the plain int8 convolution."""
    toml = (REPO / "targets" / "x86_64.toml").read_text().replace('mcpu = "x86-64-v3"', 'mcpu = "x86-64"').replace('name = "x86_64"', 'name = "x86_64-baseline"')
    target = workdir / "integer" / "x86_64-baseline.toml"
    target.write_text(toml)
    return edgekit.compile(exposed, workdir / "integer" / "exposed_plain", target=str(target))


def int8_outputs(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The int8/uint8 tensors among the outputs: the integers every target must compute alike.
    (Float tails may differ in the last bit between a target with FMA and one without.)"""
    return {name: value for name, value in outputs.items() if value.dtype in (np.int8, np.uint8)}


def test_avx2_build_uses_vpmaddwd_and_computes_the_plain_integers(exposed_x86, exposed_plain, samples):
    """x86_64 (x86-64-v3, AVX2) packs every convolution for vpmaddwd on int16; a CPU without AVX2
    takes the plain int8 convolution. Different kernels, same integers."""
    assert packed_convolutions(integer_summary(exposed_x86), "int16, int16") == 4
    assert integer_summary(exposed_plain)["nn.conv2d(int8, int8) -> int32"] == 4
    assert disassembly(exposed_x86).count("vpmaddwd") >= 4
    packed, plain = edgekit.load(exposed_x86, threads=2), edgekit.load(exposed_plain, threads=1)
    for feeds in samples:
        got, expected = int8_outputs(packed(**feeds)), int8_outputs(plain(**feeds))
        assert len(expected) >= 7 and set(got) == set(expected)
        for name in expected:
            assert got[name].tobytes() == expected[name].tobytes(), name


@pytest.mark.slow
@pytest.mark.parametrize(("target", "instruction", "qemu_cpu"), [("rk3588", "sdot", "cortex-a76"), ("arm64", "smull", "cortex-a72")])
def test_arm64_builds_under_qemu_use_their_dot_products_and_are_bit_identical_to_x86(tmp_path, exposed, exposed_x86, samples, target, instruction, qemu_cpu):
    """rk3588 (A76, dotprod) packs for sdot, arm64 (Armv8.0) for smull/saddlp: under qemu with that
    core's features, every output equals the x86_64 build's bit for bit."""
    from edgekit.runtime.bundle import make_bundle

    artifact = edgekit.compile(exposed, tmp_path / f"exposed_{target}", target=target)
    assert packed_convolutions(integer_summary(artifact), "int8, int8") == 4
    code = disassembly(artifact, "aarch64-linux-gnu-objdump")
    assert code.count(f"\t{instruction}\t") >= 4
    if instruction != "sdot":
        assert "\tsdot\t" not in code  # Armv8.0 cores have no dot product: it would be an illegal instruction
    bundle = make_bundle(artifact, tmp_path / "bundle").folder
    x86 = edgekit.load(exposed_x86, threads=1)
    for index, feeds in enumerate(samples[:4]):
        sample = tmp_path / f"x{index}.npy"
        np.save(sample, feeds["image"])
        out = tmp_path / f"out{index}.npz"
        command = ["qemu-aarch64", "-cpu", qemu_cpu, *QEMU[1:], str(bundle / "edgekit-runner"), str(bundle), "--input", f"image={sample}", "--output", str(out), "--cpus", "0", "--threads", "1"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=bundle)
        assert result.returncode == 0, result.stderr
        expected = x86(**feeds)
        with np.load(out) as got:
            assert set(got.files) == set(expected)
            for name, value in expected.items():
                assert got[name].tobytes() == value.tobytes(), f"{name} differs between x86_64 and {target}"


def test_residual_concat_model_runs_in_integers(tmp_path):
    onnx_path = tmp_path / "concat.onnx"
    edgekit.export(f"{REPO / 'edgekit' / 'demo' / 'digits_concat.py'}:digits_concat", onnx_path, input_names=["image"], output_names=["logits"])
    int8 = edgekit.quantize(onnx_path, CALIB_DATA, tmp_path / "concat.int8.onnx").model_path
    artifact = edgekit.compile(int8, tmp_path / "concat_int8", target="x86_64")
    summary = json.loads((artifact / "manifest.json").read_text())["build"]["integer"]["ir_dtype_summary"]
    assert summary.get("nn.conv2d(int8, int8) -> int32", 0) + packed_convolutions(summary, "int16, int16") == 7
    assert summary.get("concat(int8, int8) -> int8", 0) + summary.get("concat(int8) -> int8", 0) >= 1
    report = edgekit.check(artifact, int8, EVAL_DATA, max_abs=0.5, min_cosine=0.999, min_top1_agreement=0.99)
    assert report.passed, report.violations


def test_transformer_attention_runs_in_integers(tmp_path):
    model = tmp_path / "encoder.onnx"
    edgekit.export(f"{REPO / 'tests' / 'quant_models.py'}:sentence_encoder", model, input_names=["input_ids", "attention_mask"], output_names=["embedding"])
    np.savez(tmp_path / "calib.npz", **sentence_batch(48, seed=1))
    np.savez(tmp_path / "eval.npz", **sentence_batch(16, seed=2))
    int8 = edgekit.quantize(model, tmp_path / "calib.npz", tmp_path / "encoder.int8.onnx").model_path
    artifact = edgekit.compile(int8, tmp_path / "encoder_int8", target="x86_64")
    summary = json.loads((artifact / "manifest.json").read_text())["build"]["integer"]["ir_dtype_summary"]
    # Attention's QK^T and AV of each layer: two activations, B packed at run time (batch dense).
    assert sum(n for k, n in summary.items() if k.startswith("batch_dense_i16i16_packed")) >= 8
    assert "matmul(int32, int32) -> int32" not in summary
    # The weight matmuls take the packed kernels (int16 for AVX2, uint8 x int8 for VNNI); the integers must not change.
    assert sum(n for k, n in summary.items() if k.startswith("dense_i16i16_packed")) >= 24
    vnni_artifact = edgekit.compile(int8, tmp_path / "encoder_int8_avx512", target="x86_64-avx512")
    vnni_summary = json.loads((vnni_artifact / "manifest.json").read_text())["build"]["integer"]["ir_dtype_summary"]
    assert sum(n for k, n in vnni_summary.items() if k.startswith("dense_u8i8_packed")) >= 24
    compiled, vnni, reference = edgekit.load(artifact), edgekit.load(vnni_artifact), Reference(int8)
    with np.load(tmp_path / "eval.npz") as data:
        for i in range(len(data["input_ids"])):
            feeds = {"input_ids": data["input_ids"][i], "attention_mask": data["attention_mask"][i]}
            ours, theirs = compiled(**feeds)["embedding"].ravel(), reference(feeds)["embedding"].ravel()
            assert ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs) > 0.999
            assert vnni(**feeds)["embedding"].tobytes() == compiled(**feeds)["embedding"].tobytes()


def test_vnni_build_uses_vpdpbusd_and_computes_the_same_bits(workdir, exposed, exposed_x86, samples):
    """x86_64-avx512 takes the packed uint8 x int8 path tensorized with vpdpbusd; x86_64 (AVX2) the packed
    int16 one with vpmaddwd. Different kernels, same integers: every output equal bit for bit."""
    artifact = edgekit.compile(exposed, workdir / "integer" / "exposed_avx512", target="x86_64-avx512")
    disassembly = subprocess.run(["objdump", "-d", str(artifact / "model.so")], capture_output=True, text=True, check=True).stdout
    assert disassembly.count("vpdpbusd") >= 4
    summary = json.loads((artifact / "manifest.json").read_text())["build"]["integer"]["ir_dtype_summary"]
    assert not any(key.startswith("nn.conv2d(") for key in summary)  # all four went to the packed kernel
    assert sum(n for key, n in summary.items() if key.startswith("conv2d_u8i8_packed") and key.endswith("(uint8, int8) -> int32")) == 4
    vnni, plain = edgekit.load(artifact, threads=2), edgekit.load(exposed_x86, threads=1)
    for feeds in samples:
        got, expected = vnni(**feeds), plain(**feeds)
        for name in expected:
            assert got[name].tobytes() == expected[name].tobytes(), name


def test_relu6_clip_folds_into_the_integer_clamp(tmp_path):
    """ReLU6 exports as Clip with tensor bounds, which TVM imports as maximum/minimum calls: both become the clamp."""
    model = tmp_path / "mobile.onnx"
    edgekit.export(f"{REPO / 'tests' / 'torch_models.py'}:mobile", model, input_names=["x"])
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((40, 1, 3, 32, 32)).astype(np.float32))
    int8 = edgekit.quantize(model, tmp_path / "calib.npz", tmp_path / "mobile.int8.onnx").model_path
    artifact = edgekit.compile(int8, tmp_path / "mobile_int8", target="x86_64")
    integer = json.loads((artifact / "manifest.json").read_text())["build"]["integer"]
    assert integer["integer_ops"]["clip (maximum)"] == integer["integer_ops"]["clip (minimum)"] >= 2
    assert "call_tir" not in integer["float_ops"]
    summary = integer["ir_dtype_summary"]
    # incl. the depthwise one, which no dot product fits
    assert sum(n for k, n in summary.items() if k.startswith("nn.conv2d(int8, int8)")) + packed_convolutions(summary, "int16, int16") == 4
    report = edgekit.check(artifact, int8, tmp_path / "calib.npz", max_abs=0.5, min_cosine=0.999)
    assert report.passed, report.violations


def test_a_failing_integer_rewrite_is_an_error_unless_float_is_chosen(tmp_path, int8_model, monkeypatch, cli):
    import edgekit.compiler.frontend as frontend

    def broken(mod, dot=None, nodes=None):
        raise RuntimeError("pattern this rewrite has never seen")

    monkeypatch.setattr(frontend, "integer_regions", broken)
    refused = cli("compile", int8_model, "-o", tmp_path / "refused")
    assert refused.exit_code == 2 and "pattern this rewrite has never seen" in one_line_error(refused)
    assert not (tmp_path / "refused").exists()
    artifact = edgekit.compile(int8_model, tmp_path / "fallback", target="x86_64", float_fallback=True)
    build = json.loads((artifact / "manifest.json").read_text())["build"]
    assert "pattern this rewrite has never seen" in build["integer"]["failed"]
    assert build["options"]["float_fallback"] is True and build["command"].endswith("--float-fallback")
    report = edgekit.check(artifact, int8_model, EVAL_DATA, max_abs=0.1, min_cosine=0.999)
    assert report.passed, report.violations


ZOO = ["dynamic_reshape_cnn", "tf2onnx_style_nhwc", "paddle_style_det_head", "legacy_torch_transformer", "opset18_misc", "tf2onnx_flatten_reduceprod"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_foreign_exporter_models_quantize_and_run_in_integers(name, tmp_path):
    """ONNX from other exporters and older opsets (11-18): quantize, compile with the integer rewrite (VNNI),
    and agree with the QDQ model in ONNX Runtime."""
    import onnx_zoo

    model = getattr(onnx_zoo, name)()
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    samples = [onnx_zoo.sample_inputs(model, seed=i) for i in range(40)]
    np.savez(tmp_path / "data.npz", **{k: np.stack([s[k] for s in samples]) for k in samples[0]})
    result = edgekit.quantize(path, tmp_path / "data.npz", tmp_path / f"{name}.int8.onnx")
    assert result.record["summary"]["int8_nodes"] >= 4
    assert all(row.cosine_mean > 0.99 for row in result.agreement)
    artifact = edgekit.compile(result.model_path, tmp_path / "artifact", target="x86_64-avx512")
    integer = json.loads((artifact / "manifest.json").read_text())["build"]["integer"]
    assert "failed" not in integer and integer["integer_ops"].get("requantize", 0) >= 1
    report = edgekit.check(artifact, result.model_path, tmp_path / "data.npz", max_abs=None, min_cosine=0.999)
    assert report.passed, report.violations
