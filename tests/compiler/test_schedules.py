"""Default CPU schedules (edgekit/compiler/schedules): every rule's pattern agrees with ONNX Runtime,
really schedules (parallel loops, vectors sized from the target's SIMD width), builds for arm64,
and leaves functions that are already scheduled alone."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.compiler.fold import fold_model
from edgekit.compiler.relax_pipeline import fused_module
from edgekit.compiler.relax_import import import_onnx
from edgekit.compiler.schedules import RULE_ATTR, default_schedules, is_scheduled
from edgekit.onnx_model import model_inputs, resolve_static_shapes
from edgekit.reference import Reference
from edgekit.target_spec import load_target

RNG_SEED = 7
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]


def _model(nodes, inputs: dict[str, list[int]], output: str, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "pattern",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(array.astype(np.float32), name) for name, array in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)  # fills in the output's shape


def _conv(cin: int, cout: int, size: int, kernel: int, stride: int = 1, pad: int = 0, groups: int = 1) -> onnx.ModelProto:
    """Conv + bias + Relu + residual-free epilogue: the fused group a CNN layer becomes."""
    rng = np.random.default_rng(RNG_SEED)
    weights = {"w": rng.standard_normal((cout, cin // groups, kernel, kernel)) * 0.2, "b": rng.standard_normal(cout)}
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["c"], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, group=groups
        ),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    return _model(nodes, {"x": [1, cin, size, size]}, "y", weights)


def _dense(m: int, k: int, n: int) -> onnx.ModelProto:
    rng = np.random.default_rng(RNG_SEED)
    weights = {"w": rng.standard_normal((k, n)) * 0.1, "b": rng.standard_normal(n)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"])]
    return _model(nodes, {"x": [1, m, k]}, "y", weights)


def _batch_matmul() -> onnx.ModelProto:
    """Attention's two activation x activation products: scores = q k^T, then scores v."""
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    shape = [1, 3, 20, 16]
    return _model(nodes, {"q": shape, "k": shape, "v": shape}, "y", {})


def _layer_norm() -> onnx.ModelProto:
    rng = np.random.default_rng(RNG_SEED)
    weights = {"g": rng.standard_normal(40), "b": rng.standard_normal(40)}
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)]
    return _model(nodes, {"x": [1, 13, 40]}, "y", weights)


def _pooling(op: str, channels: int = 12, size: int = 15) -> onnx.ModelProto:
    attrs = {} if op == "GlobalAveragePool" else {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    return _model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": [1, channels, size, size]}, "y", {})


def _elementwise() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Mul", ["x", "s"], ["m"]),
        helper.make_node("Transpose", ["m"], ["y"], perm=[0, 2, 3, 1]),
    ]
    return _model(nodes, {"x": [1, 20, 9, 11]}, "y", {})


PATTERNS = {
    "conv3x3_padded": lambda: _conv(16, 32, 16, 3, pad=1),
    "conv3x3_strided": lambda: _conv(8, 16, 17, 3, stride=2, pad=1),
    "conv1x1": lambda: _conv(24, 48, 16, 1),
    "conv1x1_odd_channels": lambda: _conv(5, 12, 13, 1),
    "conv7x7_stem": lambda: _conv(3, 16, 30, 7, stride=2, pad=3),
    "conv_small_spatial": lambda: _conv(32, 24, 7, 3, pad=1),
    "depthwise": lambda: _conv(24, 24, 20, 3, pad=1, groups=24),
    "depthwise_strided": lambda: _conv(16, 16, 15, 3, stride=2, pad=1, groups=16),
    "grouped": lambda: _conv(16, 16, 12, 3, pad=1, groups=4),
    "dense": lambda: _dense(12, 64, 48),
    "dense_odd": lambda: _dense(7, 30, 13),
    "gemv": lambda: _dense(1, 128, 40),
    "attention_matmuls": _batch_matmul,
    "layer_norm": _layer_norm,
    "max_pool": lambda: _pooling("MaxPool"),
    "average_pool": lambda: _pooling("AveragePool"),
    "global_average_pool": lambda: _pooling("GlobalAveragePool"),
    "elementwise_transpose": _elementwise,
}


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(RNG_SEED + 1)
    initializers = {init.name for init in model.graph.initializer}
    return {
        value.name: rng.standard_normal([d.dim_value for d in value.type.tensor_type.shape.dim]).astype(np.float32)
        for value in model.graph.input
        if value.name not in initializers
    }


