"""The integer rewrite's rules: which op, which of its operands are integer values, when, and what it becomes.

`RULES` is read top to bottom: for a call, the first rule whose op matches, whose tensor
operands are all integer values (for rules inside a region) and whose predicate holds is
applied. Rules of one op go from the most specific form to the most general, so a packed
dot-product form comes before the plain one it refines. An op no rule takes stays as TVM imported it, in float
between its own Q/DQ pairs.

Predicates only look (they never emit); builders (integer_builders.py) may assume what their
predicate checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from tvm import relax
from tvm.ir.prim.expr import FloatImm, IntImm

from edgekit.compiler import integer_builders as build
from edgekit.compiler import integer_conv_forms as conv_forms
from edgekit.compiler import integer_elementwise as elementwise
from edgekit.compiler import integer_layout as layout
from edgekit.compiler.integer_elementwise import FloatConstant, NoOperands, VarOperands
from edgekit.compiler.integer_tables import ELEMENTWISE, TableFunction
from edgekit.compiler.integer_values import INT_RANGES, IntValue, Match, Term, tensor_constant
from edgekit.compiler.dot_products import DotScheme

# What a rule's result becomes in the graph.
OPENS = "opens"  # a region's entry (DequantizeLinear): the call stays, its integers become known
INSIDE = "inside"  # the op runs on integers; its float meaning stays available for float consumers
CLOSES = "closes"  # a region's exit onto an int8 grid (QuantizeLinear): the call becomes the integers
DESCRIBES = "describes"  # the float call stays for float consumers; its value becomes known (a chain to tabulate, a split's parts)


# -- which arguments are tensors ------------------------------------------------------------------


@dataclass(frozen=True)
class Operands:
    """The call's arguments at these positions."""

    indices: tuple[int, ...]

    def __call__(self, call: relax.Call) -> list[relax.Expr]:
        return [call.args[i] for i in self.indices]


@dataclass(frozen=True)
class TupleFields:
    """The fields of the tuple argument at `index` (Concat's inputs)."""

    index: int = 0

    def __call__(self, call: relax.Call) -> list[relax.Expr]:
        fields = call.args[self.index]
        return list(fields.fields) if isinstance(fields, relax.Tuple) else [fields]


@dataclass(frozen=True)
class TirOperands:
    """Arguments of a call_tir's kernel at these positions (args[1] is their tuple)."""

    indices: tuple[int, ...]

    def __call__(self, call: relax.Call) -> list[relax.Expr]:
        args = call.args[1] if len(call.args) > 1 else None
        if not isinstance(args, relax.Tuple):
            return []
        return [args.fields[i] for i in self.indices if i < len(args.fields)]


@dataclass(frozen=True)
class Rule:
    """One rewrite: `op` (a Relax op name) whose `tensor_args` satisfy `when` becomes `build`'s result."""

    name: str
    op: str
    tensor_args: Callable[[relax.Call], list[relax.Expr]]
    when: Callable[[Match], bool]
    build: Callable[[relax.BlockBuilder, Match], IntValue | relax.Expr]
    role: str = INSIDE
    count: str | None = None  # the report's integer_ops key; None: the op without "relax."
    takes: tuple[type, ...] = (IntValue,)  # the kinds of value its tensor operands must be

    def __post_init__(self) -> None:
        if self.role not in (OPENS, INSIDE, CLOSES, DESCRIBES):
            raise ValueError(f"rule {self.name}: role must be one of {OPENS}, {INSIDE}, {CLOSES}, {DESCRIBES}")

    @property
    def counted_as(self) -> str | None:
        """What the report counts this rule under; region entries are not integer ops of their own."""
        if self.role == OPENS or (self.role == DESCRIBES and self.count is None):
            return None
        return self.count if self.count is not None else self.op.removeprefix("relax.")


# -- predicates on terms ----------------------------------------------------------------------------


