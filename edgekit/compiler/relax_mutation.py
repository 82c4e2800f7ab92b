"""Running a PyExprMutator over every Relax function of a module: the loop the rewrites share."""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator


def mutate_relax_functions(mutator: PyExprMutator, mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` with each Relax function replaced by `mutator`'s visit of it (PrimFuncs are left as they are)."""
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            mutator.builder_.update_func(gvar, mutator.visit_expr(func))
    return mutator.builder_.get()