def _scheduled_module(model: onnx.ModelProto, target_name: str = "x86_64") -> tvm.IRModule:
    target = load_target(target_name)
    inputs = resolve_static_shapes(model_inputs(model), {}, {})
    folded, _ = fold_model(model, inputs)
    mod = fused_module(import_onnx(folded, inputs), target)
    with tvm.target.Target(target.tvm_cpu_target()):
        return default_schedules(target)(mod)


def _prim_funcs(mod: tvm.IRModule) -> dict[str, tvm.tirx.PrimFunc]:
    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}


def _assert_matches_onnxruntime(model: onnx.ModelProto, name: str, target: str, folder) -> None:
    """Compile `model` for `target`, run it here, and compare every output with ONNX Runtime's."""
    source = folder / f"{name}.onnx"
    onnx.save(model, source)
    compiled = edgekit.load(edgekit.compile(source, folder / name, target=target))
    feeds = _feeds(model)
    got = compiled(**feeds)
    for output, expected in Reference(model)(feeds).items():
        assert got[output].shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(got[output] - expected).max() <= 1e-4 * scale, name


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_scheduled_pattern_matches_onnxruntime(name, tmp_path):
    _assert_matches_onnxruntime(PATTERNS[name](), name, "x86_64", tmp_path)


# Big enough to be worth threads (tiny loop nests stay serial on purpose).
LARGER = {
    "conv3x3": lambda: _conv(32, 32, 32, 3, pad=1),
    "conv3x3_strided": lambda: _conv(32, 64, 32, 3, stride=2, pad=1),
    "depthwise": lambda: _conv(32, 32, 32, 3, pad=1, groups=32),
    "dense": lambda: _dense(64, 128, 128),
    "max_pool": lambda: _pooling("MaxPool", 64, 112),
    "layer_norm": _layer_norm,
}


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("conv3x3", "conv2d"),
        ("conv3x3_strided", "conv2d"),
        ("depthwise", "conv2d"),
        ("dense", "matmul"),
        ("max_pool", "window_reduction"),
        ("layer_norm", "row_reduction"),
    ],
)
def test_every_function_is_scheduled_parallel_and_vectorized(name, rule):
    funcs = _prim_funcs(_scheduled_module(LARGER[name]()))
    assert funcs and all(is_scheduled(f) for f in funcs.values())
    rules = {str(f.attrs[RULE_ATTR]) for f in funcs.values() if RULE_ATTR in f.attrs}
    assert rule in rules, rules
    main = next(f for f in funcs.values() if str(f.attrs.get(RULE_ATTR, "")) == rule)
    text = main.script()
    assert "T.vectorized(" in text
    assert "T.parallel(" in text


def test_weights_are_packed_at_compile_time():
    """The packed weight is a folded constant: no packing function is left to run per inference."""
    funcs = _prim_funcs(_scheduled_module(PATTERNS["conv3x3_padded"]()))
    assert not any("layout_rewrite_preproc" in f.script() for f in funcs.values())
    conv = next(f for name, f in funcs.items() if "conv2d" in name)
    assert "T.Buffer((T.int64(" in conv.script() and "_prepacked" in next(name for name in funcs if "conv2d" in name)


def test_vector_width_and_cores_come_from_the_target():
    """x86_64 (256-bit AVX2): 8 fp32 lanes per vector; rk3588 (128-bit NEON): 4."""
    for target, lanes in (("x86_64", 8), ("rk3588", 4)):
        funcs = _prim_funcs(_scheduled_module(PATTERNS["dense"](), target))
        matmul = next(f for f in funcs.values() if str(f.attrs.get(RULE_ATTR, "")) == "matmul")
        widths = {int(w) for w in re.findall(r"T\.vectorized\(T\.int64\((\d+)\)\)", matmul.script())}
        assert widths and all(w % lanes == 0 for w in widths), (target, widths)