def _on_one_int8_grid(term: Term | None) -> bool:
    """An int8 or uint8 tensor with one scale and zero point (activations, as edgekit quantizes them)."""
    return term is not None and term.per_tensor and term.dtype in INT_RANGES


def _constant_symmetric_int8(term: Term | None) -> bool:
    """Compile-time int8 values with zero points 0 (weights, as edgekit quantizes them)."""
    return term is not None and term.value is not None and term.dtype == "int8" and bool(np.all(term.zero_point == 0))


def _same_grid(a: Term, b: Term) -> bool:
    if np.any(a.zero_point != 0) or np.any(b.zero_point != 0):
        return False
    if a.per_tensor and b.per_tensor:
        return np.float32(a.scale) == np.float32(b.scale)
    return a.axis == b.axis and a.scale.shape == b.scale.shape and np.array_equal(a.scale.astype(np.float32), b.scale.astype(np.float32))


def _unclamped(value: IntValue) -> bool:
    return value.concat is None and value.lo is None and value.hi is None


# -- predicates on calls ------------------------------------------------------------------------------


def constant_grid(m: Match) -> bool:
    """dequantize of int8/uint8/int32 with constant scale and zero point."""
    data, scale, zero_point = m.call.args
    return tensor_constant(scale) is not None and tensor_constant(zero_point) is not None and str(data.ty.dtype) in ("int8", "uint8", "int32")


def per_tensor_int8_output(m: Match) -> bool:
    """quantize onto one int8/uint8 grid given by constants (edgekit's quantizer makes no per-channel activations)."""
    _, scale, zero_point = m.call.args
    scale, zero_point = tensor_constant(scale), tensor_constant(zero_point)
    if scale is None or zero_point is None:
        return False
    return scale.size == 1 and zero_point.size == 1 and str(m.call.attrs.out_dtype) in INT_RANGES


def constant_symmetric_int8_weights(m: Match) -> bool:
    """conv2d NCHW/OIHW of activations on one grid with constant int8 weights, symmetric, per tensor or per output channel."""
    x, w = m.singles
    attrs = m.call.attrs
    layouts = str(attrs.data_layout) == "NCHW" and str(attrs.kernel_layout) == "OIHW"
    return _on_one_int8_grid(x) and _constant_symmetric_int8(w) and w.axis in (None, 0) and layouts


def packable_conv2d(m: Match) -> bool:
    """Those weights on a target with dot-product instructions, ungrouped (output channels are padded to whole 16-lane blocks)."""
    return m.dot is not None and constant_symmetric_int8_weights(m) and int(m.call.attrs.groups) == 1


def integer_matmul_operands(m: Match) -> bool:
    """matmul of an activation on one grid by integers per tensor or symmetric per output column."""
    a, b = m.singles
    if not (_on_one_int8_grid(a) and b is not None and b.dtype in INT_RANGES):
        return False
    return b.per_tensor or (b.axis == len(b.q.ty.shape) - 1 and bool(np.all(b.zero_point == 0)))


def constant_symmetric_int8_matrix(m: Match) -> bool:
    """Those operands with B a constant symmetric int8 matrix (a Gemm or MatMul weight)."""
    _, b = m.singles
    return integer_matmul_operands(m) and _constant_symmetric_int8(b) and len(b.q.ty.shape) == 2


def packable_matrix(m: Match) -> bool:
    """That matrix on a target with dot-product instructions (columns are padded to whole 16-lane blocks)."""
    return m.dot is not None and constant_symmetric_int8_matrix(m)


def packable_activation_matmul(m: Match) -> bool:
    """Two activations per tensor, of the same static batch shape, on a target with dot-product instructions."""
    if m.dot is None or not integer_matmul_operands(m):
        return False
    a, b = m.singles
    if not (a.per_tensor and b.per_tensor and b.dtype in ("int8", "uint8") and a.value is None):
        return False
    a_shape, b_shape = a.q.ty.shape, b.q.ty.shape
    if a_shape is None or b_shape is None:
        return False
    a_shape, b_shape = list(a_shape), list(b_shape)
    if len(a_shape) != len(b_shape) or len(a_shape) < 2 or not all(isinstance(d, IntImm) for d in a_shape + b_shape):
        return False
    return [int(d) for d in a_shape[:-2]] == [int(d) for d in b_shape[:-2]]


