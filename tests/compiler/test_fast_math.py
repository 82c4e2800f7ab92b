"""Vectorizable erf, exp, tanh, sigmoid and softmax (edgekit/compiler/fast_math.py): as accurate
as the float32 the model computes in, and no scalar libm call left in the built library."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgekit
from edgekit.reference import Reference

OPS = ["Erf", "Exp", "Tanh", "Sigmoid", "Softmax"]
EXACT = {
    "Erf": np.vectorize(math.erf),
    "Exp": np.exp,
    "Tanh": np.tanh,
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Softmax": lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True),
}


def _model(op: str, shape: list[int]) -> onnx.ModelProto:
    attrs = {"axis": -1} if op == "Softmax" else {}
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **attrs)],
        op,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    """Every input range the functions see in networks, tails included."""
    return np.linspace(-30.0, 30.0, 64 * 1024, dtype=np.float32).reshape(64, 1024)


@pytest.mark.parametrize("op", OPS)
def test_fast_math_is_float32_accurate_and_vectorizable(op, points, tmp_path):
    source = tmp_path / f"{op}.onnx"
    onnx.save(_model(op, list(points.shape)), source)
    artifact = edgekit.compile(source, tmp_path / op, target="x86_64-avx512")
    got = edgekit.load(artifact)(x=points)["y"].astype(np.float64)
    exact = EXACT[op](points.astype(np.float64))
    # Relative to the value (exp spans 1e-13..1e13), with an absolute floor at float32's resolution of 1.
    error = np.abs(got - exact) / np.maximum(np.abs(exact), 1.0)
    assert error.max() <= 1e-6, (op, float(error.max()))
    # ONNX Runtime computes float32 with its own approximations: the same agreement the compile gate uses.
    ort = Reference(source)({"x": points})["y"]
    assert np.abs(got - ort).max() <= 1e-4 * max(1.0, float(np.abs(ort).max()))
    symbols = subprocess.run(["nm", "-D", "--undefined-only", str(artifact / "model.so")], capture_output=True, text=True, check=True).stdout
    imported = {line.split()[-1].split("@")[0] for line in symbols.splitlines() if line.strip()}  # expf@GLIBC_2.27
    assert not {"erff", "expf", "tanhf", "erf", "exp", "tanh"} & imported, symbols
