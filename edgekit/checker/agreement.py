"""LSB agreement: an integer artifact against ONNX Runtime running the same QDQ model.

Both run a variant of the QDQ model whose outputs also expose every QuantizeLinear result, so the
comparison happens in the quantized domain, tensor by tensor: the fraction of equal int8 values
and the largest difference in LSBs (one LSB is one step of that tensor's scale).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from edgekit.dataset import load_dataset
from edgekit.onnx_model import load_onnx, model_inputs
from edgekit.reference import Reference
from edgekit.target_spec import DEFAULT_TARGET


@dataclass(frozen=True)
class TensorAgreement:
    tensor: str
    kind: str  # "int8" (a QuantizeLinear output) or "output" (a model output, float)
    elements: int
    equal_fraction: float
    max_lsb: float  # int8: |ours - theirs|; float outputs: max abs / the output's LSB (if known)
    max_abs: float


def with_quantized_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, float]]:
    """`model` with every QuantizeLinear output added as a graph output; -> (variant, output LSB sizes)."""
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    existing = {o.name for o in variant.graph.output}
    lsb = _output_lsbs(variant)
    for node in variant.graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] not in existing:
            variant.graph.output.append(onnx.ValueInfoProto(name=node.output[0]))
    inferred = onnx.shape_inference.infer_shapes(variant)
    types = {vi.name: vi for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    for output in variant.graph.output:
        if not output.type.HasField("tensor_type") and output.name in types:
            output.CopyFrom(types[output.name])
    return variant, lsb


def measure(artifact_outputs: list[dict[str, np.ndarray]], reference_outputs: list[dict[str, np.ndarray]], lsb: dict[str, float]) -> list[TensorAgreement]:
    """Per tensor over all samples: equal fraction, max LSB difference, max abs."""
    rows = []
    for name in reference_outputs[0]:
        ours = np.stack([o[name] for o in artifact_outputs])
        theirs = np.stack([o[name] for o in reference_outputs])
        diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
        integer = np.issubdtype(theirs.dtype, np.integer)
        max_abs = float(diff.max(initial=0.0))
        step = 1.0 if integer else lsb.get(name, 0.0)
        rows.append(TensorAgreement(
            tensor=name, kind="int8" if integer else "output", elements=int(diff.size),
            equal_fraction=float(np.mean(diff == 0)), max_lsb=(max_abs / step) if step else float("nan"), max_abs=max_abs,
        ))
    return rows


def compare_with_onnxruntime(qdq_model: Path, data: Path, target: str = DEFAULT_TARGET, threads: int = 1, samples: int | None = None) -> list[TensorAgreement]:
    """Compile the exposed-outputs variant of `qdq_model` and compare it with ONNX Runtime on `data`."""
    from edgekit.compiler import CompileOptions, compile_onnx
    from edgekit.runtime import load

    model = load_onnx(Path(qdq_model))
    variant, lsb = with_quantized_outputs(model)
    dataset = load_dataset(Path(data), model_inputs(model))
    count = len(dataset) if samples is None else min(samples, len(dataset))
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "exposed.onnx"
        onnx.save(variant, str(source))
        artifact = compile_onnx(source, Path(folder) / "artifact", CompileOptions(target=target))
        compiled = load(artifact, threads=threads)
        reference = Reference(source)
        ours = [compiled(**dataset.sample(i)) for i in range(count)]
        theirs = [reference(dataset.sample(i)) for i in range(count)]
    return measure(ours, theirs, lsb)


def to_rows(agreements: list[TensorAgreement]) -> list[dict]:
    return [asdict(a) for a in agreements]


def _output_lsbs(model: onnx.ModelProto) -> dict[str, float]:
    """For outputs produced by DequantizeLinear with a per-tensor scale: that scale."""
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    lsb = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in {o.name for o in model.graph.output}:
            scale = constants.get(node.input[1])
            if scale is not None and scale.size == 1:
                lsb[node.output[0]] = float(scale.reshape(()))
    return lsb
