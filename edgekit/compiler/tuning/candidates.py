"""Where tuning candidates are built and timed: on this machine, or on a board over TVM RPC.

The functions prefixed `_` run inside MetaSchedule's worker processes: they reach the workers
pickled by reference, so this module imports nothing heavy at the top.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass

from edgekit.errors import InputError, last_line
from edgekit.target_spec import TargetSpec

# A build has the LLVM compile of one PrimFunc to do; TVM's default (30 s) is fine once the
# worker does not import tvm.s_tir.tensor_intrin (see _build_candidate).
BUILD_TIMEOUT_S = 60.0
# One candidate's measurement: 1 warm-up + 3 runs of at least 100 ms (MetaSchedule's defaults).
SESSION_TIMEOUT_S = 60
# `runtime.config_threadpool` mode: one thread per listed core (edgekit.runtime.compiled_model pins the same way).
_PIN_ONE_PER_CORE = -2


@dataclass(frozen=True)
class RpcConfig:
    """A board to measure on: an `rpc_server` at host:port, or a tracker at host:port and a key."""

    host: str
    port: int
    tracker_key: str | None = None  # set: host:port is a tracker (python -m tvm.exec.rpc_tracker)

    def __post_init__(self) -> None:
        if not self.host:
            raise InputError("the RPC host is empty", "give HOST:PORT, e.g. --rpc 192.168.1.20:9090")
        if not 0 < self.port < 65536:
            raise InputError(f"RPC port {self.port} is out of range", "give a port between 1 and 65535")
        if self.tracker_key is not None and not self.tracker_key:
            raise InputError("the tracker key is empty", "give the key the board registered with (rpc_server --key)")

    @classmethod
    def from_options(cls, rpc: str | None, tracker: str | None, key: str | None) -> RpcConfig | None:
        """From the CLI's --rpc HOST:PORT, or --tracker HOST:PORT with --key KEY; None for local."""
        if rpc and tracker:
            raise InputError("--rpc and --tracker both given", "connect to the board directly (--rpc) or through a tracker (--tracker with --key)")
        if key and not tracker:
            raise InputError("--key is for --tracker", "add --tracker HOST:PORT, or drop --key")
        if tracker and not key:
            raise InputError("--tracker needs --key", "give the key the board registered with (rpc_server --tracker ... --key KEY)")
        address = rpc or tracker
        if address is None:
            return None
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InputError(f"'{address}' is not HOST:PORT", "e.g. --rpc 192.168.1.20:9090")
        return cls(host=host, port=int(port), tracker_key=key if tracker else None)

    def describe(self) -> str:
        if self.tracker_key is None:
            return f"rpc_server {self.host}:{self.port}"
        return f"tracker {self.host}:{self.port} key '{self.tracker_key}'"


def require_measurable(target: TargetSpec, rpc: RpcConfig | None) -> None:
    """Fail early when candidates for `target` can be neither built nor timed with this setup."""
    if rpc is None and target.machine != platform.machine():
        raise InputError(
            f"target {target.name} runs on {target.machine} and this machine is {platform.machine()}: candidates must be timed on the board",
            f"on the board run `{server_command(target)}` and pass --rpc BOARD:9090",
        )
    compiler = target.cpu.cross_compiler or "g++"
    if shutil.which(compiler) is None:
        raise InputError(f"the C++ compiler {compiler} needed to build candidates for {target.name} is not installed", "run scripts/setup_cross.sh (or scripts/setup.sh for g++)")
    if rpc is not None:
        if rpc.tracker_key is not None:
            _require_registered(rpc)
        try:
            session = _open_session(rpc, target.cpu.cores, list(target.cpu.cpu_ids))
        except Exception as exc:  # noqa: BLE001 - socket errors, tracker errors, TVM errors alike
            raise InputError(
                f"cannot open an RPC session with {rpc.describe()}: {last_line(exc)}",
                f"start `{server_command(target)}` on the board and check the address",
            ) from None
        del session


def server_command(target: TargetSpec) -> str:
    """How to start the RPC server on the board so it times kernels as edgekit's runtime runs them."""
    return f"TVM_NUM_THREADS={target.cpu.cores} TVM_THREAD_POOL_SPIN_COUNT=0 python -m tvm.exec.rpc_server --host 0.0.0.0 --port 9090"


