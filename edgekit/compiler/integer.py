"""Integer-only execution of QDQ models: a Relax rewrite from dequantize-compute-quantize to int8 kernels.

TVM imports QuantizeLinear/DequantizeLinear as `R.quantize`/`R.dequantize` around float ops. This
pass tracks, for every value between them, how its float meaning derives from integers:

    value = sum_i scale_i * (q_i - zero_point_i), then optionally clamped (a folded Relu/Clip)

and rewrites each op on such values into integer ops: int8 x int8 convolutions and matmuls with
int32 accumulation, int32 bias adds, integer max pooling, sums for global average pooling, and
at every QuantizeLinear a requantization to int8 with fixed-point multipliers computed here, at
compile time, from the recorded scales. Nothing inside a region is float: the generated code is
integer arithmetic, reproducible bit for bit on any target.

Rounding rule (everywhere): requantization computes round-half-up, i.e. floor(x + 1/2), as
`(total * m + 2^(shift-1)) >> shift` with an arithmetic shift. ONNX QuantizeLinear rounds half to
even in float; the two differ by one LSB only where the exact value is a tie or float rounding
lands on the other side of one.

Values that leave a region (a float consumer, a model output) are dequantized there, once; ops
the rules do not cover stay as TVM imported them, in float between their own Q/DQ pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant
from tvm.ir.prim.expr import FloatImm, IntImm
from tvm.relax.expr_functor import PyExprMutator, mutator

# Multipliers are Q31-style: m < 2^31, so int32 values times m fit int64 with room for a sum.
MULTIPLIER_BITS = 31
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
LANES, DOT_DEPTH = 16, 4  # VNNI: 16 int32 outputs per instruction, each a 4-deep uint8 x int8 dot product


@dataclass(frozen=True)
class Term:
    """scale * (q - zero_point): q an integer Relax expression; per-tensor or per channel along `axis`."""

    q: relax.Expr
    dtype: str
    scale: np.ndarray  # float64, shape () or (C,)
    zero_point: np.ndarray  # int64, shape () or (C,)
    axis: int | None = None
    value: np.ndarray | None = None  # q's value when q is a constant (weights, biases)

    @property
    def per_tensor(self) -> bool:
        return self.axis is None


@dataclass(frozen=True)
class IntValue:
    """A float value represented exactly by integer terms, then clamped to [lo, hi] (None: open)."""

    terms: tuple[Term, ...]
    lo: float | None = None
    hi: float | None = None
    concat: tuple[IntValue, ...] | None = None  # a concatenation of parts that keep their own scales
    concat_axis: int = 0

    @property
    def single(self) -> Term | None:
        if self.concat is None and len(self.terms) == 1 and self.lo is None and self.hi is None:
            return self.terms[0]
        return None


@dataclass
class IntegerReport:
    """What the rewrite did: integer ops emitted per kind, and float ops left in the graph."""

    integer_ops: dict[str, int] = field(default_factory=dict)
    float_ops: dict[str, int] = field(default_factory=dict)
    ir_summary: dict[str, int] = field(default_factory=dict)  # "op(input dtypes) -> output dtype": count

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1

    def to_dict(self) -> dict:
        return {
            "rounding": "requantize: round half up, floor(x + 1/2), fixed-point multiplier (Q31) and arithmetic shift",
            "integer_ops": dict(sorted(self.integer_ops.items())),
            "float_ops": dict(sorted(self.float_ops.items())),
            "ir_dtype_summary": dict(sorted(self.ir_summary.items())),
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


def integer_regions(mod: tvm.IRModule, vnni: bool = False) -> tuple[tvm.IRModule, IntegerReport]:
    """Rewrite the quantized regions of `mod`'s `main` into integer ops; unused float code is removed.

    vnni: the target has uint8 x int8 dot products (AVX-512 VNNI); convolutions then take the
    packed form its tensorized schedule needs (see `_conv2d_vnni`).
    """
    report = IntegerReport()
    rewritten = _IntegerRewriter(mod, report, vnni).transform()
    rewritten = relax.transform.DeadCodeElimination()(rewritten)
    _count_float_ops(rewritten, report)
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
                args = _tensor_args(expr)
                if name == "relax.call_tir":  # a kernel written here in TE: name it by its function
                    name, args = expr.args[0].name_hint, list(expr.args[1].fields)
                inputs = ", ".join(str(getattr(arg.ty, "dtype", "-")) for arg in args if hasattr(arg, "ty"))
                report.count(report.ir_summary, f"{name.removeprefix('relax.')}({inputs}) -> {dtype}")

        relax.analysis.post_order_visit(func.body, visit)


@mutator
class _IntegerRewriter(PyExprMutator):
    def __init__(self, mod: tvm.IRModule, report: IntegerReport, vnni: bool = False) -> None:
        super().__init__(mod)
        self.mod = mod
        self.report = report
        self.vnni = vnni
        self.values: dict[relax.Var, IntValue] = {}
        self.scalars: dict[relax.Var, np.ndarray] = {}  # scalar constants computed in the graph

    def transform(self) -> tvm.IRModule:
        for gvar, func in self.mod.functions_items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(gvar, self.visit_expr(func))
        return self.builder_.get()

    # -- bindings ---------------------------------------------------------------------------

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.visit_expr(binding.value)
        scalar = self._scalar_of(value)
        if scalar is not None:
            self.scalars[binding.var] = scalar
        rewritten = self._rewrite(value) if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) else None
        if rewritten is None:
            self.builder_.emit_normalized(relax.VarBinding(binding.var, value))
            return
        expr, int_value = rewritten
        self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(expr)))
        if int_value is not None:
            self.values[binding.var] = int_value

    def _rewrite(self, call: relax.Call) -> tuple[relax.Expr, IntValue | None] | None:
        if call.op.name == "relax.call_tir":
            return self._clamp_call(call)
        name = call.op.name
        if name == "relax.dequantize":
            term = self._dequantize_term(call)
            return (call, IntValue((term,))) if term is not None else None
        if name == "relax.quantize":
            return self._quantize(call)
        rule = RULES.get(name)
        if rule is None:
            return None
        inputs = [self._int_value(arg) for arg in _tensor_args(call)]
        if any(v is None for v in inputs):
            return None
        result = rule(self, call, inputs)
        if result is None:
            return None
        self.report.count(self.report.integer_ops, name.removeprefix("relax."))
        # The float meaning stays available under the original name for float consumers; dead
        # code elimination removes it where only integer consumers remain.
        return self._to_float(result, call), result

    def _scalar_of(self, value: relax.Expr) -> np.ndarray | None:
        """Evaluate the scalar constant arithmetic TVM's importer emits for Clip bounds:
        `where(isnan(c), -inf, c)` on constants."""
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)):
            return None
        args = [self._scalar_arg(a) for a in value.args]
        if any(a is None for a in args):
            return None
        if value.op.name == "relax.isnan":
            return np.isnan(args[0])
        if value.op.name == "relax.where":
            return np.where(*args)
        return None

    def _scalar_arg(self, expr: relax.Expr) -> np.ndarray | None:
        if isinstance(expr, Constant) and expr.value.numpy().size == 1:
            return expr.value.numpy().reshape(())
        return self.scalars.get(expr) if isinstance(expr, relax.Var) else None

    def _clamp_call(self, call: relax.Call) -> tuple[relax.Expr, IntValue | None] | None:
        """Clip with tensor bounds imports as call_tir(maximum/minimum, (x, bound)): a clamp."""
        function, args = call.args[0], call.args[1]
        kind = function.name_hint.rstrip("0123456789_")
        if kind not in ("maximum", "minimum") or not isinstance(args, relax.Tuple) or len(args.fields) != 2:
            return None
        value, bound = self._int_value(args.fields[0]), self._scalar_arg(args.fields[1])
        if value is None or bound is None or value.concat is not None:
            return None
        bound = float(bound)
        if kind == "maximum":
            result = replace(value, lo=bound if value.lo is None else max(value.lo, bound))
        else:
            result = replace(value, hi=bound if value.hi is None else min(value.hi, bound))
        if result.lo is not None and not np.isfinite(result.lo):
            result = replace(result, lo=None)
        if result.hi is not None and not np.isfinite(result.hi):
            result = replace(result, hi=None)
        self.report.count(self.report.integer_ops, f"clip ({kind})")
        return self._to_float(result, call), result

    def _int_value(self, expr: relax.Expr) -> IntValue | None:
        return self.values.get(expr) if isinstance(expr, relax.Var) else None

    # -- region edges ---------------------------------------------------------------------------

    def _dequantize_term(self, call: relax.Call) -> Term | None:
        data, scale, zero_point = call.args
        if not (isinstance(scale, Constant) and isinstance(zero_point, Constant)):
            return None
        dtype = str(data.ty.dtype)
        if dtype not in ("int8", "uint8", "int32"):
            return None
        scale_np = scale.value.numpy().astype(np.float64)
        zp_np = zero_point.value.numpy().astype(np.int64)
        rank = len(data.ty.shape)
        axis = None
        if scale_np.size > 1:
            axis = int(call.attrs.axis) % rank
            scale_np, zp_np = scale_np.reshape(-1), np.broadcast_to(zp_np.reshape(-1), (scale_np.size,)).copy()
        else:
            scale_np, zp_np = scale_np.reshape(()), zp_np.reshape(())
        value = data.value.numpy() if isinstance(data, Constant) else None
        return Term(data, dtype, scale_np, zp_np, axis, value)

    def _quantize(self, call: relax.Call) -> tuple[relax.Expr, IntValue | None] | None:
        data, scale, zero_point = call.args
        source = self._int_value(data)
        if source is None or not (isinstance(scale, Constant) and isinstance(zero_point, Constant)):
            return None
        if scale.value.numpy().size != 1:
            return None  # per-channel activations: not produced by edgekit's quantizer
        out_dtype = str(call.attrs.out_dtype)
        if out_dtype not in INT_RANGES:
            return None
        target = (float(scale.value.numpy().reshape(())), int(zero_point.value.numpy().reshape(())))
        self.report.count(self.report.integer_ops, "requantize")
        return self._requantize(source, *target, out_dtype, call), None

    def _to_float(self, value: IntValue, like: relax.Call) -> relax.Expr:
        """The float meaning of `value`, for consumers outside the integer region."""
        if value.concat is not None:
            parts = [self.builder_.emit(self._to_float(part, like)) for part in value.concat]
            return relax.op.concat(parts, axis=value.concat_axis)
        total = None
        for term in value.terms:
            rank = len(term.q.ty.shape)
            centred = relax.op.astype(term.q, "int32")
            if np.any(term.zero_point != 0):
                centred = relax.op.subtract(centred, _const(term.zero_point.astype(np.int32), term.axis, rank))
            part = relax.op.multiply(relax.op.astype(self.builder_.emit(centred), "float32"), _const(term.scale.astype(np.float32), term.axis, rank))
            total = part if total is None else relax.op.add(self.builder_.emit(total), self.builder_.emit(part))
        if value.lo is not None or value.hi is not None:
            total = relax.op.clip(self.builder_.emit(total), value.lo if value.lo is not None else -np.inf, value.hi if value.hi is not None else np.inf)
        return total

    def _requantize(self, value: IntValue, scale: float, zero_point: int, dtype: str, like: relax.Call) -> relax.Expr:
        """round_half_up(value / scale) + zero_point, clamped to the dtype and value's clamp, in integers."""
        qmin, qmax = INT_RANGES[dtype]
        if value.concat is not None:
            parts = [self.builder_.emit(self._requantize(part, scale, zero_point, dtype, like)) for part in value.concat]
            return relax.op.concat(parts, axis=value.concat_axis)
        if value.lo is not None:
            qmin = max(qmin, zero_point + _round_half_up(value.lo / scale))
        if value.hi is not None:
            qmax = min(qmax, zero_point + _round_half_up(value.hi / scale))
        term = value.single
        if term is not None and term.dtype == dtype and term.per_tensor and float(term.scale) == scale and int(term.zero_point) == zero_point:
            return term.q  # already on this grid (MaxPool, Reshape pass scales through)
        multipliers = [term.scale / scale for term in value.terms]
        shift = _shared_shift(multipliers)
        total = None
        for term, multiplier in zip(value.terms, multipliers):
            rank = len(term.q.ty.shape)
            centred = relax.op.astype(term.q, "int64")
            if np.any(term.zero_point != 0):
                centred = relax.op.subtract(self.builder_.emit(centred), _const(term.zero_point.astype(np.int64), term.axis, rank))
            m = np.rint(np.asarray(multiplier, np.float64) * 2.0**shift).astype(np.int64)
            part = relax.op.multiply(self.builder_.emit(centred), _const(m, term.axis, rank))
            total = part if total is None else relax.op.add(self.builder_.emit(total), self.builder_.emit(part))
        rounded = relax.op.right_shift(self.builder_.emit(relax.op.add(self.builder_.emit(total), relax.const(1 << (shift - 1), "int64"))), relax.const(shift, "int64"))
        shifted = relax.op.add(self.builder_.emit(rounded), relax.const(zero_point, "int64"))
        clamped = relax.op.minimum(relax.op.maximum(self.builder_.emit(shifted), relax.const(qmin, "int64")), relax.const(qmax, "int64"))
        return relax.op.astype(self.builder_.emit(clamped), dtype)

    def emit(self, expr: relax.Expr) -> relax.Var:
        return self.builder_.emit(expr)


