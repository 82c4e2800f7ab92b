"""The rules for elementwise ops in integers: chains tabulated at the next Quantize, products of two grids, resizes.

Predicates and builders for the entries of integer_rules.RULES that read or make the value kinds
of this module besides `IntValue`:

- `TableFunction` (integer_tables.py): a chain of elementwise ops on one int8 tensor. Each op of
  the chain keeps its float call (role DESCRIBES), so a float consumer still reads its float
  meaning; at the next QuantizeLinear the whole chain becomes one 256-entry table and a gather.
- `FloatConstant`: a float constant the graph computed (PReLU's slopes arrive as a reshape of an
  initializer), so chain rules can read it.

A product of two int8 terms on different tensors (x * sigmoid(x) with a QDQ after the sigmoid,
squeeze-excite's x * gate) is an int32 product (qa - za) * (qb - zb) on the grid sa * sb,
requantized at the next Quantize like any accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax
from tvm.ir.prim.expr import FloatImm, IntImm

from edgekit.compiler.integer_tables import (
    ELEMENTWISE,
    Apply,
    Expression,
    Lookup,
    TableConstant,
    TableFunction,
    as_function,
    constants_of,
    describe,
    graph_constant,
    lookup,
    same_source,
    tabulate,
)
from edgekit.compiler.integer_values import INT_RANGES, IntValue, Match, Term, axis_constant, tensor_constant


@dataclass(frozen=True)
class FloatConstant:
    """A float tensor constant computed in the graph (a reshape of an initializer)."""

    value: np.ndarray  # float64


@dataclass(frozen=True)
class VarOperands:
    """The call's arguments that are Relax vars (constants in the call are read by the builder)."""

    def __call__(self, call: relax.Call) -> list[relax.Expr]:
        return [arg for arg in call.args if isinstance(arg, relax.Var)]


@dataclass(frozen=True)
class NoOperands:
    def __call__(self, call: relax.Call) -> list[relax.Expr]:
        return []


# -- constants computed in the graph ----------------------------------------------------------------------


def reshaped_float_constant(m: Match) -> bool:
    """reshape of a float initializer (how TVM 0.27 imports PRelu's slope)."""
    return tensor_constant(m.call.args[0], "float") is not None


def float_constant(bb: relax.BlockBuilder, m: Match) -> FloatConstant:
    shape = [int(d) for d in m.call.ty.shape]
    return FloatConstant(tensor_constant(m.call.args[0]).astype(np.float64).reshape(shape))


# -- chains of elementwise ops on one int8 tensor -------------------------------------------------------------


def chain_step(m: Match) -> TableFunction | None:
    """The call as one more step of a function of one int8 tensor, or None if it is not one.

    Every operand is that tensor (an int8 term on one grid, or a chain on it) or a constant that
    is one value or varies along one axis of the output; the output has the source's shape.
    """
    call = m.call
    op = ELEMENTWISE.get(call.op.name)
    if op is None or not str(getattr(call.ty, "dtype", "")).startswith("float"):
        return None
    out_shape = [int(d) for d in call.ty.shape]
    known = dict(zip(VarOperands()(call), m.inputs))
    source: Term | None = None
    args: list[Expression] = []
    for index, arg in enumerate(call.args[: op.operands]):
        value = known.get(arg) if isinstance(arg, relax.Var) else None
        function = as_function(value) if isinstance(value, (IntValue, TableFunction)) else None
        if function is not None:
            if source is not None and not same_source(source, function.source):
                return None
            source = function.source
            args.append(function.function)
            continue
        constant = _constant_operand(call, index, arg, value, out_shape)
        if constant is None:
            return None
        args.append(constant)
    if source is None or [int(d) for d in source.q.ty.shape] != out_shape:
        return None
    params = _params(call)
    if params is None:
        return None
    fn = TableFunction(source, Apply(call.op.name, tuple(args), params))
    per_channel = {(c.axis, c.values.size) for c in constants_of(fn.function) if c.axis is not None}
    return fn if len(per_channel) <= 1 else None


def _constant_operand(call: relax.Call, index: int, arg: relax.Expr, value, out_shape: list[int]) -> TableConstant | None:
    if call.op.name == "relax.nn.prelu" and index == 1:
        # The slope is a vector along attrs.axis (one value: every channel).
        slope = value.value if isinstance(value, FloatConstant) else tensor_constant(arg)
        if slope is None:
            return None
        slope = np.asarray(slope, np.float64).reshape(-1)
        if slope.size == 1:
            return TableConstant(slope.reshape(()))
        axis = int(call.attrs.axis) % len(out_shape)
        return TableConstant(slope, axis) if slope.size == out_shape[axis] else None
    if isinstance(value, IntValue):
        return _quantized_constant(value, out_shape)
    if isinstance(value, FloatConstant):
        return graph_constant(relax.const(value.value.astype(np.float32)), out_shape)
    return graph_constant(arg, out_shape)


