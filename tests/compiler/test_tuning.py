"""tune: MetaSchedule records for a two-matmul model, resumed, used by compile, refused for another CPU, measured over RPC.

The model keeps its matrices as inputs (no constant weights), so no weight packing splits the
compiled functions and a compiled PrimFunc can be compared with a database record as is.
MetaSchedule's search has a fixed cost per round (~5-10 s here), so trial counts stay tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import tvm
import tvm_ffi
from onnx import TensorProto, helper
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.database import TuningRecord

from edgekit import versions
from edgekit.compiler.fold import fold_model
from edgekit.compiler.relax_pipeline import cpu_pipeline, fused_module
from edgekit.compiler.relax_import import import_onnx
from edgekit.errors import InputError
from edgekit.onnx_model import load_onnx, model_inputs, resolve_static_shapes
from edgekit.reference import Reference, random_inputs
from edgekit.target_spec import load_target
from edgekit.compiler.tuning import RpcConfig, find_database, tune_onnx
from edgekit.compiler.tuning.default_records import default_schedule
from edgekit.compiler.tuning.trial_budget import allocate_trials
from edgekit.compiler.tuning.database import DESCRIPTOR, RECORDS, open_for_tuning

TASKS = {"fused_matmul_relu", "matmul1"}  # relu(x @ w1) and (...) @ w2


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory) -> Path:
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu1"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", f, [32, 128]), helper.make_tensor_value_info("w1", f, [128, 256]), helper.make_tensor_value_info("w2", f, [256, 64])],
        [helper.make_tensor_value_info("y", f, [32, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = tmp_path_factory.mktemp("tuning") / "mlp.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, mlp_onnx):
    """Three runs into one database: cut by the time budget, continued, repeated."""
    db = tmp_path_factory.mktemp("tuning") / "x86_64"
    runs, lines = [], []
    for budget in (1e-3, None, None):
        runs.append(tune_onnx(mlp_onnx, "x86_64", db, trials=8, time_budget_s=budget))
        lines.append((db / RECORDS).read_text().splitlines())
    return db, runs, lines


def test_tune_records_resume_and_never_redo(tuned):
    db, (cut, resumed, repeated), (cut_lines, resumed_lines, repeated_lines) = tuned
    # Cut by the budget before any search: only the default schedules are recorded, one per task.
    assert cut.stopped_by_budget and cut.trials_run == 0
    assert {t.name for t in cut.tasks} == TASKS
    for task in cut.tasks:
        assert task.allocated == 4 and task.trials_total == 1
        assert task.untuned_us is not None and task.best_us == pytest.approx(task.untuned_us, rel=1e-5)
    # The same command again finishes the job: 3 searched trials per task on top of the record.
    assert not resumed.stopped_by_budget
    for task in resumed.tasks:
        assert (task.trials_before, task.trials_run, task.trials_total) == (1, 3, 4)
        assert task.best_us is not None and task.best_us <= task.best_us_before
    assert resumed_lines[: len(cut_lines)] == cut_lines and len(resumed_lines) == len(cut_lines) + 6
    # Once the budget is met, a run measures nothing new and loses nothing.
    assert repeated.trials_run == 0 and repeated_lines == resumed_lines
    assert all(t.trials_total == 4 for t in repeated.tasks)

    descriptor = json.loads((db / DESCRIPTOR).read_text())
    cpu = load_target("x86_64").cpu  # the board's facts, read from its TOML
    assert descriptor["target"] == {"name": "x86_64", "triple": cpu.triple, "mcpu": cpu.mcpu, "features": list(cpu.features), "cores": cpu.cores}
    assert descriptor["versions"]["tvm"] == versions.collect()["tvm"]
    (model,) = descriptor["models"]
    assert model["sha256"] == repeated.sha256 and model["trials"] == 8
    assert {t["name"]: t["trials"] for t in model["tasks"]} == {"fused_matmul_relu": 4, "matmul1": 4}
    assert all(t["best_us"] > 0 and t["untuned_us"] > 0 for t in model["tasks"])


def test_compile_applies_the_best_record(tuned, mlp_onnx, tmp_path):
    db = tuned[0]
    target = load_target("x86_64")
    copy = tmp_path / "x86_64"
    shutil.copytree(db, copy)
    tvm_target = tvm.target.Target(target.tvm_cpu_target())
    mod = _import(mlp_onnx, target)
    tasks = {t.task_name: t for t in ms.relax_integration.extract_tasks(fused_module(mod, target), tvm_target)}
    # Make one searched (MetaSchedule) record the best, so compile must visibly pick it over
    # the default schedule, which the few trials here rarely beat.
    database = ms.database.JSONDatabase(work_dir=str(copy))
    workload = database.commit_workload(tasks["fused_matmul_relu"].dispatched[0])
    default_trace = str(default_schedule(workload.mod, target).trace)
    searched = [r for r in database.get_all_tuning_records() if r.workload.same_as(workload) and float(r.run_secs[0]) < 1e9 and str(r.trace) != default_trace]
    assert searched, "no MetaSchedule candidate built and ran"
    database.commit_tuning_record(TuningRecord(searched[0].trace, workload, [1e-9], tvm_target, searched[0].args_info))
    chosen = ms.database.JSONDatabase(work_dir=str(copy)).query_ir_module(tasks["fused_matmul_relu"].dispatched[0], tvm_target, "fused_matmul_relu")

    assert find_database(target, copy) == copy
    with_db = cpu_pipeline(target, copy)(mod)
    without = cpu_pipeline(target, None)(mod)

    compiled = with_db["fused_matmul_relu"]
    assert compiled.attrs["tirx.is_scheduled"]
    assert tvm_ffi.structural_equal(compiled.body, chosen["main"].body, map_free_vars=True)
    untuned_functions = [f for _, f in without.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    assert untuned_functions and not any(tvm_ffi.structural_equal(f.body, chosen["main"].body, map_free_vars=True) for f in untuned_functions)
    # The compiled model still computes what ONNX Runtime computes.
    model = onnx.load(mlp_onnx)
    feeds = random_inputs(resolve_static_shapes(model_inputs(model), {}), seed=1)
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm_target, relax_pipeline=cpu_pipeline(target, copy)), tvm.cpu())
    got = vm["main"](*(tvm.runtime.tensor(feeds[name]) for name in ("x", "w1", "w2"))).numpy()
    want = Reference(model)(feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * float(np.abs(want).max()))


def test_database_for_another_cpu_is_refused(tmp_path, monkeypatch, mlp_onnx):
    x86, rk3588 = load_target("x86_64"), load_target("rk3588")
    foreign = tmp_path / "tuning" / "x86_64"
    open_for_tuning(foreign, rk3588)  # records measured on an RK3588, in the folder x86_64 would look in

    with pytest.raises(InputError) as refused:
        find_database(x86, foreign)
    for spec in (rk3588, x86):  # each named by its TOML's triple and CPU
        assert f"{spec.name} ({spec.cpu.triple}, {spec.cpu.mcpu}" in refused.value.message
    assert "--target x86_64" in refused.value.hint
    with pytest.raises(InputError, match="cannot take records for x86_64"):
        tune_onnx(mlp_onnx, "x86_64", foreign, trials=1)
    monkeypatch.chdir(tmp_path)
    assert find_database(x86, None) is None  # the default folder does not match: compile stays untuned
    assert find_database(rk3588, None) is None  # no tuning/rk3588 folder
    shutil.move(foreign, tmp_path / "tuning" / "rk3588")
    assert find_database(rk3588, None) == Path("tuning") / "rk3588"
    with pytest.raises(InputError, match="not an edgekit tuning database"):
        find_database(x86, tmp_path)
    with pytest.raises(InputError, match="not found"):
        find_database(x86, tmp_path / "missing")


def test_a_board_target_needs_rpc_and_options_are_checked(mlp_onnx, tmp_path):
    with pytest.raises(InputError, match="must be timed on the board"):
        tune_onnx(mlp_onnx, "rk3588", tmp_path / "db", trials=8)
    with pytest.raises(InputError, match="--trials must be >= 1"):
        tune_onnx(mlp_onnx, "x86_64", tmp_path / "db", trials=0)
    assert RpcConfig.from_options("board.local:9090", None, None) == RpcConfig("board.local", 9090)
    assert RpcConfig.from_options(None, "10.0.0.2:9190", "rk3588") == RpcConfig("10.0.0.2", 9190, "rk3588")
    assert RpcConfig.from_options(None, None, None) is None
    for rpc, tracker, key, problem in [
        ("board", None, None, "not HOST:PORT"),
        ("board:99999", None, None, "out of range"),
        ("a:1", "b:2", "k", "both given"),
        (None, "b:2", None, "needs --key"),
        ("a:1", None, "k", "--key is for --tracker"),
    ]:
        with pytest.raises(InputError, match=problem):
            RpcConfig.from_options(rpc, tracker, key)
    with pytest.raises(InputError, match="cannot open an RPC session"):
        tune_onnx(mlp_onnx, "x86_64", tmp_path / "db", trials=8, rpc=RpcConfig("127.0.0.1", _free_port()))


def test_trials_are_spread_by_flops_with_a_floor():
    # Every task gets the floor (16), the rest follows FLOPs x calls; the total is spent exactly.
    assert allocate_trials([3e9, 1e9, 0.0], 100) == [55, 29, 16]
    assert sum(allocate_trials([3e8, 2e8, 1e8, 5e7], 1000)) == 1000
    # Fewer trials than tasks: the costliest get one each, none gets a useless split.
    assert allocate_trials([1.0, 5.0, 3.0], 2) == [0, 1, 1]
    # A cap per task sends the surplus to the others; what no task can take stays unspent.
    assert allocate_trials([1e9, 1e6], 200, max_per_task=64) == [64, 64]
    assert allocate_trials([1e9, 1e6, 1e6], 150, max_per_task=100) == [100, 25, 25]
    assert allocate_trials([4.0, 4.0], 6, floor=1) == [3, 3]


def test_tuning_over_rpc_on_loopback(mlp_onnx, tmp_path):
    port = _free_port()
    log = tmp_path / "rpc_server.log"
    server = _start(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)], log)
    try:
        _wait_for(lambda: f"bind to 127.0.0.1:{port}" in log.read_text(), "rpc_server to listen")
        report = tune_onnx(mlp_onnx, "x86_64", tmp_path / "db", trials=4, rpc=RpcConfig("127.0.0.1", port))
    finally:
        _stop(server)
    assert report.measured_on == f"rpc_server 127.0.0.1:{port}"
    assert [(t.trials_total, t.trials_run) for t in report.tasks] == [(2, 1), (2, 1)]
    assert all(t.untuned_us and t.best_us for t in report.tasks)
    # Every candidate and default schedule was loaded and timed by the server, as a finished .so.
    assert log.read_text().count("load_module") >= 4 and "candidate.so" in log.read_text()
    assert len((tmp_path / "db" / RECORDS).read_text().splitlines()) == 4


def test_tuning_through_a_tracker_on_loopback(mlp_onnx, tmp_path):
    tracker_port, server_port = _free_port(), _free_port()
    tracker = _start(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port), "--port-end", str(tracker_port + 1)], tmp_path / "tracker.log")
    server = None
    try:
        _wait_for(lambda: f"bind to 127.0.0.1:{tracker_port}" in (tmp_path / "tracker.log").read_text(), "rpc_tracker to listen")
        with pytest.raises(InputError, match="no board is registered .* under key 'desk-x86'"):
            tune_onnx(mlp_onnx, "x86_64", tmp_path / "db", trials=2, rpc=RpcConfig("127.0.0.1", tracker_port, "desk-x86"))
        server = _start(
            ["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(server_port), "--port-end", str(server_port + 1), "--tracker", f"127.0.0.1:{tracker_port}", "--key", "desk-x86"],
            tmp_path / "rpc_server.log",
        )
        _wait_for(lambda: _registered(tracker_port, "desk-x86"), "rpc_server to register with the tracker")
        report = tune_onnx(mlp_onnx, "x86_64", tmp_path / "db", trials=2, rpc=RpcConfig("127.0.0.1", tracker_port, "desk-x86"))
    finally:
        for process in (server, tracker):
            if process is not None:
                _stop(process)
    assert report.measured_on == f"tracker 127.0.0.1:{tracker_port} key 'desk-x86'"
    assert all(t.trials_total == 1 and t.untuned_us for t in report.tasks)  # the default schedules, timed on the board
    assert "load_module" in (tmp_path / "rpc_server.log").read_text()


def _import(path: Path, target):
    model = load_onnx(path)
    inputs = resolve_static_shapes(model_inputs(model), {})
    folded, _ = fold_model(model, inputs)
    return import_onnx(folded, inputs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(module_args: list[str], log: Path) -> subprocess.Popen:
    # Its own session: rpc_server and rpc_tracker serve from a child process that must go too.
    env = dict(os.environ, TVM_NUM_THREADS="2", TVM_THREAD_POOL_SPIN_COUNT="0")  # as edgekit's runtime runs an artifact
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", *module_args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def _wait_for(ready, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _registered(tracker_port: int, key: str) -> bool:
    summary = tvm.rpc.connect_tracker("127.0.0.1", tracker_port).summary()
    return any(str(s["key"]).endswith(":" + key) for s in summary.get("server_info", []))
