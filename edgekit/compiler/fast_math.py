"""Vectorizable transcendental functions: erf, exp, tanh, sigmoid and the activations built on them.

LLVM lowers TIR's `erf`, `exp` and `tanh` to scalar libm calls, so a loop over them cannot
be vectorized: the exact-erf GELU of a BERT-style encoder took a quarter of its inference.
This pass replaces them, before legalization, by TVM's polynomial versions (`topi.fast_*`,
pure multiply-adds that vectorize). Measured on 200,001 points against float64: fast_erf
is within 3.3e-7 absolute, fast_exp within 1e-7 relative, fast_tanh within 2.7e-7
(tests/test_fast_math.py); fp32 outputs stay within the 1e-4 parity gate.
"""

from __future__ import annotations

import math

import tvm
from tvm import relax, te, tirx, topi
from tvm.relax import Call, Expr, PyExprMutator, expr_functor

from edgekit.compiler.relax_mutation import mutate_relax_functions


def _sigmoid(x: te.Tensor) -> te.Tensor:
    one = tirx.const(1.0, x.dtype)
    exp = topi.fast_exp(topi.negative(x))
    return te.compute(x.shape, lambda *i: one / (one + exp(*i)), name="fast_sigmoid")


def _silu(x: te.Tensor) -> te.Tensor:
    sigmoid = _sigmoid(x)
    return te.compute(x.shape, lambda *i: x(*i) * sigmoid(*i), name="fast_silu")


def _gelu(x: te.Tensor) -> te.Tensor:
    half, one = tirx.const(0.5, x.dtype), tirx.const(1.0, x.dtype)
    erf = topi.fast_erf(topi.multiply(x, tirx.const(1.0 / math.sqrt(2.0), x.dtype)))
    return te.compute(x.shape, lambda *i: half * x(*i) * (one + erf(*i)), name="fast_gelu")


def _gelu_tanh(x: te.Tensor) -> te.Tensor:
    half, one = tirx.const(0.5, x.dtype), tirx.const(1.0, x.dtype)
    inner = te.compute(x.shape, lambda *i: tirx.const(math.sqrt(2.0 / math.pi), x.dtype) * (x(*i) + tirx.const(0.044715, x.dtype) * x(*i) * x(*i) * x(*i)))
    tanh = topi.fast_tanh(inner)
    return te.compute(x.shape, lambda *i: half * x(*i) * (one + tanh(*i)), name="fast_gelu_tanh")


# relax op name -> a TE function of the op's single tensor argument.
UNARY = {
    "relax.erf": topi.fast_erf,
    "relax.exp": topi.fast_exp,
    "relax.tanh": topi.fast_tanh,
    "relax.sigmoid": _sigmoid,
    "relax.nn.silu": _silu,
    "relax.nn.gelu": _gelu,
    "relax.nn.gelu_tanh": _gelu_tanh,
}


@expr_functor.mutator
class _FastMath(PyExprMutator):
    def visit_call_(self, call: Call) -> Expr:
        visited = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op) or len(call.args) != 1 or not _is_float32(call):
            return visited
        name = call.op.name
        if name in UNARY:
            return self.builder_.call_te(UNARY[name], visited.args[0])
        if name == "relax.nn.softmax":
            return self.builder_.call_te(topi.nn.fast_softmax, visited.args[0], int(call.attrs.axis))
        return visited


def _is_float32(call: Call) -> bool:
    sinfo = call.ty
    return isinstance(sinfo, relax.TensorType) and sinfo.dtype == "float32"


@tvm.transform.module_pass(opt_level=0, name="edgekit_fast_math")
def fast_math(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Every float32 erf, exp, tanh, sigmoid, SiLU, GELU and softmax in `mod`'s Relax functions, vectorizable."""
    return mutate_relax_functions(_FastMath(mod), mod)
