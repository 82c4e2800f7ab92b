"""The TVM thread pool: how many threads, on which cores, and how long idle threads spin.

Shared by the runtime (loading an artifact) and tuning (timing candidates), so a kernel is
measured under the same pool settings it later runs with.
"""

from __future__ import annotations

import os

from edgekit.errors import InputError

# Threads spin this many times before sleeping; 0 means an idle runtime burns no CPU (TVM's
# default of 300000 spins costs about half a core at 30 Hz on these machines).
DEFAULT_SPIN_COUNT = 0
# `runtime.config_threadpool` modes (TVM threading_backend): pin one thread per listed core,
# or let all threads share the listed cores.
_PIN_ONE_PER_CORE = -2
_SHARE_CORES = -3


def configure_threads(threads: int, cpu_ids: list[int], spin_count: int = DEFAULT_SPIN_COUNT) -> None:
    """Set the TVM thread pool's size, core affinity and spin count.

    The pool reads TVM_NUM_THREADS and the spin count when it starts, so the environment is set
    first; `config_threadpool` then resizes and pins an already running pool.
    """
    available = sorted(os.sched_getaffinity(0))
    if cpu_ids and not set(cpu_ids) <= set(available):
        raise InputError(f"cores {sorted(set(cpu_ids) - set(available))} are not available here", f"this process may use cores {available}")
    if threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}", "give a positive thread count")
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", str(spin_count))
    import tvm

    config = tvm.get_global_func("runtime.config_threadpool")
    if cpu_ids:
        config(_PIN_ONE_PER_CORE, threads, [str(c) for c in cpu_ids])
    else:
        config(_SHARE_CORES, threads, [str(c) for c in available])
