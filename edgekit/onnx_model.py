"""Reading ONNX files and describing their inputs and outputs, with errors a user can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from edgekit.errors import InputError, first_line
from edgekit.files import require_file

Dim = int | str  # a fixed size, or the name of a symbolic dimension


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and numpy dtype name of a model input or output."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def describe(self) -> str:
        dims = "x".join(str(d) for d in self.shape) or "scalar"
        return f"{self.name} {dims} {self.dtype}"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data["dtype"])


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load and structurally check an ONNX file; raise InputError if it is missing or not ONNX."""
    path = require_file(Path(path), "ONNX file")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable ONNX model ({first_line(exc)})", "check the file is an .onnx export") from exc
    # Protobuf parses many non-ONNX byte strings without complaint; the checker catches them.
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{path} is not an ONNX model (no graph found)", "check the file is an .onnx export")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InputError(f"{path} is not a valid ONNX model: {first_line(exc)}", "re-export the model") from exc
    return model


def model_inputs(model: onnx.ModelProto) -> list[TensorSpec]:
    # Exporters before IR version 4 list initializers among the graph inputs; they are weights.
    weights = {init.name for init in model.graph.initializer}
    return [_spec(vi) for vi in model.graph.input if vi.name not in weights]


def model_outputs(model: onnx.ModelProto) -> list[TensorSpec]:
    return [_spec(vi) for vi in model.graph.output]


def opset_version(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 0


def resolve_static_shapes(
    inputs: list[TensorSpec], overrides: dict[str, tuple[int, ...]], dims: dict[str, int] | None = None
) -> list[TensorSpec]:
    """Fix every input to a static shape.

    Per input, `overrides` (--shape) win; then each symbolic dimension takes its size from `dims`
    by name (--dim, e.g. sequence=128, shared by every input that uses the name); a symbolic
    leading (batch) dimension left over becomes 1. Anything else is an error naming the input
    and the options that fix it.
    """
    dims = dims or {}
    names = {spec.name for spec in inputs}
    for name in overrides:
        if name not in names:
            raise InputError(f"--shape names '{name}', which is not a model input", f"inputs: {', '.join(sorted(names))}")
    symbols = {d for spec in inputs for d in spec.shape if isinstance(d, str)}
    for name in dims:
        if name not in symbols:
            raise InputError(f"--dim names '{name}', which is no symbolic dimension of the inputs", f"symbolic dimensions: {', '.join(sorted(symbols)) or 'none'}")
    return [_static_spec(spec, overrides.get(spec.name), dims) for spec in inputs]


def _static_spec(spec: TensorSpec, override: tuple[int, ...] | None, dims: dict[str, int]) -> TensorSpec:
    if override is not None:
        shape = tuple(override)
        if len(shape) != len(spec.shape):
            raise InputError(f"--shape {spec.name} has rank {len(shape)} but the model input is {spec.describe()}", "give one size per dimension")
        for given, declared in zip(shape, spec.shape):
            if isinstance(declared, int) and declared != given:
                raise InputError(f"--shape {spec.name}={_dims(shape)} contradicts the model's {spec.describe()}", "only symbolic dimensions can be set")
        return TensorSpec(spec.name, shape, spec.dtype)
    shape = tuple(dims.get(d, d) if isinstance(d, str) else d for d in spec.shape)
    shape = tuple(1 if (i == 0 and isinstance(d, str)) else d for i, d in enumerate(shape))
    unresolved = [d for d in shape if isinstance(d, str)]
    if unresolved:
        example = _dims(tuple(1 if isinstance(d, str) else d for d in shape))
        raise InputError(
            f"input {spec.describe()} has symbolic dimensions {', '.join(unresolved)}",
            f"fix them with --dim {unresolved[0]}=SIZE (for every input using it) or --shape {spec.name}={example}",
        )
    return TensorSpec(spec.name, tuple(int(d) for d in shape), spec.dtype)


def parse_dim_option(text: str) -> tuple[str, int]:
    """Parse `name=128` from a --dim option."""
    name, sep, size = text.partition("=")
    if not (sep and name and size.isdigit() and int(size) >= 1):
        raise InputError(f"--dim '{text}' is not of the form name=size", "e.g. --dim sequence=128")
    return name, int(size)


def parse_shape_option(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse `name=1x3x224x224` (or comma-separated sizes) from a --shape option."""
    name, sep, dims = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.replace(",", "x").split("x"))
        if any(d < 1 for d in shape):
            raise ValueError
    except ValueError:
        raise InputError(f"--shape '{text}' is not of the form name=1x3x224x224", "give the input name and positive sizes") from None
    return name, shape


def _spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value_info.type.tensor_type
    dims: list[Dim] = []
    for i, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or f"{value_info.name}_dim{i}")
    # Some exporters leave graph outputs untyped; the compiler fills them in from the built module.
    dtype = "unknown"
    if tensor_type.elem_type:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    return TensorSpec(name=value_info.name, shape=tuple(dims), dtype=dtype)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def with_static_inputs(model: onnx.ModelProto, inputs: list[TensorSpec]) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs have the static shapes of `inputs`."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    shapes = {spec.name: spec.shape for spec in inputs}
    for value_info in fixed.graph.input:
        if value_info.name not in shapes:
            continue
        dims = value_info.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[value_info.name]):
            dim.Clear()
            dim.dim_value = size
    return fixed
