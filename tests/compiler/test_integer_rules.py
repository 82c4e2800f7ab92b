"""The integer rewrite's parts on their own: rule predicates on hand-built calls, the zero-point
correction and the requantization math against exact integer and fraction references, the rule
lookup's packed-or-plain choice, and the self-check passing on a QDQ model and failing on a wrong
integer module."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax, topi

from edgekit.compiler import integer_rules as rules
from edgekit.compiler.dot_products import SCHEMES, DotScheme
from edgekit.compiler.integer import integer_regions
from edgekit.compiler.integer_check import MAX_OUTPUT_LSB, IntegerMismatchError, check_integer_rewrite, expose_quantized, output_lsbs
from edgekit.compiler.integer_values import (
    MULTIPLIER_BITS,
    IntValue,
    Match,
    Term,
    fixed_point_multiplier,
    requantize,
    round_half_up,
    scalar_constant,
    shared_shift,
    tensor_constant,
    zero_point_correction,
)
from edgekit.compiler.relax_import import import_onnx
from edgekit.onnx_model import model_inputs

RNG = np.random.default_rng(7)
VNNI = SCHEMES["vnni"]


# -- hand-built calls -------------------------------------------------------------------------------------


def float_var(name: str, shape: list[int]) -> relax.Var:
    """A float value in the graph (what a DequantizeLinear binds)."""
    return relax.Var(name, relax.TensorType(shape, "float32"))


def activation(shape: list[int], dtype: str = "int8", scale: float = 0.05, zero_point: int = 3) -> Term:
    return Term(relax.Var("q", relax.TensorType(shape, dtype)), dtype, np.array(scale), np.array(zero_point, np.int64))


def weights(array: np.ndarray, scale: float = 0.01, zero_point: int = 0, axis: int | None = 0) -> Term:
    if axis is None:
        return Term(relax.const(array, str(array.dtype)), str(array.dtype), np.array(scale), np.array(zero_point, np.int64), None, array)
    channels = array.shape[axis]
    return Term(relax.const(array, str(array.dtype)), str(array.dtype), np.full(channels, scale), np.full(channels, zero_point, np.int64), axis, array)


def int8(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(-127, 128, shape, dtype=np.int8)


def normalized(expr: relax.Expr) -> relax.Call:
    return relax.BlockBuilder().normalize(expr)


def conv2d_match(out_channels: int = 16, dot: DotScheme | None = VNNI, x: Term | None = None, w: Term | None = None, groups: int = 1) -> Match:
    x = x or activation([1, 4, 8, 8])
    w = w or weights(int8((out_channels, 4 // groups, 3, 3)))
    call = normalized(relax.op.nn.conv2d(float_var("x", [1, 4, 8, 8]), float_var("w", [int(d) for d in w.q.ty.shape]), padding=1, groups=groups))
    return Match(call, (IntValue((x,)), IntValue((w,))), dot)


def matmul_match(columns: int = 32, dot: DotScheme | None = VNNI, b: Term | None = None) -> Match:
    b = b or weights(int8((24, columns)), axis=1)
    call = normalized(relax.op.matmul(float_var("a", [2, 24]), float_var("b", [24, columns])))
    return Match(call, (IntValue((activation([2, 24]),)), IntValue((b,))), dot)


def test_constant_symmetric_int8_weights_needs_constant_symmetric_int8_weights():
    assert rules.constant_symmetric_int8_weights(conv2d_match())
    w = int8((16, 4, 3, 3))
    assert not rules.constant_symmetric_int8_weights(conv2d_match(w=weights(w, zero_point=1)))  # asymmetric
    assert not rules.constant_symmetric_int8_weights(conv2d_match(w=Term(relax.Var("w", relax.TensorType([16, 4, 3, 3], "int8")), "int8", np.array(0.01), np.array(0))))
    per_channel_x = Term(relax.Var("q", relax.TensorType([1, 4, 8, 8], "int8")), "int8", np.full(4, 0.05), np.zeros(4, np.int64), 1)
    assert not rules.constant_symmetric_int8_weights(conv2d_match(x=per_channel_x))
    assert not rules.constant_symmetric_int8_weights(conv2d_match(x=activation([1, 4, 8, 8], dtype="int32")))


def test_packable_conv2d_needs_a_dot_product_and_no_groups():
    assert rules.packable_conv2d(conv2d_match(out_channels=32))
    assert not rules.packable_conv2d(conv2d_match(out_channels=32, dot=None))
    assert rules.packable_conv2d(conv2d_match(out_channels=24))  # computed on 32, cut back to 24
    assert not rules.packable_conv2d(conv2d_match(out_channels=16, groups=2))
    assert rules.constant_symmetric_int8_weights(conv2d_match(out_channels=24))  # the plain rule still applies


def test_matrix_predicates_refine_each_other():
    assert rules.packable_matrix(matmul_match(columns=32))
    assert rules.packable_matrix(matmul_match(columns=24))
    assert rules.constant_symmetric_int8_matrix(matmul_match(columns=24))
    assert not rules.packable_matrix(matmul_match(columns=32, dot=None))
    b_activation = Term(relax.Var("k", relax.TensorType([24, 32], "int8")), "int8", np.array(0.02), np.array(-4, np.int64))
    attention = matmul_match(b=b_activation)
    assert rules.integer_matmul_operands(attention) and not rules.constant_symmetric_int8_matrix(attention)
    per_row = weights(int8((24, 32)), axis=0)  # scales along K cannot leave the accumulator
    assert not rules.integer_matmul_operands(matmul_match(b=per_row))
    asymmetric_columns = weights(int8((24, 32)), zero_point=2, axis=1)
    assert not rules.integer_matmul_operands(matmul_match(b=asymmetric_columns))


def accumulator(scale: float | np.ndarray, shape: list[int] | None = None) -> Term:
    scale = np.asarray(scale, np.float64)
    axis = None if scale.ndim == 0 else 1
    return Term(relax.Var("acc", relax.TensorType(shape or [1, 16, 4, 4], "int32")), "int32", scale, np.zeros(scale.shape, np.int64), axis)


def add_match(a: IntValue, b: IntValue) -> Match:
    call = normalized(relax.op.add(float_var("a", [1, 16, 4, 4]), float_var("b", [1, 16, 4, 4])))
    return Match(call, (a, b))


def test_int32_on_one_grid_is_a_bias_add_and_clamps_stop_a_sum():
    scales = np.linspace(0.001, 0.002, 16)
    assert rules.int32_on_one_grid(add_match(IntValue((accumulator(scales),)), IntValue((accumulator(scales),))))
    assert not rules.int32_on_one_grid(add_match(IntValue((accumulator(scales),)), IntValue((accumulator(scales * 2),))))
    assert not rules.int32_on_one_grid(add_match(IntValue((activation([1, 16, 4, 4]),)), IntValue((activation([1, 16, 4, 4]),))))
    assert rules.unclamped_operands(add_match(IntValue((activation([1, 16, 4, 4]),)), IntValue((activation([1, 16, 4, 4]),))))
    clamped = IntValue((activation([1, 16, 4, 4]),), lo=0.0)
    assert not rules.unclamped_operands(add_match(clamped, IntValue((activation([1, 16, 4, 4]),))))


def test_clamp_predicates():
    x = IntValue((activation([1, 16, 4, 4]),))
    parts = IntValue((), concat=(x, x), concat_axis=1)
    clip = normalized(relax.op.clip(float_var("x", [1, 16, 4, 4]), 0.0, 6.0))
    assert rules.constant_bounds(Match(clip, (x,)))
    assert not rules.constant_bounds(Match(clip, (parts,)))
    assert rules.not_concatenated(Match(clip, (x,))) and not rules.not_concatenated(Match(clip, (parts,)))
    bb = relax.BlockBuilder()
    data = float_var("x", [1, 16, 4, 4])
    with bb.function("main", [data]):
        lower = bb.emit_te(topi.maximum, data, relax.const(np.float32(0.0)))
        bb.emit_func_output(lower)
    call = bb.get()["main"].body.blocks[0].bindings[0].value
    assert rules.maximum_by_scalar(Match(call, (x,))) and not rules.minimum_by_scalar(Match(call, (x,)))
    assert not rules.maximum_by_scalar(Match(call, (parts,)))


def test_pooling_layout_and_concat_predicates():
    pool = normalized(relax.op.nn.max_pool2d(float_var("x", [1, 16, 4, 4]), pool_size=2))
    assert rules.positive_scale_integers(Match(pool, (IntValue((activation([1, 16, 4, 4]),)),)))
    assert not rules.positive_scale_integers(Match(pool, (IntValue((activation([1, 16, 4, 4], scale=-0.05),)),)))
    bias = Term(relax.const(np.arange(16, dtype=np.int32)), "int32", np.linspace(0.01, 0.02, 16), np.zeros(16, np.int64), 0, np.arange(16, dtype=np.int32))
    broadcast = normalized(relax.op.reshape(float_var("b", [16]), [1, 16, 1, 1]))
    assert rules.followable_layout(Match(broadcast, (IntValue((bias,)),)))
    split = normalized(relax.op.reshape(float_var("b", [16]), [8, 2]))
    assert not rules.followable_layout(Match(split, (IntValue((bias,)),)))
    assert rules.followable_layout(Match(split, (IntValue((activation([16]),)),)))  # per tensor: nothing to follow
    concat = normalized(relax.op.concat([float_var("a", [1, 16, 4, 4]), float_var("b", [1, 16, 4, 4])], axis=1))
    same = IntValue((activation([1, 16, 4, 4]),))
    other = IntValue((activation([1, 16, 4, 4], scale=0.07),))
    assert rules.parts_on_one_grid(Match(concat, (same, same)))
    assert not rules.parts_on_one_grid(Match(concat, (same, other))) and rules.unnested_parts(Match(concat, (same, other)))
    assert not rules.unnested_parts(Match(concat, (IntValue((), concat=(same, other)), same)))


def test_region_edge_predicates():
    q = relax.Var("q", relax.TensorType([1, 16], "int8"))
    dequantize = normalized(relax.op.dequantize(q, relax.const(np.float32(0.1)), relax.const(np.int8(2))))
    assert rules.constant_grid(Match(dequantize, (None,)))
    varying = normalized(relax.op.dequantize(q, float_var("s", []), relax.const(np.int8(2))))
    assert not rules.constant_grid(Match(varying, (None,)))
    x = float_var("x", [1, 16])
    assert rules.per_tensor_int8_output(Match(normalized(relax.op.quantize(x, relax.const(np.float32(0.1)), relax.const(np.int8(2)))), (None,)))
    per_channel = relax.op.quantize(x, relax.const(np.full(16, 0.1, np.float32)), relax.const(np.zeros(16, np.int8)), axis=1)
    assert not rules.per_tensor_int8_output(Match(normalized(per_channel), (None,)))
    to_int16 = relax.op.quantize(x, relax.const(np.float32(0.1)), relax.const(np.int16(0)), out_dtype="int16")
    assert not rules.per_tensor_int8_output(Match(normalized(to_int16), (None,)))


def test_only_tensor_constants_are_read_as_constants():
    """TVM 0.27's IntImm and FloatImm derive from tvm.ir.expr.Constant too (a HardSigmoid's alpha, Clip's
    bounds): reading one as a tensor constant called .numpy() on a number. They are not tensor constants."""
    from tvm.ir.expr import Constant
    from tvm.ir.prim.expr import FloatImm, IntImm

    prim_values = [IntImm("int64", 3), FloatImm("float32", 0.2)]
    assert all(isinstance(v, Constant) for v in prim_values)  # the trap this guards against
    assert all(tensor_constant(v) is None and scalar_constant(v, {}) is None for v in prim_values)
    weights = relax.const(np.arange(6, dtype=np.int8).reshape(2, 3))
    assert np.array_equal(tensor_constant(weights), np.arange(6).reshape(2, 3)) and tensor_constant(weights).dtype == np.int8
    assert tensor_constant(weights, "int8") is not None and tensor_constant(weights, "float") is None
    assert tensor_constant(weights, ("int32", "int8")) is not None
    assert scalar_constant(weights, {}) is None  # six values are not a scalar
    assert scalar_constant(relax.const(np.float32(0.5)), {}) == 0.5
    assert tensor_constant(float_var("x", [2])) is None
    # A dequantize whose scale is a prim value is not on a constant grid (and does not crash).
    q = relax.Var("q", relax.TensorType([1, 16], "int8"))
    call = relax.Call(tvm.ir.Op.get("relax.dequantize"), [q, FloatImm("float32", 0.1), IntImm("int8", 0)], relax.op.dequantize(q, relax.const(np.float32(0.1)), relax.const(np.int8(0))).attrs)
    assert not rules.constant_grid(Match(call, (None,)))


# -- rule lookup ----------------------------------------------------------------------------------------------


def lookup(match: Match, dot: DotScheme | None) -> str | None:
    values = {arg: value for arg, value in zip(match.call.args, match.inputs)}
    found = rules.select_rule(match.call, values, dot=dot)
    return None if found is None else found[0].name


def test_the_lookup_takes_the_vnni_rule_only_where_it_applies():
    assert lookup(conv2d_match(out_channels=16), dot=VNNI) == "conv2d-packed"
    assert lookup(conv2d_match(out_channels=16), dot=None) == "conv2d"
    assert lookup(conv2d_match(out_channels=8), dot=VNNI) == "conv2d-packed"  # on one 16-lane block, cut back
    assert lookup(conv2d_match(out_channels=16, groups=2), dot=VNNI) == "conv2d"
    assert lookup(matmul_match(columns=32), dot=VNNI) == "matmul-packed"
    assert lookup(matmul_match(columns=32), dot=None) == "matmul-weights"
    b_activation = Term(relax.Var("k", relax.TensorType([24, 32], "int8")), "int8", np.array(0.02), np.array(-4, np.int64))
    assert lookup(matmul_match(b=b_activation), dot=VNNI) == "matmul-activations-packed"
    assert lookup(matmul_match(b=b_activation), dot=None) == "matmul-activations"
    scales = np.linspace(0.001, 0.002, 16)
    assert lookup(add_match(IntValue((accumulator(scales),)), IntValue((accumulator(scales),))), dot=None) == "bias-add"
    assert lookup(add_match(IntValue((activation([1, 16, 4, 4]),)), IntValue((activation([1, 16, 4, 4]),))), dot=None) == "add"
    clamped = IntValue((activation([1, 16, 4, 4]),), hi=6.0)
    other = IntValue((activation([1, 16, 4, 4]),), hi=6.0)  # clamped, on another tensor: not one chain either
    assert lookup(add_match(clamped, other), dot=None) is None  # no rule: the add stays float


def test_the_lookup_needs_every_tensor_operand_as_an_integer_value():
    match = conv2d_match()
    x_var = match.call.args[0]  # the weight operand has no integer value
    assert rules.select_rule(match.call, {x_var: match.inputs[0]}, dot=VNNI) is None
    assert rules.select_rule(normalized(relax.op.nn.softmax(float_var("x", [1, 16]))), {}, dot=VNNI) is None


def test_the_table_names_each_rule_once_and_each_op_selects_its_tensors_once():
    assert len({rule.name for rule in rules.RULES}) == len(rules.RULES)
    for op in {rule.op for rule in rules.RULES}:
        assert len({rule.tensor_args for rule in rules.RULES if rule.op == op and rule.role != rules.DESCRIBES}) <= 1, op
        assert [r.role for r in rules.RULES if r.op == op][0] != rules.DESCRIBES or all(r.role == rules.DESCRIBES for r in rules.RULES if r.op == op), op
    counted = {rule.name: rule.counted_as for rule in rules.RULES}
    assert counted["dequantize"] is None and counted["requantize"] == "requantize"
    assert counted["conv2d-packed"] == counted["conv2d"] == "nn.conv2d" and counted["clip-maximum"] == "clip (maximum)"


# -- zero points and requantization math ------------------------------------------------------------------------


def test_zero_point_correction_makes_raw_matmul_exact():
    q = RNG.integers(0, 256, (5, 24)).astype(np.int64)  # uint8 activations
    w = int8((24, 32)).astype(np.int64)
    zp = 131
    exact = (q - zp) @ w
    assert np.array_equal(q @ w - zero_point_correction(zp, w, output_axis=1), exact)


def test_zero_point_correction_makes_raw_conv2d_exact():
    # A kernel as large as the input: one output pixel per channel, sum over (C, KH, KW).
    x = RNG.integers(-128, 128, (4, 3, 3)).astype(np.int64)
    w = int8((16, 4, 3, 3)).astype(np.int64)
    zp = -7
    raw = np.einsum("chw,ochw->o", x, w)
    exact = np.einsum("chw,ochw->o", x - zp, w)
    assert np.array_equal(raw - zero_point_correction(zp, w, output_axis=0), exact)
    assert not np.any(zero_point_correction(0, w, output_axis=0))


@pytest.mark.parametrize("multipliers", [[0.3], [0.3, 0.0007], [1.7, 0.5], [123.0], [2.0**-40]])
def test_shared_shift_is_the_largest_keeping_every_multiplier_below_2_to_the_31(multipliers):
    shift = shared_shift([np.array(m) for m in multipliers])
    largest = max(Fraction(m) for m in multipliers)
    limit = 2**MULTIPLIER_BITS
    if 1 < shift < 62:
        assert largest * 2**shift < limit <= largest * 2 ** (shift + 1)
    for m in multipliers:
        assert fixed_point_multiplier(m, shift) <= limit


def test_shared_shift_bounds():
    assert shared_shift([np.array(0.0)]) == MULTIPLIER_BITS
    assert shared_shift([np.array(2.0**40)]) == 1
    assert shared_shift([np.array(2.0**-80)]) == 62


def test_fixed_point_multiplier_is_the_nearest_integer():
    shift = 37
    for ratio in (0.3, 0.0123 / 0.0456, 0.999999, 1e-5):
        m = int(fixed_point_multiplier(ratio, shift))
        assert abs(Fraction(m) - Fraction(ratio) * 2**shift) <= Fraction(1, 2)


@pytest.mark.parametrize(("x", "expected"), [(0.5, 1), (1.5, 2), (2.5, 3), (-0.5, 0), (-1.5, -1), (-2.5, -2), (0.49, 0), (-0.51, -1)])
def test_round_half_up_rounds_ties_up(x, expected):
    assert round_half_up(x) == expected == int(np.floor(Fraction(x) + Fraction(1, 2)))


def run_requantize(q: np.ndarray, scale_in: float, scale_out: float, zero_point: int, lo: float | None = None) -> np.ndarray:
    """The rewrite's requantization IR for one int32 term, built and run on this machine."""
    bb = relax.BlockBuilder()
    data = relax.Var("q", relax.TensorType(list(q.shape), "int32"))
    with bb.function("main", [data]):
        value = IntValue((Term(data, "int32", np.array(scale_in), np.array(0, np.int64)),), lo=lo)
        out = bb.emit(requantize(bb.emit, value, scale_out, zero_point, "int8"))
        bb.emit_func_output(out)
    vm = relax.VirtualMachine(tvm.compile(bb.get(), target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(q, tvm.cpu())).numpy()


def test_requantization_rounds_exact_ties_half_up():
    q = np.arange(-301, 302, dtype=np.int32)
    got = run_requantize(q, 0.25, 0.5, zero_point=0)  # q / 2: every odd q is a tie
    expected = [min(max(int(np.floor(Fraction(int(v), 2) + Fraction(1, 2))), -128), 127) for v in q]
    assert got.tolist() == expected


def test_requantization_matches_exact_fractions_away_from_ties():
    scale_in, scale_out, zero_point = 0.0123, 0.0456, -5
    q = RNG.integers(-40000, 40000, 4000).astype(np.int32)
    got = run_requantize(q, scale_in, scale_out, zero_point)
    ratio = Fraction(scale_in) / Fraction(scale_out)
    shift = shared_shift([np.array(scale_in / scale_out)])
    m = Fraction(int(fixed_point_multiplier(scale_in / scale_out, shift)), 2**shift)
    for value, ours in zip(q.tolist(), got.tolist()):
        fixed = int(np.floor(value * m + Fraction(1, 2))) + zero_point
        assert ours == min(max(fixed, -128), 127)  # the fixed-point formula, exactly
        exact = value * ratio
        if abs(exact - np.floor(exact) - Fraction(1, 2)) > abs(value) * abs(m - ratio):  # not within the multiplier's error of a tie
            assert ours == min(max(int(np.floor(exact + Fraction(1, 2))) + zero_point, -128), 127)


def test_requantization_applies_a_folded_clamp():
    got = run_requantize(np.array([-1000, -3, 0, 3, 1000], np.int32), 0.1, 0.1, zero_point=4, lo=0.0)
    assert got.tolist() == [4, 4, 4, 7, 127]  # Relu: nothing below the zero point


# -- the self-check ----------------------------------------------------------------------------------------


def qdq_model(weight_scale_factor: float = 1.0) -> onnx.ModelProto:
    """x -> Q/DQ -> Conv(int8 weights per channel, int32 bias) -> Relu -> Q/DQ -> `quantized` (an output)
    and -> Reshape -> MatMul(int8 weights) -> `logits` (a float output)."""
    rng = np.random.default_rng(0)
    x_scale, y_scale = 0.03, 0.06
    w = rng.integers(-127, 128, (16, 4, 3, 3)).astype(np.int8)
    w_scale = (rng.uniform(0.5, 1.5, 16) * 0.004).astype(np.float32)
    bias = rng.integers(-300, 300, 16).astype(np.int32)
    w2 = rng.integers(-127, 128, (16 * 36, 16)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.float32(x_scale), "x_scale"), numpy_helper.from_array(np.int8(3), "x_zp"),
        numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_scale * np.float32(weight_scale_factor), "w_scale"),
        numpy_helper.from_array(np.zeros(16, np.int8), "w_zp"),
        numpy_helper.from_array(bias, "b"), numpy_helper.from_array((np.float32(x_scale) * w_scale).astype(np.float32), "b_scale"),
        numpy_helper.from_array(np.zeros(16, np.int32), "b_zp"),
        numpy_helper.from_array(np.float32(y_scale), "y_scale"), numpy_helper.from_array(np.int8(-20), "y_zp"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
        numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.float32(0.002), "w2_scale"), numpy_helper.from_array(np.int8(0), "w2_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zp"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zp"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "y_scale", "y_zp"], ["rq"]),
        helper.make_node("DequantizeLinear", ["rq", "y_scale", "y_zp"], ["quantized"]),
        helper.make_node("Reshape", ["quantized", "flat"], ["flat_r"]),
        helper.make_node("DequantizeLinear", ["w2", "w2_scale", "w2_zp"], ["w2d"]),
        helper.make_node("MatMul", ["flat_r", "w2d"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("quantized", TensorProto.FLOAT, [1, 16, 6, 6]), helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def rewritten(model: onnx.ModelProto, vnni: bool):
    inputs = model_inputs(model)
    mod, report = integer_regions(import_onnx(model, inputs), dot=VNNI if vnni else None)
    return mod, report, inputs


def rewrite_of(vnni: bool, model_for_check=None):
    """The rewrite compile checks (frontend.integer_rewrite without a target); with `model_for_check`,
    one that rewrites that model instead of the one it is given (a wrong module)."""

    def rewrite(model: onnx.ModelProto):
        if model_for_check is not None:
            model = expose_quantized(model_for_check)[0]
        return integer_regions(import_onnx(model, model_inputs(model)), dot=VNNI if vnni else None)[0]

    return rewrite


@pytest.mark.parametrize("vnni", [False, True])
def test_the_self_check_passes_on_a_correct_rewrite(vnni):
    model = qdq_model()
    mod, report, inputs = rewritten(model, vnni)
    kernels = report.ir_summary
    conv = "conv2d_u8i8_packed(uint8, int8) -> int32" if vnni else "nn.conv2d(int8, int8) -> int32"
    dense = "dense_u8i8_packed(uint8, int8) -> int32" if vnni else "matmul(int8, int8) -> int32"
    assert kernels.get(conv) == 1 and kernels.get(dense) == 1, kernels  # the check runs integer kernels
    agreement = check_integer_rewrite(model, inputs, rewrite_of(vnni), samples=3, seed=5)
    assert agreement.passed and agreement.samples == 3
    outputs = {o.name: o for o in agreement.outputs}
    assert outputs["quantized"].lsb == pytest.approx(0.06) and outputs["quantized"].max_lsb <= 1
    assert outputs["logits"].lsb is None and outputs["logits"].max_rel < 0.01
    # Every QuantizeLinear output inside is compared too, from the same int8 inputs.
    inside = {t.name: t for t in agreement.tensors}
    quantize_outputs = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert sorted(inside) == sorted(quantize_outputs) and all(t.lsb == 1.0 and t.max_lsb <= 1 for t in inside.values())
    record = agreement.to_dict()
    assert record["passed"] is True and [o["name"] for o in record["outputs"]] == ["quantized", "logits"]
    assert record["int8_tensors"]["checked"] == len(quantize_outputs) and record["int8_tensors"]["failed"] == []


def test_the_self_check_fails_on_a_wrong_integer_module():
    model = qdq_model()
    inputs = model_inputs(model)
    wrong = rewrite_of(False, model_for_check=qdq_model(weight_scale_factor=1.5))  # the conv weights' scale changed
    with pytest.raises(IntegerMismatchError, match="disagrees with ONNX Runtime") as failure:
        check_integer_rewrite(model, inputs, wrong, samples=2)
    agreement = failure.value.report
    assert agreement.passed is False
    # The conv's own region is wrong: its int8 output differs from the same int8 inputs.
    inside = {t.name: t for t in agreement.tensors}
    assert inside["rq"].max_lsb > MAX_OUTPUT_LSB and not inside["rq"].passed
    assert "int8 tensor 'rq'" in failure.value.message
    # Downstream regions start from edgekit's own values: the dequantized output agrees.
    assert {o.name: o for o in agreement.outputs}["quantized"].passed


def test_output_lsbs_name_quantized_outputs_only():
    assert output_lsbs(qdq_model()) == {"quantized": pytest.approx(0.06)}
