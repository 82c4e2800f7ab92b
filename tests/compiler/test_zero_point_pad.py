"""The zero-point pad kernel (row copies, vector fills) gives np.pad's bytes, for every side's width
including none (the A76 build of MobileNetV2, which uses it, is compared with x86 under qemu by
the model tests)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from edgekit.compiler.zero_point_pad import zero_point_pad_kernel
from edgekit.target_spec import load_target

# (shape, (top, bottom, left, right)): 3x3 "same" padding, an asymmetric one (TF "same" at stride
# 2), no left/top side, and a plane large enough to take the parallel loop.
CASES = [((1, 8, 5, 7), (1, 1, 1, 1)), ((1, 3, 6, 9), (0, 1, 0, 1)), ((2, 4, 3, 3), (2, 0, 3, 0)), ((1, 96, 56, 56), (1, 1, 1, 1))]


@pytest.mark.parametrize(("shape", "pads"), CASES)
@pytest.mark.parametrize(("dtype", "value"), [("int8", -3), ("uint8", 131)])
def test_zero_point_pad_is_numpy_pad(shape, pads, dtype, value):
    top, bottom, left, right = pads
    x = np.random.default_rng(sum(shape)).integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    expected = np.pad(x, [(0, 0), (0, 0), (top, bottom), (left, right)], constant_values=value)
    library = tvm.compile(tvm.IRModule({"main": zero_point_pad_kernel(shape, pads, value, dtype)}), target=tvm.target.Target(load_target("x86_64").tvm_cpu_target()))
    out = tvm.runtime.tensor(np.zeros(expected.shape, dtype))
    library(tvm.runtime.tensor(x), out)
    assert out.numpy().tobytes() == expected.tobytes()
