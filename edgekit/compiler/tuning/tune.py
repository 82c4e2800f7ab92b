"""`edgekit tune`: measure schedules for a model's kernels on the target CPU into a database.

The model goes through exactly compile's steps (load, `frontend.lower`, `fused_module`), so each
task is the very PrimFunc compile will look up: `schedule_pipeline(target, database)` finds the
best record by the function's structure and uses its schedule instead of the default one.

`trials` is what the model should have in the database in total: a run counts the records each
task already has and tunes only the difference, so re-running a command that a time budget or
Ctrl-C cut short finishes the job, and a higher --trials continues from the best found so far.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import tvm
from tvm.s_tir import meta_schedule as ms

from edgekit import console
from edgekit.compiler.frontend import FloatChoice, lower
from edgekit.compiler.relax_pipeline import fused_module
from edgekit.errors import InputError, last_line
from edgekit.files import sha256_file
from edgekit.onnx_model import load_onnx, model_inputs, resolve_static_shapes
from edgekit.threads import DEFAULT_SPIN_COUNT
from edgekit.target_spec import TargetSpec, load_target
from edgekit.compiler.tuning import search
from edgekit.compiler.tuning.default_records import mean_us, seed_default_schedules
from edgekit.compiler.tuning.trial_budget import allocate_trials
from edgekit.compiler.tuning.database import DEFAULT_ROOT, open_for_tuning, record_model
from edgekit.compiler.tuning.candidates import Measurement, RpcConfig, require_measurable


@dataclass
class TaskReport:
    """One tuning task (a fused PrimFunc) and what the database holds for it."""

    name: str
    flops: float
    calls: int  # how many times the model calls this function
    allocated: int  # trials the budget gives it in total
    trials_before: int  # records the database already had
    trials_run: int  # trials this run measured
    trials_total: int  # records the database holds now (the default schedule's counts as one)
    trials_failed: int  # of those, candidates that failed to build or run (details in logs/)
    untuned_us: float | None  # the function with compile's default schedules (its record's time)
    best_us_before: float | None
    best_us: float | None  # the best record now (what compile will use)
    error: str = ""  # MetaSchedule gave up on this task (the other tasks were still tuned)

    @property
    def speedup(self) -> float | None:
        if self.untuned_us and self.best_us:
            return self.untuned_us / self.best_us
        return None


@dataclass
class TuningReport:
    """What one `tune_onnx` run did, task by task, and where the records are."""

    target: str
    database: str
    source: str
    sha256: str
    inputs: list[dict]
    trials: int
    max_trials_per_task: int | None
    time_budget_s: float | None
    measured_on: str  # "this machine" or the RPC server / tracker
    tasks: list[TaskReport] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by_budget: bool = False

    @property
    def trials_run(self) -> int:
        return sum(task.trials_run for task in self.tasks)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["trials_run"] = self.trials_run
        for task, entry in zip(self.tasks, data["tasks"]):
            entry["speedup"] = round(task.speedup, 3) if task.speedup else None
        return data


def tune_onnx(
    source: Path,
    target: str,
    database: Path | None,
    trials: int,
    time_budget_s: float | None = None,
    rpc: RpcConfig | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    dims: dict[str, int] | None = None,
    max_trials_per_task: int | None = None,
) -> TuningReport:
    """Tune the ONNX model `source` for `target` into the database folder `database` (None: tuning/<target>).

    `trials` is split over the tasks (budget.allocate_trials); with `time_budget_s`, no new
    round starts after that many seconds and the report says which tasks were cut short.
    Candidates are timed on this machine, or on the board behind `rpc` (built here with the
    target's cross compiler). Raises InputError for bad options, a database tuned for another
    CPU, a target this machine cannot run without --rpc, or an unreachable RPC server.
    """
    started = time.monotonic()
    _check_budget(trials, time_budget_s, max_trials_per_task)
    spec = load_target(target)
    require_measurable(spec, rpc)
    database = Path(database) if database is not None else DEFAULT_ROOT / spec.name
    open_for_tuning(database, spec)
    model = load_onnx(Path(source))
    inputs = resolve_static_shapes(model_inputs(model), shapes or {}, dims or {})
    report = TuningReport(
        target=spec.name, database=str(database), source=str(source), sha256=sha256_file(Path(source)),
        inputs=[s.to_dict() for s in inputs], trials=trials, max_trials_per_task=max_trials_per_task, time_budget_s=time_budget_s,
        measured_on=rpc.describe() if rpc else "this machine",
    )
    tasks = _extract_tasks(model, inputs, spec)

    db = ms.database.JSONDatabase(work_dir=str(database))
    before = _records(db, tasks)
    flops = [_flops(task) for task in tasks]
    allocated = allocate_trials([f * task.weight for f, task in zip(flops, tasks)], trials, max_trials_per_task)
    measurement = Measurement(spec, rpc, DEFAULT_SPIN_COUNT)
    with console.step(f"recording the default schedules of {len(tasks)} tasks"):
        untuned = seed_default_schedules(db, tasks, spec, measurement)
    # The default schedule's record counts as one of the task's trials.
    to_run = [max(0, a - count) for a, (count, _, _) in zip(allocated, _records(db, tasks))]
    deadline = started + time_budget_s if time_budget_s is not None else None
    ran, errors, report.stopped_by_budget = _search(tasks, to_run, flops, untuned, db, database, measurement, deadline, report.measured_on)

    after = _records(db, tasks)
    for i, task in enumerate(tasks):
        report.tasks.append(
            TaskReport(
                name=task.task_name, flops=flops[i], calls=int(task.weight), allocated=allocated[i],
                trials_before=before[i][0], trials_run=ran[i], trials_total=after[i][0], trials_failed=after[i][1],
                untuned_us=untuned[i], best_us_before=before[i][2], best_us=after[i][2], error=errors[i],
            )
        )
    report.seconds = round(time.monotonic() - started, 1)
    record_model(database, _summary(report))
    if report.stopped_by_budget:
        console.warn(f"time budget reached after {report.seconds:.0f} s: run the same command again to continue")
    return report


def _extract_tasks(model, inputs, spec: TargetSpec) -> list:
    """MetaSchedule's tasks for the model as compile builds it (the same front end and fusion)."""
    lowered = lower(model, inputs, spec, float_choice=FloatChoice(every="edgekit tune (tuning ships no artifact)"))
    with console.step("loading MetaSchedule's tensor intrinsics"):
        # TuneContext imports it anyway; ~20 s (its CUDA half alone 13 s), better shown than hidden.
        importlib.import_module("tvm.s_tir.tensor_intrin")
    with console.step("extracting tuning tasks"):
        return ms.relax_integration.extract_tasks(fused_module(lowered.module, spec), tvm.target.Target(spec.tvm_cpu_target()))


def _search(tasks, to_run, flops, untuned, db, database: Path, measurement: Measurement, deadline, where: str) -> tuple[list[int], list[str], bool]:
    """Tune each task for its `to_run` trials, costliest first.

    Returns the trials run and the error (if MetaSchedule failed) per task, and whether the
    deadline cut the search short.
    """
    ran, errors = [0] * len(tasks), [""] * len(tasks)
    stopped = False
    cost_model = ms.cost_model.XGBModel(num_tuning_cores=ms.utils.cpu_count(logical=False))  # shared: it learns from every task
    order = sorted(range(len(tasks)), key=lambda i: -flops[i] * tasks[i].weight)  # under a budget, the big ones first
    with console.progress(sum(to_run), f"tuning {sum(1 for n in to_run if n)} tasks on {where}") as advance:
        for i in order:
            if to_run[i] == 0:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return ran, errors, True

            def measured(count: int, i: int = i) -> None:
                ran[i] += count
                for _ in range(count):
                    advance()

            try:
                finished = search.tune_task(
                    tasks[i], to_run[i], deadline=deadline, builder=measurement.builder, runner=measurement.runner, database=db,
                    cost_model=cost_model, log_dir=database / "logs", on_measured=measured,
                )
            except Exception as exc:  # noqa: BLE001 - one task MetaSchedule cannot handle must not cost the others
                errors[i] = last_line(exc)
                console.warn(f"{tasks[i].task_name}: MetaSchedule failed after {ran[i]} trials: {errors[i]}")
                continue
            stopped |= not finished
            _, failed, best = _records(db, [tasks[i]])[0]
            console.info(f"{tasks[i].task_name}: {ran[i]} trials ({failed} failed so far), best {_us(best)} (default schedule {_us(untuned[i])})")
    return ran, errors, stopped


def _check_budget(trials: int, time_budget_s: float | None, max_trials_per_task: int | None) -> None:
    if trials < 1:
        raise InputError(f"--trials must be >= 1, got {trials}", "e.g. --trials 64 per task of the model")
    if time_budget_s is not None and time_budget_s <= 0:
        raise InputError(f"the time budget must be positive, got {time_budget_s}", "give minutes, e.g. --time-budget 30")
    if max_trials_per_task is not None and max_trials_per_task < 1:
        raise InputError(f"--max-trials-per-task must be >= 1, got {max_trials_per_task}", "e.g. --max-trials-per-task 256")


def _flops(task) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(task.dispatched[0]))
    except Exception:  # noqa: BLE001 - the estimator rejects some loop shapes; weight such a task by the floor only
        return 0.0


