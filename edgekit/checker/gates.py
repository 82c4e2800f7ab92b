"""Gates: a metric of the deployed artifact, a threshold, and an allowed regression against a baseline.

Every metric is measured on the eval data set, for one model output, from two stacks of outputs:
the artifact's (TVM) and the reference's (the float ONNX model in ONNX Runtime, so a quantized
build's gates measure what quantization and compilation lost together), plus the labels if the
data set has them. `METRICS` is the table of built-in metrics; a user metric is `file.py:function`:

    def my_metric(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], labels: np.ndarray | None) -> float

`outputs` and `reference` hold every model output stacked over the samples, shape (N, *output_shape);
`labels` is the data set's (N,) int64 class ids or None. It returns one finite number.

`int8_macs` is the one metric of the artifact rather than of an output: the share of its
conv/matmul MACs that run in integers, as compile counted it into the manifest (`build.macs`).

A gate passes when its value is within `min`/`max`; against a baseline it also must not regress by
more than `tolerance` (metric units, direction-aware: a drop for higher-is-better metrics, a rise
for lower-is-better ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from edgekit.errors import GateFailure, InputError, first_line
from edgekit.metrics import cosines, sqnr_db, top1

# Two floats written to JSON and read back compare equal; this only absorbs summation-order noise.
_SLACK = 1e-9


def _scores(values: np.ndarray) -> np.ndarray:
    """(N, C) class scores from (N, C) or (N, 1, C) outputs."""
    return values.reshape(len(values), -1)


def _in_top_k(scores: np.ndarray, classes: np.ndarray, k: int) -> float:
    top = np.argsort(-_scores(scores), axis=1, kind="stable")[:, :k]
    return float(np.mean((top == classes[:, None]).any(axis=1)))


def _flat(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1).astype(np.float64)


def is_classifier(values: np.ndarray) -> bool:
    """Whether stacked outputs (N, *shape) hold one float score vector per sample: (C,) or (1, C), C > 1."""
    return np.issubdtype(values.dtype, np.floating) and sum(d > 1 for d in values.shape[1:]) == 1


@dataclass(frozen=True)
class MetricSpec:
    """How one built-in metric is computed from (artifact, reference, labels, k), and which way is better."""

    description: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray, np.ndarray | None, int], float] | None  # None: an artifact metric
    needs_labels: bool = False
    classifier: bool = False  # the output must be one score vector per sample
    uses_k: bool = False
    of_artifact: bool = False  # read from the artifact's manifest (Measured.int8_macs), not computed from outputs


METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec("top-1 accuracy of the artifact on the labels", True, lambda o, r, y, k: top1(o, y), needs_labels=True, classifier=True),
    "topk_accuracy": MetricSpec("label within the artifact's top k classes", True, lambda o, r, y, k: _in_top_k(o, y, k), needs_labels=True, classifier=True, uses_k=True),
    "top1_agreement": MetricSpec("artifact's top-1 class equals the reference's", True, lambda o, r, y, k: float(np.mean(_scores(o).argmax(1) == _scores(r).argmax(1))), classifier=True),
    "topk_agreement": MetricSpec("reference's top-1 class within the artifact's top k", True, lambda o, r, y, k: _in_top_k(o, _scores(r).argmax(1), k), classifier=True, uses_k=True),
    "cosine_min": MetricSpec("worst sample's cosine similarity to the reference", True, lambda o, r, y, k: float(cosines(r, o).min())),
    "cosine_mean": MetricSpec("mean cosine similarity to the reference", True, lambda o, r, y, k: float(cosines(r, o).mean())),
    "max_abs": MetricSpec("largest absolute error against the reference", False, lambda o, r, y, k: float(np.abs(_flat(o) - _flat(r)).max())),
    "mean_abs": MetricSpec("mean absolute error against the reference", False, lambda o, r, y, k: float(np.abs(_flat(o) - _flat(r)).mean())),
    "sqnr_db": MetricSpec("signal-to-quantization-noise ratio in dB, reference as signal", True, lambda o, r, y, k: sqnr_db(r, o)),
    "int8_macs": MetricSpec("share of the artifact's conv/matmul MACs that run in integers (manifest build.macs)", True, None, of_artifact=True),
}
ARTIFACT = "artifact"  # the `output` of a gate on an artifact metric


@dataclass(frozen=True)
class Gate:
    """One gate of `edgekit.toml` ([gates.NAME]); project.py validates the user's keys first."""

    name: str
    metric: str  # a METRICS key or "file.py:function"
    output: str | None = None  # None: the model's first output
    k: int | None = None
    min: float | None = None
    max: float | None = None
    tolerance: float = 0.0
    higher_is_better: bool = True
    function: Callable | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.metric not in METRICS and self.function is None:
            raise ValueError(f"gate {self.name}: metric {self.metric} is neither built in nor given a function")
        if self.min is not None and self.max is not None:
            raise ValueError(f"gate {self.name}: min and max are exclusive")
        if not self.tolerance >= 0:
            raise ValueError(f"gate {self.name}: tolerance must be >= 0")

    @property
    def metric_label(self) -> str:
        return f"{self.metric}@{self.k}" if self.k is not None else self.metric

    @property
    def threshold(self) -> str:
        return f">= {self.min:g}" if self.min is not None else (f"<= {self.max:g}" if self.max is not None else "")

    def key(self) -> dict:
        """What a baseline value must match to be comparable with this gate."""
        return {"metric": self.metric, "k": self.k}


