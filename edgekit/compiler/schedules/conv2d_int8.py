"""The packed uint8 x int8 convolution edgekit's integer rewrite emits for VNNI targets.

Data [N, C/4, H, W, 4] (uint8), weight [O/16, C/4, KH, KW, 16, 4] (int8, packed at compile
time), int32 output NCHW. A register tile of 16 output channels x `pixels` output columns
accumulates in a local buffer whose channels are innermost; the (16 channels x 4 input
channels) step of the reduction is one vpdpbusd (edgekit/compiler/intrinsics.py). Parallel over
(batch, channel block, output row); the fused epilogue (zero-point correction, bias,
requantization) runs on the tile as it is written back.
"""

from __future__ import annotations

from tvm import s_tir, tirx

from edgekit.compiler import intrinsics
from edgekit.compiler.schedules.common import CpuShape, divisors, extent, inline_epilogues, parallelize_outer, sblock_iter_kinds, vectorize_innermost

MAX_PIXELS = 8  # output columns per register tile: 8 zmm accumulators leave room for operands


def schedule_conv2d_int8(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    if not cpu.vnni:
        return None
    sch = s_tir.Schedule(func)
    block = _find_packed(sch, "SSSSRRRR", data_rank=5, weight_rank=6)
    if block is None:
        return None
    intrinsics.register()
    n, f, y, x, rc, ry, rx, ri = sch.get_loops(block)
    width = extent(sch, x) or 1
    pixels = max(d for d in divisors(width) if d <= MAX_PIXELS)
    producers = sch.get_producers(block)
    accumulator = sch.cache_write(block, 0, "local")
    sch.transform_layout(block, ("write", 0), lambda a, b, c, d: (a, c, d, b))
    f_o, f_i = sch.split(f, [None, intrinsics.LANES])
    x_o, x_i = sch.split(x, [None, pixels])
    sch.reorder(n, f_o, y, x_o, rc, ry, rx, x_i, f_i, ri)
    parallelize_outer(sch, [n, f_o, y], cpu.cores, min_work=width * intrinsics.LANES * (extent(sch, rc) or 1) * 4)
    sch.unroll(x_i)
    result = inline_epilogues(sch, accumulator)
    sch.reverse_compute_at(result, x_o)
    channel, pixel = sch.get_loops(result)[-2:]
    sch.reorder(pixel, channel)
    sch.unroll(pixel)
    sch.vectorize(channel)
    sch.decompose_reduction(block, rc)
    sch.tensorize(f_i, intrinsics.VNNI_16x4)
    _vectorize_producers(sch, producers, cpu)
    return sch


def _find_packed(sch: s_tir.Schedule, iter_kinds: str, data_rank: int, weight_rank: int):
    """The block reducing uint8 data of `data_rank` dims with a packed int8 weight into int32."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sblock_iter_kinds(sch, block) != iter_kinds:
            continue
        stmt = sch.get(block)
        shapes = {(len(r.source.shape), str(r.source.dtype)) for r in stmt.reads}
        if (data_rank, "uint8") in shapes and (weight_rank, "int8") in shapes and str(stmt.writes[0].source.dtype) == "int32":
            return block
    return None


def _vectorize_producers(sch: s_tir.Schedule, producers, cpu: CpuShape) -> None:
    """The fused shift/pad/pack producers: vectorized along their innermost loop."""
    for producer in producers:
        if sblock_iter_kinds(sch, producer) == "S" * len(sch.get(producer).iter_vars):
            vectorize_innermost(sch, sch.get_loops(producer)[-1], cpu.lanes)


def schedule_dense_int8(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    """The packed uint8 x int8 dense: A [M, K] (uint8), B [N/16, K/4, 16, 4] (int8), int32 [M, N].

    A tile of `rows` rows x 16 columns accumulates in registers; each (16 columns x 4 depth) step
    is one vpdpbusd reading 4 contiguous bytes of a row of A. Parallel over (row tile, column block).
    """
    if not cpu.vnni:
        return None
    sch = s_tir.Schedule(func)
    block = _find_packed(sch, "SSRR", data_rank=2, weight_rank=4)
    if block is None:
        return None
    intrinsics.register()
    m, n, rk, ri = sch.get_loops(block)
    rows = max(d for d in divisors(extent(sch, m) or 1) if d <= MAX_PIXELS)
    producers = sch.get_producers(block)
    accumulator = sch.cache_write(block, 0, "local")
    m_o, m_i = sch.split(m, [None, rows])
    n_o, n_i = sch.split(n, [None, intrinsics.LANES])
    sch.reorder(m_o, n_o, rk, m_i, n_i, ri)
    parallelize_outer(sch, [m_o, n_o], cpu.cores, min_work=rows * intrinsics.LANES * (extent(sch, rk) or 1) * 4)
    sch.unroll(m_i)
    result = inline_epilogues(sch, accumulator)
    sch.reverse_compute_at(result, n_o)
    row, column = sch.get_loops(result)[-2:]
    sch.unroll(row)
    sch.vectorize(column)
    sch.decompose_reduction(block, rk)
    sch.tensorize(n_i, intrinsics.VNNI_16x4)
    _vectorize_producers(sch, producers, cpu)
    return sch
