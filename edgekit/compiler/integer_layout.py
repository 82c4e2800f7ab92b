"""Data movement on integers that the table in integer_rules.py reaches through: Split and nearest Resize.

Both only pick integers, so the grid stays. Split returns a tuple: its rule keeps the float call
(for float consumers) and records the integer parts as `SplitParts`; the rewrite gives each
`TupleGetItem` of it the matching part (integer.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax
from tvm.ir.prim.expr import IntImm

from edgekit.compiler.integer_values import INT_RANGES, IntValue, Match, Term


@dataclass(frozen=True)
class SplitParts:
    """A split of one term: `parts` is the integer split (a tuple var), every part on `term`'s grid."""

    term: Term
    parts: relax.Expr

    def part(self, emit, index: int) -> IntValue:
        t = self.term
        return IntValue((Term(emit(relax.TupleGetItem(self.parts, index)), t.dtype, t.scale, t.zero_point, None),))


def splittable(m: Match) -> bool:
    """split of one term on one grid (per tensor: the scales need not follow the parts)."""
    (value,) = m.inputs
    term = value.single
    return term is not None and term.per_tensor


def split_integers(bb: relax.BlockBuilder, m: Match) -> SplitParts:
    (value,) = m.inputs
    term = value.single
    indices = m.call.attrs.indices_or_sections  # an IntImm (sections) or an Array of split points
    indices = int(indices) if isinstance(indices, IntImm) else [int(i) for i in indices]
    return SplitParts(term, bb.emit(relax.op.split(term.q, indices, axis=int(m.call.attrs.axis))))


def nearest_resize(m: Match) -> bool:
    """resize2d by nearest neighbour of one term: it only picks integers, the grid stays."""
    (value,) = m.inputs
    term = value.single
    return term is not None and str(m.call.attrs.method) == "nearest_neighbor" and term.dtype in INT_RANGES


def resize_integers(bb: relax.BlockBuilder, m: Match) -> IntValue:
    (value,) = m.inputs
    term = value.single
    a = m.call.attrs
    resized = bb.emit(
        relax.op.image.resize2d(
            term.q, m.call.args[1], roi=tuple(float(r) for r in a.roi), layout=a.layout, method=a.method, coordinate_transformation_mode=a.coordinate_transformation_mode,
            rounding_method=a.rounding_method, cubic_alpha=float(a.cubic_alpha), cubic_exclude=int(a.cubic_exclude), extrapolation_value=float(a.extrapolation_value),
        )
    )
    return IntValue((Term(resized, term.dtype, term.scale, term.zero_point, term.axis),))
