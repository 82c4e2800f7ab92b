"""scripts/compare_quantizers.py: edgekit against ONNX Runtime's quantize_static on the demo model."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
from conftest import EVAL_DATA, REPO

SCRIPT = REPO / "scripts" / "compare_quantizers.py"


def _script():
    spec = importlib.util.spec_from_file_location("compare_quantizers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _top1_percent(path, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 of an ONNX file, computed here without the script's code."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predictions = [int(np.argmax(session.run(None, {"image": image})[0])) for image in images]
    return 100.0 * float(np.mean(np.array(predictions) == labels))


@pytest.fixture(scope="module")
def demo_rows(tmp_path_factory):
    script = _script()
    return script, script.compare(["demo"], tmp_path_factory.mktemp("compare"))


@pytest.mark.slow
def test_every_method_of_both_quantizers_is_evaluated(demo_rows):
    script, rows = demo_rows
    methods = {(r.quantizer, r.method) for r in rows}

    assert {("edgekit", m) for m in script.EDGEKIT_RECIPES} <= methods
    assert {("onnxruntime", m) for m in script.ORT_METHODS} <= methods
    assert ("fp32", "-") in methods
    assert len(rows) == 1 + len(script.EDGEKIT_RECIPES) + len(script.ORT_METHODS)
    assert all(r.path.is_file() and r.model == "demo" for r in rows)


@pytest.mark.slow
def test_top1_is_what_the_written_models_score(demo_rows):
    _, rows = demo_rows
    with np.load(EVAL_DATA) as data:
        images, labels = data["image"], data["label"]
    fp32 = rows[0]
    metrics = json.loads((REPO / "calibration_data" / "digits_metrics.json").read_text())

    assert fp32.quantizer == "fp32"
    assert fp32.top1 == pytest.approx(100 * metrics["fp32_top1_eval"], abs=0.01)
    for row in (next(r for r in rows if r.quantizer == q) for q in ("edgekit", "onnxruntime")):
        assert row.top1 == pytest.approx(_top1_percent(row.path, images, labels), abs=1e-9), row
        assert row.drop == pytest.approx(fp32.top1 - row.top1)


@pytest.mark.slow
def test_edgekit_best_sqnr_is_within_1_db_of_onnxruntime_best(demo_rows):
    _, rows = demo_rows
    ours = max(r.sqnr_db for r in rows if r.quantizer == "edgekit")
    theirs = max(r.sqnr_db for r in rows if r.quantizer == "onnxruntime")

    assert ours >= theirs - 1.0, f"edgekit best {ours:.2f} dB, ONNX Runtime best {theirs:.2f} dB"
