"""Default CPU schedules: good code with no measurement, for every CPU target.

TVM 0.27 schedules nothing on CPU by itself (naive loops: no threads, no SIMD). This pass
gives every fused PrimFunc a schedule from a fixed strategy, sized from the target's TOML
(SIMD width, cores), the way `tvm.s_tir.dlight` does for GPUs: the rules below are tried in
order and the first that recognizes the function schedules it.

Functions already scheduled (attribute "tirx.is_scheduled", e.g. by a tuning database applied
before this pass) are left alone. Rules that pack weights mark the packing as a layout rewrite;
it is split into its own function and folded on the constant weights at compile time.
"""

from __future__ import annotations

import logging

import tvm
from tvm import relax, tirx

from edgekit.compiler.schedules.common import CpuShape
from edgekit.compiler.schedules.conv2d import schedule_conv2d
from edgekit.compiler.schedules.conv2d_int8 import schedule_conv2d_int8, schedule_dense_int8
from edgekit.compiler.schedules.fallback import schedule_fallback
from edgekit.compiler.schedules.injective import schedule_injective
from edgekit.compiler.schedules.matmul import schedule_matmul
from edgekit.compiler.schedules.reduction import schedule_row_reduction, schedule_window_reduction
from edgekit.errors import last_line
from edgekit.target_spec import TargetSpec

log = logging.getLogger(__name__)

# name -> rule(func, cpu) -> Schedule | None, tried in this order.
RULES = {
    "conv2d_int8_packed": schedule_conv2d_int8,
    "dense_int8_packed": schedule_dense_int8,
    "conv2d": schedule_conv2d,
    "matmul": schedule_matmul,
    "injective": schedule_injective,
    "window_reduction": schedule_window_reduction,
    "row_reduction": schedule_row_reduction,
    "fallback": schedule_fallback,
}

# Rules for the packed kernels the integer rewrite emits for a dot-product scheme: only they use it,
# so a packed kernel one of them rejects is an error (PackedScheduleError), never a generic loop.
PACKED_RULES = ("conv2d_int8_packed", "dense_int8_packed")

SCHEDULED = "tirx.is_scheduled"  # TVM 0.27's name (it was "tir.is_scheduled" before the tirx rename)
RULE_ATTR = "edgekit.schedule_rule"


class PackedScheduleError(RuntimeError):
    """A packed integer kernel its dot-product schedule cannot take: a bug to report, never a slow build."""


def is_scheduled(func: tirx.PrimFunc) -> bool:
    return bool(func.attrs is not None and func.attrs.get(SCHEDULED, False))


def schedule_function(func: tirx.PrimFunc, cpu: CpuShape, name: str = "a kernel") -> tuple[str, tirx.PrimFunc] | None:
    """The first rule's schedule of `func` as (rule name, scheduled function), or None if none applies."""
    for rule_name, rule in RULES.items():
        try:
            sch = rule(func, cpu)
        except Exception as exc:  # noqa: BLE001 - a rule that cannot handle a variant yields to the next
            if rule_name in PACKED_RULES:
                # The integer rewrite packed this kernel for the dot-product instruction; any other
                # rule would run it without one, several times slower, with nothing to show for it.
                raise PackedScheduleError(f"the {rule_name} schedule failed on {name}: {last_line(exc)}") from exc
            log.debug("schedule rule %s failed: %s", rule_name, exc)
            continue
        if sch is not None:
            return rule_name, sch.mod["main"].with_attr(SCHEDULED, True).with_attr(RULE_ATTR, rule_name)
    return None


def default_schedules(target: TargetSpec, chosen: dict[str, str] | None = None) -> tvm.transform.Pass:
    """A module pass scheduling every PrimFunc not scheduled yet, for `target`'s vector width and cores.

    In: a legalized, fused IRModule. Out: the same module with every PrimFunc scheduled and
    marked "tirx.is_scheduled", and constant weights packed for the kernels that read them.
    `chosen`, if given, receives each function's schedule: a rule's name, "tuned" (a tuning
    record scheduled it) or "none" (no rule applied: TVM's naive loops).
    """
    cpu = CpuShape.of(target)

    @tvm.transform.module_pass(opt_level=0, name="edgekit_default_schedules")
    def run(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc):
                continue
            if is_scheduled(func):
                rule = "tuned"
            else:
                scheduled = schedule_function(func, cpu, gvar.name_hint)
                rule = scheduled[0] if scheduled is not None else "none"
                if scheduled is not None:
                    updates[gvar] = scheduled[1]
            if chosen is not None:
                chosen[gvar.name_hint] = rule
        # A copy: a pass must not change the module it was given (tuning reuses its input).
        mod = tvm.IRModule({**dict(mod.functions_items()), **updates}, attrs=mod.attrs, global_infos=mod.global_infos)
        return tvm.transform.Sequential(
            [
                relax.transform.SplitLayoutRewritePreproc(),
                relax.transform.FoldConstant(),
                relax.transform.DeadCodeElimination(),
            ]
        )(mod)

    return run


__all__ = ["RULES", "CpuShape", "default_schedules", "is_scheduled", "schedule_function"]
