"""What each integer rule emits: builder(bb, match) for a call whose rule predicate held.

A builder may assume everything its predicate (integer_rules.py) checked. Builders of ops inside
a region return the result as an `IntValue`; the walker keeps its float meaning under the
original name for float consumers. `open_region` (DequantizeLinear) and `requantize_output`
(QuantizeLinear) are the region's edges.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tvm import relax

from edgekit.compiler.integer_values import IntValue, Match, Term, axis_constant, requantize, subtract_zero_point_correction, tensor_constant
from edgekit.compiler.dot_packing import packed_batch_matmul, packed_conv2d, packed_dense
from edgekit.compiler.zero_point_pad import pad_with_zero_point

# -- region edges -------------------------------------------------------------------------------------


def open_region(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """dequantize(q, scale, zp) is scale * (q - zp): one term, per tensor or per channel."""
    data, scale, zero_point = m.call.args
    scale_np = tensor_constant(scale).astype(np.float64)
    zp_np = tensor_constant(zero_point).astype(np.int64)
    rank = len(data.ty.shape)
    axis = None
    if scale_np.size > 1:
        axis = int(m.call.attrs.axis) % rank
        scale_np, zp_np = scale_np.reshape(-1), np.broadcast_to(zp_np.reshape(-1), (scale_np.size,)).copy()
    else:
        scale_np, zp_np = scale_np.reshape(()), zp_np.reshape(())
    value = tensor_constant(data)
    return IntValue((Term(data, str(data.ty.dtype), scale_np, zp_np, axis, value),))


def requantize_output(bb: relax.BlockBuilder, m: Match) -> relax.Expr:
    """quantize(value, scale, zp): the integer value requantized onto the output's int8 grid."""
    _, scale, zero_point = m.call.args
    target = (float(tensor_constant(scale).reshape(())), int(tensor_constant(zero_point).reshape(())))
    return requantize(bb.emit, m.inputs[0], *target, str(m.call.attrs.out_dtype))


# -- convolution and matmul: int8 x int8, int32 accumulation ------------------------------------------------


def conv2d_int8(bb: relax.BlockBuilder, m: Match) -> IntValue:
    x, w = m.singles
    attrs = m.call.attrs
    data = x.q
    zx = int(x.zero_point)
    padding = [int(p) for p in attrs.padding]
    if any(padding):
        # Zero in the float model is the zero point on the int8 grid: pad with it, not with 0.
        top, left, bottom, right = padding
        data = pad_with_zero_point(bb, data, (top, bottom, left, right), zx)
    acc = bb.emit(relax.op.nn.conv2d(data, w.q, strides=attrs.strides, padding=0, dilation=attrs.dilation, groups=int(attrs.groups), out_dtype="int32"))
    acc = subtract_zero_point_correction(bb, acc, zx, w.value, output_axis=0, shape=[1, -1, 1, 1])
    return _conv2d_result(acc, x, w)


