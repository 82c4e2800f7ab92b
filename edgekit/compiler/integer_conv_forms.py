"""Ops that are convolutions in another form, rewritten by the conv2d rules themselves.

- Average pooling is a depthwise convolution by a kernel of ones: the window sums of q - zp (the
  input padded with its zero point, so padding adds zero) divided by the window's count. Where
  every window has the same count the sum is one term on a grid `count` times finer; where
  counts differ (padding excluded from the average at the borders) each sum is multiplied by
  L / count, an integer for L the least common multiple of the counts, onto one grid L times
  finer. Both are exact: the next QuantizeLinear rounds once, as the float model does.
- A transposed convolution is a convolution of its input dilated by the stride (zero points
  inserted between the samples, zero in the float model) and padded by dilation x (k - 1) -
  padding on each side (output padding at the end), by the kernel flipped in space with its
  input and output channels swapped per group.

Each builds the conv2d it is as a call on placeholders and lets `integer_rules.select_rule` pick
the conv2d rule (packed for the target's dot products where one applies), so these forms get
every conv2d kernel the table has, and its exactness.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from tvm import relax, topi

from edgekit.compiler.integer_values import INT_RANGES, IntValue, Match, Term

INT32_LIMIT = 2**31 - 1
CODE_SPAN = 255  # |q - zp| of an 8-bit tensor is at most this


# -- the convolution they are ----------------------------------------------------------------------------


def conv2d_by_rules(bb: relax.BlockBuilder, m: Match, x: Term, weights: np.ndarray, w_scale: np.ndarray,
                    padding: list[int], strides: list[int], dilation: list[int], groups: int) -> IntValue:
    """x (NCHW, one int8 grid) convolved with the constant symmetric int8 `weights` (OIHW, scale per
    tensor or per output channel) by the first conv2d rule of the table: its int32 accumulator."""
    from edgekit.compiler.integer_rules import select_rule  # the table refers to this module's builders

    x_var = relax.Var("x", relax.TensorType([int(d) for d in x.q.ty.shape], "float32"))
    w_var = relax.Var("w", relax.TensorType(list(weights.shape), "float32"))
    call = bb.normalize(relax.op.nn.conv2d(x_var, w_var, strides=strides, padding=padding, dilation=dilation, groups=groups))
    per_channel = np.ndim(w_scale) > 0
    w = Term(relax.const(weights, "int8"), "int8", np.asarray(w_scale, np.float64), np.zeros(np.shape(w_scale), np.int64), 0 if per_channel else None, weights)
    found = select_rule(call, {x_var: IntValue((x,)), w_var: IntValue((w,))}, m.dot)
    if found is None:  # the predicates of the forms below check what the conv2d rules need
        raise AssertionError(f"no conv2d rule takes the convolution {call.ty} of {x.dtype} by int8 weights {weights.shape}")
    rule, match = found
    return rule.build(bb, match)


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape]


def _one_grid(term: Term | None) -> bool:
    return term is not None and term.per_tensor and term.dtype in INT_RANGES and term.value is None


# -- average pooling -----------------------------------------------------------------------------------------


def window_counts(call: relax.Call) -> np.ndarray | None:
    """How many input values each output of avg_pool2d `call` averages, (OH, OW); None when a window
    reaches past the padding (ceil mode) or the layout is not NCHW."""
    a = call.attrs
    if str(a.layout) != "NCHW" or str(a.out_layout) != "NCHW":
        return None
    _, _, height, width = [int(d) for d in call.args[0].ty.shape]
    out_h, out_w = _shape(call)[2:]
    top, left, bottom, right = [int(p) for p in a.padding]
    counts = []
    for size, out, k, s, d, before, after in zip((height, width), (out_h, out_w), a.pool_size, a.strides, a.dilation, (top, left), (bottom, right)):
        k, s, d = int(k), int(s), int(d)
        starts = np.arange(out) * s - before
        if starts[-1] + (k - 1) * d >= size + after:
            return None
        taps = starts[:, None] + d * np.arange(k)[None, :]
        inside = (taps >= 0) & (taps < size) if not a.count_include_pad else np.ones_like(taps, bool)
        counts.append(inside.sum(axis=1))
    return np.outer(*counts)


def average_of_one_grid(m: Match) -> bool:
    """avg_pool2d (NCHW) of one int8 grid whose windows stay within the padding, the scaled sums within int32."""
    (term,) = m.singles
    if not _one_grid(term):
        return False
    counts = window_counts(m.call)
    if counts is None or counts.min() < 1:
        return False
    window = int(np.prod([int(k) for k in m.call.attrs.pool_size]))
    return CODE_SPAN * window * (math.lcm(*np.unique(counts).tolist()) // int(counts.min())) <= INT32_LIMIT


def average_pool_as_conv(bb: relax.BlockBuilder, m: Match) -> IntValue:
    (term,) = m.singles
    a = m.call.attrs
    channels = _shape(term.q)[1]
    kh, kw = [int(k) for k in a.pool_size]
    sums = conv2d_by_rules(bb, m, term, np.ones((channels, 1, kh, kw), np.int8), np.float64(1.0), [int(p) for p in a.padding],
                           [int(s) for s in a.strides], [int(d) for d in a.dilation], groups=channels).single
    counts = window_counts(m.call)
    if np.all(counts == counts.flat[0]):
        return IntValue((replace(sums, scale=sums.scale / float(counts.flat[0])),))
    common = math.lcm(*np.unique(counts).tolist())
    factors = (common // counts).astype(np.int32).reshape(1, 1, *counts.shape)
    scaled = bb.emit(relax.op.multiply(sums.q, relax.const(factors, "int32")))
    return IntValue((Term(scaled, "int32", sums.scale / common, np.zeros((), np.int64)),))


# -- transposed convolution ----------------------------------------------------------------------------------------


def _transposed_padding(call: relax.Call, kernel: tuple[int, int]) -> list[int]:
    """The padding (top, left, bottom, right) of the convolution a conv2d_transpose is."""
    a = call.attrs
    top, left, bottom, right = [int(p) for p in a.padding]
    (dh, dw), (oh, ow) = [int(d) for d in a.dilation], [int(p) for p in a.output_padding]
    kh, kw = kernel
    return [dh * (kh - 1) - top, dw * (kw - 1) - left, dh * (kh - 1) - bottom + oh, dw * (kw - 1) - right + ow]


def transposable_conv(m: Match) -> bool:
    """conv2d_transpose NCHW/IOHW of one int8 grid by constant symmetric int8 weights (per tensor, or per
    output channel without groups) whose padding does not crop."""
    x, w = m.singles
    a = m.call.attrs
    layouts = str(a.data_layout) == "NCHW" and str(a.kernel_layout) == "IOHW" and str(a.out_layout) == "NCHW"
    if not (layouts and _one_grid(x) and w is not None and w.value is not None and w.dtype == "int8" and not np.any(w.zero_point != 0)):
        return False
    if not (w.per_tensor or (w.axis == 1 and int(a.groups) == 1)):
        return False
    return min(_transposed_padding(m.call, w.value.shape[2:])) >= 0


def conv2d_transpose_as_conv(bb: relax.BlockBuilder, m: Match) -> IntValue:
    x, w = m.singles
    a = m.call.attrs
    groups = int(a.groups)
    in_channels, out_per_group, kh, kw = w.value.shape
    flipped = w.value[:, :, ::-1, ::-1].reshape(groups, in_channels // groups, out_per_group, kh, kw)
    weights = np.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4).reshape(groups * out_per_group, in_channels // groups, kh, kw))
    strides = [int(s) for s in a.strides]
    data = x.q
    if strides != [1, 1]:
        data = bb.emit_te(topi.nn.dilate, data, (1, 1, *strides), int(x.zero_point), primfunc_name_hint="dilate_with_zero_point")
    return conv2d_by_rules(bb, m, replace(x, q=data), weights, w.scale, _transposed_padding(m.call, (kh, kw)), [1, 1], [int(d) for d in a.dilation], groups)