def _quantized_constant(value: IntValue, out_shape: list[int]) -> TableConstant | None:
    """A quantized constant operand (Mul's constant input, with its DequantizeLinear) by its float values."""
    term = value.single
    if term is None or term.value is None:
        return None
    scale = term.scale if term.per_tensor else term.scale.reshape([-1 if i == term.axis else 1 for i in range(term.value.ndim)])
    zero_point = term.zero_point if term.per_tensor else term.zero_point.reshape(scale.shape)
    floats = ((term.value.astype(np.int64) - zero_point) * scale.astype(np.float32).astype(np.float64)).astype(np.float32)
    return graph_constant(relax.const(floats), out_shape)


def _params(call: relax.Call) -> tuple[float, ...] | None:
    name = call.op.name
    if name == "relax.clip":
        low, high = call.args[1], call.args[2]
        if not (isinstance(low, (FloatImm, IntImm)) and isinstance(high, (FloatImm, IntImm))):
            return None
        return (float(low.value), float(high.value))
    if name == "relax.nn.leakyrelu":
        return (float(call.attrs.alpha),)
    return ()


def clamp_step(m: Match) -> TableFunction | None:
    """Clip with tensor bounds as TVM imports it, call_tir(maximum | minimum, (x, c)) with c a
    scalar, as one more step of a chain on x (hard-swish as paddle2onnx writes it clips x + 3)."""
    function, args = m.call.args[0], m.call.args[1]
    kind = function.name_hint.rstrip("0123456789_")
    if kind not in ("maximum", "minimum") or not isinstance(args, relax.Tuple) or len(args.fields) != 2 or len(m.inputs) != 1:
        return None
    bound = m.scalar(args.fields[1])
    value = m.inputs[0]
    chain = as_function(value) if isinstance(value, (IntValue, TableFunction)) else None
    if bound is None or np.size(bound) != 1 or chain is None or [int(d) for d in chain.source.q.ty.shape] != [int(d) for d in m.call.ty.shape]:
        return None
    return TableFunction(chain.source, Apply(f"relax.{kind}", (chain.function, TableConstant(np.asarray(bound, np.float64).reshape(()))), ()))


def clamp_of_one_int8_tensor(m: Match) -> bool:
    return clamp_step(m) is not None


def extend_chain_by_clamp(bb: relax.BlockBuilder, m: Match) -> TableFunction:
    return clamp_step(m)


def elementwise_of_one_int8_tensor(m: Match) -> bool:
    """An elementwise op with a numpy meaning (integer_tables.ELEMENTWISE) on one int8 tensor and constants."""
    return chain_step(m) is not None


def extend_chain(bb: relax.BlockBuilder, m: Match) -> TableFunction:
    return chain_step(m)


# -- the chain at the next Quantize: one table, one gather ------------------------------------------------------


def _output_grid(m: Match) -> tuple[float, int, str] | None:
    _, scale, zero_point = m.call.args
    scale, zero_point = tensor_constant(scale), tensor_constant(zero_point)
    if scale is None or zero_point is None or scale.size != 1 or zero_point.size != 1:
        return None
    dtype = str(m.call.attrs.out_dtype)
    if dtype not in INT_RANGES:
        return None
    return float(scale.reshape(())), int(zero_point.reshape(())), dtype


def tabulable_output(m: Match) -> bool:
    """quantize of a chain onto one int8 grid, every entry finite."""
    grid = _output_grid(m)
    return grid is not None and tabulate(m.inputs[0], *grid) is not None


def tabulated_output(bb: relax.BlockBuilder, m: Match) -> Lookup:
    (fn,) = m.inputs
    scale, zero_point, dtype = _output_grid(m)
    table = tabulate(fn, scale, zero_point, dtype)
    source = fn.source
    axis, channels = fn.channels
    description = {
        "function": describe(fn.function),
        "input": {"dtype": source.dtype, "scale": float(np.float32(source.scale)), "zero_point": int(source.zero_point)},
        "output": {"dtype": dtype, "scale": float(np.float32(scale)), "zero_point": zero_point},
        "tables": channels,
        "channel_axis": axis,
        "entries": int(table.size),
    }
    return Lookup(lookup(bb.emit, fn, table, len(source.q.ty.shape)), description)


# -- products of two int8 grids --------------------------------------------------------------------------------------


def two_int8_grids(m: Match) -> bool:
    """multiply of two int8/uint8 terms on one grid each (per tensor): the product is exact in int32."""
    a, b = m.singles
    return all(t is not None and t.per_tensor and t.dtype in INT_RANGES for t in (a, b))


def multiply_grids(bb: relax.BlockBuilder, m: Match) -> IntValue:
    """(qa - za) * (qb - zb) in int32 on the grid sa * sb; the operands broadcast as ONNX Mul does."""
    a, b = m.singles
    product = bb.emit(relax.op.multiply(_centred_int32(bb, a), _centred_int32(bb, b)))
    return IntValue((Term(product, "int32", a.scale * b.scale, np.zeros((), np.int64)),))


def _centred_int32(bb: relax.BlockBuilder, term: Term) -> relax.Expr:
    widened = bb.emit(relax.op.astype(term.q, "int32"))
    if int(term.zero_point) == 0:
        return widened
    return bb.emit(relax.op.subtract(widened, axis_constant(term.zero_point.astype(np.int32), None, 0)))
