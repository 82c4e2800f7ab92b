"""Elementwise functions of one int8 tensor, tabulated: 256 entries computed at compile time.

An int8/uint8 tensor on one grid (scale s, zero point z) takes only 256 values, so any
elementwise float function f of it followed by a QuantizeLinear onto one output grid is a table:

    out_q[i] = quantize(f(s * (i - z)))        for the 256 codes i

`TableFunction` is such an f while the rewrite walks a chain of elementwise ops on the same
source (SiLU arrives as multiply(x, sigmoid(x)), hard-swish as multiply(x, divide(clip(add(x, 3),
0, 6), 6)), ...); the chain is tabulated at the region's next QuantizeLinear and becomes one
gather. Constants that vary along one axis (PReLU's per-channel slopes) make one table per
channel.

Each op's float meaning is a numpy function in `ELEMENTWISE` (a relax op name -> how to evaluate
it); an op without an entry is not part of any chain, so the chain stays float exactly as TVM
imported it. Tables are evaluated in float64 on the exact dequantized codes ((i - z) * s is exact
in float64 for a float32 scale) and quantized as ONNX QuantizeLinear does: round half to even,
then saturate. ONNX Runtime evaluates the same chain in float32, so an entry can differ from it by
one LSB only where the float32 value lands on the other side of a rounding boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tvm import relax
from tvm.ir.prim.expr import FloatImm, IntImm

from edgekit.compiler.integer_values import INT_RANGES, Emit, IntValue, Term, tensor_constant

CODES = 256  # an int8/uint8 tensor's number of values: the length of one table


@dataclass(frozen=True)
class Source:
    """The chain's input: the float value of the source term."""


@dataclass(frozen=True)
class TableConstant:
    """A float constant of the graph, as `values` broadcasting along `axis` (None: one scalar)."""

    values: np.ndarray  # float64, shape () or (C,)
    axis: int | None = None


@dataclass(frozen=True)
class Apply:
    """`op` (an ELEMENTWISE key) applied to `args`, with the op's scalar attributes in `params`."""

    op: str
    args: tuple[Apply | Source | TableConstant, ...]
    params: tuple[float, ...] = ()


Expression = Apply | Source | TableConstant


@dataclass(frozen=True)
class TableFunction:
    """A float value that is f(source): `source` an int8/uint8 term on one grid, f an Expression of it."""

    source: Term
    function: Expression

    @property
    def channels(self) -> tuple[int | None, int]:
        """(axis, count) of the per-channel constants in f; (None, 1) when every constant is a scalar."""
        axes = {(c.axis, c.values.size) for c in constants_of(self.function) if c.axis is not None}
        return next(iter(axes)) if axes else (None, 1)


@dataclass(frozen=True)
class Lookup:
    """What a tabulated chain became: the gather's expression, and what the report says about it."""

    expr: relax.Expr
    description: dict


# -- each op's float meaning (numpy, float64) --------------------------------------------------------

Evaluate = Callable[[list[np.ndarray], tuple[float, ...]], np.ndarray]


@dataclass(frozen=True)
class ElementwiseOp:
    """An op's float meaning: `evaluate(args, params)` on its first `operands` arguments (the rest are attributes)."""

    operands: int
    evaluate: Evaluate


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x) without overflow for very negative x.
    return np.exp(-np.logaddexp(0.0, -x))


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> ElementwiseOp:
    return ElementwiseOp(1, lambda a, p: fn(a[0]))


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ElementwiseOp:
    return ElementwiseOp(2, lambda a, p: fn(a[0], a[1]))


# relax op (as TVM 0.27's ONNX importer emits it) -> its float meaning. HardSigmoid arrives as
# multiply, add, clip; HardSwish as add, clip, divide, multiply; Elu as exp, subtract, relu, ...
ELEMENTWISE: dict[str, ElementwiseOp] = {
    "relax.sigmoid": _unary(_sigmoid),
    "relax.tanh": _unary(np.tanh),
    "relax.erf": _unary(np.vectorize(math.erf, otypes=[np.float64])),
    "relax.exp": _unary(np.exp),
    "relax.negative": _unary(np.negative),
    "relax.nn.relu": _unary(lambda x: np.maximum(x, 0.0)),
    "relax.clip": ElementwiseOp(1, lambda a, p: np.clip(a[0], p[0], p[1])),  # params: (min, max)
    "relax.nn.leakyrelu": ElementwiseOp(1, lambda a, p: np.where(a[0] >= 0, a[0], p[0] * a[0])),  # params: (alpha,)
    "relax.nn.prelu": _binary(lambda x, slope: np.where(x >= 0, x, slope * x)),
    "relax.add": _binary(np.add),
    "relax.subtract": _binary(np.subtract),
    "relax.multiply": _binary(np.multiply),
    "relax.divide": _binary(np.divide),
    "relax.maximum": _binary(np.maximum),
    "relax.minimum": _binary(np.minimum),
}


def constants_of(expression: Expression) -> list[TableConstant]:
    if isinstance(expression, TableConstant):
        return [expression]
    if isinstance(expression, Apply):
        return [c for arg in expression.args for c in constants_of(arg)]
    return []


