"""Packed uint8 x int8 layouts for AVX-512 VNNI, and the TE computes that read them.

vpdpbusd (see intrinsics.py) multiplies 4 uint8 activations by 4 int8 weights into each of 16
int32 lanes. The rewrite hands it the layouts it wants, exact like the plain int8 forms:

- activations move to uint8: q + 128, the zero point with them (int8 activations keep their
  values' meaning), and are padded with that zero point to a multiple of 4 input channels;
- weights are packed at compile time, 16 output channels by 4 input channels innermost;
- the zero point's contribution, zp * sum(w) per output channel, is subtracted at the end.

    conv2d  data [N, C/4, H, W, 4] (uint8)  weight [O/16, C/4, KH, KW, 16, 4] (int8) -> int32 NCHW
    dense   data [M, K] (uint8, K padded)   weight [N/16, K/4, 16, 4] (int8)          -> int32 [M, N]

The schedule that tensorizes these computes is schedules/conv2d_int8.py.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgekit.compiler.integer_values import Term, subtract_zero_point_correction
from edgekit.compiler.intrinsics import DEPTH, LANES


def packed_conv2d(bb: relax.BlockBuilder, call: relax.Call, x: Term, w: Term) -> relax.Expr:
    """The int32 accumulator of conv2d `call` on activations `x` and constant int8 weights `w`, packed for VNNI."""
    attrs = call.attrs
    data, zp = as_uint8(bb, x)
    n, channels, height, width = [int(d) for d in data.ty.shape]
    extra = -channels % DEPTH
    top, left, bottom, right = [int(p) for p in attrs.padding]
    if extra or top or left or bottom or right:
        data = bb.emit(relax.op.nn.pad(data, [0, 0, 0, extra, top, bottom, left, right], pad_value=float(zp)))
    quads = (channels + extra) // DEPTH
    height, width = height + top + bottom, width + left + right
    data = bb.emit(relax.op.reshape(data, [n, quads, DEPTH, height, width]))
    data = bb.emit(relax.op.permute_dims(data, [0, 1, 3, 4, 2]))
    out_channels, _, kh, kw = w.value.shape
    weight = np.pad(w.value, [(0, 0), (0, extra), (0, 0), (0, 0)])
    packed = weight.reshape(out_channels // LANES, LANES, quads, DEPTH, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    out_h, out_w = [int(d) for d in list(call.ty.shape)[2:]]
    strides = [int(s) for s in attrs.strides]
    dilation = [int(d) for d in attrs.dilation]
    acc = bb.emit_te(
        packed_conv_te, data, relax.const(np.ascontiguousarray(packed), "int8"), (n, out_channels, out_h, out_w), strides, dilation, (kh, kw),
        primfunc_name_hint="conv2d_u8i8_packed",
    )
    return subtract_zero_point_correction(bb, acc, zp, w.value, output_axis=0, shape=[1, -1, 1, 1])


def packed_dense(bb: relax.BlockBuilder, a: Term, b: Term, out_shape: list[int]) -> relax.Expr:
    """The int32 accumulator of A x constant B as a packed uint8 x int8 dense.

    Leading dims of A flatten into rows; K is padded to a multiple of 4 (A with its zero point,
    B with zeros); B is packed at compile time to [N/16, K/4, 16, 4].
    """
    data, zp = as_uint8(bb, a)
    depth, columns = b.value.shape
    rows = int(np.prod(out_shape[:-1]))
    data = bb.emit(relax.op.reshape(data, [rows, depth]))
    extra = -depth % DEPTH
    if extra:
        data = bb.emit(relax.op.nn.pad(data, [0, 0, 0, extra], pad_value=float(zp)))
    weight = np.pad(b.value, [(0, extra), (0, 0)])
    packed = weight.reshape((depth + extra) // DEPTH, DEPTH, columns // LANES, LANES).transpose(2, 0, 3, 1)
    acc = bb.emit_te(packed_dense_te, data, relax.const(np.ascontiguousarray(packed), "int8"), (rows, columns), primfunc_name_hint="dense_u8i8_packed")
    acc = subtract_zero_point_correction(bb, acc, zp, b.value, output_axis=1, shape=[-1])
    return bb.emit(relax.op.reshape(acc, out_shape))


def as_uint8(bb: relax.BlockBuilder, term: Term) -> tuple[relax.Expr, int]:
    """`term`'s integers on the uint8 grid vpdpbusd reads: int8 moves up by 128, its zero point with it."""
    if term.dtype == "uint8":
        return term.q, int(term.zero_point)
    widened = bb.emit(relax.op.astype(term.q, "int16"))
    shifted = bb.emit(relax.op.add(widened, relax.const(128, "int16")))
    return bb.emit(relax.op.astype(shifted, "uint8")), int(term.zero_point) + 128


def packed_conv_te(data, weight, shape, strides, dilation, kernel):
    from tvm import te

    quads = data.shape[1]
    rc = te.reduce_axis((0, quads), "rc")
    ry = te.reduce_axis((0, kernel[0]), "ry")
    rx = te.reduce_axis((0, kernel[1]), "rx")
    ri = te.reduce_axis((0, DEPTH), "ri")
    return te.compute(
        shape,
        lambda b, f, y, x: te.sum(
            data[b, rc, y * strides[0] + ry * dilation[0], x * strides[1] + rx * dilation[1], ri].astype("int32")
            * weight[f // LANES, rc, ry, rx, f % LANES, ri].astype("int32"),
            axis=[rc, ry, rx, ri],
        ),
        name="conv2d_u8i8_packed",
    )


def packed_dense_te(data, weight, shape):
    from tvm import te

    rk = te.reduce_axis((0, data.shape[1] // DEPTH), "rk")
    ri = te.reduce_axis((0, DEPTH), "ri")
    return te.compute(
        shape,
        lambda m, n: te.sum(data[m, rk * DEPTH + ri].astype("int32") * weight[n // LANES, rk, n % LANES, ri].astype("int32"), axis=[rk, ri]),
        name="dense_u8i8_packed",
    )