def conv2d_packed(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """The convolution in the layout the target's dot product wants (dot_packing.py), exact like the plain form."""
    x, w = m.singles
    return _conv2d_result(packed_conv2d(bb, m.call, x, w, m.dot), x, w)


def _conv2d_result(acc: relax.Expr, x: Term, w: Term) -> IntValue:
    return IntValue((Term(acc, "int32", x.scale * w.scale, np.zeros_like(w.scale, np.int64), None if w.per_tensor else 1),))


def matmul_constant(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Activations x constant int8 weights: the raw integers multiply, then zp_a * sum(b) comes off."""
    a, b = m.singles
    acc = bb.emit(relax.op.matmul(a.q, b.q, out_dtype="int32"))
    acc = subtract_zero_point_correction(bb, acc, int(a.zero_point), b.value, output_axis=1, shape=[-1])
    return _matmul_result(acc, m)


def matmul_packed(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Activations x constant int8 weights as the packed dense of dot_packing.py."""
    a, b = m.singles
    return _matmul_result(packed_dense(bb, a, b, [int(d) for d in m.call.ty.shape], m.dot), m)


def matmul_activations_packed(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Two activations (attention) as the packed dense with a batch loop, B packed at run time (dot_packing.py)."""
    a, b = m.singles
    return _matmul_result(packed_batch_matmul(bb, a, b, [int(d) for d in m.call.ty.shape], m.dot), m)


def matmul_centred(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Two activations (attention): centre both in int32; exact, without a packed dot-product form."""
    a, b = m.singles
    acc = bb.emit(relax.op.matmul(_centred(bb, a), _centred(bb, b), out_dtype="int32"))
    return _matmul_result(acc, m)


def _matmul_result(acc: relax.Expr, m: Match) -> IntValue:
    a, b = m.singles
    axis = None if b.per_tensor else len(m.call.ty.shape) - 1
    return IntValue((Term(acc, "int32", a.scale * b.scale, np.zeros_like(a.scale * b.scale, np.int64), axis),))


def _centred(bb: relax.BlockBuilder, term: Term) -> relax.Expr:
    widened = bb.emit(relax.op.astype(term.q, "int32"))
    if np.all(term.zero_point == 0):
        return widened
    return bb.emit(relax.op.subtract(widened, axis_constant(term.zero_point.astype(np.int32), term.axis, len(term.q.ty.shape))))


# -- elementwise, clamps and pooling ----------------------------------------------------------------------


def bias_add(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """A bias add: int32 on the accumulator's own grid, one integer add."""
    ta, tb = m.singles
    return IntValue((replace(ta, q=bb.emit(relax.op.add(ta.q, tb.q)), value=None),))


def add_terms(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """A sum on different grids stays a sum of terms; the next requantization rescales each."""
    a, b = m.inputs
    return IntValue(a.terms + b.terms)


def relu_clamp(bb: relax.BlockBuilder, m: Match) -> IntValue:
    (value,) = m.inputs
    return replace(value, lo=0.0 if value.lo is None else max(value.lo, 0.0))


def clip_clamp(bb: relax.BlockBuilder, m: Match) -> IntValue:
    (value,) = m.inputs
    lo, hi = float(m.call.args[1].value), float(m.call.args[2].value)
    return replace(value, lo=lo if value.lo is None else max(lo, value.lo), hi=hi if value.hi is None else min(hi, value.hi))


def maximum_clamp(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Clip with tensor bounds imports as call_tir(maximum, (x, bound)): a lower clamp."""
    (value,) = m.inputs
    bound = float(m.scalar(m.call.args[1].fields[1]))
    return _finite_clamp(replace(value, lo=bound if value.lo is None else max(value.lo, bound)))


def minimum_clamp(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """call_tir(minimum, (x, bound)): an upper clamp."""
    (value,) = m.inputs
    bound = float(m.scalar(m.call.args[1].fields[1]))
    return _finite_clamp(replace(value, hi=bound if value.hi is None else min(value.hi, bound)))


def _finite_clamp(value: IntValue) -> IntValue:
    # An infinite bound (Clip without min or max imports as -inf/inf) is no bound.
    if value.lo is not None and not np.isfinite(value.lo):
        value = replace(value, lo=None)
    if value.hi is not None and not np.isfinite(value.hi):
        value = replace(value, hi=None)
    return value


def max_pool2d_int(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Max pooling commutes with a positive scale: pool the integers, keep the grid."""
    (term,) = m.singles
    a = m.call.attrs
    pooled = bb.emit(relax.op.nn.max_pool2d(term.q, a.pool_size, a.strides, a.padding, a.dilation, a.ceil_mode, a.count_include_pad, a.layout, a.out_layout))
    return IntValue((replace(term, q=pooled, value=None),))


def mean_as_sum(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """mean = scale * (sum(q) - count * zp) / count: an int32 sum on a grid count times finer."""
    (term,) = m.singles
    attrs = m.call.attrs
    shape = [int(d) for d in term.q.ty.shape]
    axes = [int(a) % len(shape) for a in attrs.axis] if attrs.axis is not None else list(range(len(shape)))
    count = int(np.prod([shape[a] for a in axes]))
    total = bb.emit(relax.op.sum(bb.emit(relax.op.astype(term.q, "int32")), axis=axes, keepdims=bool(attrs.keepdims)))
    if int(term.zero_point):
        total = bb.emit(relax.op.subtract(total, relax.const(int(term.zero_point) * count, "int32")))
    return IntValue((Term(total, "int32", term.scale / count, np.zeros((), np.int64)),))


# -- data movement --------------------------------------------------------------------------------------------


def layout_terms(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Reshape/Transpose/Squeeze/Unsqueeze: applied to each term's integers (constants fold, and
    everything but a transpose is a reshape to the call's shape), scales follow the channel axis."""
    (value,) = m.inputs
    call = m.call
    out_shape = [int(d) for d in call.ty.shape]
    terms = []
    for term in value.terms:
        axis = moved_axis(term, call, out_shape)
        q = _same_layout_op(bb, call, term.q)
        folded = None
        if term.value is not None:
            folded = _numpy_layout(call, term.value, out_shape)
            q = relax.const(folded, str(folded.dtype))
        terms.append(Term(q, term.dtype, term.scale, term.zero_point, axis, folded))
    return replace(value, terms=tuple(terms))


def moved_axis(term: Term, call: relax.Call, out_shape: list[int]) -> int | None | bool:
    """Where a per-channel axis lands after Reshape/Transpose/Squeeze/Unsqueeze `call`: None if per-tensor, False if it cannot be followed."""
    if term.per_tensor:
        return None
    if call.op.name == "relax.permute_dims":
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else list(range(len(out_shape)))[::-1]
        return axes.index(term.axis)
    # A reshape that only adds or drops size-1 dims ([C] -> [1, C, 1, 1], squeeze, unsqueeze):
    # the channel axis is the same one among the dims larger than 1.
    in_shape = [int(d) for d in term.q.ty.shape]
    if [d for d in in_shape if d != 1] != [d for d in out_shape if d != 1] or in_shape[term.axis] == 1:
        return False
    rank_among_large = sum(1 for d in in_shape[: term.axis] if d != 1)
    return [i for i, d in enumerate(out_shape) if d != 1][rank_among_large]


def _same_layout_op(bb: relax.BlockBuilder, call: relax.Call, q: relax.Expr) -> relax.Expr:
    if call.op.name == "relax.permute_dims":
        return bb.emit(relax.op.permute_dims(q, call.attrs.axes))
    return bb.emit(relax.op.reshape(q, call.ty.shape))


def _numpy_layout(call: relax.Call, value: np.ndarray, out_shape: list[int]) -> np.ndarray:
    if call.op.name == "relax.permute_dims":
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
        return np.ascontiguousarray(np.transpose(value, axes))
    return value.reshape(out_shape)


def concat_one_grid(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Parts on one grid: concatenate the integers."""
    singles = m.singles
    joined = bb.emit(relax.op.concat([t.q for t in singles], axis=concat_axis(m.call)))
    return IntValue((replace(singles[0], q=joined, value=None),))


def concat_parts(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """Parts on different grids: each is requantized to the output grid when one is known."""
    return IntValue((), concat=tuple(m.inputs), concat_axis=concat_axis(m.call))


def concat_axis(call: relax.Call) -> int:
    return int(call.attrs.axis) % len(call.ty.shape)
