"""The Relax-to-VM pipeline edgekit compiles CPU targets with.

One definition serves compile, tune and the manifest's kernel costs: `fused_module` is what
MetaSchedule extracts tuning tasks from and what compile counts FLOPs on, and compile schedules
exactly that module (`schedule_pipeline`) before looking tuning records up, so a record's
workload hash matches the function it was tuned for. `cpu_pipeline` is both in one pass.

    fuse (legalize, fold, fuse)  ->  tuning records, if a database is given
                                 ->  default schedules for every function still unscheduled
                                 ->  TVM's CPU lowering and finalization
"""

from __future__ import annotations

from pathlib import Path

import tvm
from tvm import relax
from tvm.relax.backend import cpu_generic
from tvm.relax.backend.cpu_generic import pipeline as cpu_passes  # dataflow_lower_passes is not re-exported

from edgekit.compiler.fast_math import fast_math
from edgekit.compiler.schedules import default_schedules
from edgekit.compiler.widening_multiply import distribute_offsets, narrow_constants
from edgekit.target_spec import TargetSpec


def fuse_passes() -> list[tvm.transform.Pass]:
    return [
        relax.transform.DecomposeOpsForInference(),
        relax.transform.CanonicalizeBindings(),
        distribute_offsets,  # widening multiplies in requantization (widening_multiply.py), with narrow_constants
        fast_math,
        *cpu_generic.library_dispatch_passes(None),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        narrow_constants,
    ]


def fused_module(mod: tvm.IRModule, target: TargetSpec) -> tvm.IRModule:
    """`mod` legalized and fused: one PrimFunc per fused group, none scheduled yet."""
    with tvm.target.Target(target.tvm_cpu_target()):
        return tvm.transform.Sequential(fuse_passes())(mod)


def cpu_pipeline(target: TargetSpec, database: Path | None = None) -> tvm.transform.Pass:
    """The relax_pipeline for `tvm.compile` on a CPU target from an unfused module; `database` is a MetaSchedule work dir."""
    tvm_target = tvm.target.Target(target.tvm_cpu_target())
    schedule = schedule_pipeline(target, database)

    @tvm.transform.module_pass(opt_level=0, name="edgekit_cpu_pipeline")
    def run(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with tvm_target:
            mod = tvm.transform.Sequential(fuse_passes())(mod)
        return schedule(mod)

    return run


def schedule_pipeline(target: TargetSpec, database: Path | None = None, chosen: dict[str, str] | None = None) -> tvm.transform.Pass:
    """The relax_pipeline for `tvm.compile` from a fused module (`fused_module`): tuning records,
    then default schedules, then TVM's CPU lowering and finalization. `chosen` receives each
    kernel's schedule (see `default_schedules`)."""
    tvm_target = tvm.target.Target(target.tvm_cpu_target())

    @tvm.transform.module_pass(opt_level=0, name="edgekit_cpu_schedule")
    def run(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with tvm_target:
            if database is not None:
                mod = relax.transform.MetaScheduleApplyDatabase(str(database))(mod)
            mod = default_schedules(target, chosen)(mod)
            return tvm.transform.Sequential(cpu_passes.dataflow_lower_passes(tvm_target) + cpu_passes.finalize_passes(tvm_target))(mod)

    return run
