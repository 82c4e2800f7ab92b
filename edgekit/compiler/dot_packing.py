"""Packed layouts for the targets' dot-product instructions, and the TE computes that read them.

Each dot-product scheme (dot_products.py) multiplies DEPTH activations by DEPTH weights into each
of 16 int32 lanes. The rewrite hands it the layouts it wants, exact like the plain int8 forms:

- activations move onto the scheme's grid: uint8 (VNNI) as q + 128, int8 (sdot, NEON) as
  q - 128 for uint8 inputs, int16 (AVX2) as they are; the zero point moves with them, so the
  values keep their meaning. They are padded with that zero point to a multiple of DEPTH input
  channels;
- weights are packed at compile time, 16 output channels by DEPTH input channels innermost;
- the zero point's contribution, zp * sum(w) per output channel, is subtracted at the end.

    conv2d  data [N, C/D, H, W, D]  weight [O/16, C/D, KH, KW, 16, D] -> int32 NCHW
    dense   data [M, K] (K padded)  weight [N/16, K/D, 16, D]          -> int32 [M, N]
    batch   data [T, M, K]          B [T, N/16, K/D, 16, D] (run time)  -> int32 [T, M, N]

The schedule that tensorizes these computes is schedules/conv2d_int8.py.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgekit.compiler.dot_products import LANES, DotScheme
from edgekit.compiler.integer_values import Term, subtract_zero_point_correction

# How a grid's integers move onto another grid of the same spacing: (offset, zero point offset).
_GRID_SHIFTS = {("int8", "uint8"): 128, ("uint8", "int8"): -128}


def packed_conv2d(bb: relax.BlockBuilder, call: relax.Call, x: Term, w: Term, scheme: DotScheme) -> relax.Expr:
    """The int32 accumulator of conv2d `call` on activations `x` and constant int8 weights `w`, packed for `scheme`."""
    attrs = call.attrs
    depth = scheme.depth
    data, zp = on_grid(bb, x, scheme.data_dtype)
    n, channels, height, width = [int(d) for d in data.ty.shape]
    extra = -channels % depth
    top, left, bottom, right = [int(p) for p in attrs.padding]
    if extra or top or left or bottom or right:
        data = bb.emit(relax.op.nn.pad(data, [0, 0, 0, extra, top, bottom, left, right], pad_value=float(zp)))
    groups = (channels + extra) // depth
    height, width = height + top + bottom, width + left + right
    data = bb.emit(relax.op.reshape(data, [n, groups, depth, height, width]))
    data = bb.emit(relax.op.permute_dims(data, [0, 1, 3, 4, 2]))
    out_channels, _, kh, kw = w.value.shape
    blocks = lane_blocks(out_channels)
    weight = np.pad(w.value, [(0, blocks * LANES - out_channels), (0, extra), (0, 0), (0, 0)])
    packed = weight.reshape(blocks, LANES, groups, depth, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    out_h, out_w = [int(d) for d in list(call.ty.shape)[2:]]
    strides = [int(s) for s in attrs.strides]
    dilation = [int(d) for d in attrs.dilation]
    weights = relax.const(np.ascontiguousarray(packed).astype(scheme.weight_dtype), scheme.weight_dtype)
    acc = bb.emit_te(packed_conv_te, data, weights, (n, out_channels, out_h, out_w), strides, dilation, (kh, kw), primfunc_name_hint=_kernel_name("conv2d", scheme))
    return subtract_zero_point_correction(bb, acc, zp, w.value, output_axis=0, shape=[1, -1, 1, 1])


def packed_dense(bb: relax.BlockBuilder, a: Term, b: Term, out_shape: list[int], scheme: DotScheme) -> relax.Expr:
    """The int32 accumulator of A x constant B as a packed dense for `scheme`.

    Leading dims of A flatten into rows; K is padded to a multiple of DEPTH (A with its zero
    point, B with zeros); B is packed at compile time to [N/16, K/DEPTH, 16, DEPTH].
    """
    depth = scheme.depth
    data, zp = on_grid(bb, a, scheme.data_dtype)
    rows_in, columns = b.value.shape
    rows = int(np.prod(out_shape[:-1]))
    data = bb.emit(relax.op.reshape(data, [rows, rows_in]))
    extra = -rows_in % depth
    if extra:
        data = bb.emit(relax.op.nn.pad(data, [0, 0, 0, extra], pad_value=float(zp)))
    blocks = lane_blocks(columns)
    weight = np.pad(b.value, [(0, extra), (0, blocks * LANES - columns)])
    packed = weight.reshape((rows_in + extra) // depth, depth, blocks, LANES).transpose(2, 0, 3, 1)
    weights = relax.const(np.ascontiguousarray(packed).astype(scheme.weight_dtype), scheme.weight_dtype)
    acc = bb.emit_te(packed_dense_te, data, weights, (rows, columns), depth, primfunc_name_hint=_kernel_name("dense", scheme))
    acc = subtract_zero_point_correction(bb, acc, zp, b.value, output_axis=1, shape=[-1])
    return bb.emit(relax.op.reshape(acc, out_shape))


def packed_batch_matmul(bb: relax.BlockBuilder, a: Term, b: Term, out_shape: list[int], scheme: DotScheme) -> relax.Expr:
    """The int32 sum of (a - za)(b - zb) over K for two activations (attention's Q x K^T, P x V), packed for `scheme`.

    B is packed at run time to [batch, N/16, K/DEPTH, 16, DEPTH] on the weight grid (int8 for
    sdot and VNNI, int16 for AVX2) and multiplied by the packed dense's kernel with a batch loop.
    Its zero point is not zero, so the sum of the raw grids comes with three corrections:
    raw - zb * rowsum(a) - za * colsum(b) + K * za * zb. Padding of K (a with za, b with 0) adds
    za * 0 to the raw sum, nothing, and the sums are over the unpadded operands.
    """
    depth = scheme.depth
    data, za = on_grid(bb, a, scheme.data_dtype)
    right, zb = on_grid(bb, b, scheme.weight_dtype)
    *batch_dims, rows, inner = [int(d) for d in data.ty.shape]
    columns = int(b.q.ty.shape[-1])
    batch = int(np.prod(batch_dims)) if batch_dims else 1
    data = bb.emit(relax.op.reshape(data, [batch, rows, inner]))
    right = bb.emit(relax.op.reshape(right, [batch, inner, columns]))
    rowsum = bb.emit(relax.op.sum(bb.emit(relax.op.astype(data, "int32")), axis=[2], keepdims=True))
    colsum = bb.emit(relax.op.sum(bb.emit(relax.op.astype(right, "int32")), axis=[1], keepdims=True))
    extra, blocks = -inner % depth, lane_blocks(columns)
    if extra:
        data = bb.emit(relax.op.nn.pad(data, [0, 0, 0, 0, 0, extra], pad_value=float(za)))
    if extra or blocks * LANES != columns:
        right = bb.emit(relax.op.nn.pad(right, [0, 0, 0, extra, 0, blocks * LANES - columns], pad_value=0.0))
    steps = (inner + extra) // depth
    packed = bb.emit(relax.op.permute_dims(bb.emit(relax.op.reshape(right, [batch, steps, depth, blocks, LANES])), [0, 3, 1, 4, 2]))
    acc = bb.emit_te(packed_dense_te, data, packed, (batch, rows, columns), depth, primfunc_name_hint=_kernel_name("batch_dense", scheme))
    if zb:
        acc = bb.emit(relax.op.subtract(acc, bb.emit(relax.op.multiply(rowsum, relax.const(zb, "int32")))))
    if za:
        acc = bb.emit(relax.op.subtract(acc, bb.emit(relax.op.multiply(colsum, relax.const(za, "int32")))))
    if za and zb:
        acc = bb.emit(relax.op.add(acc, relax.const(inner * za * zb, "int32")))
    return bb.emit(relax.op.reshape(acc, out_shape))


def lane_blocks(channels: int) -> int:
    """16-lane blocks holding `channels` output channels (the last one padded)."""
    return -(-channels // LANES)


def _kernel_name(kind: str, scheme: DotScheme) -> str:
    """conv2d_u8i8_packed (VNNI, the name earlier artifacts carry), conv2d_i8i8_packed, conv2d_i16i16_packed."""
    short = {"uint8": "u8", "int8": "i8", "int16": "i16"}
    return f"{kind}_{short[scheme.data_dtype]}{short[scheme.weight_dtype]}_packed"


def on_grid(bb: relax.BlockBuilder, term: Term, dtype: str) -> tuple[relax.Expr, int]:
    """`term`'s integers as `dtype` with the same meaning: (integers, zero point on that grid)."""
    if term.dtype == dtype:
        return term.q, int(term.zero_point)
    if dtype == "int16":
        return bb.emit(relax.op.astype(term.q, "int16")), int(term.zero_point)
    offset = _GRID_SHIFTS[(term.dtype, dtype)]
    widened = bb.emit(relax.op.astype(term.q, "int16"))
    shifted = bb.emit(relax.op.add(widened, relax.const(offset, "int16")))
    return bb.emit(relax.op.astype(shifted, dtype)), int(term.zero_point) + offset


def packed_conv_te(data, weight, shape, strides, dilation, kernel):
    from tvm import te

    groups, depth = data.shape[1], data.shape[4]
    rc = te.reduce_axis((0, groups), "rc")
    ry = te.reduce_axis((0, kernel[0]), "ry")
    rx = te.reduce_axis((0, kernel[1]), "rx")
    ri = te.reduce_axis((0, depth), "ri")
    n, _, height, width = shape
    conv = te.compute(
        (n, weight.shape[0] * LANES, height, width),
        lambda b, f, y, x: te.sum(
            data[b, rc, y * strides[0] + ry * dilation[0], x * strides[1] + rx * dilation[1], ri].astype("int32")
            * weight[f // LANES, rc, ry, rx, f % LANES, ri].astype("int32"),
            axis=[rc, ry, rx, ri],
        ),
        name="conv2d_packed",
    )
    return _whole_blocks_sliced(conv, shape, axis=1)


def packed_dense_te(data, weight, shape, depth):
    """data [(T,) M, K] x weight [(T,) N/16, K/D, 16, D] -> int32 [(T,) M, N]: a leading batch
    dimension on both (two activations) or on neither (a constant weight)."""
    from tvm import te

    batched = len(data.shape) == 3
    rk = te.reduce_axis((0, data.shape[-1] // depth), "rk")
    ri = te.reduce_axis((0, depth), "ri")

    def dot(*index):
        *batch, m, n = index
        return te.sum(data[(*batch, m, rk * depth + ri)].astype("int32") * weight[(*batch, n // LANES, rk, n % LANES, ri)].astype("int32"), axis=[rk, ri])

    dense = te.compute((*shape[:-1], weight.shape[-4] * LANES), dot, name="dense_packed")
    return _whole_blocks_sliced(dense, shape, axis=2 if batched else 1)


def _whole_blocks_sliced(acc, shape, axis: int):
    """`acc` computed on whole 16-lane blocks of output channels, cut to the `shape` asked for.

    24 or 1000 output channels still run the dot-product kernel (on 32 and 1008, the weights
    padded with zeros) instead of falling back to a per-value kernel: the slice reads at the same
    indices it writes, so it is elementwise to TVM's fusion and the requantization epilogue still
    fuses behind it; the schedule inlines it into the tile's write-back under a predicate.
    """
    from tvm import te

    if int(acc.shape[axis]) == int(shape[axis]):
        return acc
    return te.compute(shape, lambda *i: acc[i], name="whole_blocks_sliced")
