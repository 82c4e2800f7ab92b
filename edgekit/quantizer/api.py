"""`edgekit quantize` as one library call: calibrate, build the QDQ model, verify it, write model and record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgekit import console
from edgekit.files import atomic_file
from edgekit.quantizer.accuracy_budget import AccuracyBudget, meet_budget, without_budget
from edgekit.quantizer.activation_stats import count_clipped
from edgekit.quantizer.evaluation import OutputAgreement, agreement, run_outputs
from edgekit.quantizer.job import build_qdq, start_job
from edgekit.quantizer.record import make_record, record_path_for, write_record
from edgekit.quantizer.sensitivity import LayerSensitivity, sensitivity_report
from edgekit.quantizer.sensitivity_html import sensitivity_html
from edgekit.reference import Reference

VERIFY_SAMPLES = 64


@dataclass
class QuantizeResult:
    model_path: Path
    record_path: Path
    record: dict
    agreement: list[OutputAgreement]
    extra_files: list[Path]


def quantize(model: Path, calib: Path, output: Path, recipe: str | Path | None = None, budget: AccuracyBudget | None = None, analyze: bool = False) -> QuantizeResult:
    """Quantize `model` with `recipe` calibrated on `calib`; write `output` and its `.quant.json` record.

    budget: an optional AccuracyBudget; nodes fall back to float until it holds (GateFailure if never).
    analyze: also write the sensitivity report as NAME.sensitivity.json and NAME.sensitivity.html.
    Raises InputError for a bad model, recipe or data set.
    """
    output = Path(output)
    with console.step("calibrating"):
        job = start_job(model, calib, recipe)
    plain = build_qdq(job)
    met = meet_budget(job, plain, budget) if budget is not None else without_budget(plain)
    quantized = met.quantized
    clipped = count_clipped(job.view.model, quantized.activations, job.dataset)
    rows = verify(job.view.model, quantized.model, job)
    record_path = record_path_for(output)
    record = make_record(job, quantized, clipped, rows, met.fallbacks, output)
    record["budget"] = met.outcome
    with atomic_file(output) as tmp_model, atomic_file(record_path) as tmp_record:
        onnx.save(quantized.model, str(tmp_model))
        write_record(record, tmp_record)
    # The budget's ranking (when it needed one) is the analysis's too: it is not measured twice.
    extra = write_sensitivity(job, quantized, output, met.ranking) if analyze else []
    return QuantizeResult(output, record_path, record, rows, extra)


def write_sensitivity(job, quantized, output: Path, ranking: list[LayerSensitivity] | None = None) -> list[Path]:
    """NAME.sensitivity.json and NAME.sensitivity.html beside the quantized model.

    ranking: a single-layer ranking already measured on this job (see sensitivity_report).
    """
    report = sensitivity_report(job, quantized, ranking=ranking)
    stem = record_path_for(output).name[: -len(".quant.json")]
    json_path, html_path = output.with_name(f"{stem}.sensitivity.json"), output.with_name(f"{stem}.sensitivity.html")
    with atomic_file(json_path) as tmp_json, atomic_file(html_path) as tmp_html:
        tmp_json.write_text(json.dumps(report, indent=1) + "\n")
        tmp_html.write_text(sensitivity_html(report))
    return [json_path, html_path]


def verify(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto, job) -> list[OutputAgreement]:
    """The QDQ model against the float model, both in ONNX Runtime, on the first calibration samples."""
    reference = run_outputs(Reference(float_model), job.dataset, VERIFY_SAMPLES)
    ours = run_outputs(Reference(qdq_model), job.dataset, VERIFY_SAMPLES)
    return agreement(reference, ours)
