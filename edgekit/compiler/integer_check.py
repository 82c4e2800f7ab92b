"""The integer rewrite checks itself: the rewritten module against the QDQ model in ONNX Runtime.

Like fold.py's check of its folding, the result of `integer_regions` is run on sample inputs
beside the QDQ ONNX model it came from, and every output is compared. The module is built for
this machine as a plain LLVM target (generic CPU, no extra features) with edgekit's own CPU
pipeline: the rewrite's integers do not depend on the target or the kernels (the tests compare
x86_64, x86_64-avx512 with its packed VNNI kernels and arm64 under qemu bit for bit), so a host
build stands in for any cross target.

Tolerances, and why:
- A quantized output (a DequantizeLinear output with one scale, or an int8 output) may differ by
  MAX_OUTPUT_LSB steps of its scale. Our requantization rounds half up with a Q31 multiplier,
  ONNX Runtime rounds half to even with a float32 one: a tensor differs by one LSB now and then,
  and a flipped LSB upstream moves later tensors by an LSB or, after a rescale by up to ~3x
  (an Add or Concat of differently scaled inputs), by 3. A wrong rule (a scale, a zero point, a
  layout) moves outputs by tens of LSBs or more.
- Any other float output (a float op after the last integer op, such as a Gemm whose output is
  not quantized) may differ by FLOAT_OUTPUT_RTOL of the reference's largest magnitude: 3 LSBs
  of an int8 input are 3/255 (1.2%) of its range, and the float ops after it may add a few
  times that (a sum of several such inputs); 5% leaves that margin and still fails a rule that
  is off by a factor.
"""

from __future__ import annotations

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
    """The rewritten module against the QDQ model in ONNX Runtime on `samples` seeded random inputs."""

    samples: int
    seed: int
    target: str
    outputs: tuple[OutputAgreement, ...]
    passed: bool

    def to_dict(self) -> dict:
        return {
            "reference": "the QDQ model in ONNX Runtime",
            "target": self.target,
            "samples": self.samples,
            "seed": self.seed,
            "tolerance": {"quantized_outputs_max_lsb": MAX_OUTPUT_LSB, "float_outputs_max_rel": FLOAT_OUTPUT_RTOL},
            "outputs": [output.to_dict() for output in self.outputs],
            "passed": self.passed,
        }


def check_integer_rewrite(qdq_onnx: onnx.ModelProto, integer_mod: tvm.IRModule, inputs: list[TensorSpec], samples: int = 4, seed: int = 0) -> IntegerAgreement:
    """Run `integer_mod` (from `integer_regions`) and `qdq_onnx` (the model it was imported from) on the same inputs.

    inputs: the static input specs `integer_mod` was imported with, in its parameter order;
    sample i uses `random_inputs(inputs, seed + i)`. Returns the agreement when every output is
    within tolerance; raises IntegerMismatchError (carrying the agreement as `.report`) when
    one is not.
    """
    agreement = measure_integer_rewrite(qdq_onnx, integer_mod, inputs, samples, seed)
    failed = [output for output in agreement.outputs if not output.passed]
    if failed:
        raise IntegerMismatchError(
            f"the integer rewrite disagrees with ONNX Runtime on the QDQ model: {'; '.join(_describe(o) for o in failed)} over {samples} random samples",
            "run scripts/int8_agreement.py on the QDQ model to find the first tensor that differs, and report the model",
            report=agreement,
        )
    return agreement


def measure_integer_rewrite(qdq_onnx: onnx.ModelProto, integer_mod: tvm.IRModule, inputs: list[TensorSpec], samples: int = 4, seed: int = 0) -> IntegerAgreement:
    """The comparison behind `check_integer_rewrite`, without raising."""
    target = host_target()
    run = _host_runner(integer_mod, inputs, target)
    reference = Reference(qdq_onnx)
    feeds = [random_inputs(inputs, seed + i) for i in range(samples)]
    ours = [run(f) for f in feeds]
    theirs = [reference(f) for f in feeds]
    lsbs = output_lsbs(qdq_onnx)
    outputs = tuple(_compare(name, [o[i] for o in ours], [t[name] for t in theirs], lsbs.get(name)) for i, name in enumerate(reference.output_names))
    described = f"host {target.cpu.triple} {target.cpu.mcpu} (integers do not depend on the target)"
    return IntegerAgreement(samples=samples, seed=seed, target=described, outputs=outputs, passed=all(o.passed for o in outputs))


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


def _describe(output: OutputAgreement) -> str:
    if output.max_lsb is not None:
        return f"output '{output.name}' differs by up to {output.max_lsb:.3g} LSB (max abs {output.max_abs:.3g}; tolerance {MAX_OUTPUT_LSB} LSB)"
    return f"output '{output.name}' differs by up to {output.max_rel:.3g} of its largest value (max abs {output.max_abs:.3g}; tolerance {FLOAT_OUTPUT_RTOL})"