def int32_on_one_grid(m: Match) -> bool:
    """Two int32 accumulators with the same scales and zero points 0 (a bias add)."""
    a, b = m.singles
    return a is not None and b is not None and a.dtype == b.dtype == "int32" and _same_grid(a, b)


def unclamped_operands(m: Match) -> bool:
    """Operands that are plain sums of terms (no clamp, no concatenation)."""
    return all(_unclamped(value) for value in m.inputs)


def not_concatenated(m: Match) -> bool:
    """An operand that is not a concatenation of parts on different grids."""
    return m.inputs[0].concat is None


def constant_bounds(m: Match) -> bool:
    """clip with constant scalar bounds."""
    low, high = m.call.args[1], m.call.args[2]
    return not_concatenated(m) and isinstance(low, (FloatImm, IntImm)) and isinstance(high, (FloatImm, IntImm))


def maximum_by_scalar(m: Match) -> bool:
    """call_tir(maximum, (x, c)) with c a scalar constant: Clip's lower tensor bound."""
    return _tir_kernel_by_scalar(m, "maximum")


def minimum_by_scalar(m: Match) -> bool:
    """call_tir(minimum, (x, c)) with c a scalar constant: Clip's upper tensor bound."""
    return _tir_kernel_by_scalar(m, "minimum")


def _tir_kernel_by_scalar(m: Match, kind: str) -> bool:
    function, args = m.call.args[0], m.call.args[1]
    if function.name_hint.rstrip("0123456789_") != kind or not isinstance(args, relax.Tuple) or len(args.fields) != 2:
        return False
    return not_concatenated(m) and m.scalar(args.fields[1]) is not None


def positive_scale_integers(m: Match) -> bool:
    """One int8/uint8 grid with a positive scale, so the integers order like the floats."""
    (term,) = m.singles
    return _on_one_int8_grid(term) and not np.any(term.scale <= 0)


def single_per_tensor_term(m: Match) -> bool:
    (term,) = m.singles
    return term is not None and term.per_tensor


def followable_layout(m: Match) -> bool:
    """Every term's channel axis can be followed through the Reshape/Transpose/Squeeze/Unsqueeze."""
    (value,) = m.inputs
    if value.concat is not None:
        return False
    out_shape = [int(d) for d in m.call.ty.shape]
    return all(build.moved_axis(term, m.call, out_shape) is not False for term in value.terms)


def parts_on_one_grid(m: Match) -> bool:
    """Concat inputs that are single terms with one dtype, scale and zero point."""
    singles = m.singles
    first = singles[0]
    return all(
        t is not None and t.per_tensor and t.dtype == first.dtype and float(t.scale) == float(first.scale) and int(t.zero_point) == int(first.zero_point)
        for t in singles
    )


def unnested_parts(m: Match) -> bool:
    """Concat inputs none of which is itself a concatenation of grids."""
    return all(value.concat is None for value in m.inputs)


# -- the table ----------------------------------------------------------------------------------------------

FIRST, FIRST_TWO = Operands((0,)), Operands((0, 1))
# A chain step's operands: int8 values, chains on them, or constants the graph computed.
CHAIN_VALUES = (IntValue, TableFunction, FloatConstant)

