"""`edgekit tune`: MetaSchedule records for a model's kernels, measured on the target CPU.

    tune_onnx(model.onnx, "rk3588", Path("tuning/rk3588"), trials=2000, rpc=RpcConfig("board", 9090))
        -> tuning/rk3588/ (MetaSchedule JSON database + edgekit-tuning.json)
    find_database(load_target("rk3588"), None) -> Path("tuning/rk3588") for compile's cpu_pipeline

    budget.py    how the trials are spread over tasks
    database.py  the database folder, its target descriptor, and which database compile may use
    measure.py   building candidates (cross-compiled) and timing them here or over RPC
    search.py    MetaSchedule per task, with a deadline
    tune.py      tune_onnx: ONNX in, records out, a report

`tune_onnx` is loaded on first use: MetaSchedule's build and run workers import this package
to reach the functions in measure.py and should not pay for the ONNX importer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.compiler.tuning.database import find_database
from edgekit.compiler.tuning.candidates import RpcConfig

if TYPE_CHECKING:
    from edgekit.compiler.tuning.tune import TaskReport, TuningReport, tune_onnx

__all__ = ["RpcConfig", "TaskReport", "TuningReport", "find_database", "tune_onnx"]


def __getattr__(name: str):
    if name in ("tune_onnx", "TuningReport", "TaskReport"):
        from edgekit.compiler.tuning import tune

        return getattr(tune, name)
    raise AttributeError(f"module 'edgekit.compiler.tuning' has no attribute '{name}'")
