"""Padding an 8-bit NCHW tensor with its zero point, as a kernel that copies rows.

Zero in the float model is the zero point on the integer grid, so an int8 convolution's input is
padded with it rather than by the convolution's own (zero) padding. `relax.op.nn.pad` legalizes
to one select per element, which TVM cannot vectorize: MobileNetV2's depthwise inputs spent 6% of
an inference in those scalar loops on the A76. This kernel fills the border rows and columns and
copies each interior row as one vector, the same bytes.
"""

from __future__ import annotations

from tvm import relax, tirx
from tvm.script import tirx as T

from edgekit.compiler.schedules.common import PARALLEL_MIN_WORK


def zero_point_pad_kernel(shape: tuple[int, int, int, int], pads: tuple[int, int, int, int], value: int, dtype: str) -> tirx.PrimFunc:
    """y = x padded by (top, bottom, left, right) with `value`, parallel over (batch, channel) when large."""
    n, c, h, w = shape
    top, bottom, left, right = pads
    height, width = h + top + bottom, w + left + right
    parallel = n * c * height * width >= PARALLEL_MIN_WORK

    @T.prim_func(s_tir=True)
    def zero_point_pad(x: T.Buffer((n, c, h, w), dtype), y: T.Buffer((n, c, height, width), dtype)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        with T.sblock("root"):
            T.reads()
            T.writes()
            with T.sblock("zero_point_pad"):  # one opaque block: passes that look for a compute block find it
                T.reads(x[0:n, 0:c, 0:h, 0:w])
                T.writes(y[0:n, 0:c, 0:height, 0:width])
                for plane in T.parallel(n * c) if parallel else T.serial(n * c):
                    for row in range(height):
                        if row < top or row >= top + h:
                            for col in T.vectorized(width):
                                y[plane // c, plane % c, row, col] = T.Cast(dtype, value)
                        else:
                            for col in T.vectorized(left) if left > 1 else T.serial(left):  # TVM cannot vectorize 0 lanes
                                y[plane // c, plane % c, row, col] = T.Cast(dtype, value)
                            for col in T.vectorized(w):
                                y[plane // c, plane % c, row, left + col] = x[plane // c, plane % c, row - top, col]
                            for col in T.vectorized(right) if right > 1 else T.serial(right):
                                y[plane // c, plane % c, row, left + w + col] = T.Cast(dtype, value)

    return zero_point_pad


def pad_with_zero_point(bb: relax.BlockBuilder, data: relax.Expr, pads: tuple[int, int, int, int], value: int) -> relax.Expr:
    """`data` (8-bit NCHW) padded with `value`: by the row-copy kernel when its shape is static."""
    if not all(isinstance(d, tirx.IntImm) for d in data.ty.shape):
        top, bottom, left, right = pads
        return bb.emit(relax.op.nn.pad(data, [0, 0, 0, 0, top, bottom, left, right], pad_value=float(value)))
    shape = tuple(int(d) for d in data.ty.shape)
    dtype = str(data.ty.dtype)
    top, bottom, left, right = pads
    out_shape = [shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right]
    # Without its global symbol: the module names each shape's kernel (zero_point_pad, zero_point_pad1, ...).
    kernel = bb.add_func(zero_point_pad_kernel(shape, pads, value, dtype).without_attr("global_symbol"), "zero_point_pad")
    return bb.emit(relax.call_tir(kernel, [data], relax.TensorType(out_shape, dtype)))
