"""How a model's trial budget is spread over its tuning tasks.

MetaSchedule's own task schedulers share `max_trials_global` out in rounds of 64 trials and stop
when the global budget is spent, so with fewer trials than tasks x 64 the last tasks get none
and keep naive loops (TVM_0.27_FACTS.md: 8 of 19 ResNet tasks untuned, 80x slower than ONNX
Runtime). Here every task first gets the same floor, so none is left naive, and what remains
follows each task's share of the model's FLOPs (FLOPs x how often the task is called).
"""

from __future__ import annotations

# A first evolutionary round of this size already beats the naive loops by a wide margin;
# more than this per task before the FLOP-weighted share would starve the big convolutions.
FLOOR_TRIALS = 16


def allocate_trials(costs: list[float], total: int, max_per_task: int | None = None, floor: int = FLOOR_TRIALS) -> list[int]:
    """Trials per task for `total` trials over tasks costing `costs` (FLOPs x calls each).

    Each task gets min(floor, total // tasks) trials; if `total` is below the number of tasks,
    the costliest `total` tasks get one trial each. The rest is split in proportion to cost
    (largest remainder), never above `max_per_task`; trials no task can take stay unallocated.
    """
    if total < 0 or (max_per_task is not None and max_per_task < 1):
        raise ValueError(f"bad budget: total={total}, max_per_task={max_per_task}")
    n = len(costs)
    if n == 0 or total == 0:
        return [0] * n
    cap = total if max_per_task is None else max_per_task
    by_cost = sorted(range(n), key=lambda i: (-costs[i], i))
    if total < n:
        chosen = set(by_cost[:total])
        return [1 if i in chosen else 0 for i in range(n)]
    base = min(floor, total // n, cap)
    trials = [base] * n
    remaining = total - base * n
    # Water-filling: tasks that hit the cap drop out and their share goes to the others.
    open_tasks = [i for i in by_cost if trials[i] < cap]
    while remaining > 0 and open_tasks:
        weights = [max(costs[i], 0.0) for i in open_tasks]
        weight_sum = sum(weights)
        if weight_sum == 0:  # only FLOP-free tasks (reshapes, copies) left: share equally
            weights, weight_sum = [1.0] * len(open_tasks), float(len(open_tasks))
        shares = [remaining * w / weight_sum for w in weights]
        grants = [min(int(s), cap - trials[i]) for s, i in zip(shares, open_tasks)]
        left = remaining - sum(grants)
        # Largest remainder: whole trials left over go to the biggest fractional shares.
        for k in sorted(range(len(open_tasks)), key=lambda k: -(shares[k] - int(shares[k]))):
            if left == 0:
                break
            if trials[open_tasks[k]] + grants[k] < cap and weights[k] > 0:
                grants[k] += 1
                left -= 1
        for i, grant in zip(open_tasks, grants):
            trials[i] += grant
        granted = sum(grants)
        remaining -= granted
        open_tasks = [i for i in open_tasks if trials[i] < cap]
        if granted == 0:
            break
    return trials
