"""ONNX files for the cache: static input shapes, torch export, size figures, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import numpy_helper


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest`, renamed onto it only if the block succeeds.

    Beside, not in /tmp, so the rename never crosses file systems; a half-written file never
    carries the final name, so an interrupted run is redone rather than trusted."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; cache files are ordinary files
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_npz(dest: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed: rendered pages and frames are mostly flat colour, 5-10x smaller; np.load reads both."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def write_json(dest: Path, data: dict) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Real inputs: old exporters also list every initializer as a graph input."""
    weights = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in value.type.tensor_type.shape.dim]


def fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]], infer: bool = True) -> onnx.ModelProto:
    """Set every graph input to the given static shape and (if infer) redo shape inference.

    The exporter's own value_info and output shapes hold symbolic names (p2o.DynamicDimension.0,
    unk__316) that would otherwise survive next to the new static ones, so they are dropped and
    inferred afresh. Nothing else in the graph changes."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inputs = {i.name: i for i in graph_inputs(model)}
    if set(shapes) != set(inputs):
        raise ValueError(f"shapes given for {sorted(shapes)}, model inputs are {sorted(inputs)}")
    for name, shape in shapes.items():
        tensor_shape = inputs[name].type.tensor_type.shape
        tensor_shape.ClearField("dim")
        for size in shape:
            tensor_shape.dim.add().dim_value = size
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    return onnx.shape_inference.infer_shapes(model) if infer else model


def set_output_shapes(model: onnx.ModelProto, shapes: list[tuple[int, ...]]) -> None:
    """Write the output shapes ONNX Runtime produced where shape inference left them open
    (it cannot see through an If on an input, as in silero_vad)."""
    for out, shape in zip(model.graph.output, shapes, strict=True):
        known = dims(out)
        if len(known) == len(shape) and all(isinstance(d, int) for d in known):
            continue
        out.type.tensor_type.ClearField("shape")
        for size in shape:
            out.type.tensor_type.shape.dim.add().dim_value = size


def save_model(model: onnx.ModelProto, dest: Path) -> None:
    onnx.checker.check_model(model)
    with atomic_path(dest) as tmp:
        onnx.save(model, str(tmp))


def export_torch(module, example: tuple, dest: Path, input_names: list[str], output_names: list[str]) -> str:
    """torch.onnx.export with the dynamo exporter (opset 18), the legacy TorchScript one if that fails.

    Returns which exporter made the file. Static shapes: no dynamic axes are declared."""
    import torch

    module.eval()
    with atomic_path(dest) as tmp, torch.no_grad():
        try:
            program = torch.onnx.export(module, example, dynamo=True, opset_version=18,
                                        input_names=input_names, output_names=output_names)
            program.save(str(tmp))
            exporter = f"torch {torch.__version__} dynamo (opset 18)"
        except Exception as exc:  # noqa: BLE001 - any dynamo failure falls back, and is recorded
            torch.onnx.export(module, example, str(tmp), dynamo=False, opset_version=17,
                              input_names=input_names, output_names=output_names)
            exporter = f"torch {torch.__version__} legacy TorchScript (opset 17); dynamo failed: {str(exc)[:200]}"
        # Weights inline: one self-contained file per model.
        onnx.save(onnx.load(str(tmp)), str(tmp))
    return exporter


def parameter_count(model: onnx.ModelProto) -> int:
    """Elements in initializers and Constant nodes (paddle2onnx keeps weights in Constants)."""
    total = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    total += int(np.prod(attr.t.dims))
    return total


def macs(model: onnx.ModelProto) -> int | None:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul from inferred shapes
    (top-level graph only; None if a shape it needs is unknown)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: dims(v) for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type == "Constant":
            shapes.update({node.output[0]: list(numpy_helper.to_array(a.t).shape) for a in node.attribute if a.name == "value"})
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        known = [shapes.get(n) for n in [*node.input[:2], node.output[0]]]
        if any(s is None or not s or not all(isinstance(d, int) for d in s) for s in known):
            return None  # a shape inference could not pin down (or a value with no shape at all)
        a, w, y = known
        if node.op_type == "Conv":
            total += int(np.prod(y)) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose":
            total += int(np.prod(a)) * int(np.prod(w[1:]))
        else:
            total += int(np.prod(y)) * a[-1]
    return total


def run_onnx(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """ONNX Runtime (CPU, fp32) outputs for each feed, in output order."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, {k: np.asarray(v) for k, v in feed.items()}) for feed in feeds]


def samples(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """An edgekit data set (N leading) as one feed per sample."""
    n = len(next(iter(arrays.values())))
    return [{k: np.asarray(v[i]) for k, v in arrays.items()} for i in range(n)]


def fix_shipped(src: Path, dest: Path, shapes: dict[str, list[int]], feed: dict[str, np.ndarray]) -> str:
    """A package's own ONNX file with its input dims made static, checked to run on a real sample.

    If ONNX's shape inference writes value_info that ONNX Runtime then rejects (silero_vad: an If
    whose branches serve 8 and 16 kHz got an LSTM input of the wrong rank, onnx 1.23), the file is
    kept without the inferred shapes, and the line returned says so."""
    original = onnx.load(str(src))
    note = ""
    for infer in (True, False):
        model = fix_input_shapes(original, shapes, infer)
        with atomic_path(dest) as tmp:
            onnx.save(model, str(tmp))
            try:
                produced = run_onnx(tmp, [feed])[0]
                break
            except Exception as exc:  # noqa: BLE001 - retried once without inference, else raised
                if not infer:
                    raise
                note = f"; saved without ONNX shape inference, which ONNX Runtime rejected: {str(exc).splitlines()[0][:160]}"
    set_output_shapes(model, [o.shape for o in produced])
    save_model(model, dest)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown producer"
    return f"shipped ONNX as is ({producer}; opsets {opsets}); only the input dims were fixed{note}"
