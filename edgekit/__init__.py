"""edgekit: a white-box deployment toolchain for edge neural networks.

The Python API mirrors the CLI, one function per stage. Heavy dependencies (torch, TVM) are
imported by the stage that needs them, so `import edgekit` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import EdgekitError, GateFailure, InputError
from edgekit.target_spec import DEFAULT_TARGET

if TYPE_CHECKING:
    from edgekit.checker.artifact_check import CheckReport
    from edgekit.exporter.torch_to_onnx import ExportReport
    from edgekit.quantizer import QuantizeResult
    from edgekit.runtime.compiled_model import CompiledModel
    from edgekit.target_spec import TargetSpec

__version__ = "0.1.0"
__all__ = ["EdgekitError", "GateFailure", "InputError", "check", "compile", "export", "load", "quantize", "targets"]


def export(
    source: str | Path,
    output: str | Path,
    *,
    opset: int = 18,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> ExportReport:
    """PyTorch (`model.pt2` or `file.py:factory`) to ONNX, checked against PyTorch in ONNX Runtime."""
    from edgekit.exporter.torch_to_onnx import ExportOptions, export_model

    options = ExportOptions(opset, list(input_names or []), list(output_names or []), dict(dynamic_axes or {}), atol, rtol)
    return export_model(str(source), Path(output), options)


def quantize(
    model: str | Path,
    calib: str | Path,
    output: str | Path,
    *,
    recipe: str | Path | None = None,
    max_drop: float | None = None,
    evaluation: str = "top1",
    eval_data: str | Path | None = None,
    analyze: bool = False,
) -> QuantizeResult:
    """Calibrated int8 quantization of an ONNX model into a QDQ model plus `NAME.quant.json` record.

    `max_drop` sets an accuracy budget on `evaluation` (top1, cosine or module.py:function) measured
    on `eval_data` (default: the calibration data); GateFailure (exit 1) when it cannot be met.
    """
    from edgekit.quantizer import AccuracyBudget, quantize as run_quantize

    budget = AccuracyBudget(max_drop, evaluation, Path(eval_data) if eval_data else Path(calib)) if max_drop is not None else None
    return run_quantize(Path(model), Path(calib), Path(output), recipe=recipe, budget=budget, analyze=analyze)


def compile(  # noqa: A001 - the stage is called compile
    model: str | Path,
    output: str | Path,
    *,
    target: str = DEFAULT_TARGET,
    shapes: dict[str, tuple[int, ...]] | None = None,
    dims: dict[str, int] | None = None,
    name: str = "",
    device: str = "cpu",
    tuning_db: str | Path | None = None,
    float_fallback: bool = False,
    float_nodes: list[str] | tuple[str, ...] = (),
) -> Path:
    """Compile an ONNX file for `target` into an artifact folder; returns the folder.

    `device="gpu"` runs the compute on the target's accelerator (CUDA on orin, OpenCL on rk3588).
    A failing integer rewrite is an UnsupportedModelError unless `float_fallback` (then the QDQ
    graph runs in float and the manifest says why). So is a float op inside a quantized region,
    unless its node is in `float_nodes` or edgekit's quantization record beside the model left it
    float (the manifest lists each such node and who chose float for it).
    """
    from edgekit.compiler import CompileOptions, compile_onnx

    return compile_onnx(Path(model), Path(output), CompileOptions(target=target, shapes=dict(shapes or {}), dims=dict(dims or {}), name=name, device=device, tuning_db=Path(tuning_db) if tuning_db else None, float_fallback=float_fallback, float_nodes=tuple(float_nodes)))


def check(
    artifact: str | Path,
    reference: str | Path,
    data: str | Path,
    *,
    max_abs: float | None = 1e-3,
    min_cosine: float | None = 0.999,
    min_top1_agreement: float | None = None,
    min_int8_macs: float | None = None,
    threads: int | None = None,
) -> CheckReport:
    """Compare an artifact with ONNX Runtime on a data set; `report.passed` says if every gate held.

    `report.int8_macs` is the artifact's share of conv/matmul MACs in integers; `min_int8_macs` gates it.
    """
    from edgekit.checker.artifact_check import Thresholds
    from edgekit.checker.artifact_check import check as run_check

    thresholds = Thresholds(max_abs=max_abs, min_cosine=min_cosine, min_top1_agreement=min_top1_agreement, min_int8_macs=min_int8_macs)
    return run_check(Path(artifact), Path(reference), Path(data), thresholds, threads)


def load(artifact: str | Path, threads: int | None = None, cpu_ids: list[int] | None = None) -> CompiledModel:
    """Load an artifact folder; call the result with arrays by input name to get outputs by name."""
    from edgekit.runtime.compiled_model import load as load_artifact

    return load_artifact(Path(artifact), threads=threads, cpu_ids=cpu_ids)


def targets() -> list[TargetSpec]:
    """Every bundled target descriptor."""
    from edgekit.target_spec import list_targets

    return list_targets()
