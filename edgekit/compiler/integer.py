"""Integer-only execution of QDQ models: a Relax rewrite from dequantize-compute-quantize to int8 kernels.

TVM imports QuantizeLinear/DequantizeLinear as `R.quantize`/`R.dequantize` around float ops. This
pass walks `main` and tracks, for every value between them, how its float meaning derives from
integers (integer_values.py):

    value = sum_i scale_i * (q_i - zero_point_i), then optionally clamped (a folded Relu/Clip)

and rewrites each op on such values by the first rule of the table in integer_rules.py that
applies: int8 x int8 convolutions and matmuls with int32 accumulation (packed for the target's
dot-product instructions where it has them, dot_products.py and dot_packing.py), int32 bias adds, integer max pooling, sums for global average
pooling, and at every QuantizeLinear a requantization to int8 with fixed-point multipliers
computed at compile time from the recorded scales. Nothing inside a region is float: the
generated code is integer arithmetic, reproducible bit for bit on any target.

Rounding rule (everywhere): requantization computes round-half-up, i.e. floor(x + 1/2), as
`(total * m + 2^(shift-1)) >> shift` with an arithmetic shift. ONNX QuantizeLinear rounds half to
even in float; the two differ by one LSB only where the exact value is a tie or float rounding
lands on the other side of one. integer_check.py runs the result against the QDQ model in ONNX
Runtime.

Values that leave a region (a float consumer, a model output) are dequantized there, once; ops
the rules do not cover stay as TVM imported them, in float between their own Q/DQ pairs. Those
are found after the rewrite and named by their ONNX nodes (integer_float_nodes.py): compile
accepts one only where somebody chose float for it (frontend.py), never in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from edgekit.compiler.dot_products import DotScheme
from edgekit.compiler.integer_float_nodes import FloatNode, float_nodes_in_regions
from edgekit.compiler.integer_rules import CLOSES, DESCRIBES, OPENS, select_rule, tensor_args, why_no_rule
from edgekit.compiler.integer_layout import SplitParts
from edgekit.compiler.integer_tables import Lookup
from edgekit.compiler.integer_values import IntValue, scalar_constant, to_float
from edgekit.compiler.mac_share import mac_share
from edgekit.compiler.relax_import import OnnxNode
from edgekit.compiler.relax_mutation import mutate_relax_functions


@dataclass
class IntegerReport:
    """What the rewrite did: integer ops emitted per kind, float ops left in the graph, and the nodes left float inside regions."""

    integer_ops: dict[str, int] = field(default_factory=dict)
    float_ops: dict[str, int] = field(default_factory=dict)
    ir_summary: dict[str, int] = field(default_factory=dict)  # "op(input dtypes) -> output dtype": count
    tables: list[dict] = field(default_factory=list)  # each lookup table: its function, input and output grids
    float_nodes: list[FloatNode] = field(default_factory=list)  # float inside a quantized region (integer_float_nodes.py)
    accepted_float: dict[str, str] = field(default_factory=dict)  # float node name -> who chose float for it (frontend.py)
    macs: dict = field(default_factory=dict)  # conv/matmul MACs, those in integers and their share (mac_share.py)

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1

    def to_dict(self) -> dict:
        return {
            "rounding": "requantize: round half up, floor(x + 1/2), fixed-point multiplier (Q31) and arithmetic shift",
            "integer_ops": dict(sorted(self.integer_ops.items())),
            "float_ops": dict(sorted(self.float_ops.items())),
            "ir_dtype_summary": dict(sorted(self.ir_summary.items())),
            "lookup_tables": list(self.tables),
            "float_nodes": [node.to_dict() | {"accepted_by": self.accepted_float.get(node.name)} for node in self.float_nodes],
        }


def has_qdq(mod: tvm.IRModule) -> bool:
    """Whether any Relax function both quantizes and dequantizes (walks the IR; printing it is slow on big models)."""
    found: set[str] = set()

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name in ("relax.quantize", "relax.dequantize"):
            found.add(expr.op.name)

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return len(found) == 2


def integer_regions(mod: tvm.IRModule, dot: DotScheme | None = None, nodes: dict[relax.Var, OnnxNode] | None = None) -> tuple[tvm.IRModule, IntegerReport]:
    """Rewrite the quantized regions of `mod`'s `main` into integer ops; unused float code is removed.

    dot: the target's dot-product scheme (dot_products.py); convolutions and constant-weight
    matmuls then take the packed form its tensorized schedule needs (dot_packing.py).
    nodes: the ONNX node of each imported var (relax_import.import_onnx), which names the float
    ops left inside quantized regions in `report.float_nodes` (without it they are named by var).
    """
    report = IntegerReport()
    rewriter = _IntegerRewriter(mod, report, dot)
    rewritten = relax.transform.DeadCodeElimination()(mutate_relax_functions(rewriter, mod))
    _count_float_ops(rewritten, report)
    report.float_nodes = float_nodes_in_regions(rewritten["main"], nodes or {}, rewriter.dequantized, lambda call: why_no_rule(call, rewriter.values))
    report.macs = mac_share(mod["main"], rewriter.computed)
    return rewritten, report


# Float ops that are not computation: they only move or reinterpret data, or are region edges.
_DATA_MOVEMENT = {"relax.reshape", "relax.permute_dims", "relax.squeeze", "relax.expand_dims", "relax.flatten", "relax.concat", "relax.astype"}


def _count_float_ops(mod: tvm.IRModule, report: IntegerReport) -> None:
    for _, func in mod.functions_items():
        if not isinstance(func, relax.Function):
            continue

        def visit(expr):
            if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
                dtype = getattr(expr.ty, "dtype", "")
                name = expr.op.name
                if str(dtype).startswith("float") and name not in _DATA_MOVEMENT and name != "relax.dequantize":
                    report.count(report.float_ops, name.removeprefix("relax."))
                if name == "relax.call_tir":  # a kernel written here in TE: name it by its function
                    name, args = expr.args[0].name_hint, list(expr.args[1].fields)
                else:
                    args = tensor_args(expr)
                inputs = ", ".join(str(getattr(arg.ty, "dtype", "-")) for arg in args if hasattr(arg, "ty"))
                report.count(report.ir_summary, f"{name.removeprefix('relax.')}({inputs}) -> {dtype}")

        relax.analysis.post_order_visit(func.body, visit)


@mutator
class _IntegerRewriter(PyExprMutator):
    def __init__(self, mod: tvm.IRModule, report: IntegerReport, dot: DotScheme | None = None) -> None:
        super().__init__(mod)
        self.report = report
        self.dot = dot
        self.values: dict[relax.Var, IntValue] = {}
        self.scalars: dict[relax.Var, np.ndarray] = {}  # scalar constants computed in the graph
        self.dequantized: set[relax.Var] = set()  # vars bound to the float meaning of an integer value (region exits)
        self.computed: set[relax.Var] = set()  # vars of the calls a rule computed in integers (INSIDE)

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.visit_expr(binding.value)
        if isinstance(value, relax.TupleGetItem) and isinstance(self.values.get(value.tuple_value), SplitParts):
            # One part of an integer Split: the float part stays for float consumers.
            self.builder_.emit_normalized(relax.VarBinding(binding.var, value))
            self.values[binding.var] = self.values[value.tuple_value].part(self.builder_.emit, int(value.index))
            return
        scalar = self._scalar_of(value)
        if scalar is not None:
            self.scalars[binding.var] = scalar
        rewritten = self._rewrite(value) if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) else None
        if rewritten is None:
            self.builder_.emit_normalized(relax.VarBinding(binding.var, value))
            return
        expr, int_value, dequantized = rewritten
        self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(expr)))
        if int_value is not None:
            self.values[binding.var] = int_value
        if dequantized:
            self.dequantized.add(binding.var)
            self.computed.add(binding.var)  # MACs count only conv/matmul calls

    def _rewrite(self, call: relax.Call) -> tuple[relax.Expr, IntValue | None, bool] | None:
        """(what the binding becomes, its integer value, whether that is a float meaning) by the first rule that applies, or None."""
        found = select_rule(call, self.values, self.dot, self.scalars)
        if found is None:
            return None
        rule, match = found
        result = rule.build(self.builder_, match)
        if rule.counted_as is not None:
            self.report.count(self.report.integer_ops, rule.counted_as)
        if isinstance(result, Lookup):
            self.report.tables.append(result.description)
            result = result.expr
        if rule.role in (OPENS, DESCRIBES):
            # A split's float call stays for float consumers of its parts: it only moves the
            # dequantized values, so for them it is a region exit, as to_float is.
            return call, result, isinstance(result, SplitParts)
        if rule.role == CLOSES:
            return result, None, False
        # The float meaning stays available under the original name for float consumers; dead
        # code elimination removes it where only integer consumers remain.
        return to_float(self._emit_dequantized, result), result, True

    def _emit_dequantized(self, expr: relax.Expr) -> relax.Var:
        var = self.builder_.emit(expr)
        self.dequantized.add(var)
        return var

    def _scalar_of(self, value: relax.Expr) -> np.ndarray | None:
        """Evaluate the scalar constant arithmetic TVM's importer emits for Clip bounds:
        `where(isnan(c), -inf, c)` on constants."""
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)):
            return None
        args = [scalar_constant(a, self.scalars) for a in value.args]
        if any(a is None for a in args):
            return None
        if value.op.name == "relax.isnan":
            return np.isnan(args[0])
        if value.op.name == "relax.where":
            return np.where(*args)
        return None
