"""ONNX Runtime's side of `edgekit estimate`, run by the guest's own Python under QEMU (an
aarch64 CPython for arm boards). Standalone on purpose: it imports only numpy and onnxruntime,
which the guest has, never edgekit.

    python ort_guest.py MODEL.onnx INPUTS.npz WARMUP RUNS

One intra-op thread, sequential execution, all graph optimizations: the single-core setting the
estimate compares. The timed loop sits between two markers (lseek on descriptor -0x656b) that
the QEMU plugin watches, exactly as edgekit's runner marks its own loop.
"""

import os
import sys

import numpy as np
import onnxruntime as ort

MARK_FD = -0x656b


def mark() -> None:
    try:
        os.lseek(MARK_FD, 0, os.SEEK_CUR)
    except OSError:
        pass  # EBADF, as intended: the syscall is the marker


def main(model: str, inputs: str, warmup: int, runs: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    with np.load(inputs) as data:
        feeds = {name: data[name] for name in data.files}
    for _ in range(warmup):
        session.run(None, feeds)
    mark()
    for _ in range(runs):
        session.run(None, feeds)
    mark()
    print(f"onnxruntime {ort.__version__}: {runs} runs")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
