"""What each fused kernel costs, counted at compile time and written into the manifest.

The library holds only machine code, so the counts are made where the PrimFuncs still exist:
on the fused, unscheduled module (`relax_pipeline.fused_module`), under the names the VM will call.
FLOPs come from TVM's `estimate_tir_flops` (every arithmetic op, epilogues included); MACs are
the iterations of multiply-accumulate reduction blocks (conv, matmul, dense); bytes are the sizes
of the kernel's argument buffers (inputs, weights and outputs, each once: compulsory traffic).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import tvm


@dataclass(frozen=True)
class KernelCost:
    flops: int
    macs: int
    bytes: int  # argument buffers, each once

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KernelCost:
        return cls(flops=int(data["flops"]), macs=int(data["macs"]), bytes=int(data["bytes"]))


def kernel_costs(fused: tvm.IRModule) -> dict[str, KernelCost]:
    """Costs of every PrimFunc in `fused`, by function name (those the estimator rejects are left out)."""
    from tvm import tirx

    costs = {}
    for gvar, func in fused.functions_items():
        if isinstance(func, tirx.PrimFunc):
            cost = count_kernel(func)
            if cost is not None:
                costs[gvar.name_hint] = cost
    return dict(sorted(costs.items()))


def count_kernel(func) -> KernelCost | None:
    """One unscheduled PrimFunc's cost; None when TVM's estimator rejects its loop shapes."""
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        flops = int(estimate_tir_flops(func.body))
    except Exception:  # noqa: BLE001 - the estimator rejects some loop shapes: that kernel's FLOPs stay unknown
        return None
    return KernelCost(flops, _macs(func), _argument_bytes(func))


def _macs(func) -> int:
    """Iterations of the function's multiply-accumulate reduction blocks (`acc = acc + a * b`,
    casts allowed): conv, matmul, dense. Unscheduled TIR: a block's iterators span its domain."""
    from tvm import s_tir, tirx

    sch = s_tir.Schedule(func)
    total = 0
    for block_rv in sch.get_child_blocks(sch.get_sblock("root")):
        block = sch.get(block_rv)
        if not any(iv.iter_type == tirx.IterVar.CommReduce for iv in block.iter_vars):
            continue
        value = getattr(block.body, "value", None)
        if not isinstance(value, tirx.Add) or not any(isinstance(_uncast(side), tirx.Mul) for side in (value.a, value.b)):
            continue
        total += math.prod(int(iv.dom.extent) for iv in block.iter_vars)
    return total


def _argument_bytes(func) -> int:
    # TVM 0.27 has no PrimFunc.buffer_map: a buffer parameter carries its BufferType as `ty`.
    from tvm.tirx.buffer import BufferType

    total = 0
    for param in func.params:
        buffer = getattr(param, "ty", None)
        if not isinstance(buffer, BufferType):
            continue
        try:
            total += math.prod(int(d) for d in buffer.shape) * np.dtype(str(buffer.dtype)).itemsize
        except TypeError:  # a symbolic dimension: static-shape artifacts have none; no guess
            return 0
    return total


def _uncast(expr):
    from tvm import tirx

    while isinstance(expr, tirx.Cast):
        expr = expr.value
    return expr
