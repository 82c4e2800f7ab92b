"""Depthwise and grouped convolutions on 8-bit data with int32 accumulation.

The float schedule (conv2d.py's `_schedule_channelwise`) vectorizes an output row with fp32-sized
vectors. With 8-bit inputs a register holds twice as many 16-bit values, and AArch64 multiplies
them widening (`sshll` to int16, then `smlal`/`smlal2` into two int32 vectors), so a row piece
here is a multiple of the 16-bit lanes. Per (batch, channel), parallel:

* stride 1: the input copy (an identity `pad_temp` when padding was its own kernel) is inlined,
  so every tap reads a contiguous piece of an input row straight from the input;
* stride 2: the channel's input is copied once into even and odd columns, (y, x) ->
  (y, x % 2, x // 2), so every tap again reads a contiguous row piece (rather than one byte lane
  at a time). The copy's loop is left to LLVM's vectorizer, which reads it with `ld2`.

The accumulator is a row piece on the stack and the fused epilogue (requantization) runs on it,
vectorized, as it is written back. The arithmetic is the legalized one: same integers.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.ir import TensorLoad
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from edgekit.compiler.schedules.common import (
    CpuShape,
    divisors,
    extent,
    lanes_dividing,
    sblock_iter_kinds,
    tile_channelwise_rows,
    vectorize_innermost,
)

EIGHT_BIT = ("int8", "uint8")
SHORT_ROW = 32  # output columns vectorized as one row vector when no multiple of the lanes divides them


def schedule_channelwise_int8(sch: s_tir.Schedule, block, weight_index: int, cpu: CpuShape) -> bool:
    """Schedule the grouped conv `block` if it reads 8-bit data and weights; False (schedule
    untouched) if it does not or its shape is not one this handles."""
    stmt = sch.get(block)
    if len(stmt.reads) != 2 or any(str(region.source.dtype) not in EIGHT_BIT for region in stmt.reads):
        return False
    width = extent(sch, sch.get_loops(block)[3])
    stride = _column_stride(stmt.reads[1 - weight_index].region[3].min, stmt.iter_vars[3].var)
    if width is None or stride not in (1, 2):
        return False
    data = stmt.reads[1 - weight_index]
    producers = [p for p in sch.get_producers(block) if sblock_iter_kinds(sch, p) == "SSSS"]
    producer = next((p for p in producers if sch.get(p).writes[0].source.same_as(data.source)), None)

    # Even and odd columns apart, while the copy still has a loop nest of its own.
    plain_copy = producer is not None and _is_copy(sch, producer)
    deinterleaved = stride == 2 and plain_copy and int(sch.get(producer).writes[0].source.shape[3]) % 2 == 0
    if deinterleaved:
        sch.transform_layout(producer, ("write", 0), _DEINTERLEAVE)
        sch.transform_block_layout(producer, _DEINTERLEAVE)

    row, lanes = _row_tile(width, cpu)
    outer = tile_channelwise_rows(sch, block, row, lanes, unroll_window=True)

    for other in producers:
        if producer is not None and other.same_as(producer):
            continue
        sch.compute_at(other, outer)
        vectorize_innermost(sch, sch.get_loops(other)[-1], cpu.lanes)
    if producer is None:
        return True
    if stride == 1 and plain_copy:
        sch.compute_inline(producer)
        return True
    sch.compute_at(producer, outer)
    if deinterleaved:
        parity, half_row = sch.get_loops(producer)[-2:]
        dtype = str(sch.get(producer).writes[0].source.dtype)
        sch.tensorize(parity, _deinterleave_intrinsic(extent(sch, half_row), dtype))
    else:
        vectorize_innermost(sch, sch.get_loops(producer)[-1], cpu.lanes)
    return True


def _DEINTERLEAVE(n, c, h, w):
    return n, c, h, w % 2, w // 2


def _deinterleave_intrinsic(half: int, dtype: str) -> str:
    """A tensor intrinsic splitting a row of 2 x `half` bytes into its even and odd columns; its name.

    TIR would load the strided columns one byte lane at a time (TVM 0.27); instead the row is one
    contiguous load, reinterpreted as 16-bit words: the low byte of each is the even column and the
    high byte the odd one (little-endian, as every target is), taken by a narrowing `xtn`/`shrn`.
    """
    name = f"edgekit_deinterleave_{dtype}_{half}"
    if TensorIntrin.get(name, allow_missing=True) is not None:
        return name
    row = 2 * half

    @T.prim_func(s_tir=True)
    def desc(a: T.Buffer((row,), dtype, offset_factor=1), b: T.Buffer((2, half), dtype, offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(a[0:row])
            T.writes(b[0:2, 0:half])
            for p, j in T.grid(2, half):
                with T.sblock("copy"):
                    vp, vj = T.axis.remap("SS", [p, j])
                    b[vp, vj] = a[vj * 2 + vp]

    @T.prim_func(s_tir=True)
    def impl(a: T.Buffer((row,), dtype, offset_factor=1), b: T.Buffer((2, half), dtype, offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(a[0:row])
            T.writes(b[0:2, 0:half])
            words = T.bind(T.reinterpret(a.vload([0], f"{dtype}x{row}"), dtype=f"int16x{half}"))
            b[0, T.ramp(0, 1, half)] = T.Cast(f"{dtype}x{half}", words)
            b[1, T.ramp(0, 1, half)] = T.Cast(f"{dtype}x{half}", T.shift_right(words, T.broadcast(T.int16(8), half)))

    TensorIntrin.register(name, desc, impl, override=True)
    return name


def _row_tile(width: int, cpu: CpuShape) -> tuple[int, int]:
    """(the vectorized piece of an output row, its vector width in lanes).

    A multiple of the 16-bit lanes (twice the fp32 ones) dividing the row, up to four vectors; else
    the whole row when it is short (LLVM splits 28 or 14 lanes into registers well); else what the
    float schedule takes (a 56-lane row vector ran 29% slower than 8-lane pieces on AVX2).
    """
    narrow = 2 * cpu.lanes
    fitting = [d for d in divisors(width) if d % narrow == 0 and d <= 4 * narrow]
    if fitting:
        return max(fitting), narrow
    if width <= SHORT_ROW:
        return width, width
    size = lanes_dividing(width, cpu) or 1
    return max(d for d in divisors(width) if d <= 4 * cpu.lanes and d % size == 0), size


def _column_stride(column, x_var) -> int | None:
    """The coefficient of the output column `x_var` in the data read's column index (x * s + rx [+ c]),
    or None when the index is not linear in it."""
    if isinstance(column, tirx.Var):
        return 1 if column.same_as(x_var) else 0
    if isinstance(column, tirx.IntImm):
        return 0
    if isinstance(column, (tirx.Add, tirx.Sub)):
        a, b = _column_stride(column.a, x_var), _column_stride(column.b, x_var)
        if a is None or b is None:
            return None
        return a + b if isinstance(column, tirx.Add) else a - b
    if isinstance(column, tirx.Mul):
        for factor, other in ((column.a, column.b), (column.b, column.a)):
            if isinstance(factor, tirx.IntImm):
                inner = _column_stride(other, x_var)
                return None if inner is None else inner * int(factor.value)
    return None


def _is_copy(sch: s_tir.Schedule, producer) -> bool:
    """Whether `producer` copies its input unchanged (no padding: same shape, plain load)."""
    stmt = sch.get(producer)
    if len(stmt.reads) != 1:
        return False
    source, target = stmt.reads[0].source, stmt.writes[0].source
    return [int(s) for s in source.shape] == [int(s) for s in target.shape] and isinstance(stmt.body.value, TensorLoad)
