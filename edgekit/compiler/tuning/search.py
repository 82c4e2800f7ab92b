"""Running MetaSchedule on one task at a time, with a deadline and a progress callback.

Tasks are tuned one after the other, each by its own task scheduler with exactly its share of
trials: MetaSchedule's schedulers take a single per-task cap and would spend the budget on the
first tasks. Builder, runner, cost model and database are shared, so the cost model learns
from every task and every measured trial lands in the one JSON database as it is measured.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

LOGGER = "edgekit.compiler.tuning.search"
# MetaSchedule's default round: 64 candidates are built and timed together.
ROUND_TRIALS = 64


@derived_object
class DeadlineSearch(PySearchStrategy):
    """MetaSchedule's evolutionary search that starts no round after `deadline` (time.monotonic).

    Returning no candidates is how a search strategy says it is done, so the task scheduler
    ends the task cleanly and everything measured so far is already in the database.
    """

    def __init__(self, deadline: float | None, on_measured: Callable[[int], None], inner=None) -> None:
        self.deadline = deadline
        self.on_measured = on_measured
        self.inner = inner if inner is not None else ms.search_strategy.EvolutionarySearch()
        self.stopped_by_deadline = False

    def _initialize_with_tune_context(self, context) -> None:
        self.inner._initialize_with_tune_context(context)

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None) -> None:
        self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)

    def post_tuning(self) -> None:
        self.inner.post_tuning()

    def generate_measure_candidates(self):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped_by_deadline = True
            return None
        return self.inner.generate_measure_candidates()

    def notify_runner_results(self, measure_candidates, results) -> None:
        self.inner.notify_runner_results(measure_candidates, results)
        self.on_measured(len(results))

    def clone(self):
        return DeadlineSearch(self.deadline, self.on_measured, self.inner.clone())


def tune_task(task, trials: int, *, deadline: float | None, builder, runner, database, cost_model, log_dir: Path, on_measured: Callable[[int], None]) -> bool:
    """Run up to `trials` trials of one extracted task; return False if the deadline stopped it."""
    search = DeadlineSearch(deadline, on_measured)
    context = ms.TuneContext(
        mod=task.dispatched[0],
        target=task.target,
        space_generator="post-order-apply",
        search_strategy=search,
        task_name=task.task_name,
        logger=logging.getLogger(f"{LOGGER}.{task.task_name}"),
    )
    with _logging_to(log_dir / "meta_schedule.log"):
        ms.tune.tune_tasks(
            tasks=[context],
            task_weights=[float(task.weight)],
            work_dir=str(log_dir.parent),  # unused: the database is passed in
            max_trials_global=trials,
            max_trials_per_task=trials,
            num_trials_per_iter=min(ROUND_TRIALS, trials),
            builder=builder,
            runner=runner,
            database=database,
            cost_model=cost_model,
            measure_callbacks="default",  # add to database, update cost model, remove artifacts
            task_scheduler="round-robin",
        )
    return not search.stopped_by_deadline


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    # MetaSchedule logs every trial (and the IR of failed ones) at INFO; that belongs in a file,
    # not in edgekit's stderr or stdout.
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    loggers = [logging.getLogger(LOGGER), logging.getLogger("tvm.s_tir.meta_schedule")]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()
