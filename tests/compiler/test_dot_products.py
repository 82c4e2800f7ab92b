"""The dot-product schemes: which target gets which instructions, and that every scheme's packed
kernel computes exact int32 dot products, also at the grids' extremes where a shortcut
(vpmaddubsw's saturating int16 pair sums) would not."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import te

from edgekit.compiler.dot_packing import packed_conv_te, packed_dense_te
from edgekit.compiler.dot_products import LANES, SCHEMES, scheme_for
from edgekit.compiler.schedules.common import CpuShape
from edgekit.compiler.schedules.conv2d_int8 import schedule_conv2d_int8, schedule_dense_int8, tile_length
from edgekit.target_spec import load_target, host_has_feature


@pytest.mark.parametrize(("target", "scheme"), [("x86_64", "avx2"), ("x86_64-avx512", "vnni"), ("rk3588", "sdot"), ("orin", "sdot"), ("arm64", "neon")])
def test_each_board_gets_the_dot_product_its_cpu_has(target, scheme):
    assert scheme_for(load_target(target)).name == scheme


def test_a_cpu_without_simd_integer_dot_products_gets_none():
    spec = load_target("x86_64")
    baseline = type(spec)(name="x", description="", cpu=type(spec.cpu)(**{**spec.cpu.__dict__, "mcpu": "x86-64", "features": ()}), peak=spec.peak)
    assert scheme_for(baseline) is None


def extreme_operands(scheme_name: str, rows: int, depth: int, columns: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Activations on the scheme's grid and int8 weights, mostly at their extremes."""
    rng = np.random.default_rng(seed)
    low, high = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-128, 255)}[SCHEMES[scheme_name].data_dtype]
    a = rng.choice([low, high, low + 1, high - 1, 0], size=(rows, depth)).astype(SCHEMES[scheme_name].data_dtype)
    b = rng.choice([-128, 127, -127, 126], size=(depth, columns)).astype(np.int8)
    return a, b


