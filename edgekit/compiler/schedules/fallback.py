"""The rule of last resort: whatever no other rule recognizes still runs parallel and vectorized.

Injective blocks are inlined where they can be; each remaining block is parallel over its
leading spatial loops and vectorized innermost when that loop is spatial and divides into lanes.
"""

from __future__ import annotations

from tvm import s_tir, tirx

from edgekit.compiler.schedules.common import CpuShape, extent, parallelize_outer, plain_loop_nest, sblock_iter_kinds
from edgekit.compiler.schedules.injective import inline_all


def schedule_fallback(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    if not blocks:
        return None
    # Every injective block may go, including the last one when a reduction follows it.
    inline_all(sch, [b for b in blocks if "R" not in sblock_iter_kinds(sch, b)], keep_last=False)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if not plain_loop_nest(sch, block):
            continue
        kinds = sblock_iter_kinds(sch, block)
        loops = sch.get_loops(block)
        if kinds[-1] == "S" and (extent(sch, loops[-1]) or 0) % cpu.lanes == 0:
            try:
                sch.vectorize(loops[-1])
            except Exception:  # noqa: BLE001, S110 - TIR refused (e.g. an init under the loop): stay scalar
                pass
        leading = len(kinds) - len(kinds.lstrip("S"))
        parallelize_outer(sch, loops[: min(leading, len(loops) - 1)], cpu.cores, min_work=extent(sch, loops[-1]) or 1)
    return sch
