"""ONNX Max/Min as elementwise maximum/minimum, not as a stack and a reduction.

TVM 0.27's ONNX importer turns Max(a, b, ...) into

    max(stack((broadcast_to(a, S), broadcast_to(b, S), ...), axis=0), axis=[0])

which materializes N copies of the output and reduces over them (Min likewise). tf2onnx writes a
clamp as Max(x, c) (a LeakyRelu bounded below), so the pattern sits between integer layers where
no integer rule reads a stack. `pairwise_extrema` rewrites it to maximum(maximum(a, b), ...),
which broadcasts the same way, is one fused elementwise kernel in float and one chain step in the
integer rewrite. The reduction's var keeps its identity (the ONNX node map names it); the stack
and the broadcasts become dead and are removed.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.ir.prim.expr import IntImm
from tvm.relax.expr_functor import PyExprMutator, mutator

from edgekit.compiler.relax_mutation import mutate_relax_functions

_PAIRWISE = {"relax.max": relax.op.maximum, "relax.min": relax.op.minimum}


def pairwise_extrema(mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` with every max/min over axis 0 of a stack of broadcasts written as elementwise maximum/minimum."""
    return relax.transform.DeadCodeElimination()(mutate_relax_functions(_Extrema(mod), mod))


@mutator
class _Extrema(PyExprMutator):
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.bound: dict[relax.Var, relax.Expr] = {}

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.builder_.normalize(self.visit_expr(binding.value))
        operands = self._stacked_operands(value)
        if operands is not None:
            pairwise = _PAIRWISE[value.op.name]
            combined = operands[0]
            for operand in operands[1:]:
                combined = pairwise(combined, operand)
            value = self.builder_.normalize(combined)
        self.bound[binding.var] = value
        self.builder_.emit_normalized(relax.VarBinding(binding.var, value))

    def _stacked_operands(self, value: relax.Expr) -> list[relax.Expr] | None:
        """The operands of max/min(stack(broadcast_to(x_i)), axis=[0], keepdims=False), or None if `value` is not one."""
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name in _PAIRWISE):
            return None
        axis = value.attrs.axis
        if axis is None or [int(a) for a in axis] != [0] or bool(value.attrs.keepdims):
            return None
        stacked = self.bound.get(value.args[0]) if isinstance(value.args[0], relax.Var) else None
        if not (isinstance(stacked, relax.Call) and isinstance(stacked.op, tvm.ir.Op) and stacked.op.name == "relax.stack"):
            return None
        if int(stacked.attrs.axis) != 0:
            return None
        fields = stacked.args[0].fields if isinstance(stacked.args[0], relax.Tuple) else None
        if not fields:
            return None
        if not _static(value):
            return None
        out_shape = [int(d) for d in value.ty.shape]
        operands = []
        for field in fields:
            expr = self.bound.get(field, field) if isinstance(field, relax.Var) else field
            if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.broadcast_to":
                operands.append(expr.args[0])
            else:
                operands.append(field)
        # maximum broadcasts its operands as broadcast_to did; anything else (a dynamic shape) stays.
        if not all(_static(o) for o in operands) or _broadcast([[int(d) for d in o.ty.shape] for o in operands]) != out_shape:
            return None
        return operands


def _static(expr: relax.Expr) -> bool:
    sinfo = expr.ty
    return isinstance(sinfo, relax.TensorType) and sinfo.shape is not None and all(isinstance(d, IntImm) for d in sinfo.shape)


def _broadcast(shapes: list[list[int]]) -> list[int] | None:
    rank = max(len(s) for s in shapes)
    out = [1] * rank
    for shape in shapes:
        for i, d in enumerate([1] * (rank - len(shape)) + shape):
            if d != 1 and out[i] not in (1, d):
                return None
            out[i] = max(out[i], d)
    return out
