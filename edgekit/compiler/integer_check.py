"""The integer rewrite checks itself: each quantized region against the QDQ model in ONNX Runtime.

Like fold.py's check of its folding, the result of `integer_regions` is run on sample inputs
beside the QDQ ONNX model it came from. The comparison is region by region, not end to end: the
model is rewritten with every QuantizeLinear output exposed as an output, and ONNX Runtime runs a
cut copy of the QDQ model in which every region reads its int8 inputs from edgekit's own values.
Each int8 tensor is then what ONNX Runtime computes from exactly the integers edgekit computed
from; a one-LSB rounding difference upstream does not count again downstream. End to end, such
differences compound through a deep network: on random inputs a MobileNetV3 detector's last
tensors differ by tens of LSBs in half their elements with every rule right, while a wrong rule
still moves its own region's output by tens of LSBs from identical inputs.

The module is built for this machine as a plain LLVM target (generic CPU, no extra features)
with edgekit's own CPU pipeline: the rewrite's integers do not depend on the target or the
kernels (the tests compare x86_64, x86_64-avx512 with its packed VNNI kernels and arm64 under
qemu bit for bit), so a host build stands in for any cross target. The rewrite is the one
compile ships, with the target's packing: only the exposed outputs differ.

Tolerances, and why:
- An int8 tensor (a QuantizeLinear output) or a quantized model output may differ by
  MAX_OUTPUT_LSB steps. Our requantization rounds half up with a Q31 multiplier, ONNX Runtime
  rounds half to even with a float32 one, and a table is evaluated in float64 where ONNX Runtime
  computes the chain in float32: from the same inputs a tensor differs by one LSB now and then,
  by more only where a region rescales (an Add or Concat of differently scaled inputs). A wrong
  rule (a scale, a zero point, a layout, a border) moves values by tens of LSBs.
- Any other float output (a float op after the last integer op, such as a Gemm whose output is
  not quantized) may differ by FLOAT_OUTPUT_RTOL of the reference's largest magnitude.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import tvm
from tvm import relax

from edgekit.compiler.relax_pipeline import cpu_pipeline
from edgekit.errors import UnsupportedModelError
from edgekit.onnx_model import TensorSpec
from edgekit.reference import Reference, random_inputs
from edgekit.target_spec import CpuSpec, PeakSpec, TargetSpec

MAX_OUTPUT_LSB = 4
FLOAT_OUTPUT_RTOL = 0.05


class IntegerMismatchError(UnsupportedModelError):
    """The integer rewrite's result disagrees with ONNX Runtime on the QDQ model: a rule is wrong for this model."""


@dataclass(frozen=True)
class OutputAgreement:
    """One output over all samples: ours against ONNX Runtime's."""

    name: str
    max_abs: float
    max_rel: float  # max_abs over the reference's largest magnitude
    lsb: float | None  # the output's quantization step, None if it is not quantized
    max_lsb: float | None  # max_abs in LSBs, where quantized
    passed: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "max_abs": self.max_abs, "max_rel": self.max_rel, "lsb": self.lsb, "max_lsb": self.max_lsb, "passed": self.passed}


@dataclass(frozen=True)
class IntegerAgreement:
    """The rewritten module against the QDQ model in ONNX Runtime on `samples` seeded random inputs, region by region."""

    samples: int
    seed: int
    target: str
    outputs: tuple[OutputAgreement, ...]
    tensors: tuple[OutputAgreement, ...]  # every int8 tensor inside the model, in graph order
    passed: bool

    @property
    def worst_tensor(self) -> OutputAgreement | None:
        return max(self.tensors, key=lambda t: t.max_lsb or 0.0, default=None)

    def to_dict(self) -> dict:
        worst = self.worst_tensor
        return {
            "reference": "the QDQ model in ONNX Runtime, each region from edgekit's int8 inputs",
            "int8_tensors": {"checked": len(self.tensors), "failed": [t.to_dict() for t in self.tensors if not t.passed], "worst": worst.to_dict() if worst else None},
            "target": self.target,
            "samples": self.samples,
            "seed": self.seed,
            "tolerance": {"quantized_outputs_max_lsb": MAX_OUTPUT_LSB, "float_outputs_max_rel": FLOAT_OUTPUT_RTOL},
            "outputs": [output.to_dict() for output in self.outputs],
            "passed": self.passed,
        }


