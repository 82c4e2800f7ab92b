"""Requantization multiplies as widening 32x32->64 multiplies, with the same integers.

Requantizing an int32 accumulator computes `(int64(acc - correction + bias) * m + 2^(s-1)) >> s`
with a per-channel fixed-point multiplier m below 2^31 (integer_values.py). NEON has no 64-bit
vector multiply, and LLVM emits a widening one (`smull`/`smull2` on aarch64, `vpmuldq` on x86)
only when it sees both operands as sign-extended 32-bit values. Two things hid that, and one
pass here mends each:

- `distribute_offsets` (Relax, before legalization): LLVM hoists the sign extension through the
  int32 adds (sext(a - c + b) becomes sext(a) - sext(c) + sext(b), whose sign bits it cannot
  bound), so the accumulator is no longer a sign-extended operand. The constant offsets move out
  of the product instead: int64(acc + k) * m = int64(acc) * m + k * m, with k * m an int64
  constant folded into the rounding constant that follows. Exact whenever the int32 sum did not
  overflow (which the old graph assumed too); an offset whose product could approach the int64
  range is left in place.
- `narrow_constants` (TIR, after FuseTIR): the multiplier reaches the kernel as an int64 constant
  tensor, and Relax's FoldConstant folds any astype of a constant (so the graph cannot keep it
  int32 and cast it; TVM 0.27). For each fused PrimFunc a parameter is narrowed when every call
  site passes an int64 constant whose values all fit int32 (one site that does not leaves the
  parameter int64): its buffer becomes int32, every load of it Cast("int64", load), and the call
  sites pass int32 copies of their constants.
"""

from __future__ import annotations

import numpy as np
import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.ir.expr import TensorLoad
from tvm.tirx.buffer import is_buffer_var
from tvm.relax import Call, Expr, PyExprMutator, expr_functor

from edgekit.compiler.integer_values import tensor_constant

INT32_MIN, INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max
CALL_TIR = tvm.ir.Op.get("relax.call_tir")
ADD, SUBTRACT, MULTIPLY, ASTYPE = (tvm.ir.Op.get(f"relax.{name}") for name in ("add", "subtract", "multiply", "astype"))
# A moved offset k * m stays below 2^62, so int64(acc) * m (below 2^62) plus it cannot overflow int64.
OFFSET_LIMIT = 1 << 62


# -- distribute_offsets (Relax, before legalization) ---------------------------------------------------


def _dtype(expr: Expr) -> str | None:
    return expr.ty.dtype if isinstance(expr.ty, relax.TensorType) else None


def _int_constant(expr: Expr) -> np.ndarray | None:
    """`expr`'s values as Python-int objects (no overflow in compile-time sums), if it is an integer tensor constant."""
    value = tensor_constant(expr, ("int32", "int64"))
    return None if value is None else value.astype(object)


@expr_functor.mutator
class _DistributeOffsets(PyExprMutator):
    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.moved: list[Expr] = []  # the offsets k * m this pass moved out of products

    def _binding(self, expr: Expr) -> Call | None:
        value = self.lookup_binding(expr) if isinstance(expr, relax.Var) else None
        return value if isinstance(value, Call) else None

    def _strip_offsets(self, value: Expr) -> tuple[Expr, np.ndarray]:
        """`value` (int32) as root + offset, walking int32 adds and subtracts of constants."""
        offset = np.zeros((), object)
        while (call := self._binding(value)) is not None and _dtype(call) == "int32" and any(call.op.same_as(op) for op in (ADD, SUBTRACT)):
            left, right = call.args
            if (constant := _int_constant(right)) is not None:
                offset, value = np.asarray(offset + (constant if call.op.same_as(ADD) else -constant), object), left
            elif call.op.same_as(ADD) and (constant := _int_constant(left)) is not None:
                offset, value = np.asarray(offset + constant, object), right
            else:
                break
        return value, offset

    def _distribute(self, call: Call) -> tuple[Expr, np.ndarray] | None:
        """multiply(astype(acc + k, int64), m) as (multiply(astype(acc, int64), m), k * m), or None."""
        if not call.op.same_as(MULTIPLY) or _dtype(call) != "int64":
            return None
        widened, multiplier = call.args
        widen = self._binding(widened)
        if (m := _int_constant(multiplier)) is None or widen is None or not widen.op.same_as(ASTYPE) or _dtype(widen.args[0]) != "int32":
            return None
        root, offset = self._strip_offsets(widen.args[0])
        product = np.asarray(offset * m, object)
        if not np.any(offset != 0) or not tvm_ffi.structural_equal(root.ty, widen.args[0].ty) or np.any(np.abs(product) >= OFFSET_LIMIT):
            return None
        return relax.op.multiply(self.builder_.emit(relax.op.astype(root, "int64")), multiplier), product

    def visit_call_(self, call: Call) -> Expr:
        visited = super().visit_call_(call)
        if not isinstance(visited.op, tvm.ir.Op):
            return visited
        distributed = self._distribute(visited)
        if distributed is None:
            return self._absorb(visited)
        product, offset = distributed
        moved = relax.const(offset.astype(np.int64), "int64")
        self.moved.append(moved)
        return relax.op.add(self.builder_.emit(product), moved)

    def _absorb(self, call: Call) -> Expr:
        """add(add(product, k * m), c) as add(product, k * m + c) when this pass moved k * m there."""
        if not call.op.same_as(ADD) or _dtype(call) != "int64" or (outer := _int_constant(call.args[1])) is None:
            return call
        inner = self._binding(call.args[0])
        if inner is None or not inner.op.same_as(ADD) or not any(inner.args[1].same_as(moved) for moved in self.moved):
            return call
        total = np.asarray(_int_constant(inner.args[1]) + outer, object)
        if np.any(np.abs(total) >= OFFSET_LIMIT):
            return call
        return relax.op.add(inner.args[0], relax.const(total.astype(np.int64), "int64"))


