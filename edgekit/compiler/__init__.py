"""The compile stage: fold shapes, import to TVM Relax, build for a target, write an artifact."""

from edgekit.compiler.build import CompileOptions, compile_onnx

__all__ = ["CompileOptions", "compile_onnx"]
