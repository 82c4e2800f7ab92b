"""scripts/real_model_quant.py: the pure helpers (cell text, one-line errors), no models needed."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "real_model_quant.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("real_model_quant_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ok(value: float, cosine_min: float, **extra) -> dict:
    return {"status": "ok", "value": value, "seconds": 9.0, "scores": {"cosine_min": cosine_min}, **extra}


def test_cell_is_metric_then_min_cosine(script):
    assert script.format_cell(ok(0.96875, 0.99912), "ort_static") == "0.969 / 0.9991"


def test_budget_cell_adds_time_int8_share_and_fallbacks(script):
    cell = script.format_cell(ok(1.0, 0.998, quantize_seconds=12.4, int8_node_share=0.35, budget={"fallbacks": 3}),
                              "edgekit_budget")
    assert cell == "1.000 / 0.9980 (12 s, 35% int8 nodes, 3 fallbacks)"
    cell = script.format_cell(ok(1.0, 0.998, quantize_seconds=12.4, int8_node_share=0.35, int8_mac_share=0.873, budget={"fallbacks": 3}),
                              "edgekit_budget")
    assert cell == "1.000 / 0.9980 (12 s, 35% int8 nodes, 87% int8 MACs, 3 fallbacks)"


def test_failures_and_timeouts_are_one_short_line(script):
    assert script.format_cell({"status": "timeout", "limit_seconds": 300}, "edgekit_budget") == "timeout (> 300 s)"
    cell = script.format_cell({"status": "fails", "error": "E: " + "x" * 400}, "edgekit_compiled")
    assert cell.startswith("fails: E: x") and len(cell) == len("fails: ") + script.CELL_CHARS


def test_one_line_names_the_place_of_a_bare_assertion(script):
    try:
        raise AssertionError  # what a bare assert in ONNX Runtime's shape inference raises
    except AssertionError as error:
        line = script.one_line(error)
    assert line.startswith("AssertionError at test_real_model_quant_script.py:")
    assert script.one_line(ValueError("first\nsecond")) == "ValueError: first"
