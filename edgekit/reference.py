"""ONNX Runtime as the reference every stage checks itself against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgekit.errors import InputError, first_line
from edgekit.onnx_model import TensorSpec


class Reference:
    """An ONNX Runtime session on the CPU with a fixed thread count and no spinning."""

    def __init__(self, model: onnx.ModelProto | Path, threads: int = 1, optimize: bool = True, spinning: bool = False) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # ORT's default spins its idle threads; off unless asked, so CPU-use comparisons are fair.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.log_severity_level = 3
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        source = str(model) if isinstance(model, Path) else model.SerializeToString()
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types per failure kind
            raise InputError(f"ONNX Runtime cannot load the model: {first_line(exc)}", "check the model runs in ONNX Runtime") from None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # A scalar input's sample comes out of its data set's (N,) array as a numpy scalar, which ORT refuses.
        outputs = self.session.run(None, {name: np.asarray(value) for name, value in feeds.items()})
        return dict(zip(self.output_names, outputs))


def random_inputs(specs: list[TensorSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs for static `specs`: normal floats, small non-negative integers, random bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, spec.shape).astype(bool)
        else:
            # Integer inputs are usually ids, indices or masks: 0 and 1 are valid for all of them.
            feeds[spec.name] = rng.integers(0, 2, spec.shape).astype(dtype)
    return feeds
