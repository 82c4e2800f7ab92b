"""Compile's default schedules as every task's first record: tuning can only make a kernel faster.

compile applies a task's best record in place of the default schedule, whatever the default
would have scored. A few dozen MetaSchedule trials often lose to the hand-written rules (on
x86_64, 8 trials of a 32x128x256 matmul: 23 us; the default schedule: 10 us), so each task's
default schedule is timed like any candidate and committed as a record with its trace. The
database's best is then never slower than the untuned build, and the timings of the default
schedules are the "untuned" column of the report.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import tvm
import tvm_ffi
from tvm import s_tir
from tvm.s_tir.meta_schedule.arg_info import ArgInfo
from tvm.s_tir.meta_schedule.builder import BuilderInput
from tvm.s_tir.meta_schedule.database import TuningRecord
from tvm.s_tir.meta_schedule.runner import RunnerInput

from edgekit.compiler.schedules import RULES
from edgekit.compiler.schedules.common import CpuShape
from edgekit.target_spec import TargetSpec

log = logging.getLogger(__name__)
FAILED_S = 1e9  # MetaSchedule records a failed trial as 1e10 s


def default_schedule(workload: tvm.IRModule, target: TargetSpec) -> s_tir.Schedule | None:
    """The schedule compile's default rules give `workload`'s main, if its trace replays exactly.

    Same order as `default_schedules`: the first rule returning a schedule wins. The trace is
    replayed on the workload the way MetaScheduleApplyDatabase will; a trace that does not
    reproduce the function is not worth a record (None).
    """
    cpu = CpuShape.of(target)
    for name, rule in RULES.items():
        try:
            sch = rule(workload["main"], cpu)
        except Exception as exc:  # noqa: BLE001 - as in default_schedules: a rule that fails yields to the next
            log.debug("default schedule rule %s failed: %s", name, exc)
            continue
        if sch is None:
            continue
        replay = s_tir.Schedule(workload)
        try:
            sch.trace.apply_to_schedule(replay, remove_postproc=False)
        except Exception:  # noqa: BLE001 - an unreplayable trace would break compile
            return None
        return sch if tvm_ffi.structural_equal(replay.mod, sch.mod) else None
    return None


def time_modules(mods: list[tvm.IRModule], tvm_target, builder, runner) -> list[list[float] | None]:
    """Seconds per run of each module's main, built and timed like a tuning candidate (None: failed)."""
    built = builder.build([BuilderInput(mod, tvm_target) for mod in mods])
    ok = [b.error_msg is None for b in built]
    inputs = [RunnerInput(b.artifact_path, "cpu", ArgInfo.from_entry_func(mod, remove_preproc=True)) for b, mod, good in zip(built, mods, ok) if good]
    results = iter([future.result() for future in runner.run(inputs)])
    times = []
    for b, good in zip(built, ok):
        result = next(results) if good else None
        if result is not None and result.error_msg is None and result.run_secs:
            times.append([float(s) for s in result.run_secs])
        else:
            times.append(None)
        if b.artifact_path:
            shutil.rmtree(Path(b.artifact_path).parent, ignore_errors=True)
    return times


def seed_default_schedules(db, tasks, target: TargetSpec, measurement) -> list[float | None]:
    """Record each task's default schedule; return each task's untuned time in microseconds.

    A default schedule already in the database (same trace) is not timed again: its record's
    time is the answer, so "untuned" and "best" come from the same measurements. A task no rule
    schedules is timed as its naive loops every run. None: it failed to build or run.
    """
    tvm_target = tvm.target.Target(target.tvm_cpu_target())
    records = db.get_all_tuning_records()
    schedules = [default_schedule(task.dispatched[0], target) for task in tasks]
    untuned: list[float | None] = [None] * len(tasks)
    to_time = []
    for i, (task, sch) in enumerate(zip(tasks, schedules)):
        recorded = _recorded(db, records, task.dispatched[0], sch)
        if recorded is not None:
            untuned[i] = mean_us(recorded.run_secs)
        else:
            to_time.append(i)
    if not to_time:
        return untuned
    mods = [schedules[i].mod if schedules[i] is not None else tasks[i].dispatched[0] for i in to_time]
    for i, run_secs in zip(to_time, time_modules(mods, tvm_target, measurement.builder, measurement.runner)):
        untuned[i] = mean_us(run_secs)
        if schedules[i] is not None and run_secs is not None:
            sch = schedules[i]
            workload = db.commit_workload(tasks[i].dispatched[0])
            db.commit_tuning_record(TuningRecord(sch.trace, workload, run_secs, tvm_target, ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    return untuned


def _recorded(db, records, mod: tvm.IRModule, sch: s_tir.Schedule | None):
    if sch is None or not db.has_workload(mod):
        return None
    workload, trace = db.commit_workload(mod), str(sch.trace)
    return next((r for r in records if r.workload.same_as(workload) and str(r.trace) == trace), None)


def mean_us(run_secs) -> float | None:
    values = [float(v) for v in run_secs or []]
    if not values or max(values) >= FAILED_S:
        return None
    return round(sum(values) / len(values) * 1e6, 3)
