"""How many of a model's multiply-accumulates run in integers: the manifest's `build.macs`.

MACs are counted on the Relax module as imported, from each convolution's and matmul's own
shapes (the model's arithmetic, not the padded lanes of a packed kernel), and a MAC runs in
integers when the integer rewrite took its op (integer.py). A model without QDQ, or a GPU build
(which keeps the QDQ graph in float), has a share of 0.

    conv2d            N x C_out x OH x OW x (C_in / groups) x KH x KW   (output shape x weight shape[1:])
    conv2d_transpose  N x C_in x H x W x (C_out / groups) x KH x KW     (input shape x weight shape[1:])
    matmul            output elements x K
"""

from __future__ import annotations

import math
from collections.abc import Collection

import tvm
from tvm import relax


def call_macs(call: relax.Call) -> int:
    """The multiply-accumulates of one conv2d, conv2d_transpose or matmul call (0 for any other call or an unknown shape)."""
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name in _MACS):
        return 0
    try:
        return _MACS[call.op.name](call)
    except (TypeError, ValueError):  # a symbolic dimension: static-shape artifacts have none
        return 0


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape]


_MACS = {
    "relax.nn.conv2d": lambda call: math.prod(_shape(call)) * math.prod(_shape(call.args[1])[1:]),
    "relax.nn.conv2d_transpose": lambda call: math.prod(_shape(call.args[0])) * math.prod(_shape(call.args[1])[1:]),
    "relax.matmul": lambda call: math.prod(_shape(call)) * _shape(call.args[0])[-1],
}


def mac_share(func: relax.Function, integer: Collection[relax.Var] = ()) -> dict:
    """{"total", "integer", "integer_share"} over `func`'s conv/matmul bindings; `integer` holds the
    vars whose op ran in integers. The share is None when the model has no such MACs."""
    total = ints = 0
    for block in func.body.blocks:
        for binding in block.bindings:
            if isinstance(binding, relax.VarBinding) and isinstance(binding.value, relax.Call):
                macs = call_macs(binding.value)
                total += macs
                ints += macs if binding.var in integer else 0
    return {"total": total, "integer": ints, "integer_share": ints / total if total else None}
