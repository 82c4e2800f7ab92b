"""Requantizing multiplies become widening 32x32->64 multiplies (edgekit/compiler/widening_multiply.py):
the constant offsets leave the product, int32-valued multipliers reach the kernel as int32, and the
integers computed are the same as the int64 arithmetic they replace."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import tvm
from tvm import relax, tirx
from tvm.support import cc  # TVM 0.27 moved cc here from tvm.contrib

from edgekit.compiler.relax_pipeline import cpu_pipeline, fused_module
from edgekit.target_spec import load_target

SHAPE = (1, 4, 6, 6)
SHIFT = 38


def requantizing_module(correction: np.ndarray, bias: np.ndarray, multiplier: np.ndarray) -> tvm.IRModule:
    """The integer rewrite's requantization of an int32 accumulator: (int64(acc - correction + bias) * m + round) >> shift + zp, clamped."""
    bb = relax.BlockBuilder()
    acc = relax.Var("acc", relax.TensorType(SHAPE, "int32"))
    channel = (1, SHAPE[1], 1, 1)
    with bb.function("main", [acc]):
        with bb.dataflow():
            centred = bb.emit(relax.op.subtract(acc, relax.const(correction.reshape(channel), "int32")))
            centred = bb.emit(relax.op.add(centred, relax.const(bias.reshape(channel), "int32")))
            wide = bb.emit(relax.op.astype(centred, "int64"))
            product = bb.emit(relax.op.multiply(wide, relax.const(multiplier.reshape(channel), "int64")))
            rounding = bb.emit(relax.op.add(product, relax.const(1 << (SHIFT - 1), "int64")))
            rounded = bb.emit(relax.op.right_shift(rounding, relax.const(SHIFT, "int64")))
            shifted = bb.emit(relax.op.add(rounded, relax.const(-3, "int64")))
            clamped = bb.emit(relax.op.minimum(bb.emit(relax.op.maximum(shifted, relax.const(-128, "int64"))), relax.const(127, "int64")))
            out = bb.emit_output(relax.op.astype(clamped, "int8"))
        bb.emit_func_output(out)
    return bb.get()


def reference(acc: np.ndarray, correction: np.ndarray, bias: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    channel = (1, SHAPE[1], 1, 1)
    centred = (acc.astype(np.int64) - correction.reshape(channel) + bias.reshape(channel)) * multiplier.reshape(channel)
    return np.clip(((centred + (1 << (SHIFT - 1))) >> SHIFT) - 3, -128, 127).astype(np.int8)


def run(mod: tvm.IRModule, acc: np.ndarray, target: str = "x86_64") -> np.ndarray:
    spec = load_target(target)
    executable = tvm.compile(mod, target=tvm.target.Target(spec.tvm_cpu_target()), relax_pipeline=cpu_pipeline(spec))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(acc)).numpy()


def kernel_param_dtypes(mod: tvm.IRModule) -> list[list[str]]:
    return [[param.dtype for param in func.params] for _gvar, func in mod.functions_items() if isinstance(func, tirx.PrimFunc)]


@pytest.fixture(scope="module")
def accumulators() -> np.ndarray:
    rng = np.random.default_rng(3)
    acc = rng.integers(-(1 << 20), 1 << 20, SHAPE, dtype=np.int64)
    acc.flat[:4] = [(1 << 31) - 1 - (1 << 16), -(1 << 31) + (1 << 16), 0, 1]  # the int32 range's ends (offsets stay inside it)
    return acc.astype(np.int32)


def test_offsets_leave_the_product_and_the_multiplier_becomes_int32(accumulators):
    correction = np.array([5, -7, 1 << 15, 0], np.int64)
    bias = np.array([-(1 << 15), 3, 11, -1], np.int64)
    multiplier = np.array([(1 << 31) - 1, 1 << 30, 123456789, 1], np.int64)
    mod = requantizing_module(correction, bias, multiplier)
    fused = fused_module(mod, load_target("x86_64"))
    # One kernel: acc (int32), the multiplier (now int32), the moved offsets with the rounding (int64), the output.
    assert kernel_param_dtypes(fused) == [["int32", "int32", "int64", "int8"]]
    np.testing.assert_array_equal(run(mod, accumulators), reference(accumulators, correction, bias, multiplier))


def test_a_multiplier_outside_int32_stays_int64_and_exact(accumulators):
    correction = np.array([5, -7, 0, 0], np.int64)
    bias = np.array([1, 2, 3, 4], np.int64)
    multiplier = np.array([1 << 33, 3, 5, 7], np.int64)  # 2^33 * |acc| < 2^62 still fits int64 with the sum
    acc = np.clip(accumulators, -(1 << 28), 1 << 28).astype(np.int32)
    mod = requantizing_module(correction, bias, multiplier)
    params = kernel_param_dtypes(fused_module(mod, load_target("x86_64")))
    assert params == [["int32", "int64", "int64", "int8"]]
    np.testing.assert_array_equal(run(mod, acc), reference(acc, correction, bias, multiplier))


def test_arm64_build_multiplies_with_smull_not_scalar_mul(tmp_path, accumulators):
    correction = np.array([5, -7, 1 << 15, 0], np.int64)
    bias = np.array([-(1 << 15), 3, 11, -1], np.int64)
    multiplier = np.array([(1 << 31) - 1, 1 << 30, 123456789, 1], np.int64)
    spec = load_target("rk3588")
    mod = requantizing_module(correction, bias, multiplier)
    executable = tvm.compile(mod, target=tvm.target.Target(spec.tvm_cpu_target()), relax_pipeline=cpu_pipeline(spec))
    library = tmp_path / "model.so"
    executable.export_library(str(library), fcompile=cc.cross_compiler(spec.cpu.cross_compiler))
    assembly = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    assert "smull" in assembly or "smlal" in assembly
    assert "\tmul\tx" not in assembly