# -- rules: op name -> function(rewriter, call, input IntValues) -> IntValue | None ---------------


def _conv2d(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    x, w = (v.single for v in inputs)
    attrs = call.attrs
    if x is None or w is None or w.value is None or not x.per_tensor or x.dtype not in INT_RANGES or w.dtype != "int8":
        return None
    if np.any(w.zero_point != 0) or str(attrs.data_layout) != "NCHW" or str(attrs.kernel_layout) != "OIHW" or w.axis not in (None, 0):
        return None
    if rw.vnni and int(attrs.groups) == 1 and w.value.shape[0] % LANES == 0:
        return _conv2d_vnni(rw, call, x, w)
    data = x.q
    zx = int(x.zero_point)
    padding = [int(p) for p in attrs.padding]
    if any(padding):
        # Zero in the float model is the zero point on the int8 grid: pad with it, not with 0.
        top, left, bottom, right = padding
        data = rw.emit(relax.op.nn.pad(data, [0, 0, 0, 0, top, bottom, left, right], pad_value=float(zx)))
    acc = rw.emit(relax.op.nn.conv2d(data, w.q, strides=attrs.strides, padding=0, dilation=attrs.dilation, groups=int(attrs.groups), out_dtype="int32"))
    if zx:
        correction = zx * w.value.astype(np.int64).reshape(w.value.shape[0], -1).sum(axis=1)
        acc = rw.emit(relax.op.subtract(acc, relax.const(correction.astype(np.int32).reshape(1, -1, 1, 1), "int32")))
    return IntValue((Term(acc, "int32", x.scale * w.scale, np.zeros_like(w.scale, np.int64), None if w.per_tensor else 1),))


def _conv2d_vnni(rw: _IntegerRewriter, call: relax.Call, x: Term, w: Term) -> IntValue:
    """The convolution in the layout VNNI's 16x4 dot product wants, exact like the plain form.

    vpdpbusd multiplies uint8 by int8, so activations move to uint8 (q + 128, zero point + 128;
    int8 activations keep their values' meaning). Input channels are padded to a multiple of 4
    with the zero point and packed innermost, [N, C/4, H, W, 4], so the 4 bytes one instruction
    reads are contiguous; weights are packed at compile time to [O/16, C/4, KH, KW, 16, 4].
    The zero point's contribution, zp * sum(w) per output channel, is subtracted at the end.
    """
    attrs = call.attrs
    data, zp = _as_uint8(rw, x)
    n, channels, height, width = [int(d) for d in data.ty.shape]
    extra = -channels % DOT_DEPTH
    top, left, bottom, right = [int(p) for p in attrs.padding]
    if extra or top or left or bottom or right:
        data = rw.emit(relax.op.nn.pad(data, [0, 0, 0, extra, top, bottom, left, right], pad_value=float(zp)))
    quads = (channels + extra) // DOT_DEPTH
    height, width = height + top + bottom, width + left + right
    data = rw.emit(relax.op.reshape(data, [n, quads, DOT_DEPTH, height, width]))
    data = rw.emit(relax.op.permute_dims(data, [0, 1, 3, 4, 2]))
    out_channels, _, kh, kw = w.value.shape
    weight = np.pad(w.value, [(0, 0), (0, extra), (0, 0), (0, 0)])
    packed = weight.reshape(out_channels // LANES, LANES, quads, DOT_DEPTH, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    out_h, out_w = [int(d) for d in list(call.ty.shape)[2:]]
    strides = [int(s) for s in attrs.strides]
    dilation = [int(d) for d in attrs.dilation]
    acc = rw.builder_.emit_te(
        _packed_conv_te, data, relax.const(np.ascontiguousarray(packed), "int8"), (n, out_channels, out_h, out_w), strides, dilation, (kh, kw),
        primfunc_name_hint="conv2d_u8i8_packed",
    )
    correction = zp * w.value.astype(np.int64).reshape(out_channels, -1).sum(axis=1)
    if zp:
        acc = rw.emit(relax.op.subtract(acc, relax.const(correction.astype(np.int32).reshape(1, -1, 1, 1), "int32")))
    return IntValue((Term(acc, "int32", x.scale * w.scale, np.zeros_like(w.scale, np.int64), None if w.per_tensor else 1),))


def _as_uint8(rw: _IntegerRewriter, term: Term) -> tuple[relax.Expr, int]:
    """`term`'s integers on the uint8 grid vpdpbusd reads: int8 moves up by 128, its zero point with it."""
    if term.dtype == "uint8":
        return term.q, int(term.zero_point)
    widened = rw.emit(relax.op.astype(term.q, "int16"))
    shifted = rw.emit(relax.op.add(widened, relax.const(128, "int16")))
    return rw.emit(relax.op.astype(shifted, "uint8")), int(term.zero_point) + 128


def _packed_conv_te(data, weight, shape, strides, dilation, kernel):
    from tvm import te

    quads = data.shape[1]
    rc = te.reduce_axis((0, quads), "rc")
    ry = te.reduce_axis((0, kernel[0]), "ry")
    rx = te.reduce_axis((0, kernel[1]), "rx")
    ri = te.reduce_axis((0, DOT_DEPTH), "ri")
    return te.compute(
        shape,
        lambda b, f, y, x: te.sum(
            data[b, rc, y * strides[0] + ry * dilation[0], x * strides[1] + rx * dilation[1], ri].astype("int32")
            * weight[f // LANES, rc, ry, rx, f % LANES, ri].astype("int32"),
            axis=[rc, ry, rx, ri],
        ),
        name="conv2d_u8i8_packed",
    )


def _matmul(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    a, b = (v.single for v in inputs)
    if a is None or b is None or not a.per_tensor or a.dtype not in INT_RANGES or b.dtype not in INT_RANGES:
        return None
    rank_b = len(b.q.ty.shape)
    if not b.per_tensor and (b.axis != rank_b - 1 or np.any(b.zero_point != 0)):
        return None
    za = int(a.zero_point)
    if rw.vnni and b.value is not None and b.dtype == "int8" and np.all(b.zero_point == 0) and rank_b == 2 and b.value.shape[1] % LANES == 0:
        acc = _matmul_vnni(rw, a, b, [int(d) for d in call.ty.shape])
    elif b.value is not None and b.dtype == "int8" and np.all(b.zero_point == 0) and rank_b == 2:
        acc = rw.emit(relax.op.matmul(a.q, b.q, out_dtype="int32"))
        if za:
            correction = za * b.value.astype(np.int64).sum(axis=0)
            acc = rw.emit(relax.op.subtract(acc, relax.const(correction.astype(np.int32), "int32")))
    else:
        # Two activations (attention): centre both in int32; exact, without the VNNI-friendly form.
        left = _centred(rw, a)
        right = _centred(rw, b)
        acc = rw.emit(relax.op.matmul(left, right, out_dtype="int32"))
    rank_out = len(call.ty.shape)
    axis = None if b.per_tensor else rank_out - 1
    return IntValue((Term(acc, "int32", a.scale * b.scale, np.zeros_like(a.scale * b.scale, np.int64), axis),))


def _matmul_vnni(rw: _IntegerRewriter, a: Term, b: Term, out_shape: list[int]) -> relax.Expr:
    """A x constant B as a packed uint8 x int8 dense for VNNI (see `_conv2d_vnni` for the shift).

    Leading dims of A flatten into rows; K is padded to a multiple of 4 (A with its zero point,
    B with zeros); B is packed at compile time to [N/16, K/4, 16, 4].
    """
    data, zp = _as_uint8(rw, a)
    depth, columns = b.value.shape
    rows = int(np.prod(out_shape[:-1]))
    data = rw.emit(relax.op.reshape(data, [rows, depth]))
    extra = -depth % DOT_DEPTH
    if extra:
        data = rw.emit(relax.op.nn.pad(data, [0, 0, 0, extra], pad_value=float(zp)))
    weight = np.pad(b.value, [(0, extra), (0, 0)])
    packed = weight.reshape((depth + extra) // DOT_DEPTH, DOT_DEPTH, columns // LANES, LANES).transpose(2, 0, 3, 1)
    acc = rw.builder_.emit_te(_packed_dense_te, data, relax.const(np.ascontiguousarray(packed), "int8"), (rows, columns), primfunc_name_hint="dense_u8i8_packed")
    if zp:
        correction = zp * b.value.astype(np.int64).sum(axis=0)
        acc = rw.emit(relax.op.subtract(acc, relax.const(correction.astype(np.int32), "int32")))
    return rw.emit(relax.op.reshape(acc, out_shape))


def _packed_dense_te(data, weight, shape):
    from tvm import te

    rk = te.reduce_axis((0, data.shape[1] // DOT_DEPTH), "rk")
    ri = te.reduce_axis((0, DOT_DEPTH), "ri")
    return te.compute(
        shape,
        lambda m, n: te.sum(data[m, rk * DOT_DEPTH + ri].astype("int32") * weight[n // LANES, rk, n % LANES, ri].astype("int32"), axis=[rk, ri]),
        name="dense_u8i8_packed",
    )


def _centred(rw: _IntegerRewriter, term: Term) -> relax.Expr:
    widened = rw.emit(relax.op.astype(term.q, "int32"))
    if np.all(term.zero_point == 0):
        return widened
    return rw.emit(relax.op.subtract(widened, _const(term.zero_point.astype(np.int32), term.axis, len(term.q.ty.shape))))


def _add(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    a, b = inputs
    if a.concat or b.concat or a.lo is not None or a.hi is not None or b.lo is not None or b.hi is not None:
        return None
    ta, tb = a.single, b.single
    if ta is not None and tb is not None and ta.dtype == tb.dtype == "int32" and _same_grid(ta, tb):
        # A bias add: int32 on the accumulator's own grid, one integer add.
        return IntValue((replace(ta, q=rw.emit(relax.op.add(ta.q, tb.q)), value=None),))
    return IntValue(a.terms + b.terms)


def _same_grid(a: Term, b: Term) -> bool:
    if np.any(a.zero_point != 0) or np.any(b.zero_point != 0):
        return False
    if a.per_tensor and b.per_tensor:
        return np.float32(a.scale) == np.float32(b.scale)
    return a.axis == b.axis and a.scale.shape == b.scale.shape and np.array_equal(a.scale.astype(np.float32), b.scale.astype(np.float32))


def _relu(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    (value,) = inputs
    if value.concat is not None:
        return None
    return replace(value, lo=0.0 if value.lo is None else max(value.lo, 0.0))


def _clip(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    (value,) = inputs
    low, high = call.args[1], call.args[2]
    if value.concat is not None or not (isinstance(low, (FloatImm, IntImm)) and isinstance(high, (FloatImm, IntImm))):
        return None
    lo, hi = float(low.value), float(high.value)
    return replace(value, lo=lo if value.lo is None else max(lo, value.lo), hi=hi if value.hi is None else min(hi, value.hi))


def _max_pool2d(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    term = inputs[0].single
    if term is None or not term.per_tensor or term.dtype not in INT_RANGES or np.any(term.scale <= 0):
        return None
    a = call.attrs
    pooled = rw.emit(relax.op.nn.max_pool2d(term.q, a.pool_size, a.strides, a.padding, a.dilation, a.ceil_mode, a.count_include_pad, a.layout, a.out_layout))
    return IntValue((replace(term, q=pooled, value=None),))


def _mean(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    term = inputs[0].single
    if term is None or not term.per_tensor:
        return None
    shape = [int(d) for d in term.q.ty.shape]
    axes = [int(a) % len(shape) for a in call.attrs.axis] if call.attrs.axis is not None else list(range(len(shape)))
    count = int(np.prod([shape[a] for a in axes]))
    total = rw.emit(relax.op.sum(rw.emit(relax.op.astype(term.q, "int32")), axis=axes, keepdims=bool(call.attrs.keepdims)))
    # mean = scale * (sum(q) - count * zp) / count: an int32 sum on a grid count times finer.
    if int(term.zero_point):
        total = rw.emit(relax.op.subtract(total, relax.const(int(term.zero_point) * count, "int32")))
    return IntValue((Term(total, "int32", term.scale / count, np.zeros((), np.int64)),))


def _layout(op):
    """Reshape-like ops: applied to each term's integers, scales follow the channel axis."""

    def rule(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
        value = inputs[0]
        if value.concat is not None:
            return None
        out_shape = [int(d) for d in call.ty.shape]
        terms = []
        for term in value.terms:
            axis = _moved_axis(term, call, out_shape)
            if axis is False:
                return None
            q = op(rw, call, term.q)
            folded = None
            if term.value is not None:
                folded = _numpy_layout(call, term.value, out_shape)
                q = relax.const(folded, str(folded.dtype))
            terms.append(Term(q, term.dtype, term.scale, term.zero_point, axis, folded))
        return replace(value, terms=tuple(terms))

    return rule


def _moved_axis(term: Term, call: relax.Call, out_shape: list[int]):
    """Where a per-channel axis lands after the op, or False if it cannot be followed."""
    if term.per_tensor:
        return None
    name = call.op.name
    if name == "relax.permute_dims":
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else list(range(len(out_shape)))[::-1]
        return axes.index(term.axis)
    channels = term.scale.size
    # A per-channel vector reshaped to broadcast ([C] -> [1, C, 1, 1]): the one dim of size C.
    if name == "relax.reshape" and sum(1 for d in out_shape if d != 1) == 1 and channels in out_shape:
        return out_shape.index(channels)
    return False


def _numpy_layout(call: relax.Call, value: np.ndarray, out_shape: list[int]) -> np.ndarray:
    if call.op.name == "relax.permute_dims":
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
        return np.ascontiguousarray(np.transpose(value, axes))
    return value.reshape(out_shape)


def _reshape_like(rw, call, q):
    if call.op.name == "relax.permute_dims":
        return rw.emit(relax.op.permute_dims(q, call.attrs.axes))
    return rw.emit(relax.op.reshape(q, call.ty.shape))


def _concat(rw: _IntegerRewriter, call: relax.Call, inputs: list[IntValue]) -> IntValue | None:
    axis = int(call.attrs.axis) % len(call.ty.shape)
    singles = [v.single for v in inputs]
    first = singles[0]
    if all(t is not None and t.per_tensor and t.dtype == first.dtype and float(t.scale) == float(first.scale) and int(t.zero_point) == int(first.zero_point) for t in singles):
        joined = rw.emit(relax.op.concat([t.q for t in singles], axis=axis))
        return IntValue((replace(first, q=joined, value=None),))
    if any(v.concat is not None for v in inputs):
        return None
    # Parts on different grids: each is requantized to the output grid when one is known.
    return IntValue((), concat=tuple(inputs), concat_axis=axis)


RULES = {
    "relax.nn.conv2d": _conv2d,
    "relax.matmul": _matmul,
    "relax.add": _add,
    "relax.nn.relu": _relu,
    "relax.clip": _clip,
    "relax.nn.max_pool2d": _max_pool2d,
    "relax.mean": _mean,
    "relax.reshape": _layout(_reshape_like),
    "relax.permute_dims": _layout(_reshape_like),
    "relax.concat": _concat,
}


def _tensor_args(call: relax.Call) -> list[relax.Expr]:
    if call.op.name == "relax.concat":
        fields = call.args[0]
        return list(fields.fields) if isinstance(fields, relax.Tuple) else [fields]
    if call.op.name in ("relax.add", "relax.matmul", "relax.nn.conv2d"):
        return list(call.args[:2])
    return [call.args[0]]


def _const(values: np.ndarray, axis: int | None, rank: int) -> Constant:
    values = np.asarray(values)
    if axis is None or values.ndim == 0:
        return relax.const(values.reshape(()), str(values.dtype))
    shape = [1] * rank
    shape[axis] = -1
    # relax.const turns int64 arrays into int32 unless told the dtype.
    return relax.const(np.ascontiguousarray(values.reshape(shape)), str(values.dtype))


def _shared_shift(multipliers: list[np.ndarray]) -> int:
    """The largest shift keeping every fixed-point multiplier below 2^31 (at most 62, at least 1)."""
    largest = max(float(np.max(np.abs(m))) for m in multipliers)
    if largest <= 0:
        return MULTIPLIER_BITS
    exponent = int(np.floor(np.log2(largest))) + 1  # largest < 2^exponent
    return int(np.clip(MULTIPLIER_BITS - exponent, 1, 62))


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))
