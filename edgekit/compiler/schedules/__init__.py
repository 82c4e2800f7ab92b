"""Default CPU schedules: good code with no measurement, for every CPU target."""

from __future__ import annotations

import tvm

from edgekit.target_spec import TargetSpec


def default_schedules(target: TargetSpec) -> tvm.transform.Pass:
    """A module pass scheduling every PrimFunc that is not scheduled yet (placeholder: none)."""

    @tvm.transform.module_pass(opt_level=0, name="edgekit_default_schedules")
    def run(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mod

    return run
