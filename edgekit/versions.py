"""Versions of everything that shapes a build, recorded in manifests and reports."""

from __future__ import annotations

from importlib import metadata

_PACKAGES = {
    "edgekit": "edgekit",
    "tvm": "apache-tvm",
    "tvm_ffi": "apache-tvm-ffi",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "onnxslim": "onnxslim",
    "torch": "torch",
    "numpy": "numpy",
}


def collect() -> dict[str, str]:
    found = {}
    for key, dist in _PACKAGES.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
    return found