def evaluate(expression: Expression, x: np.ndarray) -> np.ndarray:
    """f(x) in float64; x has shape (CODES,), per-channel constants broadcast as (C, 1)."""
    if isinstance(expression, Source):
        return x
    if isinstance(expression, TableConstant):
        return expression.values if expression.axis is None else expression.values.reshape(-1, 1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return ELEMENTWISE[expression.op].evaluate([evaluate(arg, x) for arg in expression.args], expression.params)


def describe(expression: Expression) -> str:
    """The function as text, e.g. multiply(x, sigmoid(x)), for the report."""
    if isinstance(expression, Source):
        return "x"
    if isinstance(expression, TableConstant):
        if expression.axis is None:
            return f"{float(expression.values):.9g}"
        return f"per-channel[{expression.values.size}] on axis {expression.axis}"
    params = [f"{p:.9g}" for p in expression.params]
    return f"{expression.op.removeprefix('relax.').removeprefix('nn.')}({', '.join([describe(a) for a in expression.args] + params)})"


# -- compile time: the table -------------------------------------------------------------------------


def source_codes(term: Term) -> np.ndarray:
    """The source's 256 codes in table order (code - qmin) and their exact float values, float64."""
    qmin, qmax = INT_RANGES[term.dtype]
    codes = np.arange(qmin, qmax + 1, dtype=np.int64)
    # The recorded scale is float32; (q - z) * s is exact in float64.
    return codes, (codes - int(term.zero_point)) * float(np.float32(term.scale))


def tabulate(fn: TableFunction, scale: float, zero_point: int, dtype: str) -> np.ndarray | None:
    """quantize(f(dequantize(i))) for every code i, shape (C, CODES), or None if f is not finite there.

    Quantize is ONNX QuantizeLinear's: round half to even of f / scale, plus the zero point, saturated.
    A non-finite value (exp overflowing, a division by zero) has no defined int8 meaning here: the
    chain then stays float.
    """
    _, x = source_codes(fn.source)
    values = np.broadcast_to(evaluate(fn.function, x), (fn.channels[1], CODES))
    if not np.all(np.isfinite(values)):
        return None
    qmin, qmax = INT_RANGES[dtype]
    quantized = np.rint(values / np.float64(np.float32(scale))) + zero_point
    return np.clip(quantized, qmin, qmax).astype(dtype)


# -- the IR: one gather per element ---------------------------------------------------------------------


def lookup(emit: Emit, fn: TableFunction, table: np.ndarray, rank: int) -> relax.Expr:
    """table[channel, q - qmin] for every element of the source: an int32 index, then one `take`.

    Per-channel tables are flattened; the index adds channel * CODES, a constant that broadcasts
    along the channel axis. astype, add and take fuse into one injective kernel.
    """
    qmin, _ = INT_RANGES[fn.source.dtype]
    axis, channels = fn.channels
    offset = -qmin + CODES * np.arange(channels, dtype=np.int64)
    if axis is None:
        offset_const = relax.const(np.int32(offset[0]), "int32")
    else:
        shape = [1] * rank
        shape[axis] = channels
        offset_const = relax.const(offset.astype(np.int32).reshape(shape), "int32")
    index = emit(relax.op.add(emit(relax.op.astype(fn.source.q, "int32")), offset_const))
    return relax.op.take(relax.const(np.ascontiguousarray(table.reshape(-1)), str(table.dtype)), index, axis=0, mode="clip")


# -- reading the graph's constants ------------------------------------------------------------------------


def graph_constant(expr: relax.Expr, out_shape: list[int]) -> TableConstant | None:
    """A float tensor constant of the graph as a TableConstant broadcasting into `out_shape`, or None.

    One value, or values that vary along one axis of the output (a per-channel vector shaped to
    broadcast, [1, C, 1, 1]); anything else cannot be tabulated by channel.
    """
    if isinstance(expr, (FloatImm, IntImm)):
        return TableConstant(np.array(float(expr.value)))
    value = tensor_constant(expr, "float")
    if value is None:
        return None
    value = value.astype(np.float64)
    if value.size == 1:
        return TableConstant(value.reshape(()))
    if value.ndim > len(out_shape):
        return None
    shape = [1] * (len(out_shape) - value.ndim) + list(value.shape)
    varying = [i for i, d in enumerate(shape) if d != 1]
    if len(varying) != 1 or shape[varying[0]] != out_shape[varying[0]]:
        return None
    return TableConstant(value.reshape(-1), varying[0])


def as_function(value: IntValue | TableFunction) -> TableFunction | None:
    """`value` as a function of one int8 tensor: itself, or an int8 term on one grid (clamped: clip(x))."""
    if isinstance(value, TableFunction):
        return value
    if value.concat is not None or len(value.terms) != 1:
        return None
    term = value.terms[0]
    if not (term.per_tensor and term.dtype in INT_RANGES and term.value is None):
        return None
    function: Expression = Source()
    if value.lo is not None or value.hi is not None:
        function = Apply("relax.clip", (function,), (value.lo if value.lo is not None else -np.inf, value.hi if value.hi is not None else np.inf))
    return TableFunction(term, function)


def same_source(a: Term, b: Term) -> bool:
    """Two terms that are the same integers on the same grid (one tensor read twice)."""
    return a.q.same_as(b.q) and a.dtype == b.dtype and float(a.scale) == float(b.scale) and int(a.zero_point) == int(b.zero_point)