def _require_registered(rpc: RpcConfig) -> None:
    # A tracker queues a request for a key no server has registered and never answers it.
    from tvm import rpc as tvm_rpc

    try:
        summary = tvm_rpc.connect_tracker(rpc.host, rpc.port).summary()
    except Exception as exc:  # noqa: BLE001 - socket and TVM errors alike
        raise InputError(f"cannot reach the RPC tracker {rpc.host}:{rpc.port}: {last_line(exc)}", "start it with `python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190`") from None
    keys = sorted({str(server["key"]).split(":", 1)[-1] for server in summary.get("server_info", [])})
    if rpc.tracker_key not in keys:
        raise InputError(
            f"no board is registered with the tracker {rpc.host}:{rpc.port} under key '{rpc.tracker_key}' (registered: {', '.join(keys) or 'none'})",
            f"on the board: python -m tvm.exec.rpc_server --tracker {rpc.host}:{rpc.port} --key {rpc.tracker_key}",
        )


class Measurement:
    """The builder and runner for `target`, each made on first use (each starts worker processes)."""

    def __init__(self, target: TargetSpec, rpc: RpcConfig | None, spin_count: int) -> None:
        self.target, self.rpc, self.spin_count = target, rpc, spin_count

    @functools.cached_property
    def builder(self):
        return make_builder(self.target)

    @functools.cached_property
    def runner(self):
        return make_runner(self.target, self.rpc, self.spin_count)


def make_builder(target: TargetSpec):
    """A LocalBuilder producing a shared library for `target` (cross-compiled for a board)."""
    from tvm.s_tir import meta_schedule as ms

    return ms.builder.LocalBuilder(
        max_workers=os.cpu_count() or 1,
        timeout_sec=BUILD_TIMEOUT_S,
        f_build=_build_candidate,
        f_export=functools.partial(_export_candidate, target.cpu.cross_compiler),
    )


def make_runner(target: TargetSpec, rpc: RpcConfig | None, spin_count: int):
    """A runner timing candidates with the target's thread count: locally, or on the board."""
    from tvm.s_tir import meta_schedule as ms

    cores, cpu_ids = target.cpu.cores, list(target.cpu.cpu_ids)
    if rpc is None:
        usable = set(os.sched_getaffinity(0))
        pinned = cpu_ids if cpu_ids and set(cpu_ids) <= usable else []
        return ms.runner.LocalRunner(initializer=functools.partial(_configure_local_threads, cores, pinned, spin_count))
    # MetaSchedule's RPCConfig insists on tracker fields even when the session is opened some
    # other way; `_open_session` reads the address from `rpc` instead.
    config = ms.runner.RPCConfig(tracker_host=rpc.host, tracker_port=rpc.port, tracker_key=rpc.tracker_key or "direct", session_timeout_sec=SESSION_TIMEOUT_S)
    return ms.runner.RPCRunner(rpc_config=config, max_workers=1, f_create_session=functools.partial(_session_for_runner, rpc, cores, cpu_ids))


def _build_candidate(mod, target, _params):
    # MetaSchedule's default_build imports tvm.s_tir.tensor_intrin first: 18 s per fresh worker
    # on these machines (its CUDA half alone takes 13 s), and LocalBuilder starts fresh workers
    # every round, so with the default every candidate of a round timed out (TVM 0.27). A
    # candidate is already scheduled (tensorized bodies inlined): building needs no intrinsics.
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def _export_candidate(cross_compiler: str, rt_mod) -> str:
    # A finished .so: the board dlopens it and needs no compiler (the default .tar is linked on the board).
    path = os.path.join(tempfile.mkdtemp(prefix="edgekit-tune-"), "candidate.so")
    if cross_compiler:
        from tvm.support import cc  # TVM 0.27 moved cc here from tvm.contrib

        rt_mod.export_library(path, fcompile=cc.cross_compiler(cross_compiler))
    else:
        rt_mod.export_library(path)
    return path


def _configure_local_threads(cores: int, cpu_ids: list[int], spin_count: int) -> None:
    # The runner worker times candidates with as many threads as the artifact will run with;
    # TVM's default would be half the hardware threads (1 on a 2-core VM).
    from edgekit.threads import configure_threads

    configure_threads(cores, cpu_ids, spin_count)


def _session_for_runner(rpc: RpcConfig, cores: int, cpu_ids: list[int], _config):
    return _open_session(rpc, cores, cpu_ids)


def _open_session(rpc: RpcConfig, cores: int, cpu_ids: list[int]):
    from tvm import rpc as tvm_rpc

    if rpc.tracker_key is None:
        session = tvm_rpc.connect(rpc.host, rpc.port, session_timeout=SESSION_TIMEOUT_S)
    else:
        session = tvm_rpc.connect_tracker(rpc.host, rpc.port).request(rpc.tracker_key, priority=1, session_timeout=SESSION_TIMEOUT_S)
    if cpu_ids:
        # The board's pool size is the server's TVM_NUM_THREADS; pin it to the target's cores.
        session.get_function("runtime.config_threadpool")(_PIN_ONE_PER_CORE, cores, [str(c) for c in cpu_ids])
    return session
