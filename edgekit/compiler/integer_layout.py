"""Data movement on integers that the table in integer_rules.py reaches through: Split and Resize.

Split and nearest Resize only pick integers, so the grid stays. Split returns a tuple: its rule
keeps the float call (for float consumers) and records the integer parts as `SplitParts`; the
rewrite gives each `TupleGetItem` of it the matching part (integer.py).

Linear Resize weighs two neighbours per axis. Its weights are fractions known at compile time:
the source coordinate of output x is ((2x + 1) in - out) / (2 out) (half pixel), x (in - 1) /
(out - 1) (align corners) or x in / out (asymmetric), so every weight along an axis is an integer
over one denominator D (4 for a 2x upsample). Interpolated in int32 on q - zp, the result is exact
on a grid D_h x D_w times finer than the input's, and the next QuantizeLinear rounds it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from tvm import relax
from tvm.ir.prim.expr import IntImm

from edgekit.compiler.integer_values import INT_RANGES, IntValue, Match, Term, axis_constant

# Largest denominator of one axis's weights: D_h x D_w x 255 stays within int32.
MAX_DENOMINATOR = 2048


@dataclass(frozen=True)
class SplitParts:
    """A split of one term: `parts` is the integer split (a tuple var), every part on `term`'s grid."""

    term: Term
    parts: relax.Expr

    def part(self, emit, index: int) -> IntValue:
        t = self.term
        return IntValue((Term(emit(relax.TupleGetItem(self.parts, index)), t.dtype, t.scale, t.zero_point, None),))


def splittable(m: Match) -> bool:
    """split of one term on one grid (per tensor: the scales need not follow the parts)."""
    (value,) = m.inputs
    term = value.single
    return term is not None and term.per_tensor


def split_integers(bb: relax.BlockBuilder, m: Match) -> SplitParts:
    (value,) = m.inputs
    term = value.single
    indices = m.call.attrs.indices_or_sections  # an IntImm (sections) or an Array of split points
    indices = int(indices) if isinstance(indices, IntImm) else [int(i) for i in indices]
    return SplitParts(term, bb.emit(relax.op.split(term.q, indices, axis=int(m.call.attrs.axis))))


def nearest_resize(m: Match) -> bool:
    """resize2d by nearest neighbour of one term: it only picks integers, the grid stays."""
    (value,) = m.inputs
    term = value.single
    return term is not None and str(m.call.attrs.method) == "nearest_neighbor" and term.dtype in INT_RANGES


def resize_integers(bb: relax.BlockBuilder, m: Match) -> IntValue:
    (value,) = m.inputs
    term = value.single
    a = m.call.attrs
    resized = bb.emit(
        relax.op.image.resize2d(
            term.q, m.call.args[1], roi=tuple(float(r) for r in a.roi), layout=a.layout, method=a.method, coordinate_transformation_mode=a.coordinate_transformation_mode,
            rounding_method=a.rounding_method, cubic_alpha=float(a.cubic_alpha), cubic_exclude=int(a.cubic_exclude), extrapolation_value=float(a.extrapolation_value),
        )
    )
    return IntValue((Term(resized, term.dtype, term.scale, term.zero_point, term.axis),))


@dataclass(frozen=True)
class LinearTaps:
    """One axis of a linear resize: for each output index, two input indices and integer weights over `denominator`."""

    first: np.ndarray  # int32 (out,)
    second: np.ndarray
    first_weight: np.ndarray  # int32 (out,), first_weight + second_weight == denominator
    second_weight: np.ndarray
    denominator: int


def linear_taps(in_size: int, out_size: int, mode: str) -> LinearTaps | None:
    """The taps of a linear resize from `in_size` to `out_size` under ONNX's coordinate `mode`; None if not exact in int32."""
    sources = []
    for x in range(out_size):
        if mode == "half_pixel" or (mode == "pytorch_half_pixel" and out_size > 1):
            source = Fraction((2 * x + 1) * in_size - out_size, 2 * out_size)
        elif mode in ("align_corners", "pytorch_half_pixel"):
            source = Fraction(x * (in_size - 1), out_size - 1) if out_size > 1 else Fraction(0)
        elif mode == "asymmetric":
            source = Fraction(x * in_size, out_size)
        else:
            return None
        sources.append(source)
    floors = [math.floor(source) for source in sources]
    fractions = [source - floor for source, floor in zip(sources, floors)]
    denominator = math.lcm(*(f.denominator for f in fractions))
    if denominator > MAX_DENOMINATOR:
        return None
    second_weight = np.array([int(f * denominator) for f in fractions], np.int32)
    floors = np.array(floors)
    return LinearTaps(
        np.clip(floors, 0, in_size - 1).astype(np.int32), np.clip(floors + 1, 0, in_size - 1).astype(np.int32),
        (denominator - second_weight).astype(np.int32), second_weight, denominator,
    )


def _linear_axes(m: Match) -> list[tuple[int, LinearTaps]] | None:
    """(axis, taps) for the height and width axes of linear resize2d `m.call`, or None if one is not exact."""
    a = m.call.attrs
    layout = str(a.layout)
    if sorted(layout) != sorted("NCHW"):
        return None
    in_shape, out_shape = [int(d) for d in m.call.args[0].ty.shape], [int(d) for d in m.call.ty.shape]
    axes = []
    for letter in "HW":
        axis = layout.index(letter)
        taps = linear_taps(in_shape[axis], out_shape[axis], str(a.coordinate_transformation_mode))
        if taps is None:
            return None
        axes.append((axis, taps))
    return axes


def linear_resize(m: Match) -> bool:
    """resize2d by linear interpolation of one term on one int8 grid, its weights exact over small denominators."""
    (value,) = m.inputs
    term = value.single
    if term is None or not term.per_tensor or term.dtype not in INT_RANGES or str(m.call.attrs.method) != "linear":
        return False
    axes = _linear_axes(m)
    return axes is not None and 255 * math.prod(taps.denominator for _, taps in axes) <= 2**31 - 1


def interpolate_integers(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Along each axis: (first weight) x (q - zp)[first] + (second weight) x (q - zp)[second], in int32."""
    (value,) = m.inputs
    term = value.single
    rank = len(term.q.ty.shape)
    data = bb.emit(relax.op.astype(term.q, "int32"))
    if int(term.zero_point):
        data = bb.emit(relax.op.subtract(data, relax.const(int(term.zero_point), "int32")))
    denominator = 1
    for axis, taps in _linear_axes(m):
        denominator *= taps.denominator
        first = bb.emit(relax.op.take(data, relax.const(taps.first, "int32"), axis=axis, mode="clip"))
        if taps.denominator == 1:  # every source coordinate is a whole index: a gather
            data = first
            continue
        second = bb.emit(relax.op.take(data, relax.const(taps.second, "int32"), axis=axis, mode="clip"))
        weighted = [bb.emit(relax.op.multiply(part, axis_constant(weights, axis, rank)))
                    for part, weights in ((first, taps.first_weight), (second, taps.second_weight))]
        data = bb.emit(relax.op.add(*weighted))
    return IntValue((Term(data, "int32", term.scale / denominator, np.zeros((), np.int64)),))
