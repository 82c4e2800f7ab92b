"""Direct 2-D convolution (NCHW, OIHW weights), as legalized from relax.nn.conv2d.

Three kernels, by what the shape allows; all keep NCHW activations (no layout changes
between layers) and pack the constant weight at compile time:

* stride-1 convolutions whose output rows are a multiple of the SIMD lanes (1x1 and 3x3 in
  the large early layers): vectors along the output row. A register tile of `rows` output
  channels x `vectors` row vectors accumulates over input channels and the kernel window;
  weights, packed to O/rows I KH KW rows, are broadcast scalars. The epilogue is vectorized.
* other single-group convolutions (strided, short rows such as 7x7 or 14x14): vectors along
  the output channels. The weight is packed to O/ob I KH KW ob (ob a multiple of the lanes,
  as in NCHW[x]c/OIHW[x]o kernels), input pixels are broadcast scalars (any stride works),
  and a tile of ob channels x px pixels stays in registers.
  Both are parallel over (batch, channel block, output row).
* depthwise and grouped convolutions: vectorized along the output row (contiguous output,
  and contiguous input at stride 1), parallel over (batch, channel); the padded input is
  built per channel inside that loop, where it stays in cache.

In both, the accumulator is a local tile, and the fused epilogue (bias, residual, ReLU, ...)
runs on it as it is written back.
"""

from __future__ import annotations

from tvm import s_tir, tirx

from edgekit.compiler.schedules.channelwise_int8 import schedule_channelwise_int8
from edgekit.compiler.schedules.common import (
    LAYOUT_REWRITE_PREPROC,
    CpuShape,
    cache_accumulator,
    divisors,
    extent,
    inline_epilogues,
    is_param_buffer,
    lanes_dividing,
    parallelize_outer,
    plain_loop_nest,
    prepack_read,
    register_tile,
    sblock_iter_kinds,
    tile_channelwise_rows,
    vectorize_by_lanes,
    vectorize_innermost,
)


