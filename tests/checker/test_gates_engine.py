"""The one check engine on hand-made arrays, no TVM: every gate passing and failing in its direction,
baseline tolerance, `check ARTIFACT`'s thresholds as gates, output collection, and how a gate
failure leaves the CLI."""

from __future__ import annotations

import click
import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.checker import (
    METRICS, Gate, Measured, Thresholds, collect_outputs, compare_with_baseline, evaluate, is_classifier, metric_value,
    reference_accuracy, require_passed,
)
from edgekit.checker.artifact_check import THRESHOLD_GATES, output_metrics, threshold_gates
from edgekit.cli import EdgekitGroup
from edgekit.dataset import Dataset
from edgekit.errors import GateFailure, InputError
from edgekit.onnx_model import TensorSpec

# Four samples, three classes, scores shaped (1, 3) like the demo's logits; a second output that is
# not a classifier (a 2x2 map per sample).
REFERENCE = np.array([[4.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [0.0, 3.0, 1.0]], np.float32)[:, None]
ARTIFACT = np.array([[4.0, 1.0, 0.5], [0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [1.0, 3.0, 0.0]], np.float32)[:, None]
LABELS = np.array([0, 2, 2, 0])
MAP_REF = np.arange(16, dtype=np.float32).reshape(4, 2, 2) + 1
MAP_OURS = MAP_REF + np.array([0.0, 0.0, 0.0, 0.25], np.float32).reshape(1, 2, 2)


INT8_MACS = 0.875  # the artifact's share of integer MACs, as its manifest records it


def measured(labels: np.ndarray | None = LABELS) -> Measured:
    return Measured("board", {"logits": ARTIFACT, "map": MAP_OURS}, {"logits": REFERENCE, "map": MAP_REF}, labels, INT8_MACS)


def by_hand() -> dict[str, float]:
    """Each built-in metric of `logits`, computed here with plain numpy from its definition."""
    a, r = ARTIFACT.reshape(4, 3).astype(np.float64), REFERENCE.reshape(4, 3).astype(np.float64)
    cos = (a * r).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(r, axis=1)
    ranks = np.argsort(-a, axis=1, kind="stable")
    return {
        "accuracy": float(np.mean(a.argmax(1) == LABELS)),  # sample 3 picks class 1: 0.75
        "topk_accuracy": float(np.mean([LABELS[i] in ranks[i, :2] for i in range(4)])),
        "top1_agreement": float(np.mean(a.argmax(1) == r.argmax(1))),  # sample 1 differs: 0.75
        "topk_agreement": float(np.mean([r[i].argmax() in ranks[i, :2] for i in range(4)])),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "max_abs": float(np.abs(a - r).max()),  # 1.0
        "mean_abs": float(np.abs(a - r).mean()),
        "sqnr_db": float(10 * np.log10((r**2).sum() / ((r - a) ** 2).sum())),
        "int8_macs": INT8_MACS,  # not computed from outputs: read from the manifest
    }


def gate(metric: str, **bounds) -> Gate:
    spec = METRICS[metric]
    return Gate(metric, metric, "logits", k=2 if spec.uses_k else None, higher_is_better=spec.higher_is_better, **bounds)


def test_the_hand_made_case_exercises_every_metric():
    assert set(by_hand()) == set(METRICS)
    assert by_hand()["accuracy"] == 0.75 and by_hand()["top1_agreement"] == 0.75 and by_hand()["max_abs"] == 1.0


@pytest.mark.parametrize("metric", list(METRICS))
def test_each_gate_passes_on_its_bound_and_fails_past_it(metric):
    (measuring,) = evaluate((gate(metric),), measured())
    value = measuring.value  # the engine's own figure, so the bound sits exactly on it
    assert value == pytest.approx(by_hand()[metric], rel=1e-12)
    step = 1e-6 * max(1.0, abs(value))
    if METRICS[metric].higher_is_better:
        (held,) = evaluate((gate(metric, min=value),), measured())
        (missed,) = evaluate((gate(metric, min=value + step),), measured())
        word = f"below the minimum {value + step:g}"
    else:
        (held,) = evaluate((gate(metric, max=value),), measured())
        (missed,) = evaluate((gate(metric, max=value - step),), measured())
        word = f"above the maximum {value - step:g}"
    assert held.value == value and held.passed and held.failures == []
    label = f"{metric}@2" if METRICS[metric].uses_k else metric
    of = "" if METRICS[metric].of_artifact else " of logits"  # an artifact metric names no output
    assert missed.failures == [f"board: gate {metric}: {label}{of} = {missed.value:.6g}, {word}"]


def test_a_gate_without_bounds_measures_and_passes():
    results = evaluate(tuple(gate(metric) for metric in METRICS), measured())
    assert all(r.passed and r.threshold == "" for r in results)
    assert {r.gate: r.value for r in results} == pytest.approx(by_hand())


def test_nan_fails_min_and_max_gates():
    broken = Measured("board", {"logits": np.full_like(ARTIFACT, np.nan)}, {"logits": REFERENCE}, LABELS)
    low, high = evaluate((gate("cosine_min", min=-1.0), gate("max_abs", max=1e9)), broken)
    assert np.isnan(low.value) and not low.passed and "below the minimum -1" in low.failures[0]
    assert np.isnan(high.value) and not high.passed and "above the maximum 1e+09" in high.failures[0]


def test_the_output_defaults_to_the_first_and_other_outputs_are_gated_by_name():
    first, second = evaluate((Gate("a", "max_abs", higher_is_better=False), Gate("b", "max_abs", output="map", max=0.2, higher_is_better=False)), measured())
    assert first.output == "logits" and first.value == 1.0
    assert second.output == "map" and second.value == 0.25
    assert second.failures == ["board: gate b: max_abs of map = 0.25, above the maximum 0.2"]


def test_classifier_metrics_refuse_an_output_without_one_score_vector_per_sample():
    assert is_classifier(ARTIFACT) and not is_classifier(MAP_OURS) and not is_classifier(ARTIFACT.astype(np.int32))
    with pytest.raises(InputError, match=r"needs one score vector per sample; 'map' has shape \(2, 2\)"):
        evaluate((Gate("g", "top1_agreement", output="map"),), measured())
    with pytest.raises(InputError, match="needs labels"):
        metric_value("accuracy", "logits", measured(labels=None))


# ---------------------------------------------------------------------------- baselines


@pytest.mark.parametrize(("higher", "old", "new", "tolerance", "passed"), [
    (True, 0.75, 0.5, 0.25, True),  # dropped by exactly the tolerance
    (True, 0.75, 0.5, 0.125, False),
    (True, 0.5, 0.75, 0.0, True),  # a rise is an improvement
    (False, 0.5, 0.75, 0.25, True),  # rose by exactly the tolerance
    (False, 0.5, 0.75, 0.125, False),
    (False, 0.75, 0.5, 0.0, True),  # a drop is an improvement
])
def test_baseline_tolerance_is_a_size_in_the_metric_direction(higher, old, new, tolerance, passed):
    g = Gate("g", "top1_agreement" if higher else "max_abs", tolerance=tolerance, higher_is_better=higher)
    (result,) = evaluate((g,), measured())
    result.value = new
    compare_with_baseline(result, g, {"metric": g.metric, "k": None, "output": "logits", "value": old})
    assert result.passed is passed
    assert (result.baseline, result.change) == (old, new - old)
    assert result.allowed_change == (-tolerance if higher and tolerance else tolerance)
    if not passed:
        bound = "at least" if higher else "at most"
        assert result.failures == [
            f"board: gate g: {g.metric} of logits regressed from {old:.6g} (baseline) to {new:.6g}: change {new - old:+.6g}, allowed {bound} {result.allowed_change:+.6g}"
        ]


def test_summation_noise_is_not_a_regression_but_anything_larger_is():
    g = Gate("g", "cosine_mean", tolerance=0.0)
    (noisy,) = evaluate((g,), measured())
    (worse,) = evaluate((g,), measured())
    compare_with_baseline(noisy, g, {"metric": "cosine_mean", "k": None, "output": "logits", "value": noisy.value + 1e-12})
    compare_with_baseline(worse, g, {"metric": "cosine_mean", "k": None, "output": "logits", "value": worse.value + 1e-6})
    assert noisy.passed and noisy.baseline is not None
    assert not worse.passed


def test_a_threshold_failure_and_a_regression_are_both_reported():
    g = Gate("acc", "accuracy", min=0.9, tolerance=0.1)
    (result,) = evaluate((g,), measured())
    compare_with_baseline(result, g, {"metric": "accuracy", "k": None, "output": "logits", "value": 1.0})
    assert result.failures == [
        "board: gate acc: accuracy of logits = 0.75, below the minimum 0.9",
        "board: gate acc: accuracy of logits regressed from 1 (baseline) to 0.75: change -0.25, allowed at least -0.1",
    ]


def test_a_baseline_of_another_metric_k_or_output_is_not_compared():
    g = Gate("t", "topk_agreement", k=2, tolerance=0.0)
    for old in ({"metric": "topk_agreement", "k": 1, "output": "logits", "value": 2.0},
                {"metric": "top1_agreement", "k": 2, "output": "logits", "value": 2.0},
                {"metric": "topk_agreement", "k": 2, "output": "map", "value": 2.0}):
        (result,) = evaluate((g,), measured())
        compare_with_baseline(result, g, old)
        assert result.baseline is None and result.passed


# ---------------------------------------------------------------------------- check ARTIFACT's thresholds


def test_thresholds_become_gates_per_output_and_top1_only_on_classifiers():
    gates = threshold_gates(Thresholds(max_abs=0.5, min_cosine=0.99, min_top1_agreement=0.8), measured())
    assert [(g.name, g.metric, g.output, g.min, g.max) for g in gates] == [
        ("max_abs", "max_abs", "logits", None, 0.5), ("min_cosine", "cosine_min", "logits", 0.99, None),
        ("min_top1_agreement", "top1_agreement", "logits", 0.8, None),
        ("max_abs", "max_abs", "map", None, 0.5), ("min_cosine", "cosine_min", "map", 0.99, None),
    ]
    assert all(g.higher_is_better is METRICS[g.metric].higher_is_better for g in gates)
    assert set(THRESHOLD_GATES) == {"max_abs", "min_cosine", "min_top1_agreement", "min_int8_macs"}
    assert threshold_gates(Thresholds(max_abs=None, min_cosine=None), measured()) == ()
    # The integer MAC share is the artifact's: one gate, after the outputs'.
    (share,) = threshold_gates(Thresholds(max_abs=None, min_cosine=None, min_int8_macs=0.9), measured())
    assert (share.name, share.metric, share.output, share.min) == ("min_int8_macs", "int8_macs", None, 0.9)


def test_thresholds_fail_with_the_gate_messages():
    results = evaluate(threshold_gates(Thresholds(max_abs=0.5, min_cosine=None, min_top1_agreement=0.8), measured()), measured())
    failures = [f for r in results for f in r.failures]
    assert failures == [
        "board: gate max_abs: max_abs of logits = 1, above the maximum 0.5",
        "board: gate min_top1_agreement: top1_agreement of logits = 0.75, below the minimum 0.8",
    ]


def test_the_per_output_table_reads_the_metrics_table():
    logits, mapped = output_metrics(measured())
    expected = by_hand()
    assert (logits.max_abs, logits.mean_abs) == (expected["max_abs"], pytest.approx(expected["mean_abs"]))
    assert (logits.cosine_min, logits.cosine_mean) == (pytest.approx(expected["cosine_min"]), pytest.approx(expected["cosine_mean"]))
    assert logits.top1_agreement == 0.75 and logits.accuracy_artifact == 0.75
    assert logits.accuracy_reference == np.mean(REFERENCE.reshape(4, 3).argmax(1) == LABELS) == 0.5  # the reference misses 1 and 3
    assert mapped.max_abs == 0.25 and mapped.top1_agreement is None and mapped.accuracy_artifact is None
    (unlabelled, _) = output_metrics(measured(labels=None))
    assert unlabelled.top1_agreement == 0.75 and unlabelled.accuracy_artifact is None and unlabelled.accuracy_reference is None


def test_reference_accuracy_needs_labels_and_scores():
    assert reference_accuracy(measured()) == 0.5
    assert reference_accuracy(measured(labels=None)) is None
    assert reference_accuracy(measured(), "map") is None


# ---------------------------------------------------------------------------- collecting outputs


class FakeArtifact:
    """Stands in for a CompiledModel: doubles its input into 'y' and sums it into 'total'."""

    outputs = [TensorSpec("y", (1, 3), "float32"), TensorSpec("total", (1,), "float32")]

    def __call__(self, x):
        return {"total": np.array([x.sum()]), "y": 2 * x}


def test_collect_outputs_stacks_both_runtimes_sample_by_sample():
    x = np.arange(12, dtype=np.float32).reshape(4, 1, 3)
    seen = []

    def reference(feeds):
        seen.append(feeds["x"])
        return {"y": 2 * feeds["x"] + 1, "total": np.array([feeds["x"].sum()]), "extra": feeds["x"]}

    got = collect_outputs(FakeArtifact(), reference, Dataset({"x": x}, LABELS, "hand"), target="fake")
    assert got.target == "fake" and got.labels is LABELS
    assert list(got.outputs) == list(got.reference) == ["y", "total"]  # the artifact's outputs, its order
    np.testing.assert_array_equal(got.outputs["y"], 2 * x)
    np.testing.assert_array_equal(got.reference["y"], 2 * x + 1)
    assert got.outputs["total"].shape == (4, 1) and got.outputs["total"][3, 0] == x[3].sum()
    np.testing.assert_array_equal(np.stack(seen), x)


# ---------------------------------------------------------------------------- leaving the CLI


def test_require_passed_raises_one_gate_failure_with_every_line():
    class Report:
        failures = ["board: gate a: one", "board: gate b: two"]

    require_passed(type("Clean", (), {"failures": []})())
    with pytest.raises(GateFailure) as info:
        require_passed(Report())
    assert info.value.exit_code == 1 and info.value.failures == tuple(Report.failures)
    assert info.value.message == "board: gate a: one (and 1 more)"


@pytest.fixture
def group():
    @click.group(cls=EdgekitGroup)
    def cli():
        pass

    @cli.command()
    def gates():
        raise GateFailure("2 gates failed", failures=["board: gate a: one", "board: gate b: two"])

    @cli.command()
    def parity():
        raise GateFailure("output y differs from PyTorch", "raise --atol")

    return cli


@pytest.mark.parametrize("debug", ["0", "1"])
def test_every_gate_failure_leaves_the_cli_one_way(group, monkeypatch, debug):
    monkeypatch.setenv("EDGEKIT_DEBUG", debug)
    runner = CliRunner()
    gates, parity = runner.invoke(group, ["gates"]), runner.invoke(group, ["parity"])
    assert gates.exit_code == parity.exit_code == 1
    assert gates.stderr.splitlines() == ["edgekit: gate failed: board: gate a: one", "edgekit: gate failed: board: gate b: two"]
    assert parity.stderr.splitlines() == ["edgekit: gate failed: output y differs from PyTorch. raise --atol"]
    assert "Traceback" not in gates.stderr + parity.stderr + gates.stdout + parity.stdout


def test_the_integer_mac_share_is_the_artifacts_and_needs_its_count():
    (result,) = evaluate((Gate("int8_macs", "int8_macs", min=0.9),), measured())
    assert result.output == "artifact" and result.value == INT8_MACS
    assert result.failures == ["board: gate int8_macs: int8_macs = 0.875, below the minimum 0.9"]
    uncounted = Measured("old-board", {"logits": ARTIFACT}, {"logits": REFERENCE}, LABELS)
    with pytest.raises(InputError, match="records no share of integer MACs"):
        evaluate((Gate("int8_macs", "int8_macs", min=0.9),), uncounted)
