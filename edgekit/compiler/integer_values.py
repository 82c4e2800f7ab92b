"""How the integer rewrite represents a float value by integers, and turns it back into float or int8.

    value = sum_i scale_i * (q_i - zero_point_i), then optionally clamped (a folded Relu/Clip)

`Term` is one scale * (q - zero_point); `IntValue` a sum of terms with its clamp (or a
concatenation of parts that keep their own grids). Leaving the integer domain is one of two
things: `to_float` (a float consumer or a model output reads the value) or `requantize` (a
QuantizeLinear puts it on an int8 grid).

Requantization is integer arithmetic with constants computed here, at compile time: each term's
ratio scale_i / out_scale becomes a fixed-point multiplier m_i = rint(ratio * 2^shift) below
2^31 (Q31-style), all terms share one shift, and the result rounds half up,
floor(x + 1/2), as `(sum_i (q_i - zp_i) * m_i + 2^(shift-1)) >> shift` with an arithmetic shift.
ONNX QuantizeLinear rounds half to even in float; the two differ by one LSB only where the exact
value is a tie or float rounding lands on the other side of one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax
from tvm.ir.expr import GenericConst

if TYPE_CHECKING:
    from edgekit.compiler.dot_products import DotScheme

# Multipliers are Q31-style: m < 2^31, so int32 values times m fit int64 with room for a sum.
MULTIPLIER_BITS = 31
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}

Emit = Callable[[relax.Expr], relax.Var]  # a BlockBuilder's emit: binds an expression, returns its var


@dataclass(frozen=True)
class Term:
    """scale * (q - zero_point): q an integer Relax expression; per-tensor or per channel along `axis`."""

    q: relax.Expr
    dtype: str
    scale: np.ndarray  # float64, shape () or (C,)
    zero_point: np.ndarray  # int64, shape () or (C,)
    axis: int | None = None
    value: np.ndarray | None = None  # q's value when q is a constant (weights, biases)

    @property
    def per_tensor(self) -> bool:
        return self.axis is None


@dataclass(frozen=True)
class IntValue:
    """A float value represented exactly by integer terms, then clamped to [lo, hi] (None: open)."""

    terms: tuple[Term, ...]
    lo: float | None = None
    hi: float | None = None
    concat: tuple[IntValue, ...] | None = None  # a concatenation of parts that keep their own scales
    concat_axis: int = 0

    @property
    def single(self) -> Term | None:
        """The one unclamped term this value is, or None (a sum, a clamp or a concatenation)."""
        if self.concat is None and len(self.terms) == 1 and self.lo is None and self.hi is None:
            return self.terms[0]
        return None


@dataclass(frozen=True)
class Match:
    """An op call the rewrite looks at: its tensor operands as integer values (None: not one), and the target.

    Rule predicates read it and rule builders rewrite it; `scalars` are the scalar constants the
    graph computed so far (Clip bounds arrive as `where(isnan(c), -inf, c)` on constants).
    """

    call: relax.Call
    inputs: tuple[IntValue | None, ...]
    dot: DotScheme | None = None  # the target's dot-product instructions (dot_products.py); None: plain kernels
    scalars: Mapping[relax.Var, np.ndarray] = field(default_factory=dict)

    @property
    def singles(self) -> tuple[Term | None, ...]:
        return tuple(None if value is None else value.single for value in self.inputs)

    def scalar(self, expr: relax.Expr) -> np.ndarray | None:
        return scalar_constant(expr, self.scalars)


def tensor_constant(expr: relax.Expr, dtype: str | tuple[str, ...] | None = None) -> np.ndarray | None:
    """The value of `expr` if it is a Relax tensor constant (of a dtype starting with `dtype`), else None.

    The one way the rewrite reads constants. In TVM 0.27 `tvm.ir.expr.Constant` is the base class
    of every literal, prim values included: `IntImm`/`FloatImm` (Clip's imported bounds, a
    HardSigmoid's alpha and beta) are Constants with a plain number as `.value`, while a tensor
    constant is a `GenericConst` of TensorType whose `.value` is a runtime tensor. Matching
    `Constant` and calling `.value.numpy()` crashed on the first prim value.
    """
    if not isinstance(expr, GenericConst) or not isinstance(expr.ty, relax.TensorType):
        return None
    if dtype is not None and not str(expr.ty.dtype).startswith(dtype):
        return None
    return expr.value.numpy()


def scalar_constant(expr: relax.Expr, scalars: Mapping[relax.Var, np.ndarray]) -> np.ndarray | None:
    """`expr`'s value as a 0-d array if it is a one-element tensor constant or a scalar the graph computed."""
    value = tensor_constant(expr)
    if value is not None:
        return value.reshape(()) if value.size == 1 else None
    return scalars.get(expr) if isinstance(expr, relax.Var) else None


# -- zero points (compile time) -------------------------------------------------------------------


def zero_point_correction(zero_point: int, weight: np.ndarray, output_axis: int) -> np.ndarray:
    """zp * sum(w) per output channel (int64): the zero point's share of a constant-weight dot product.

    sum((q - zp) * w) = sum(q * w) - zp * sum(w), so an accumulator that multiplied the raw
    integers q is exact after subtracting this; `output_axis` is the weight's output-channel axis.
    """
    weight = np.moveaxis(np.asarray(weight, np.int64), output_axis, 0)
    return zero_point * weight.reshape(weight.shape[0], -1).sum(axis=1)


def subtract_zero_point_correction(bb: relax.BlockBuilder, acc: relax.Expr, zero_point: int, weight: np.ndarray, output_axis: int, shape: list[int]) -> relax.Expr:
    """`acc` - zp * sum(`weight`) in int32, the correction reshaped to broadcast as `shape`; `acc` itself when zp is 0."""
    if not zero_point:
        return acc
    correction = zero_point_correction(zero_point, weight, output_axis)
    return bb.emit(relax.op.subtract(acc, relax.const(correction.astype(np.int32).reshape(shape), "int32")))


# -- requantization math (compile time, numpy) ---------------------------------------------------


def shared_shift(multipliers: list[np.ndarray]) -> int:
    """The largest shift keeping every fixed-point multiplier below 2^31 (at most 62, at least 1)."""
    largest = max(float(np.max(np.abs(m))) for m in multipliers)
    if largest <= 0:
        return MULTIPLIER_BITS
    exponent = int(np.floor(np.log2(largest))) + 1  # largest < 2^exponent
    return int(np.clip(MULTIPLIER_BITS - exponent, 1, 62))


def fixed_point_multiplier(ratio: np.ndarray | float, shift: int) -> np.ndarray:
    """rint(ratio * 2^shift) as int64: `ratio` (a scale over the output scale) in fixed point."""
    return np.rint(np.asarray(ratio, np.float64) * 2.0**shift).astype(np.int64)


def round_half_up(x: float) -> int:
    """floor(x + 1/2): the one rounding rule of the rewrite, also for clamp bounds."""
    return int(np.floor(x + 0.5))


# -- leaving the integer domain (IR) ------------------------------------------------------------------


def to_float(emit: Emit, value: IntValue) -> relax.Expr:
    """The float meaning of `value`, for consumers outside the integer region (the last op is not emitted)."""
    if value.concat is not None:
        parts = [emit(to_float(emit, part)) for part in value.concat]
        return relax.op.concat(parts, axis=value.concat_axis)
    total = None
    for term in value.terms:
        rank = len(term.q.ty.shape)
        centred = relax.op.astype(term.q, "int32")
        if np.any(term.zero_point != 0):
            centred = relax.op.subtract(centred, axis_constant(term.zero_point.astype(np.int32), term.axis, rank))
        # Every call emitted on its own: the rewrite marks what `emit` binds as a region exit (integer_float_nodes.py).
        part = relax.op.multiply(emit(relax.op.astype(emit(centred), "float32")), axis_constant(term.scale.astype(np.float32), term.axis, rank))
        total = part if total is None else relax.op.add(emit(total), emit(part))
    if value.lo is not None or value.hi is not None:
        total = relax.op.clip(emit(total), value.lo if value.lo is not None else -np.inf, value.hi if value.hi is not None else np.inf)
    return total


def requantize(emit: Emit, value: IntValue, scale: float, zero_point: int, dtype: str) -> relax.Expr:
    """round_half_up(value / scale) + zero_point, clamped to the dtype and value's clamp, in integers."""
    qmin, qmax = INT_RANGES[dtype]
    if value.concat is not None:
        parts = [emit(requantize(emit, part, scale, zero_point, dtype)) for part in value.concat]
        return relax.op.concat(parts, axis=value.concat_axis)
    if value.lo is not None:
        qmin = max(qmin, zero_point + round_half_up(value.lo / scale))
    if value.hi is not None:
        qmax = min(qmax, zero_point + round_half_up(value.hi / scale))
    term = value.single
    if term is not None and term.dtype == dtype and term.per_tensor and float(term.scale) == scale and int(term.zero_point) == zero_point:
        return term.q  # already on this grid (MaxPool, Reshape pass scales through)
    multipliers = [term.scale / scale for term in value.terms]
    shift = shared_shift(multipliers)
    total = None
    for term, multiplier in zip(value.terms, multipliers):
        rank = len(term.q.ty.shape)
        part = relax.op.multiply(emit(centred_int64(emit, term)), axis_constant(fixed_point_multiplier(multiplier, shift), term.axis, rank))
        total = part if total is None else relax.op.add(emit(total), emit(part))
    rounded, wide = rounding_shift(emit, emit(relax.op.add(emit(total), relax.const(1 << (shift - 1), "int64"))), shift)
    shifted = relax.op.add(rounded, relax.const(zero_point, wide))
    clamped = relax.op.minimum(relax.op.maximum(emit(shifted), relax.const(qmin, wide)), relax.const(qmax, wide))
    return relax.op.astype(emit(clamped), dtype)


def rounding_shift(emit: Emit, total: relax.Expr, shift: int) -> tuple[relax.Expr, str]:
    """floor(total / 2^shift) for an int64 `total` below 2^62, and the dtype it is left in.

    With a shift of 32 or more the quotient fits int32, and is computed as the high word of
    `total` (an exact floor) shifted by the rest in int32: the zero point and clamp that follow
    then run 4 lanes to a NEON register (8 to an AVX2 one) instead of 2, and need none of the
    64-bit shifts and min/max that NEON and AVX2 lack (LLVM emits addhn/shrn on aarch64). The
    integers are the same as the int64 form's on every target.
    """
    if shift < 32:
        return emit(relax.op.right_shift(total, relax.const(shift, "int64"))), "int64"
    high = emit(relax.op.astype(emit(relax.op.right_shift(total, relax.const(32, "int64"))), "int32"))
    if shift == 32:
        return high, "int32"
    return emit(relax.op.right_shift(high, relax.const(shift - 32, "int32"))), "int32"


def centred_int64(emit: Emit, term: Term) -> relax.Expr:
    """q - zero_point as int64, the left operand of a requantizing multiply.

    An 8-bit q is centred in int32 (exact: |q - zp| < 2^9) and then widened, so the kernel
    multiplies a sign-extended int32 by the multiplier: with the multiplier narrowed to int32 too
    (narrow_constants.py) LLVM emits a widening 32x32->64 multiply instead of scalar 64-bit ones.
    """
    if not np.any(term.zero_point != 0):
        return relax.op.astype(term.q, "int64")
    centre_in = "int32" if term.dtype in INT_RANGES else "int64"
    zero_point = axis_constant(term.zero_point.astype(centre_in), term.axis, len(term.q.ty.shape))
    centred = relax.op.subtract(emit(relax.op.astype(term.q, centre_in)), zero_point)
    return relax.op.astype(emit(centred), "int64") if centre_in != "int64" else centred


def axis_constant(values: np.ndarray, axis: int | None, rank: int) -> relax.Expr:
    """`values` as a constant that broadcasts along `axis` of a rank-`rank` tensor (a scalar if per-tensor)."""
    values = np.asarray(values)
    if axis is None or values.ndim == 0:
        return relax.const(values.reshape(()), str(values.dtype))
    shape = [1] * rank
    shape[axis] = -1
    # relax.const turns int64 arrays into int32 unless told the dtype.
    return relax.const(np.ascontiguousarray(values.reshape(shape)), str(values.dtype))
