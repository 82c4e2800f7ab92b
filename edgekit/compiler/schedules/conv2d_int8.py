"""The packed integer convolution and dense edgekit's integer rewrite emits for dot-product targets.

Data [N, C/D, H, W, D], weight [O/16, C/D, KH, KW, 16, D] (packed at compile time), int32
output NCHW, with D and the operands' dtypes from the target's dot-product scheme
(dot_products.py). A register tile of 16 output channels x `pixels` output columns accumulates
in a local buffer whose channels are innermost; each (16 channels x D input channels) step of
the reduction is one call of the scheme's intrinsic (intrinsics.py: one vpdpbusd, four sdot, two
vpmaddwd, ...). Parallel over (batch, channel block, output row); the fused epilogue
(zero-point correction, bias, requantization) runs on the tile as it is written back.
"""

from __future__ import annotations

from tvm import s_tir, tirx

from edgekit.compiler.dot_products import LANES, DotScheme
from edgekit.compiler.schedules.common import CpuShape, cache_accumulator, divisors, extent, inline_epilogues, parallelize_outer, sblock_iter_kinds, vectorize_innermost

def schedule_conv2d_int8(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    dot = cpu.dot
    if dot is None:
        return None
    sch = s_tir.Schedule(func)
    block = _find_packed(sch, "SSSSRRRR", dot, data_rank=5, weight_rank=6)
    if block is None:
        return None
    intrinsic = dot.intrinsic()
    n, f, y, x, rc, ry, rx, ri = sch.get_loops(block)
    width = extent(sch, x) or 1
    pixels = tile_length(width, dot.max_pixels(cpu.vector_registers))
    producers = sch.get_producers(block)
    accumulator = cache_accumulator(sch, block)
    sch.transform_layout(block, ("write", 0), lambda a, b, c, d: (a, c, d, b))
    f_o, f_i = sch.split(f, [None, LANES])
    x_o, x_i = sch.split(x, [None, pixels])
    sch.reorder(n, f_o, y, x_o, rc, ry, rx, x_i, f_i, ri)
    parallelize_outer(sch, [n, f_o, y], cpu.cores, min_work=width * LANES * (extent(sch, rc) or 1) * dot.depth)
    sch.unroll(x_i)
    result = inline_epilogues(sch, _sliced_write_back(sch, accumulator))
    sch.reverse_compute_at(result, x_o)
    _write_back(sch, result, pixels)
    sch.decompose_reduction(block, rc)
    sch.tensorize(f_i, intrinsic)
    _vectorize_producers(sch, producers, cpu)
    return sch


def tile_length(width: int, limit: int) -> int:
    """Output columns per register tile: the largest divisor of `width` within `limit`, or the whole
    row when it is at most one past the limit and no divisor comes within half of it (7 columns
    with room for 6 take all 7 and spill one register, rather than a 1-column tile that reloads
    the weights for every column)."""
    best = max(d for d in divisors(width) if d <= limit)
    if best * 2 <= limit and width <= limit + 1:
        return width
    return best


def _write_back(sch: s_tir.Schedule, result, tile: int) -> None:
    """The tile's epilogue: its outer loop unrolled, its inner (contiguous in the output) vectorized.
    A 1-column tile has no column loop left once computed at the tile (extent-1 loops are dropped)."""
    loops = sch.get_loops(result)
    if tile == 1:
        sch.vectorize(loops[-1])
        return
    # The conv's NCHW output: each channel's columns are contiguous, one vector store per
    # channel. The dense's [M, N]: each row's 16 channels are.
    outer, inner = loops[-2:]
    sch.unroll(outer)
    sch.vectorize(inner)


def _sliced_write_back(sch: s_tir.Schedule, write_back):
    """The block the epilogue fuses into: the tile's write-back, or, when the compute runs on more
    output channels than asked (dot_packing._whole_blocks_sliced), the slice reading the tile
    directly. The slice cannot be inlined into the write-back: TVM 0.27's reverse_compute_inline
    would keep the write-back's whole-block domain and store past the output's last channel."""
    consumers = sch.get_consumers(write_back)
    if len(consumers) == 1 and sch.get(consumers[0]).name_hint == "whole_blocks_sliced":
        sch.compute_inline(write_back)
        return consumers[0]
    return write_back


def _find_packed(sch: s_tir.Schedule, iter_kinds: str, dot: DotScheme, data_rank: int, weight_rank: int):
    """The block reducing data of `data_rank` dims with a packed weight, both on `dot`'s grids, into int32."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sblock_iter_kinds(sch, block) != iter_kinds:
            continue
        stmt = sch.get(block)
        shapes = {(len(r.source.shape), str(r.source.dtype)) for r in stmt.reads}
        if (data_rank, dot.data_dtype) in shapes and (weight_rank, dot.weight_dtype) in shapes and str(stmt.writes[0].source.dtype) == "int32":
            return block
    return None


def _vectorize_producers(sch: s_tir.Schedule, producers, cpu: CpuShape) -> None:
    """The fused shift/pad/pack producers: vectorized along their innermost loop."""
    for producer in producers:
        if sblock_iter_kinds(sch, producer) == "S" * len(sch.get(producer).iter_vars):
            vectorize_innermost(sch, sch.get_loops(producer)[-1], cpu.lanes)


def schedule_dense_int8(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    """The packed dense: A [M, K], B [N/16, K/D, 16, D], int32 [M, N], on the scheme's grids (or
    all three with a leading batch dimension: two activations, B packed at run time).

    A tile of `rows` rows x 16 columns accumulates in registers; each (16 columns x D depth) step
    is one intrinsic call reading D contiguous values of a row of A. Parallel over (row tile,
    column block): with fewer row tiles than the cores want (32 tokens in 4-row tiles on 4 or 12
    cores, 8-row tiles on 2; one row) the two loops fuse into one, and the tile's epilogue goes
    under whichever loop is left above the reduction.
    """
    dot = cpu.dot
    if dot is None:
        return None
    sch = s_tir.Schedule(func)
    block = _find_packed(sch, "SSRR", dot, data_rank=2, weight_rank=4)
    batch = []
    if block is None:
        # The batched form (two activations, B packed at run time): the batch loop goes outermost.
        block = _find_packed(sch, "SSSRR", dot, data_rank=3, weight_rank=5)
        if block is None:
            return None
        batch = sch.get_loops(block)[:1]
    m, n, rk, ri = sch.get_loops(block)[len(batch):]
    depth_steps = extent(sch, rk) or 1
    deep = dot.deep_intrinsic()
    steps = deep[1] if deep is not None and depth_steps % deep[1] == 0 else 1
    # The several-steps intrinsic keeps its steps' weights live (4 x the accumulator blocks): with
    # them the tile has room for 2 rows (8 accumulators + 16 weights + 2 rows), not 6.
    limit = dot.max_pixels(cpu.vector_registers) if steps == 1 else 2
    rows = tile_length(extent(sch, m) or 1, limit)
    producers = sch.get_producers(block)
    accumulator = cache_accumulator(sch, block)
    m_o, m_i = sch.split(m, [None, rows])
    n_o, n_i = sch.split(n, [None, LANES])
    rk_o, rk_i = sch.split(rk, [None, steps])
    sch.reorder(*batch, m_o, n_o, rk_o, m_i, rk_i, n_i, ri)
    parallelize_outer(sch, [*batch, m_o, n_o], cpu.cores, min_work=rows * LANES * depth_steps * dot.depth)
    tile = sch.get_loops(block)[-6]  # n_o, or the fused (batch, m_o, n_o): n_o is gone once fused
    sch.unroll(m_i)
    result = inline_epilogues(sch, _sliced_write_back(sch, accumulator))
    sch.reverse_compute_at(result, tile)
    _write_back(sch, result, rows)
    sch.decompose_reduction(block, rk_o)
    if steps > 1:
        sch.tensorize(rk_i, deep[0])
    else:
        sch.tensorize(n_i, dot.intrinsic())
    _vectorize_producers(sch, producers, cpu)
    return sch
