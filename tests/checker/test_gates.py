"""Gates without a build: edgekit.toml parsing and its errors, metric values, baseline comparison, CI reports."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, one_line_error
from project_files import MINIMAL_PROJECT, project_folder

from edgekit.checker.ci_reports import GateReport, TargetReport, junit_xml, summary_text
from edgekit.checker.gates import METRICS, Gate, Measured, compare_with_baseline, evaluate
from edgekit.errors import InputError
from edgekit.project.project_file import load_project

MINIMAL = MINIMAL_PROJECT


@pytest.fixture
def project_dir(tmp_path) -> Path:
    return project_folder(tmp_path, MINIMAL)


def _write(folder: Path, text: str) -> Path:
    path = folder / "edgekit.toml"
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------- the project file


def test_demo_project_reads_with_its_gates():
    project = load_project(REPO / "edgekit.toml")
    assert project.name == "digits" and project.build_dir == REPO / "build" / "digits"
    assert project.recipe == "int8-default" and project.targets == ("x86_64",)
    assert project.model.source == f"{REPO / 'edgekit' / 'demo' / 'digits_cnn.py'}:factory"
    gates = {gate.name: gate for gate in project.gates}
    assert list(gates) == ["accuracy", "top3_accuracy", "top1_agreement", "cosine_min", "sqnr_db", "max_abs"]
    assert gates["top3_accuracy"].metric == "topk_accuracy" and gates["top3_accuracy"].k == 3
    assert gates["max_abs"].max == 0.5 and not gates["max_abs"].higher_is_better
    assert gates["accuracy"].min == 0.98 and gates["accuracy"].tolerance == 0.005


def test_defaults_and_a_float_build(project_dir):
    project = load_project(project_dir / "edgekit.toml")
    assert project.recipe is None and project.calib_data is None
    assert project.build_dir == project_dir / "build" / "p" and project.baseline == project_dir / "baselines" / "p.json"
    assert project.gates == (Gate("accuracy", "accuracy", min=0.5),)


def test_build_config_ignores_gates(project_dir):
    before = load_project(project_dir / "edgekit.toml").build_config_sha256()
    _write(project_dir, MINIMAL.replace("min = 0.5", "min = 0.9\ntolerance = 0.1"))
    assert load_project(project_dir / "edgekit.toml").build_config_sha256() == before
    _write(project_dir, MINIMAL + '\n[compile]\ntargets = ["arm64"]\n')
    assert load_project(project_dir / "edgekit.toml").build_config_sha256() != before


def _project(**tables: str | None) -> str:
    """MINIMAL with tables replaced or added (`gates_acc="..."` is [gates.acc]); None drops one."""
    body = {"project": 'name = "p"', "model": 'source = "model.onnx"', "data": 'eval = "eval.npz"', "gates.accuracy": "min = 0.5"}
    body |= {name.replace("_", ".", 1) if name.startswith("gates_") else name: text for name, text in tables.items()}
    return "".join(f"[{name}]\n{text}\n\n" for name, text in body.items() if text is not None)


BAD_PROJECTS = [
    (_project(model="source = 'model.onnx'\nsorce = 'x'"), "edgekit.toml: unknown key 'model.sorce'. allowed keys in [model]: source, input_names, output_names, opset"),
    (_project(bogus=""), "unknown key 'bogus'. allowed keys at the top level: project, model, quantize, data, compile, gates"),
    (_project(gates_accuracy="mni = 0.9"), "unknown key 'gates.accuracy.mni'. allowed keys in [gates.accuracy]: metric, output, k, min, max, tolerance, better"),
    (_project(gates_acc="metric = 'acuracy'"), "key 'gates.acc.metric' = \"acuracy\" is not a metric. known: accuracy, topk_accuracy"),
    (_project(gates_max_abs="min = 0.1"), "key 'gates.max_abs.min' does not fit max_abs, which is lower-is-better. give max instead"),
    (_project(gates_sqnr="metric = 'sqnr_db'\nmin = 'high'"), "key 'gates.sqnr.min' must be a finite number, got \"high\""),
    (_project(gates_cos="metric = 'cosine_min'\ntolerance = -1"), "key 'gates.cos.tolerance' = -1 is negative"),
    (_project(gates_cos="metric = 'cosine_min'\nk = 3"), "key 'gates.cos.k' does not apply to metric cosine_min"),
    (_project(gates_mine="metric = 'nope.py:fn'\nmin = 1"), "key 'gates.mine.metric': file not found:"),
    (_project(compile="device = 'npu'"), "key 'compile.device' = \"npu\" is not allowed. allowed: cpu, gpu"),
    (_project(quantize="recipe = 'int8-default'"), "key 'data.calib' is missing ([quantize] calibrates on it)"),
    (_project(model=None), "key 'model.source' is missing"),
    (_project(data="eval = 'missing.npz'"), "key 'data.eval': data set not found:"),
    (_project(gates_accuracy=None), "no gates: the project has no [gates.NAME] table"),
    (_project(project="name = 'a b'"), "key 'project.name' = \"a b\" is not a plain name"),
    ("[project\n", "malformed TOML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_PROJECTS, ids=[f"case{i}" for i in range(len(BAD_PROJECTS))])
def test_bad_project_is_one_line_exit_2(cli, project_dir, text, expected):
    path = _write(project_dir, text)
    for command in (("check",), ("pipeline",), ("baseline", "save")):
        result = cli(*command, "--project", path)
        assert result.exit_code == 2
        assert expected in one_line_error(result)


def test_missing_project_file_and_usage_errors(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert f"no edgekit.toml in {tmp_path}" in one_line_error(result := cli("check", "--baseline"))
    assert result.exit_code == 2
    result = cli("baseline", "save", "--project", tmp_path / "other.toml")
    assert result.exit_code == 2 and "project file not found" in one_line_error(result)
    result = cli("check", tmp_path / "artifact")
    assert result.exit_code == 2 and "check ARTIFACT needs --reference and --data" in one_line_error(result)
    result = cli("check", tmp_path / "artifact", "--baseline")
    assert result.exit_code == 2 and "--baseline and --project check a project's build" in one_line_error(result)


def test_check_without_a_build_says_run_the_pipeline(cli, project_dir):
    result = cli("check", "--project", project_dir / "edgekit.toml")
    assert result.exit_code == 2
    assert "no complete build in" in one_line_error(result) and "edgekit pipeline" in result.stderr


def test_user_metric_file_without_the_function(cli, project_dir):
    (project_dir / "metrics.py").write_text("def other(outputs, reference, labels):\n    return 1.0\n")
    result = cli("check", "--project", _write(project_dir, MINIMAL + "\n[gates.mine]\nmetric = 'metrics.py:margin'\nbetter = 'higher'\n"))
    assert result.exit_code == 2 and "metrics.py has no function 'margin'" in one_line_error(result)


# ---------------------------------------------------------------------------- metrics


def _measured(labels=True) -> Measured:
    reference = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])[:, None]
    ours = np.array([[2.5, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 0.0, 2.5], [0.0, 1.0, 2.0]])[:, None]
    y = np.array([0, 1, 2, 1]) if labels else None
    return Measured("x86_64", {"logits": ours.astype(np.float32)}, {"logits": reference.astype(np.float32)}, y)


@pytest.mark.parametrize(("gate", "expected"), [
    (Gate("a", "accuracy"), 0.5),  # samples 0 and 2 right, 1 picks class 2, 3 is labelled 1
    (Gate("t", "topk_accuracy", k=2), 1.0),
    (Gate("g", "top1_agreement"), 0.75),
    (Gate("g2", "topk_agreement", k=2), 1.0),
    (Gate("m", "max_abs", higher_is_better=False), 1.0),
    (Gate("mm", "mean_abs", higher_is_better=False), 3.0 / 12),
    (Gate("c", "cosine_min"), 0.8),  # sample 1: (0,2,1).(0,1,2) / 5
])
def test_builtin_metric_values(gate, expected):
    (result,) = evaluate((gate,), _measured())
    assert result.value == pytest.approx(expected) and result.output == "logits"


def test_sqnr_and_cosine_mean_follow_their_definitions():
    m = _measured()
    ref, ours = m.reference["logits"].reshape(4, 3).astype(np.float64), m.outputs["logits"].reshape(4, 3).astype(np.float64)
    sqnr, cos = evaluate((Gate("s", "sqnr_db"), Gate("c", "cosine_mean")), m)
    assert sqnr.value == pytest.approx(10 * np.log10((ref**2).sum() / ((ref - ours) ** 2).sum()))
    cosines = (ref * ours).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ours, axis=1)
    assert cos.value == pytest.approx(cosines.mean())


def test_thresholds_fail_with_the_metric_named():
    low, high = evaluate((Gate("acc", "accuracy", min=0.9), Gate("err", "max_abs", max=0.5, higher_is_better=False)), _measured())
    assert low.failures == ["x86_64: gate acc: accuracy of logits = 0.5, below the minimum 0.9"]
    assert high.failures == ["x86_64: gate err: max_abs of logits = 1, above the maximum 0.5"]


def test_gates_that_cannot_apply_are_input_errors():
    with pytest.raises(InputError, match="needs labels"):
        evaluate((Gate("a", "accuracy"),), _measured(labels=False))
    with pytest.raises(InputError, match="k = 3 is not below the 3 classes"):
        evaluate((Gate("t", "topk_accuracy", k=3),), _measured())
    with pytest.raises(InputError, match="'probs' is not an output of the model"):
        evaluate((Gate("a", "accuracy", output="probs"),), _measured())


def test_user_metric_gets_stacked_outputs_and_labels(project_dir):
    (project_dir / "metrics.py").write_text(textwrap.dedent("""
        import numpy as np

        def margin(outputs, reference, labels):
            scores = outputs["logits"].reshape(len(labels), -1)
            top2 = np.sort(scores, axis=1)[:, -2:]
            return float(np.mean(top2[:, 1] - top2[:, 0]))

        def broken(outputs, reference, labels):
            return float("nan")
    """))
    _write(project_dir, MINIMAL + "\n[gates.margin]\nmetric = 'metrics.py:margin'\nmin = 0.6\n\n[gates.broken]\nmetric = 'metrics.py:broken'\nbetter = 'lower'\n")
    project = load_project(project_dir / "edgekit.toml")
    margin = project.gates[1]
    assert margin.higher_is_better and margin.function is not None
    (result,) = evaluate((margin,), _measured())
    assert result.value == pytest.approx(np.mean([1.5, 1.0, 1.5, 1.0])) and result.passed
    with pytest.raises(InputError, match="metrics.py:broken returned nan, not a finite number"):
        evaluate((project.gates[2],), _measured())


# ---------------------------------------------------------------------------- baseline comparison


@pytest.mark.parametrize(("gate", "old", "new", "passed"), [
    (Gate("acc", "accuracy", tolerance=0.01), 0.99, 0.985, True),  # dropped within tolerance
    (Gate("acc", "accuracy", tolerance=0.01), 0.99, 0.97, False),
    (Gate("acc", "accuracy", tolerance=0.0), 0.99, 0.999, True),  # improvements always pass
    (Gate("err", "max_abs", tolerance=0.05, higher_is_better=False), 0.2, 0.24, True),
    (Gate("err", "max_abs", tolerance=0.05, higher_is_better=False), 0.2, 0.3, False),
    (Gate("err", "max_abs", tolerance=0.0, higher_is_better=False), 0.2, 0.1, True),
])
def test_regression_is_direction_aware(gate, old, new, passed):
    (result,) = evaluate((gate,), _measured())
    result.value = new
    compare_with_baseline(result, gate, {"metric": gate.metric, "k": None, "output": "logits", "value": old})
    assert result.passed is passed
    assert result.baseline == old and result.change == pytest.approx(new - old)
    assert result.allowed_change == (-gate.tolerance if gate.higher_is_better else gate.tolerance)
    if not passed:
        (message,) = result.failures
        assert f"gate {gate.name}: {gate.metric} of logits regressed from {old:g} (baseline) to {new:g}" in message
        assert f"allowed {'at least' if gate.higher_is_better else 'at most'} {result.allowed_change:+g}" in message


def test_a_gate_the_baseline_measured_differently_is_not_compared():
    gate = Gate("t", "topk_accuracy", k=2)
    (result,) = evaluate((gate,), _measured())
    compare_with_baseline(result, gate, {"metric": "topk_accuracy", "k": 3, "output": "logits", "value": 1.0})
    compare_with_baseline(result, gate, None)
    assert result.baseline is None and result.passed


# ---------------------------------------------------------------------------- reports


def _report() -> GateReport:
    gates = (Gate("acc", "accuracy", min=0.9, tolerance=0.01), Gate("agree", "top1_agreement", min=0.5), Gate("err", "max_abs", max=2.0, higher_is_better=False))
    results = evaluate(gates, _measured())
    compare_with_baseline(results[1], gates[1], {"metric": "top1_agreement", "k": None, "output": "logits", "value": 1.0})
    target = TargetReport("x86_64", "build/p/artifacts/x86_64", "ab" * 32, results, reference_accuracy=0.75)
    return GateReport("p", "edgekit.toml", "build/p", {"path": "eval.npz", "sha256": "cd" * 32, "samples": 4, "labels": True}, {"path": "model.onnx", "sha256": "ef" * 32}, [target])


def test_junit_has_one_testcase_per_gate_and_failures_with_messages():
    root = ET.fromstring(junit_xml(_report()))
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["acc", "agree", "err"]
    assert suite.get("tests") == "3" and suite.get("failures") == "2" and root.get("failures") == "2"
    failures = {c.get("name"): c.find("failure") for c in cases}
    assert failures["err"] is None
    assert failures["acc"].get("message") == "x86_64: gate acc: accuracy of logits = 0.5, below the minimum 0.9"
    assert "regressed from 1 (baseline) to 0.75" in failures["agree"].get("message")
    assert cases[1].find("system-out").text.endswith("baseline 1, change -0.25, allowed +0")


def test_summary_is_short_and_names_every_gate():
    text = summary_text(_report())
    lines = text.splitlines()
    assert len(lines) < 40
    assert lines[-1] == "FAILED: 1 of 3 gates passed"
    assert any(line.split()[:1] == ["agree"] and line.endswith("FAIL") for line in lines)


def test_metric_table_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for name in METRICS:
        assert f"`{name}`" in readme, name