def schedule_conv2d(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    found = _find_conv(sch, func)
    if found is None:
        return None
    block, weight_index, grouped = found
    if grouped:
        if not schedule_channelwise_int8(sch, block, weight_index, cpu):
            _schedule_channelwise(sch, block, cpu)
    elif not (_schedule_row_vectorized(sch, block, weight_index, cpu) or _schedule_channel_vectorized(sch, block, weight_index, cpu)):
        return None
    return sch


def _find_conv(sch: s_tir.Schedule, func: tirx.PrimFunc):
    """The conv block, its weight's read index, and whether the input channel depends on the output one."""
    matches = []
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sblock_iter_kinds(sch, block) == "SSSSRRR":
            matches.append(block)
    if len(matches) != 1:
        return None
    block = matches[0]
    stmt = sch.get(block)
    if not plain_loop_nest(sch, block):
        return None
    _, f, _, _, rc, ry, rx = (iv.var for iv in stmt.iter_vars)
    weight_index, data_channel = None, None
    for index, region in enumerate(stmt.reads):
        indices = [r.min for r in region.region]
        if len(indices) != 4:
            continue
        if (
            is_param_buffer(sch, region.source)
            and all(isinstance(e, tirx.Var) for e in indices)
            and [e.name for e in indices] == [v.name for v in (f, rc, ry, rx)]
        ):
            weight_index = index
        else:
            data_channel = indices[1]
    if weight_index is None or data_channel is None:
        return None
    grouped = not (isinstance(data_channel, tirx.Var) and data_channel.same_as(rc))
    return block, weight_index, grouped


def _schedule_channel_vectorized(sch: s_tir.Schedule, block, weight_index: int, cpu: CpuShape) -> bool:
    n, f, y, x, rc, ry, rx = sch.get_loops(block)
    out_channels, width = extent(sch, f), extent(sch, x)
    lanes = lanes_dividing(out_channels, cpu)
    if lanes is None or width is None:
        return False
    vector_counts = [d for d in divisors(out_channels // lanes) if d <= 4]
    vectors, pixels = register_tile(vector_counts, divisors(width), cpu.vector_registers)
    block_channels = vectors * lanes
    producers = sch.get_producers(block)  # the padding, before the weight copy and init exist

    prepack_read(sch, block, weight_index, lambda o, i, h, w: (o // block_channels, i, h, w, o % block_channels))
    accumulator = cache_accumulator(sch, block)
    # Channels innermost in the accumulator, so the vectorized channel loop reads and writes it contiguously.
    sch.transform_layout(block, ("write", 0), lambda a, b, c, d: (a, c, d, b))
    f_o, f_i = sch.split(f, [None, block_channels])
    x_o, x_i = sch.split(x, [None, pixels])
    sch.reorder(n, f_o, y, x_o, rc, ry, rx, x_i, f_i)
    parallelize_outer(sch, [n, f_o, y], cpu.cores, min_work=width * block_channels * _extents(sch, rc, ry, rx))
    sch.unroll(x_i)
    vectorize_by_lanes(sch, f_i, lanes)
    # Annotate loops before decomposing: TIR refuses to vectorize a loop over an update block without its init.
    sch.decompose_reduction(block, rc)

    result = inline_epilogues(sch, accumulator)
    sch.reverse_compute_at(result, x_o)
    # Unrolled, every access to the accumulator has a constant index, so LLVM keeps the whole
    # tile in registers; a loop with a variable index would force it through the stack.
    channel, pixel = sch.get_loops(result)[-2:]
    sch.reorder(pixel, channel)
    sch.unroll(pixel)
    sch.unroll(channel)
    _schedule_producers(sch, producers, cpu)
    return True


def _schedule_row_vectorized(sch: s_tir.Schedule, block, weight_index: int, cpu: CpuShape) -> bool:
    """Stride-1 convolutions with rows a multiple of the lanes: vectors along the output row.

    Input and output rows are then contiguous vectors, so the fused epilogue is vectorized too;
    `rows` output channels share each input vector (their weights are broadcast scalars).
    """
    n, f, y, x, rc, ry, rx = sch.get_loops(block)
    out_channels, width = extent(sch, f), extent(sch, x)
    stmt = sch.get(block)
    data = next(r for i, r in enumerate(stmt.reads) if i != weight_index)
    x_var, rx_var = stmt.iter_vars[3].var, stmt.iter_vars[6].var
    column = data.region[3].min
    unit_stride = _is_sum_of(column, x_var, rx_var)
    lanes = cpu.lanes
    if out_channels is None or width is None or width % lanes or not unit_stride:
        return False
    vector_counts = [d for d in divisors(width // lanes) if d <= 4]
    vectors, rows = register_tile(vector_counts, [d for d in divisors(out_channels) if d <= 8], cpu.vector_registers)
    producers = sch.get_producers(block)

    prepack_read(sch, block, weight_index, lambda o, i, h, w: (o // rows, i, h, w, o % rows))
    accumulator = cache_accumulator(sch, block)
    f_o, f_i = sch.split(f, [None, rows])
    x_o, x_i = sch.split(x, [None, vectors * lanes])
    sch.reorder(n, f_o, y, x_o, rc, ry, rx, f_i, x_i)
    parallelize_outer(sch, [n, f_o, y], cpu.cores, min_work=width * rows * _extents(sch, rc, ry, rx))
    sch.unroll(f_i)
    vectorize_by_lanes(sch, x_i, lanes)
    sch.decompose_reduction(block, rc)
    result = inline_epilogues(sch, accumulator)
    sch.reverse_compute_at(result, x_o)
    channel, pixel = sch.get_loops(result)[-2:]
    sch.unroll(channel)
    vectorize_by_lanes(sch, pixel, lanes)
    _schedule_producers(sch, producers, cpu)
    return True


def _is_sum_of(expr, a, b) -> bool:
    """Whether `expr` is a + b or a + b + c (c constant): a stride-1, dilation-1 window index."""
    if isinstance(expr, tirx.Sub) and isinstance(expr.b, tirx.IntImm):
        expr = expr.a
    if isinstance(expr, tirx.Add) and isinstance(expr.b, tirx.IntImm):
        expr = expr.a
    return isinstance(expr, tirx.Add) and ((expr.a.same_as(a) and expr.b.same_as(b)) or (expr.a.same_as(b) and expr.b.same_as(a)))


def _schedule_channelwise(sch: s_tir.Schedule, block, cpu: CpuShape) -> None:
    width = extent(sch, sch.get_loops(block)[3]) or 1
    row, lanes = _row_tile(width, cpu)
    producers = sch.get_producers(block)
    outer = tile_channelwise_rows(sch, block, row, lanes)
    for producer in producers:
        if sblock_iter_kinds(sch, producer) == "SSSS":
            sch.compute_at(producer, outer)
            vectorize_innermost(sch, sch.get_loops(producer)[-1], cpu.lanes)


def _row_tile(width: int, cpu: CpuShape) -> tuple[int, int]:
    """(the vectorized piece of an output row, its vector width).

    A multiple of the full (or else half) vector dividing the row, up to four full vectors; else
    the whole short row.
    """
    fitting = [d for d in divisors(width) if d <= 4 * cpu.lanes]
    size = lanes_dividing(width, cpu)
    if size is None:
        return max(fitting), cpu.lanes
    return max(d for d in fitting if d % size == 0), size


def _schedule_producers(sch: s_tir.Schedule, producers, cpu: CpuShape) -> None:
    """Padding and other injective producers: parallel over their outer loops, vectorized inside."""
    for producer in producers:
        stmt = sch.get(producer)
        if sblock_iter_kinds(sch, producer) != "S" * len(stmt.iter_vars):
            continue
        if LAYOUT_REWRITE_PREPROC in stmt.annotations:
            continue  # the weight copy: folded away at compile time
        loops = sch.get_loops(producer)
        vectorize_innermost(sch, loops[-1], cpu.lanes)
        parallelize_outer(sch, sch.get_loops(producer)[:-1], cpu.cores, min_work=extent(sch, sch.get_loops(producer)[-1]) or 1)


def _extents(sch: s_tir.Schedule, *loops) -> int:
    total = 1
    for loop in loops:
        total *= extent(sch, loop) or 1
    return total