def test_already_scheduled_functions_are_left_alone():
    target = load_target("x86_64")
    model = PATTERNS["conv1x1"]()
    inputs = resolve_static_shapes(model_inputs(model), {}, {})
    mod = fused_module(import_onnx(fold_model(model, inputs)[0], inputs), target)
    name, func = next((gv, f) for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and "conv2d" in gv.name_hint)
    tuned = func.with_attr("tirx.is_scheduled", True)  # as MetaScheduleApplyDatabase leaves a tuned function
    mod[name] = tuned
    with tvm.target.Target(target.tvm_cpu_target()):
        out = default_schedules(target)(mod)
    kept = _prim_funcs(out)[name.name_hint]
    tvm.ir.assert_structural_equal(kept, tuned)
    assert RULE_ATTR not in kept.attrs


@pytest.mark.parametrize("target", ["rk3588", "arm64"])
def test_schedules_build_for_aarch64(target, tmp_path):
    model = _conv(16, 32, 16, 3, pad=1)
    source = tmp_path / "conv.onnx"
    onnx.save(model, source)
    artifact = edgekit.compile(source, tmp_path / target, target=target)
    library = (artifact / "model.so").read_bytes()
    assert library[:4] == b"\x7fELF" and library[18] == 183  # e_machine EM_AARCH64


@pytest.mark.slow
def test_scheduled_demo_cnn_runs_on_rk3588_under_qemu(demo_onnx, demo_sample, tmp_path):
    """The arm64 schedules (4-lane NEON vectors, parallel loops) run and give ONNX Runtime's numbers."""
    from edgekit.runtime.bundle import make_bundle

    artifact = edgekit.compile(demo_onnx, tmp_path / "digits_rk3588", target="rk3588")
    bundle = make_bundle(artifact, tmp_path / "bundle").folder
    out = tmp_path / "out.npy"
    command = [
        *QEMU,
        str(bundle / "edgekit-runner"),
        str(bundle),
        "--input",
        f"image={demo_sample}",
        "--output",
        str(out),
        "--cpus",
        "0",
        "--threads",
        "2",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, cwd=bundle)
    assert result.returncode == 0, result.stderr
    expected = Reference(demo_onnx)({"image": np.load(demo_sample)})["logits"]
    assert np.abs(np.load(out) - expected).max() <= 1e-4


# AVX-512 shapes that once fell off the fast path: 3 vectors of 16 lanes (48 channels) came out
# scalar; 1000 columns are no multiple of 16; a 128-row matmul had its epilogue anchor fused away.
AVX512_PATTERNS = {
    "conv1x1_three_vectors": lambda: _conv(96, 144, 14, 1),
    "conv1x1_rows_of_56": lambda: _conv(24, 48, 56, 1),
    "depthwise_strided_112": lambda: _conv(32, 32, 112, 3, stride=2, pad=1, groups=32),
    "classifier_1000": lambda: _dense(1, 256, 1000),
    "dense_128_rows": lambda: _dense(128, 256, 256),
    "attention_matmuls": _batch_matmul,
}


@pytest.mark.parametrize("name", sorted(AVX512_PATTERNS))
def test_avx512_patterns_match_onnxruntime_and_use_register_wide_vectors(name, tmp_path):
    model = AVX512_PATTERNS[name]()
    _assert_matches_onnxruntime(model, name, "x86_64-avx512", tmp_path)

    funcs = _prim_funcs(_scheduled_module(model, "x86_64-avx512"))
    heavy = [f for f in funcs.values() if str(f.attrs.get(RULE_ATTR, "")) in ("conv2d", "matmul")]
    assert heavy, {n: str(f.attrs.get(RULE_ATTR, "")) for n, f in funcs.items()}
    for func in heavy:
        widths = {int(w) for w in re.findall(r"T\.vectorized\(T\.int64\((\d+)\)\)", func.script())}
        # At most one register (16 lanes, or fewer for short rows and 1000 columns), or a
        # power-of-two number of registers, which LLVM splits well; never 48 lanes.
        assert widths and all(w <= 16 or w in (32, 64) for w in widths), (name, widths)
