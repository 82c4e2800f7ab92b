"""Reductions: pooling windows, means, and row-wise normalizations (softmax, layer norm).

* window and full reductions in one block (max/avg pool, global mean): the reduction loops
  move inside the output loops but outside the innermost output loop, which is vectorized;
  parallel over the outer output loops.
* softmax, layer norm and similar chains of row reductions and elementwise blocks: TVM's
  dlight CPU `Reduction` rule (parallel over rows, the elementwise steps vectorized).
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.dlight.cpu import Reduction
from tvm.target import Target

from edgekit.compiler.schedules.common import CpuShape, extent, parallelize_outer, plain_loop_nest, sblock_iter_kinds

_ROW_REDUCTION = Reduction()


def schedule_window_reduction(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    reductions = [b for b in blocks if "R" in sblock_iter_kinds(sch, b)]
    if len(reductions) != 1:
        return None
    block = reductions[0]
    kinds = sblock_iter_kinds(sch, block)
    spatial = kinds.count("S")
    if spatial < 2 or kinds != "S" * spatial + "R" * (len(kinds) - spatial) or not plain_loop_nest(sch, block):
        return None
    # Producers (padding) and consumers (the divide of an average) inline into the reduction.
    for producer in sch.get_producers(block):
        try:
            sch.compute_inline(producer)
        except Exception:  # noqa: BLE001, S110 - a producer TIR cannot inline stays a separate loop nest
            pass
    loops = sch.get_loops(block)
    outer, inner, reduce_loops = loops[: spatial - 1], loops[spatial - 1], loops[spatial:]
    inner_extent = extent(sch, inner) or 0
    vectorized = inner_extent >= 4
    if vectorized:
        # At most a few registers wide: LLVM takes minutes on a <1280 x float> vector.
        width = next((w for w in (4 * cpu.lanes, 2 * cpu.lanes, cpu.lanes) if inner_extent % w == 0), None)
        if inner_extent > 4 * cpu.lanes and width is not None:
            inner_o, inner = sch.split(inner, [None, width])
            outer = [*outer, inner_o]
        elif inner_extent > 4 * cpu.lanes:
            vectorized = False
    if vectorized:
        sch.reorder(*outer, *reduce_loops, inner)
        sch.vectorize(inner)
    parallelize_outer(sch, outer, cpu.cores, min_work=inner_extent or 1)
    if vectorized:
        sch.decompose_reduction(block, reduce_loops[0])
    for consumer in sch.get_consumers(block):
        loops = sch.get_loops(consumer)
        if loops:
            if (extent(sch, loops[-1]) or 0) % cpu.lanes == 0:
                sch.vectorize(loops[-1])
            parallelize_outer(sch, sch.get_loops(consumer)[:-1], cpu.cores, min_work=extent(sch, sch.get_loops(consumer)[-1]) or 1)
    return sch


def schedule_row_reduction(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    """dlight's rule reads the vector width from the current target (the pipeline enters it)."""
    del cpu
    return _ROW_REDUCTION.apply(func, Target.current(allow_none=False), False)
