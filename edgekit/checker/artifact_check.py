"""`edgekit check`: the artifact against ONNX Runtime on every sample of a data set, with gates."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekit import console
from edgekit.dataset import Dataset, load_dataset
from edgekit.metrics import cosines
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
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}


def check(artifact: Path, reference: Path, data: Path, thresholds: Thresholds | None = None, threads: int | None = None) -> CheckReport:
    """Run the artifact and ONNX Runtime on every sample of `data`; measure and gate each output."""
    thresholds = thresholds or Thresholds()
    model = load(artifact, threads=threads)
    ref_model = load_onnx(Path(reference))
    _match_interfaces(model, ref_model, Path(reference))
    dataset = load_dataset(Path(data), model.inputs)
    session = Reference(ref_model, threads=model.threads)
    ours, theirs = _run_all(model, session, dataset)
    metrics = [_measure(spec.name, ours[spec.name], theirs[spec.name], dataset.labels, first_classifier=i == _first_classifier(model)) for i, spec in enumerate(model.outputs)]
    report = CheckReport(
        artifact=str(artifact),
        reference=str(reference),
        data=str(data),
        samples=len(dataset),
        thresholds=thresholds,
        outputs=metrics,
    )
    report.violations = _violations(metrics, thresholds)
    return report


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


def _run_all(model: CompiledModel, session: Reference, dataset: Dataset) -> tuple[dict, dict]:
    ours: dict[str, list] = {spec.name: [] for spec in model.outputs}
    theirs: dict[str, list] = {spec.name: [] for spec in model.outputs}
    with console.progress(len(dataset), "comparing with ONNX Runtime") as advance:
        for index in range(len(dataset)):
            feeds = dataset.sample(index)
            got, want = model(**feeds), session(feeds)
            for name in ours:
                ours[name].append(got[name])
                theirs[name].append(want[name])
            advance()
    return _stacked(ours), _stacked(theirs)


def _stacked(outputs: dict[str, list]) -> dict[str, np.ndarray]:
    return {name: np.stack(values) for name, values in outputs.items()}


def _first_classifier(model: CompiledModel) -> int | None:
    for index, spec in enumerate(model.outputs):
        if _is_classifier(spec.shape, spec.dtype):
            return index
    return None


def _is_classifier(shape: tuple, dtype: str) -> bool:
    # One score vector per sample: (C,) or (1, C) with C > 1.
    squeezed = [d for d in shape if d != 1]
    return np.dtype(dtype).kind == "f" and len(squeezed) == 1 and squeezed[0] > 1


def _measure(name: str, ours: np.ndarray, theirs: np.ndarray, labels: np.ndarray | None, first_classifier: bool) -> OutputMetrics:
    n = len(ours)
    a = ours.reshape(n, -1).astype(np.float64)
    b = theirs.reshape(n, -1).astype(np.float64)
    diff = np.abs(a - b)
    cosine = cosines(a, b)
    metrics = OutputMetrics(
        name=name,
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        cosine_min=float(cosine.min()),
        cosine_mean=float(cosine.mean()),
    )
    if _is_classifier(ours.shape[1:], str(ours.dtype)):
        top_ours, top_theirs = a.argmax(axis=1), b.argmax(axis=1)
        metrics.top1_agreement = float(np.mean(top_ours == top_theirs))
        if labels is not None and first_classifier:
            metrics.accuracy_artifact = float(np.mean(top_ours == labels))
            metrics.accuracy_reference = float(np.mean(top_theirs == labels))
    return metrics


def _violations(metrics: list[OutputMetrics], thresholds: Thresholds) -> list[str]:
    found = []
    for m in metrics:
        if thresholds.max_abs is not None and not m.max_abs <= thresholds.max_abs:
            found.append(f"{m.name}: max abs error {m.max_abs:.3g} > {thresholds.max_abs:g}")
        if thresholds.min_cosine is not None and not m.cosine_min >= thresholds.min_cosine:
            found.append(f"{m.name}: min cosine {m.cosine_min:.6f} < {thresholds.min_cosine:g}")
        if thresholds.min_top1_agreement is not None and m.top1_agreement is not None and not m.top1_agreement >= thresholds.min_top1_agreement:
            found.append(f"{m.name}: top-1 agreement {m.top1_agreement:.4f} < {thresholds.min_top1_agreement:g}")
    return found