def _records(db, tasks) -> list[tuple[int, int, float | None]]:
    """Per task: the trials the database holds for its workload, how many of them failed, and the best time (us)."""
    records = db.get_all_tuning_records()
    found = []
    for task in tasks:
        mod = task.dispatched[0]
        if not db.has_workload(mod):
            found.append((0, 0, None))
            continue
        workload = db.commit_workload(mod)
        mine = [record for record in records if record.workload.same_as(workload)]
        failed = sum(1 for record in mine if mean_us(record.run_secs) is None)
        top = db.get_top_k(workload, 1)
        found.append((len(mine), failed, mean_us(top[0].run_secs) if top else None))
    return found


def _us(value: float | None) -> str:
    return "none (every candidate failed)" if value is None else f"{value:.1f} us"


def _summary(report: TuningReport) -> dict:
    return {
        "source": report.source,
        "sha256": report.sha256,
        "inputs": report.inputs,
        "trials": sum(task.trials_total for task in report.tasks),
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        # The last run's options: the same call continues the tuning.
        "options": {"trials": report.trials, "max_trials_per_task": report.max_trials_per_task, "time_budget_s": report.time_budget_s},
        "measured_on": report.measured_on,
        "tasks": [
            {"name": t.name, "flops": t.flops, "calls": t.calls, "trials": t.trials_total, "best_us": t.best_us, "untuned_us": t.untuned_us}
            for t in report.tasks
        ],
    }
