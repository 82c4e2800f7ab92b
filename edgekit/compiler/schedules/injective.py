"""Elementwise and other injective functions (add, ReLU, transpose, reshape, concat, pad, ...).

Every block that can be is inlined into its consumer, so a chain of elementwise ops is one
loop nest; each remaining block is parallel over its outer loops and vectorized innermost.
"""

from __future__ import annotations

from tvm import s_tir, tirx

from edgekit.compiler.schedules.common import CpuShape, extent, parallelize_outer, sblock_iter_kinds, vectorize_innermost


def schedule_injective(func: tirx.PrimFunc, cpu: CpuShape) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    if not blocks or any("R" in sblock_iter_kinds(sch, b) or not sch.get_loops(b) for b in blocks):
        return None
    inline_all(sch, blocks)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        loops = sch.get_loops(block)
        vectorize_innermost(sch, loops[-1], cpu.lanes)
        parallelize_outer(sch, sch.get_loops(block)[:-1], cpu.cores, min_work=extent(sch, sch.get_loops(block)[-1]) or 1)
    return sch


def inline_all(sch: s_tir.Schedule, blocks, keep_last: bool = True) -> None:
    """Inline `blocks` into their consumers where TIR allows it; the last one stays if `keep_last`."""
    for block in blocks[:-1] if keep_last else blocks:
        try:
            sch.compute_inline(block)
        except Exception:  # noqa: BLE001, S110 - an output or a block read with overlap stays separate
            pass