Rewrite = Callable[[onnx.ModelProto], tvm.IRModule]  # a QDQ model -> its integer module


def check_integer_rewrite(qdq_onnx: onnx.ModelProto, inputs: list[TensorSpec], rewrite: Rewrite, samples: int = 4, seed: int = 0) -> IntegerAgreement:
    """Check `rewrite` (import and `integer_regions`, as compile does it) region by region on `qdq_onnx`.

    inputs: the static input specs, in the module's parameter order; sample i uses
    `random_inputs(inputs, seed + i)`. Returns the agreement when every int8 tensor and output is
    within tolerance; raises IntegerMismatchError (carrying the agreement as `.report`) when one
    is not, naming the tensors in graph order (the first is where a rule went wrong).
    """
    agreement = measure_integer_rewrite(qdq_onnx, inputs, rewrite, samples, seed)
    failed = [("output", t) for t in agreement.outputs if not t.passed] + [("int8 tensor", t) for t in agreement.tensors if not t.passed]
    if failed:
        raise IntegerMismatchError(
            f"the integer rewrite disagrees with ONNX Runtime on the QDQ model, from the same int8 inputs: "
            f"{'; '.join(_describe(o, kind) for kind, o in failed[:_NAMED])}{f' (and {len(failed) - _NAMED} more)' if len(failed) > _NAMED else ''} over {samples} random samples",
            "run scripts/int8_agreement.py on the QDQ model to see every tensor, and report the model",
            report=agreement,
        )
    return agreement


_NAMED = 5  # failing tensors named in the error


def measure_integer_rewrite(qdq_onnx: onnx.ModelProto, inputs: list[TensorSpec], rewrite: Rewrite, samples: int = 4, seed: int = 0) -> IntegerAgreement:
    """The comparison behind `check_integer_rewrite`, without raising."""
    exposed, quantized = expose_quantized(qdq_onnx)
    target = host_target()
    run = _host_runner(rewrite(exposed), inputs, target)
    names = [o.name for o in exposed.graph.output]
    reference = Reference(cut_at_quantized(exposed, quantized))
    feeds = [random_inputs(inputs, seed + i) for i in range(samples)]
    ours = [dict(zip(names, run(f))) for f in feeds]
    theirs = [reference({**f, **{_cut_name(t): o[t] for t in quantized}}) for f, o in zip(feeds, ours)]
    lsbs = output_lsbs(exposed)
    compared = {name: _compare(name, [o[name] for o in ours], [t[name] for t in theirs], lsbs.get(name)) for name in names}
    model_outputs = [o.name for o in qdq_onnx.graph.output]
    outputs = tuple(compared[n] for n in model_outputs)
    tensors = tuple(compared[n] for n in names if n not in model_outputs)
    described = f"host {target.cpu.triple} {target.cpu.mcpu} (integers do not depend on the target)"
    passed = all(t.passed for t in (*outputs, *tensors))
    return IntegerAgreement(samples=samples, seed=seed, target=described, outputs=outputs, tensors=tensors, passed=passed)