@dataclass
class GateResult:
    """A gate measured on one target; `baseline` and after are filled in by `compare_with_baseline`."""

    target: str
    gate: str
    metric: str
    output: str
    value: float
    threshold: str
    higher_is_better: bool
    tolerance: float
    failures: list[str] = field(default_factory=list)
    baseline: float | None = None
    change: float | None = None  # value - baseline
    allowed_change: float | None = None  # -tolerance (higher is better) or +tolerance

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}


@dataclass
class Measured:
    """One target's outputs on the eval data set: the artifact's, the reference's, and the labels."""

    target: str
    outputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    labels: np.ndarray | None
    int8_macs: float | None = None  # the manifest's build.macs.integer_share (None: not counted, or no MACs)


def metric_value(metric: str, output: str, measured: Measured, k: int | None = None) -> float:
    """The built-in `metric` of `output` on `measured`: the number a gate on it compares. InputError if it cannot apply."""
    return _value(Gate(metric, metric, output, k), output, measured)


def reference_accuracy(measured: Measured, output: str | None = None) -> float | None:
    """The reference's top-1 accuracy on `output` (default: the first), or None without labels or scores."""
    output = output or next(iter(measured.reference))
    scores = measured.reference[output]
    if measured.labels is None or not is_classifier(scores):
        return None
    return float(METRICS["accuracy"].compute(scores, scores, measured.labels, 1))


def require_passed(report) -> None:
    """Raise GateFailure naming every failed gate of `report` (anything with `failures`), if there is one.

    The one way a failed check leaves the CLI: exit 1, one `edgekit: gate failed: ...` line per failure.
    """
    failures = list(report.failures)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise GateFailure(failures[0] + more, report=report, failures=failures)


def evaluate(gates: tuple[Gate, ...], measured: Measured) -> list[GateResult]:
    """Each gate's value on `measured`, checked against its min/max. InputError for a gate that cannot apply."""
    return [_evaluate_one(gate, measured) for gate in gates]


def _evaluate_one(gate: Gate, measured: Measured) -> GateResult:
    of_artifact = gate.metric in METRICS and METRICS[gate.metric].of_artifact
    output = ARTIFACT if of_artifact else gate.output or next(iter(measured.outputs))
    if not of_artifact and output not in measured.outputs:
        raise InputError(f"gate '{gate.name}': '{output}' is not an output of the model", f"outputs: {', '.join(measured.outputs)}")
    value = _value(gate, output, measured)
    result = GateResult(measured.target, gate.name, gate.metric_label, output, value, gate.threshold, gate.higher_is_better, gate.tolerance)
    where = f"{measured.target}: gate {gate.name}: {gate.metric_label}" + ("" if of_artifact else f" of {output}")
    if gate.min is not None and not value >= gate.min:
        result.failures.append(f"{where} = {value:.6g}, below the minimum {gate.min:g}")
    if gate.max is not None and not value <= gate.max:
        result.failures.append(f"{where} = {value:.6g}, above the maximum {gate.max:g}")
    return result


def _value(gate: Gate, output: str, measured: Measured) -> float:
    if gate.function is not None:
        return _user_value(gate, measured)
    spec = METRICS[gate.metric]
    if spec.of_artifact:
        if measured.int8_macs is None:
            raise InputError(f"gate '{gate.name}': the artifact of {measured.target} records no share of integer MACs",
                             "rebuild it with this edgekit (compile counts them into the manifest); a model without conv/matmul MACs has none to gate")
        return measured.int8_macs
    ours, theirs = measured.outputs[output], measured.reference[output]
    if spec.needs_labels and measured.labels is None:
        raise InputError(f"gate '{gate.name}': {gate.metric} needs labels and the eval data set has no 'label' array", "add labels (calibration_data/README.md) or drop the gate")
    if spec.classifier:
        classes = _scores(ours).shape[1]
        if not is_classifier(ours):
            raise InputError(f"gate '{gate.name}': {gate.metric} needs one score vector per sample; '{output}' has shape {ours.shape[1:]}", "gate a classifier output, or use cosine/abs/SQNR metrics")
        if gate.k is not None and gate.k >= classes:
            raise InputError(f"gate '{gate.name}': k = {gate.k} is not below the {classes} classes of '{output}'", "give a smaller k")
    return float(spec.compute(ours, theirs, measured.labels, gate.k or 1))


def _user_value(gate: Gate, measured: Measured) -> float:
    try:
        value = gate.function(dict(measured.outputs), dict(measured.reference), measured.labels)
    except Exception as exc:  # noqa: BLE001 - the user's function may raise anything
        raise InputError(f"gate '{gate.name}': {gate.metric} raised {type(exc).__name__}: {first_line(exc)}", "fix the metric function") from None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(f"gate '{gate.name}': {gate.metric} returned {value!r}, not a finite number", "return one float")
    return float(value)


def compare_with_baseline(result: GateResult, gate: Gate, old: dict | None) -> None:
    """Fill in `result`'s baseline fields from the baseline's entry `old` ({"value", "metric", "k", "output"}).

    A gate the baseline does not have, or had with another metric or output, is not compared.
    """
    if old is None or {"metric": old.get("metric"), "k": old.get("k")} != gate.key() or old.get("output") != result.output:
        return
    previous = float(old["value"])
    result.baseline = previous
    result.change = result.value - previous
    result.allowed_change = -gate.tolerance if gate.higher_is_better and gate.tolerance else gate.tolerance
    regression = -result.change if gate.higher_is_better else result.change
    if regression > gate.tolerance + _SLACK * max(1.0, abs(previous)):
        bound = "at least" if gate.higher_is_better else "at most"
        result.failures.append(
            f"{result.target}: gate {gate.name}: {result.metric} of {result.output} regressed from {previous:.6g} (baseline) to {result.value:.6g}: "
            f"change {result.change:+.6g}, allowed {bound} {result.allowed_change:+.6g}"
        )
