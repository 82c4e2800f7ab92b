"""Dense, matmul and batch matmul: C[..., i, j] = sum_k A[..., i, k] * B[..., k, j] (either operand may be transposed).

A register tile of `rows` x `vectors * lanes` accumulates over the whole k: per k step one
broadcast of A per row and one load of B per vector. A constant 2-D weight B is packed at
compile time to [N / nb, K, nb] so each tile's panel of B is one contiguous stream.
Loop order (batch, column block, row block, k, row, column): the panel is reused by every row
block while it is in cache. Parallel over the outer tiles; the epilogue (bias, GELU, residual
add) runs on the tile as it is written back, vectorized.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis.common_analysis import collect_vars_used_in_prim_expr

from edgekit.compiler.schedules.common import (
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
    vectorize_by_lanes,
)

MAX_ROWS = 8


def schedule_matmul(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    reductions = [b for b in sch.get_child_blocks(sch.get_sblock("root")) if "R" in sblock_iter_kinds(sch, b)]
    if len(reductions) != 1:
        return None
    block = reductions[0]
    kinds = sblock_iter_kinds(sch, block)
    if len(kinds) < 3 or kinds != "S" * (len(kinds) - 1) + "R" or not plain_loop_nest(sch, block):
        return None
    stmt = sch.get(block)
    *_, i, j, k = (iv.var for iv in stmt.iter_vars)
    operands = _operands(stmt, i, j, k)
    if operands is None:
        return None
    _, (b_index, b_region) = operands
    *batch, i_loop, j_loop, k_loop = sch.get_loops(block)
    m, n = extent(sch, i_loop), extent(sch, j_loop)
    lanes = lanes_dividing(n, cpu)
    if lanes is None or not m:
        return None

    vector_counts = [d for d in divisors(n // lanes) if d <= 6]
    rows = [d for d in divisors(m) if d <= MAX_ROWS]
    vectors, row_tile = register_tile(vector_counts, rows, cpu.vector_registers)
    columns = vectors * lanes

    b_indices = [r.min for r in b_region.region]
    if is_param_buffer(sch, b_region.source) and len(b_indices) == 2:
        k_first = b_indices[0].same_as(k)
        pack = (lambda kk, jj: (jj // columns, kk, jj % columns)) if k_first else (lambda jj, kk: (jj // columns, kk, jj % columns))
        prepack_read(sch, block, b_index, pack)

    accumulator = cache_accumulator(sch, block)
    j_o, j_i = sch.split(j_loop, [None, columns])
    i_o, i_i = sch.split(i_loop, [None, row_tile])
    sch.reorder(*batch, j_o, i_o, k_loop, i_i, j_i)
    parallelize_outer(sch, [*batch, j_o, i_o], cpu.cores, min_work=row_tile * columns * (extent(sch, k_loop) or 1))
    sch.unroll(i_i)
    vectorize_by_lanes(sch, j_i, lanes)
    sch.decompose_reduction(block, k_loop)

    result = inline_epilogues(sch, accumulator)
    # The epilogue goes under the loop right above k: i_o, or the parallel loop it was fused into.
    loops = sch.get_loops(block)
    k_at = next(index for index, loop in enumerate(loops) if sch.get(loop).same_as(sch.get(k_loop)))
    sch.reverse_compute_at(result, loops[k_at - 1])
    vectorize_by_lanes(sch, sch.get_loops(result)[-1], lanes)
    return sch


def _operands(stmt, i, j, k):
    """(A read, B read) as (index, region): A is indexed by i and k, B by k and j."""
    a = b = None
    for index, region in enumerate(stmt.reads):
        used = [v for e in region.region for v in collect_vars_used_in_prim_expr(e.min)]
        has_i, has_j, has_k = (any(var.same_as(v) for v in used) for var in (i, j, k))
        if has_i and has_k and not has_j:
            a = (index, region)
        elif has_j and has_k and not has_i:
            b = (index, region)
    if a is None or b is None or len(stmt.reads) != 2:
        return None
    return a, b