@tvm.transform.module_pass(opt_level=0, name="edgekit_distribute_offsets")
def distribute_offsets(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """`mod` (unlegalized) with each requantizing multiply's constant int32 offsets moved out of the product."""
    mutator = _DistributeOffsets(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            mutator.builder_.update_func(gvar, relax.analysis.remove_all_unused(mutator.visit_expr(func)))
    return mutator.builder_.get()


# -- narrow_constants (TIR, after FuseTIR) -------------------------------------------------------------


def fits_int32(expr: Expr) -> bool:
    """Whether `expr` is an int64 tensor constant whose every value is an int32."""
    values = tensor_constant(expr, "int64")
    if values is None:
        return False
    return values.size > 0 and INT32_MIN <= int(values.min()) and int(values.max()) <= INT32_MAX


def narrowable_params(mod: tvm.IRModule) -> dict[tvm.ir.GlobalVar, frozenset[int]]:
    """Per called PrimFunc, the argument positions where every call site passes an int32-valued int64 constant."""
    found: dict[tvm.ir.GlobalVar, frozenset[int]] = {}

    def visit(expr: Expr) -> None:
        if isinstance(expr, Call) and expr.op.same_as(CALL_TIR):
            callee, args = expr.args[0], expr.args[1].fields
            here = frozenset(i for i, arg in enumerate(args) if fits_int32(arg))
            found[callee] = here if callee not in found else found[callee] & here

    for _gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    narrowable = {}
    for gvar, positions in found.items():
        func = mod[gvar]
        if isinstance(func, tirx.PrimFunc):
            positions = frozenset(i for i in positions if is_buffer_var(func.params[i]) and func.params[i].dtype == "int64")
            if positions:
                narrowable[gvar] = positions
    return narrowable


def widen_loads(func: tirx.PrimFunc, positions: frozenset[int]) -> tirx.PrimFunc:
    """`func` with the int64 buffer parameters at `positions` declared int32 and cast to int64 wherever loaded."""
    narrowed = {}
    for i in positions:
        old = func.params[i]
        narrowed[old] = tirx.decl_buffer(
            old.shape, "int32", old.name, strides=old.strides, elem_offset=old.elem_offset,
            data_alignment=old.data_alignment, offset_factor=old.offset_factor,
        )

    def replace_var(var):
        return narrowed.get(var, var)

    def widen_load(load):
        # Post order: the load's buffer has already been replaced by its int32 twin.
        if any(load.source.same_as(buffer) for buffer in narrowed.values()):
            return tirx.Cast("int64", tirx.BufferLoad(load.source, list(load.indices)))
        return load

    body = tvm_ffi.structural_map(func.body, [(TensorLoad, widen_load), (tvm.ir.Var, replace_var)], order="post")
    # A new PrimFunc, not a mapped one: the function's type (what call_tir's arguments are checked
    # against) is derived from the parameters on construction, and mapping copies it unchanged.
    return tirx.PrimFunc([narrowed.get(param, param) for param in func.params], body, func.ret_type, func.attrs, func.span)


@expr_functor.mutator
class _NarrowCallSites(PyExprMutator):
    """Call sites of narrowed kernels: the new kernel, int32 copies of the narrowed constants."""

    def __init__(self, mod: tvm.IRModule, narrowed: dict[tvm.ir.GlobalVar, tuple[tvm.ir.GlobalVar, frozenset[int]]]):
        super().__init__(mod)
        self.narrowed = narrowed

    def visit_call_(self, call: Call) -> Expr:
        visited = super().visit_call_(call)
        if not visited.op.same_as(CALL_TIR) or visited.args[0] not in self.narrowed:
            return visited
        kernel, positions = self.narrowed[visited.args[0]]
        args = [_as_int32(arg) if i in positions else arg for i, arg in enumerate(visited.args[1].fields)]
        return relax.call_tir(kernel, relax.Tuple(args), list(visited.ty_args))


@tvm.transform.module_pass(opt_level=0, name="edgekit_narrow_constants")
def narrow_constants(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """`mod` (fused) with int32-valued int64 constant arguments of its kernels passed as int32 and widened on load."""
    positions = narrowable_params(mod)
    if not positions:
        return mod
    kernels = {gvar: widen_loads(mod[gvar], where) for gvar, where in positions.items()}
    narrowed = {gvar: (_global_var(gvar.name_hint, kernels[gvar]), where) for gvar, where in positions.items()}
    mutator = _NarrowCallSites(mod, narrowed)
    functions = {}
    for gvar, func in mod.functions_items():
        if gvar in narrowed:
            functions[narrowed[gvar][0]] = kernels[gvar]
        elif isinstance(func, relax.Function):
            functions[gvar] = mutator.visit_expr(func)
        else:
            functions[gvar] = func
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)


def _as_int32(constant: Expr) -> Expr:
    return relax.const(tensor_constant(constant).astype(np.int32), "int32")


def _global_var(name: str, func: tirx.PrimFunc) -> tvm.ir.GlobalVar:
    """A new GlobalVar for `func` under `name`, typed as call_tir's normalization expects.

    Not `update_func` on the old one: in TVM 0.27 a GlobalVar keeps the type it was first given,
    and call_tir checks its arguments against that type, not the function's.
    """
    gvar = tvm.ir.GlobalVar(name)
    relax.expr._update_type(gvar, func.ty)  # noqa: SLF001 (0.27 exposes no public setter)
    return gvar