RULES: tuple[Rule, ...] = (
    # Region edges.
    Rule("dequantize", "relax.dequantize", FIRST, when=constant_grid, build=build.open_region, role=OPENS),
    Rule("requantize", "relax.quantize", FIRST, when=per_tensor_int8_output, build=build.requantize_output, role=CLOSES, count="requantize"),
    Rule("lookup-table", "relax.quantize", FIRST, when=elementwise.tabulable_output, build=elementwise.tabulated_output, role=CLOSES,
         count="lookup table", takes=(TableFunction,)),
    # int8 x int8 with int32 accumulation; the packed dot-product forms (dot_products.py) first.
    Rule("conv2d-packed", "relax.nn.conv2d", FIRST_TWO, when=packable_conv2d, build=build.conv2d_packed),
    Rule("conv2d", "relax.nn.conv2d", FIRST_TWO, when=constant_symmetric_int8_weights, build=build.conv2d_int8),
    # A transposed convolution is a conv2d of the dilated input by the flipped kernel (integer_conv_forms.py).
    Rule("conv2d-transpose", "relax.nn.conv2d_transpose", FIRST_TWO, when=conv_forms.transposable_conv, build=conv_forms.conv2d_transpose_as_conv),
    Rule("matmul-packed", "relax.matmul", FIRST_TWO, when=packable_matrix, build=build.matmul_packed),
    Rule("matmul-weights", "relax.matmul", FIRST_TWO, when=constant_symmetric_int8_matrix, build=build.matmul_constant),
    Rule("matmul-activations-packed", "relax.matmul", FIRST_TWO, when=packable_activation_matmul, build=build.matmul_activations_packed),
    Rule("matmul-activations", "relax.matmul", FIRST_TWO, when=integer_matmul_operands, build=build.matmul_centred),
    # Sums: a bias on the accumulator's grid adds in int32, anything else stays a sum of terms.
    Rule("bias-add", "relax.add", FIRST_TWO, when=int32_on_one_grid, build=build.bias_add),
    Rule("add", "relax.add", FIRST_TWO, when=unclamped_operands, build=build.add_terms),
    # A product of two int8 terms in int32 (by a float constant or of a chain: the multiply-chain rule below).
    Rule("multiply", "relax.multiply", FIRST_TWO, when=elementwise.two_int8_grids, build=elementwise.multiply_grids),
    # Clamps fold into the next requantization's output range.
    Rule("relu", "relax.nn.relu", FIRST, when=not_concatenated, build=build.relu_clamp),
    Rule("clip", "relax.clip", FIRST, when=constant_bounds, build=build.clip_clamp),
    Rule("clip-maximum", "relax.call_tir", TirOperands((0,)), when=maximum_by_scalar, build=build.maximum_clamp, count="clip (maximum)"),
    Rule("clip-minimum", "relax.call_tir", TirOperands((0,)), when=minimum_by_scalar, build=build.minimum_clamp, count="clip (minimum)"),
    # Pooling.
    Rule("max-pool2d", "relax.nn.max_pool2d", FIRST, when=positive_scale_integers, build=build.max_pool2d_int),
    Rule("mean", "relax.mean", FIRST, when=single_per_tensor_term, build=build.mean_as_sum),
    Rule("avg-pool2d", "relax.nn.avg_pool2d", FIRST, when=conv_forms.average_of_one_grid, build=conv_forms.average_pool_as_conv),
    Rule("resize-nearest", "relax.image.resize2d", FIRST, when=layout.nearest_resize, build=layout.resize_integers, count="resize2d (nearest)"),
    Rule("resize-linear", "relax.image.resize2d", FIRST, when=layout.linear_resize, build=layout.interpolate_integers, count="resize2d (linear)"),
    # Data movement: the integers move, the grids follow.
    Rule("reshape", "relax.reshape", FIRST, when=followable_layout, build=build.layout_terms),
    Rule("permute-dims", "relax.permute_dims", FIRST, when=followable_layout, build=build.layout_terms),
    Rule("squeeze", "relax.squeeze", FIRST, when=followable_layout, build=build.layout_terms),
    Rule("expand-dims", "relax.expand_dims", FIRST, when=followable_layout, build=build.layout_terms),
    Rule("concat-one-grid", "relax.concat", TupleFields(0), when=parts_on_one_grid, build=build.concat_one_grid),
    Rule("concat", "relax.concat", TupleFields(0), when=unnested_parts, build=build.concat_parts),
    Rule("split", "relax.split", FIRST, when=layout.splittable, build=layout.split_integers, role=DESCRIBES, count="split"),
    Rule("float-constant", "relax.reshape", NoOperands(), when=elementwise.reshaped_float_constant, build=elementwise.float_constant, role=DESCRIBES),
    # Elementwise functions of one int8 tensor, after the rules above for the same op: a chain
    # (integer_tables.py) that the next Quantize tabulates; its float calls stay for float consumers.
    *(
        Rule(f"{op.removeprefix('relax.').removeprefix('nn.')}-chain", op, VarOperands(), when=elementwise.elementwise_of_one_int8_tensor,
             build=elementwise.extend_chain, role=DESCRIBES, takes=CHAIN_VALUES)
        for op in ELEMENTWISE
    ),
    Rule("clip-bound-chain", "relax.call_tir", TirOperands((0,)), when=elementwise.clamp_of_one_int8_tensor, build=elementwise.extend_chain_by_clamp,
         role=DESCRIBES, takes=CHAIN_VALUES),
)