@pytest.mark.parametrize(("scheme_name", "target", "feature"), [("avx2", "x86_64", "avx2"), ("vnni", "x86_64-avx512", "avx512vnni")])
def test_packed_dense_is_exact_at_the_extremes(scheme_name, target, feature):
    if not host_has_feature(feature):
        pytest.fail(f"this machine has no {feature}: the test needs an x86-64 CPU with it")
    spec = load_target(target)
    scheme = SCHEMES[scheme_name]
    rows, depth, columns = 6, 64, 32
    a, b = extreme_operands(scheme_name, rows, depth, columns, seed=3)
    packed = b.reshape(depth // scheme.depth, scheme.depth, columns // LANES, LANES).transpose(2, 0, 3, 1).astype(scheme.weight_dtype)
    data = te.placeholder((rows, depth), scheme.data_dtype, name="data")
    weight = te.placeholder(packed.shape, scheme.weight_dtype, name="weight")
    func = te.create_prim_func([data, weight, packed_dense_te(data, weight, (rows, columns), scheme.depth)])
    sch = schedule_dense_int8(func, CpuShape.of(spec))
    assert sch is not None, "the packed dense schedule did not apply"
    library = tvm.compile(sch.mod, target=tvm.target.Target(spec.tvm_cpu_target()))
    out = tvm.runtime.tensor(np.zeros((rows, columns), np.int32))
    library(tvm.runtime.tensor(a), tvm.runtime.tensor(np.ascontiguousarray(packed)), out)
    expected = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(out.numpy(), expected)


def pad_to_blocks(w: np.ndarray, axis: int) -> np.ndarray:
    """Weights with output channels padded by zeros to whole 16-lane blocks, as dot_packing packs them."""
    pad = [(0, 0)] * w.ndim
    pad[axis] = (0, -w.shape[axis] % LANES)
    return np.pad(w, pad)


@pytest.mark.parametrize(("width", "out_channels"), [(7, 32), (5, 32), (13, 32), (7, 24), (6, 40)])
@pytest.mark.parametrize(("scheme_name", "target", "feature"), [("avx2", "x86_64", "avx2"), ("vnni", "x86_64-avx512", "avx512vnni")])
def test_packed_conv_takes_its_schedule_at_any_row_width(scheme_name, target, feature, width, out_channels):
    """Rows no tile divides well (7: the whole row; 5 and 13 on AVX2: 1-column tiles) still get
    the dot-product schedule, and stay exact; before, they fell to a generic loop in silence.
    So do output channels in no whole number of 16-lane blocks (24, 40: MobileNetV2's and
    detectors' widths), computed on padded blocks and written back cut to size."""
    if not host_has_feature(feature):
        pytest.fail(f"this machine has no {feature}: the test needs an x86-64 CPU with it")
    spec = load_target(target)
    scheme = SCHEMES[scheme_name]
    channels, height = 2 * scheme.depth * 4, 3
    rng = np.random.default_rng(width)
    low, high = {"uint8": (0, 255), "int16": (-128, 255)}[scheme.data_dtype]
    x = rng.integers(low, high + 1, size=(1, channels, height + 2, width + 2)).astype(scheme.data_dtype)
    w = rng.choice([-128, 127, -127, 126, 3], size=(out_channels, channels, 3, 3)).astype(np.int8)
    groups = channels // scheme.depth
    packed_x = x.reshape(1, groups, scheme.depth, height + 2, width + 2).transpose(0, 1, 3, 4, 2)
    blocks = -(-out_channels // LANES)
    packed_w = pad_to_blocks(w, 0).reshape(blocks, LANES, groups, scheme.depth, 3, 3).transpose(0, 2, 4, 5, 1, 3).astype(scheme.weight_dtype)
    data = te.placeholder(packed_x.shape, scheme.data_dtype, name="data")
    weight = te.placeholder(packed_w.shape, scheme.weight_dtype, name="weight")
    func = te.create_prim_func([data, weight, packed_conv_te(data, weight, (1, out_channels, height, width), [1, 1], [1, 1], (3, 3))])
    sch = schedule_conv2d_int8(func, CpuShape.of(spec))
    assert sch is not None, "the packed conv schedule did not apply"
    library = tvm.compile(sch.mod, target=tvm.target.Target(spec.tvm_cpu_target()))
    out = tvm.runtime.tensor(np.zeros((1, out_channels, height, width), np.int32))
    library(tvm.runtime.tensor(np.ascontiguousarray(packed_x)), tvm.runtime.tensor(np.ascontiguousarray(packed_w)), out)
    xs, ws = x.astype(np.int64), w.astype(np.int64)
    expected = np.zeros((1, out_channels, height, width), np.int64)
    for ky in range(3):
        for kx in range(3):
            expected[0] += np.einsum("chw,oc->ohw", xs[0, :, ky:ky + height, kx:kx + width], ws[:, :, ky, kx])
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize(("width", "tile"), [(7, 7), (14, 2), (28, 4), (5, 5), (13, 1), (112, 4)])
def test_sdot_tile_lengths(width, tile):
    # 32 registers, 4 accumulators per 16 channels: 6 columns fit; 7 takes the row and spills one.
    assert tile_length(width, SCHEMES["sdot"].max_pixels(32)) == tile


def test_a_packed_kernel_its_schedule_rejects_is_an_error(monkeypatch):
    from edgekit.compiler import schedules

    def broken(func, cpu):
        raise ValueError("loops are not in a chain")

    monkeypatch.setitem(schedules.RULES, "conv2d_int8_packed", broken)
    data = te.placeholder((1, 2, 5, 5, 4), "int8", name="data")
    weight = te.placeholder((1, 2, 1, 1, 16, 4), "int8", name="weight")
    func = te.create_prim_func([data, weight, packed_conv_te(data, weight, (1, 16, 5, 5), [1, 1], [1, 1], (1, 1))])
    with pytest.raises(schedules.PackedScheduleError, match="conv2d_int8_packed schedule failed .*loops are not in a chain"):
        schedules.schedule_function(func, CpuShape.of(load_target("rk3588")))


def dense_with_epilogue(scheme, rows: int, depth: int, columns: int):
    """The packed dense as the integer rewrite emits it: the dense, then its zero-point correction subtracted per column."""
    data = te.placeholder((rows, depth), scheme.data_dtype, name="data")
    weight = te.placeholder((-(-columns // LANES), depth // scheme.depth, LANES, scheme.depth), scheme.weight_dtype, name="weight")
    correction = te.placeholder((columns,), "int32", name="correction")
    acc = packed_dense_te(data, weight, (rows, columns), scheme.depth)
    out = te.compute((rows, columns), lambda m, n: acc[m, n] - correction[n], name="T_subtract")
    return te.create_prim_func([data, weight, correction, out])


# (rows, depth, columns): the sentence encoder's 32-token projections (QKV/out 128 -> 128, FFN
# 128 -> 512 -> 128), 16 rows, a classifier's single row, a row count no tile divides, and
# columns in no whole number of 16-lane blocks (1000 classes, 40).
DENSE_SHAPES = [(32, 128, 512), (32, 512, 128), (16, 128, 128), (1, 1280, 1024), (7, 64, 32), (1, 1280, 1000), (7, 64, 40)]


@pytest.mark.parametrize(("rows", "depth", "columns"), DENSE_SHAPES)
@pytest.mark.parametrize(("scheme_name", "target", "feature"), [("avx2", "x86_64", "avx2"), ("vnni", "x86_64-avx512", "avx512vnni")])
def test_packed_dense_keeps_its_schedule_when_its_outer_loops_fuse(scheme_name, target, feature, rows, depth, columns):
    """Fewer row tiles than the cores want fuse (row tile, column block) into one parallel loop;
    the epilogue went under the column loop that fusing removed ("The loop no longer exists"),
    and the kernel fell to a generic loop without vpmaddwd/vpdpbusd. Exact with its epilogue."""
    if not host_has_feature(feature):
        pytest.fail(f"this machine has no {feature}: the test needs an x86-64 CPU with it")
    from edgekit.compiler import schedules

    spec = load_target(target)
    scheme = SCHEMES[scheme_name]
    a, b = extreme_operands(scheme_name, rows, depth, columns, seed=rows + columns)
    correction = np.random.default_rng(depth).integers(-(1 << 20), 1 << 20, columns).astype(np.int32)
    packed = pad_to_blocks(b, 1).reshape(depth // scheme.depth, scheme.depth, -(-columns // LANES), LANES).transpose(2, 0, 3, 1).astype(scheme.weight_dtype)
    rule, func = schedules.schedule_function(dense_with_epilogue(scheme, rows, depth, columns), CpuShape.of(spec))
    assert rule == "dense_int8_packed"
    library = tvm.compile(tvm.IRModule({"main": func}), target=tvm.target.Target(spec.tvm_cpu_target()))
    out = tvm.runtime.tensor(np.zeros((rows, columns), np.int32))
    library(tvm.runtime.tensor(a), tvm.runtime.tensor(np.ascontiguousarray(packed)), tvm.runtime.tensor(correction), out)
    expected = a.astype(np.int64) @ b.astype(np.int64) - correction
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize(("target", "rows", "depth", "columns"), [("rk3588", 32, 128, 512), ("rk3588", 1, 1280, 1024), ("rk3588", 1, 1280, 1000), ("orin", 128, 256, 1024)])
def test_packed_dense_on_arm_is_tensorized_with_sdot(target, rows, depth, columns):
    """The same fused-loop shapes on 4 and 12 cores (the benchmark transformer's 128 tokens fell
    off on Orin's 12): the schedule applies and the code has sdot. Built only; exactness on Arm
    is checked under qemu by the integer model tests."""
    from edgekit.compiler import schedules

    spec = load_target(target)
    scheme = CpuShape.of(spec).dot
    rule, func = schedules.schedule_function(dense_with_epilogue(scheme, rows, depth, columns), CpuShape.of(spec))
    assert rule == "dense_int8_packed"
    library = tvm.compile(tvm.IRModule({"main": func}), target=tvm.target.Target(spec.tvm_cpu_target()))
    asm = library.mod.inspect_source("asm")
    # Depth in whole 16s: four depth steps per 16-byte load, by-element sdot, no ld1r broadcast
    # (which costs a vector-pipe slot on the A76 / Neoverse N1, as much as a quarter of an sdot's).
    assert len(re.findall(r"sdot\s+v\d+\.4s, v\d+\.16b, v\d+\.4b\[[0-3]\]", asm)) >= 16
    assert "ld1r" not in asm


def test_a_packed_dense_its_schedule_rejects_is_an_error(monkeypatch):
    from edgekit.compiler import schedules

    def broken(func, cpu):
        raise ValueError("The loop no longer exists in the IRModule")

    monkeypatch.setitem(schedules.RULES, "dense_int8_packed", broken)
    func = dense_with_epilogue(SCHEMES["sdot"], 32, 128, 128)
    with pytest.raises(schedules.PackedScheduleError, match="dense_int8_packed schedule failed on fused_dense.*loop no longer exists"):
        schedules.schedule_function(func, CpuShape.of(load_target("rk3588")), "fused_dense_i8i8_packed_subtract1")
