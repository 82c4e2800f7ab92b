"""What every rule shares: the target's vector shape, and small loop-nest helpers.

A rule never names a board: it reads lanes, cores and the vector register count from
`CpuShape`, which comes from the target's TOML file through `TargetSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, tirx

from edgekit.compiler.dot_products import DotScheme, scheme_for
from edgekit.target_spec import TargetSpec

# Below this many output elements an injective loop is not worth waking the thread pool for.
PARALLEL_MIN_WORK = 1 << 18
# The annotation MetaSchedule's RewriteLayout puts on a weight-packing block; relax's
# SplitLayoutRewritePreproc moves such blocks into their own function so FoldConstant can
# run them once at compile time on the constant weights (TVM 0.27).
LAYOUT_REWRITE_PREPROC = "meta_schedule.layout_rewrite_preproc"


@dataclass(frozen=True)
class CpuShape:
    """The vector facts a schedule needs: fp32 lanes per register, registers, cores."""

    lanes: int
    vector_registers: int
    cores: int
    dot: DotScheme | None = None  # the integer dot-product instructions (dot_products.py)

    @classmethod
    def of(cls, target: TargetSpec) -> CpuShape:
        return cls(lanes=max(target.cpu.simd_bits // 32, 1), vector_registers=target.cpu.vector_registers, cores=target.cpu.cores, dot=scheme_for(target))


def extent(sch: s_tir.Schedule, loop: s_tir.schedule.LoopRV) -> int | None:
    value = sch.get(loop).extent
    return int(value) if isinstance(value, tirx.IntImm) else None


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def register_tile(vector_counts: list[int], rows: list[int], registers: int) -> tuple[int, int]:
    """Pick (vectors per row, rows) for an outer-product micro-kernel that fits the register file.

    Each step loads `vectors` weight vectors and broadcasts `rows` scalars, then issues
    vectors x rows FMAs into as many accumulators; the best tile has the most FMAs per load.
    `vector_counts` and `rows` list the sizes that divide the problem (no tail loops).
    """
    best, best_score = (1, 1), -1.0
    for vectors in vector_counts:
        for row in rows:
            # Two registers spare for addresses and temporaries: a tile using all of them spills.
            if vectors * row + vectors + 1 > registers - 2:
                continue
            score = vectors * row / (vectors + row) + 1e-3 * vectors * row
            if score > best_score:
                best, best_score = (vectors, row), score
    return best


def sblock_iter_kinds(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> str:
    """ "S" for a spatial block iterator and "R" for a reduction one, in block order."""
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return "".join(kinds.get(iv.iter_type, "O") for iv in sch.get(block).iter_vars)


def is_param_buffer(sch: s_tir.Schedule, buffer: tirx.Buffer) -> bool:
    """Whether `buffer` is an argument of the function (TVM 0.27 PrimFuncs have no buffer_map: an
    argument is a buffer that no block allocates)."""
    allocated = list(sch.get(sch.get_sblock("root")).alloc_buffers)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        allocated += list(sch.get(block).alloc_buffers)
    return not any(buffer.same_as(other) for other in allocated)


def cache_accumulator(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> s_tir.schedule.SBlockRV:
    """Accumulate `block`'s output in a tile buffer (`cache_write`); return the block writing it back.

    The tile is "global", not "local": TVM 0.27's LowerTVMBuiltin keeps a constant-size "global"
    buffer under 1 KiB on the stack (an alloca LLVM can keep in registers) but turns every "local"
    one into a TVMBackendAllocWorkspace/FreeWorkspace pair where it is allocated, in the parallel
    loop's body: with the intrinsic's activation word, 3 per output row of a packed int8 conv,
    4,880 per MobileNetV2-112 inference. Tiles of 1 KiB or more go through the pool either way.
    """
    return sch.cache_write(block, 0, "global")


def prepack_read(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV, read_index: int, index_map) -> None:
    """Read buffer `read_index` of `block` through a copy in the layout `index_map` gives.

    The copy block is marked as a layout rewrite: when the buffer is a constant weight it is
    split out and folded at compile time, so the packed weight is what the library stores.
    """
    copy = sch.cache_read(block, read_index, "global")
    sch.transform_layout(block, ("read", read_index), index_map)
    sch.annotate(copy, LAYOUT_REWRITE_PREPROC, 1)


def inline_epilogues(sch: s_tir.Schedule, producer: s_tir.schedule.SBlockRV) -> s_tir.schedule.SBlockRV:
    """Fold the injective consumers chain of `producer` into it; return the block writing the result."""
    while True:
        consumers = sch.get_consumers(producer)
        if len(consumers) != 1:
            return producer
        try:
            sch.reverse_compute_inline(consumers[0])
        except Exception:  # noqa: BLE001 - a consumer that cannot be inlined just stays separate
            return producer


def vectorize_innermost(sch: s_tir.Schedule, loop: s_tir.schedule.LoopRV, lanes: int) -> None:
    """Vectorize `loop` if it is short, else split off a vector of `lanes` (or a multiple) when it divides."""
    n = extent(sch, loop)
    if n is None or n < 2:
        return
    if n <= 4 * lanes and (n % lanes == 0 or n < lanes):
        sch.vectorize(loop)
        return
    for width in (4 * lanes, 2 * lanes, lanes):
        if n % width == 0:
            _, inner = sch.split(loop, [None, width])
            sch.vectorize(inner)
            return
    if n > lanes:
        _, inner = sch.split(loop, [None, lanes])  # tail iterations run under a guard
        sch.vectorize(inner)


def lanes_dividing(n: int | None, cpu: CpuShape) -> int | None:
    """The vector width for a loop of `n`: the full register if it divides n, else a half register
    (8-lane ymm on AVX-512, for 24 channels, 56-pixel rows or 1000 classes), else None."""
    if not n:
        return None
    return next((size for size in (cpu.lanes, cpu.lanes // 2) if size >= 4 and n % size == 0), None)


def vectorize_by_lanes(sch: s_tir.Schedule, loop: s_tir.schedule.LoopRV, lanes: int) -> None:
    """Vectorize `loop` (a multiple of `lanes` long); as unrolled vectors of `lanes` if it must.

    LLVM splits a vector of 2 or 4 registers' width well (better than unrolled single vectors:
    ResNet-18 ran 15% slower split), but a 48-wide one (3 x 16 lanes) came out scalar, 40x slower.
    """
    n = extent(sch, loop)
    if n is None or n % lanes or (n // lanes) & (n // lanes - 1) == 0:
        sch.vectorize(loop)
        return
    outer, inner = sch.split(loop, [None, lanes])
    sch.unroll(outer)
    sch.vectorize(inner)


def parallelize_outer(sch: s_tir.Schedule, loops: list, cores: int, min_work: int = 1) -> s_tir.schedule.LoopRV | None:
    """Fuse the leading `loops` until there are a few chunks per core, and mark the result parallel.

    `min_work` is the work (multiply-adds or elements) of one iteration of the innermost of
    `loops`; loop nests with less than PARALLEL_MIN_WORK in total stay serial: with the pool not
    spinning, waking a worker costs microseconds, more than a small kernel's whole run.
    """
    if not loops or cores < 2:
        return None
    extents = [extent(sch, loop) for loop in loops]
    total_work = min_work
    for n in extents:
        total_work *= n or 1
    take, chunks = 0, 1
    for n in extents:
        if n is None:
            break
        take += 1
        chunks *= n
        if chunks >= 4 * cores:
            break
    if take == 0 or chunks < 2 or total_work < PARALLEL_MIN_WORK:
        return None
    fused = sch.fuse(*loops[:take]) if take > 1 else loops[0]
    sch.parallel(fused)
    return fused


def plain_loop_nest(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> bool:
    """Whether `block` sits alone under one loop per block iterator, bound in order (v_i = loop_i)."""
    loops = sch.get_loops(block)
    realize = sch.get(loops[-1]).body if loops else None
    if not isinstance(realize, s_tir.SBlockRealize) or len(loops) != len(realize.iter_values):
        return False
    return all(value.same_as(sch.get(loop).loop_var) for value, loop in zip(realize.iter_values, loops))


def tile_channelwise_rows(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV, row: int, lanes: int, unroll_window: bool = False) -> s_tir.schedule.LoopRV:
    """A depthwise/grouped conv block (n, f, y, x, rc, ry, rx) parallel over (batch, channel),
    a `row`-wide piece of the output row vectorized by `lanes` and accumulated in a stack tile
    (cache_accumulator) over the window, the fused epilogue written back from it; returns the parallel loop."""
    n, f, y, x, rc, ry, rx = sch.get_loops(block)
    accumulator = cache_accumulator(sch, block)
    x_o, x_i = sch.split(x, [None, row])
    sch.reorder(n, f, y, x_o, rc, ry, rx, x_i)
    outer = sch.fuse(n, f)
    sch.parallel(outer)
    if unroll_window:
        for loop in (rc, ry, rx):
            sch.unroll(loop)
    vectorize_by_lanes(sch, x_i, lanes)
    sch.decompose_reduction(block, rc)
    result = inline_epilogues(sch, accumulator)
    sch.reverse_compute_at(result, x_o)
    vectorize_by_lanes(sch, sch.get_loops(result)[-1], lanes)
    return outer
