"""The dot-product schemes: which target gets which instructions, and that every scheme's packed
kernel computes exact int32 dot products, also at the grids' extremes where a shortcut
(vpmaddubsw's saturating int16 pair sums) would not."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import te

from edgekit.compiler.dot_packing import packed_dense_te
from edgekit.compiler.dot_products import LANES, SCHEMES, scheme_for
from edgekit.compiler.schedules.common import CpuShape
from edgekit.compiler.schedules.conv2d_int8 import schedule_dense_int8
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