# Each op's rules, in table order.
_BY_OP: dict[str, tuple[Rule, ...]] = {op: tuple(r for r in RULES if r.op == op) for op in dict.fromkeys(r.op for r in RULES)}


def select_rule(
    call: relax.Call, values: Mapping[relax.Var, IntValue], dot: DotScheme | None = None, scalars: Mapping[relax.Var, np.ndarray] | None = None
) -> tuple[Rule, Match] | None:
    """The first rule that applies to `call`, with what it matched; None if no rule does.

    values: the integer value of each Relax var known so far; dot: the target's dot-product
    scheme (None: plain int8 kernels).
    """
    for rule in _BY_OP.get(call.op.name, ()):
        inputs = tuple(values.get(arg) if isinstance(arg, relax.Var) else None for arg in rule.tensor_args(call))
        if rule.role != OPENS and not all(isinstance(value, rule.takes) for value in inputs):
            continue
        match = Match(call, inputs, dot, scalars if scalars is not None else {})
        if rule.when(match):
            return rule, match
    return None


def why_no_rule(call: relax.Call, values: Mapping[relax.Var, IntValue]) -> str:
    """Why no rule takes `call`, in the table's own words (the first line of each predicate's docstring)."""
    op = call.op.name.removeprefix("relax.")
    if call.op.name == "relax.call_tir":
        op = f"call_tir({call.args[0].name_hint})"
    candidates = _BY_OP.get(call.op.name, ())
    if not candidates:
        return f"edgekit has no integer rule for {op}"
    reasons = []
    for rule in candidates:
        inputs = tuple(values.get(arg) if isinstance(arg, relax.Var) else None for arg in rule.tensor_args(call))
        floats = [i for i, value in enumerate(inputs) if not isinstance(value, rule.takes)]
        if rule.role != OPENS and floats:
            reasons.append(f"operand {floats[0]} of {op} is not an integer value")
            continue
        doc = (rule.when.__doc__ or rule.when.__name__).strip().splitlines()[0].rstrip(".")
        reasons.append(f"rule {rule.name} needs {doc[:1].lower()}{doc[1:]}")
    return "; ".join(dict.fromkeys(reasons))


def tensor_args(call: relax.Call) -> list[relax.Expr]:
    """The tensor operands of any call, as its rules select them (the first operand for ops no rule takes).

    Rules that emit code select one way per op; chain steps (DESCRIBES) come after them and may
    select only the vars among the operands (constants are read from the call).
    """
    rules = _BY_OP.get(call.op.name)
    return rules[0].tensor_args(call) if rules else [call.args[0]]