def expose_quantized(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """`model` with every top-level QuantizeLinear output also a model output (in graph order); those names."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    quantized = [n.output[0] for n in exposed.graph.node if n.op_type == "QuantizeLinear" and n.domain in ("", "ai.onnx")]
    types = _elem_types(exposed)
    for name in quantized:
        if name not in present:
            exposed.graph.output.append(onnx.helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.INT8), None))
    return exposed, quantized


def cut_at_quantized(model: onnx.ModelProto, quantized: list[str]) -> onnx.ModelProto:
    """`model` with every reader of a QuantizeLinear output reading a model input of that name + CUT instead.

    Each region of the cut model then starts from int8 values given from outside (edgekit's), and
    still computes every QuantizeLinear output from its own inputs.
    """
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    types = _elem_types(cut)
    cut_set = set(quantized)
    for node in cut.graph.node:
        for i, name in enumerate(node.input):
            if name in cut_set:
                node.input[i] = _cut_name(name)
    for name in quantized:
        cut.graph.input.append(onnx.helper.make_tensor_value_info(_cut_name(name), types.get(name, onnx.TensorProto.INT8), None))
    return cut


def _cut_name(tensor: str) -> str:
    return f"{tensor}::edgekit"


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every QuantizeLinear output: its zero point's type (uint8 when it has none)."""
    constants = {init.name: init.data_type for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            constants[node.output[0]] = node.attribute[0].t.data_type
    types = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
            types[node.output[0]] = constants.get(zero_point, onnx.TensorProto.UINT8) if zero_point else onnx.TensorProto.UINT8
    return types


def host_target() -> TargetSpec:
    """This machine as a plain LLVM target: its triple, a generic CPU with 128-bit vectors (16 registers, the x86 SSE floor), one core."""
    return TargetSpec(
        name="host",
        description="this machine, plain LLVM (integer rewrite self-check)",
        cpu=CpuSpec(triple=tvm.target.codegen.llvm_get_system_triple(), mcpu="generic", features=(), cores=1, simd_bits=128, vector_registers=16),
        peak=PeakSpec(fp32_gflops=0.0, int8_gops=0.0, memory_bandwidth_gbs=0.0),
    )


def output_lsbs(model: onnx.ModelProto) -> dict[str, float]:
    """Each quantized output's LSB: a DequantizeLinear's per-tensor scale, or 1 for an integer output."""
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    outputs = {o.name: o for o in model.graph.output}
    lsb = {}
    for name, output in outputs.items():
        elem_type = output.type.tensor_type.elem_type
        if elem_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            lsb[name] = 1.0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in outputs:
            scale = constants.get(node.input[1])
            if scale is not None and scale.size == 1:
                lsb[node.output[0]] = float(scale.reshape(()))
    return lsb


def _host_runner(integer_mod: tvm.IRModule, inputs: list[TensorSpec], target: TargetSpec):
    executable = tvm.compile(integer_mod, target=tvm.target.Target(target.tvm_cpu_target()), relax_pipeline=cpu_pipeline(target))
    device = tvm.cpu()
    vm = relax.VirtualMachine(executable, device)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(feeds[spec.name]), device) for spec in inputs])
        results = [result] if isinstance(result, tvm.runtime.Tensor) else list(result)
        return [value.numpy() for value in results]

    return run


def _compare(name: str, ours: list[np.ndarray], theirs: list[np.ndarray], lsb: float | None) -> OutputAgreement:
    have, want = np.stack(ours).astype(np.float64), np.stack(theirs).astype(np.float64)
    if have.shape != want.shape:
        raise IntegerMismatchError(f"the integer rewrite changed output '{name}' from shape {want.shape[1:]} to {have.shape[1:]}", "report this model")
    max_abs = float(np.max(np.abs(have - want), initial=0.0))
    largest = float(np.max(np.abs(want), initial=0.0))
    max_rel = max_abs / largest if largest > 0 else (0.0 if max_abs == 0 else float("inf"))
    max_lsb = max_abs / lsb if lsb else None
    passed = max_lsb <= MAX_OUTPUT_LSB if max_lsb is not None else max_rel <= FLOAT_OUTPUT_RTOL
    return OutputAgreement(name=name, max_abs=max_abs, max_rel=max_rel, lsb=lsb, max_lsb=max_lsb, passed=bool(passed))


def _describe(output: OutputAgreement, kind: str = "output") -> str:
    if output.max_lsb is not None:
        return f"{kind} '{output.name}' differs by up to {output.max_lsb:.3g} LSB (max abs {output.max_abs:.3g}; tolerance {MAX_OUTPUT_LSB} LSB)"
    return f"{kind} '{output.name}' differs by up to {output.max_rel:.3g} of its largest value (max abs {output.max_abs:.3g}; tolerance {FLOAT_OUTPUT_RTOL})"
