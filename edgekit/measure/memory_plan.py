"""What an artifact's static memory plan keeps alive: `main`'s VM bytecode, read as straight-line calls."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgekit.measure.call_trace import BUILTIN_PREFIX


@dataclass(frozen=True)
class Instruction:
    op: str  # "call" or "ret"
    symbol: str
    args: list[str]  # "%3" registers, "c[5]" constants, "i0" immediates, "%vm", "%void"
    dst: str


_CALL = re.compile(r"^\s*call\s+(\S+)\s+in:(.*?)\s*dst:\s*(\S+)\s*$")
_RET = re.compile(r"^\s*ret\s+(\S+)\s*$")


def parse_main(text: str) -> list[Instruction] | None:
    """`main`'s instructions from `VMExecutable.as_text()`; None unless it is straight-line calls."""
    lines = text.splitlines()
    try:
        start = lines.index("@main:") + 1
    except ValueError:
        return None
    program = []
    for line in lines[start:]:
        if not line.strip():
            break
        if match := _CALL.match(line):
            args = [a.strip() for a in match.group(2).split(",") if a.strip()]
            program.append(Instruction("call", match.group(1), args, match.group(3)))
        elif match := _RET.match(line):
            program.append(Instruction("ret", "", [match.group(1)], ""))
        else:
            return None  # goto/if: a data-dependent path, which the lifetime walk below does not follow
    return program


def peak_live_storage(program: list[Instruction], storage_bytes: list[int]) -> int:
    """The most bytes of planned storage alive at once.

    `storage_bytes[k]` is what the k-th call allocates (0 unless it is alloc_storage). A storage
    lives while some register refers to it or to a tensor carved from it (alloc_tensor,
    reshape and other builtins derive their result from their register arguments).
    """
    holds: dict[str, frozenset[int]] = {}
    sizes: dict[int, int] = {}
    peak = 0
    calls = iter(storage_bytes)
    for instruction in program:
        if instruction.op != "call":
            break
        size = next(calls)
        if instruction.dst == "%void":
            continue
        if instruction.symbol == BUILTIN_PREFIX + "alloc_storage":
            sizes[len(sizes)] = size
            holds[instruction.dst] = frozenset([len(sizes) - 1])
        else:
            holds[instruction.dst] = frozenset().union(*(holds.get(a, frozenset()) for a in instruction.args if a.startswith("%")))
        live = frozenset().union(*holds.values())
        peak = max(peak, sum(sizes[s] for s in live))
    return peak
