"""`edgekit check ARTIFACT`: the artifact against ONNX Runtime on every sample of a data set.

The thresholds (`--max-abs`, `--min-cosine`, `--min-top1`) become gates over `gates.METRICS`, one
per output they apply to (`--min-int8-macs`: one for the artifact), and are evaluated by
`gates.evaluate` exactly as a project's gates are; the per-output table is the same metrics, read
from the same table, without thresholds. The report also carries the artifact's count of
conv/matmul MACs and the share that runs in integers (its manifest's `build.macs`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.checker.gates import METRICS, Gate, GateResult, Measured, evaluate, is_classifier, metric_value, reference_accuracy
from edgekit.checker.outputs import collect_outputs, integer_mac_share
from edgekit.dataset import load_dataset
from edgekit.errors import InputError
from edgekit.files import atomic_file
from edgekit.onnx_model import load_onnx, model_inputs, model_outputs
from edgekit.reference import Reference
from edgekit.runtime import CompiledModel, load


@dataclass(frozen=True)
class Thresholds:
    """Gates on the worst sample; None switches a gate off."""

    max_abs: float | None = 1e-3
    min_cosine: float | None = 0.999
    min_top1_agreement: float | None = None
    min_int8_macs: float | None = None  # the artifact's share of conv/matmul MACs in integers


# Each threshold as a gate: Thresholds field -> (METRICS key, the bound it sets). The gate is named
# after the field; a classifier metric (top-1 agreement) gates only the classifier outputs.
THRESHOLD_GATES: dict[str, tuple[str, str]] = {
    "max_abs": ("max_abs", "max"),
    "min_cosine": ("cosine_min", "min"),
    "min_top1_agreement": ("top1_agreement", "min"),
    "min_int8_macs": ("int8_macs", "min"),
}

# The table printed for every output: OutputMetrics field -> METRICS key.
OUTPUT_METRICS: dict[str, str] = {"max_abs": "max_abs", "mean_abs": "mean_abs", "cosine_min": "cosine_min", "cosine_mean": "cosine_mean"}


@dataclass
class OutputMetrics:
    name: str
    max_abs: float
    mean_abs: float
    cosine_min: float
    cosine_mean: float
    # Only for classifier outputs (one score vector per sample):
    top1_agreement: float | None = None
    accuracy_artifact: float | None = None
    accuracy_reference: float | None = None


@dataclass
class CheckReport:
    artifact: str
    reference: str
    data: str
    samples: int
    thresholds: Thresholds
    outputs: list[OutputMetrics]
    results: list[GateResult]  # the thresholds' gates, in output order (the artifact's last)
    int8_macs: dict | None = None  # {"total", "integer", "integer_share"} from the manifest; None: not counted

    @property
    def failures(self) -> list[str]:
        return [failure for result in self.results for failure in result.failures]

    @property
    def violations(self) -> list[str]:
        """The failed gates' messages (the name `CheckReport` has always used for `failures`)."""
        return self.failures

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact, "reference": self.reference, "data": self.data, "samples": self.samples,
            "thresholds": asdict(self.thresholds), "outputs": [asdict(m) for m in self.outputs], "int8_macs": self.int8_macs,
            "gates": [r.to_dict() for r in self.results], "violations": self.violations, "passed": self.passed,
        }


def check(artifact: Path, reference: Path, data: Path, thresholds: Thresholds | None = None, threads: int | None = None) -> CheckReport:
    """Run the artifact and ONNX Runtime on every sample of `data`; measure each output and gate it.

    Returns the report (`report.passed`, `report.violations`); InputError for a data set or
    reference that does not fit the artifact, ArtifactError for a missing or tampered artifact.
    """
    thresholds = thresholds or Thresholds()
    model = load(artifact, threads=threads)
    ref_model = load_onnx(Path(reference))
    _match_interfaces(model, ref_model, Path(reference))
    dataset = load_dataset(Path(data), model.inputs)
    session = Reference(ref_model, threads=model.threads)
    measured = collect_outputs(model, session, dataset, target=str(artifact), progress="comparing with ONNX Runtime", int8_macs=integer_mac_share(model.manifest))
    return CheckReport(
        artifact=str(artifact),
        reference=str(reference),
        data=str(data),
        samples=len(dataset),
        thresholds=thresholds,
        outputs=output_metrics(measured),
        results=evaluate(threshold_gates(thresholds, measured), measured),
        int8_macs=model.manifest.build.get("macs"),
    )


def threshold_gates(thresholds: Thresholds, measured: Measured) -> tuple[Gate, ...]:
    """The thresholds that are on, as gates: for each output in order, each threshold that applies to it."""
    gates = []
    for output, values in measured.outputs.items():
        for name, (metric, bound) in THRESHOLD_GATES.items():
            limit = getattr(thresholds, name)
            spec = METRICS[metric]
            if limit is not None and not spec.of_artifact and (is_classifier(values) or not spec.classifier):
                gates.append(Gate(name, metric, output, **{bound: limit}, higher_is_better=spec.higher_is_better))
    for name, (metric, bound) in THRESHOLD_GATES.items():
        limit = getattr(thresholds, name)
        if limit is not None and METRICS[metric].of_artifact:
            gates.append(Gate(name, metric, None, **{bound: limit}, higher_is_better=METRICS[metric].higher_is_better))
    return tuple(gates)


def output_metrics(measured: Measured) -> list[OutputMetrics]:
    """Every output's errors against the reference; for classifiers the top-1 agreement, and the
    accuracies (artifact and reference) of the first classifier output when there are labels."""
    classifiers = [name for name, values in measured.outputs.items() if is_classifier(values)]
    metrics = []
    for output, values in measured.outputs.items():
        row = OutputMetrics(output, **{field: metric_value(metric, output, measured) for field, metric in OUTPUT_METRICS.items()})
        if output in classifiers:
            row.top1_agreement = metric_value("top1_agreement", output, measured)
        if measured.labels is not None and output == next(iter(classifiers), None):
            row.accuracy_artifact = metric_value("accuracy", output, measured)
            row.accuracy_reference = reference_accuracy(measured, output)
        metrics.append(row)
    return metrics


def int8_macs_line(macs: dict | None) -> str:
    """The artifact's integer MAC share in words, as `check` prints it."""
    if not macs:
        return "conv/matmul MACs in integers: not counted (an artifact of an older edgekit)"
    if macs["integer_share"] is None:
        return "conv/matmul MACs in integers: the model has none"
    return f"conv/matmul MACs in integers: {macs['integer_share']:.1%} ({macs['integer']:,} of {macs['total']:,})"


def write_report(report: CheckReport, path: Path) -> None:
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


def _match_interfaces(model: CompiledModel, reference, path: Path) -> None:
    ref_inputs = {spec.name for spec in model_inputs(reference)}
    ref_outputs = {spec.name for spec in model_outputs(reference)}
    missing_inputs = [s.name for s in model.inputs if s.name not in ref_inputs]
    missing_outputs = [s.name for s in model.outputs if s.name not in ref_outputs]
    if missing_inputs or missing_outputs:
        names = ", ".join(missing_inputs + missing_outputs)
        raise InputError(f"reference {path} lacks the artifact's tensors {names}", "compare against the ONNX model the artifact was built from")
