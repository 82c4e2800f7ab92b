"""scripts/real_models.py: the pure helpers (metrics, decoders, ONNX shape fixing), no models needed."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import pytest
from conftest import REPO
from onnx import TensorProto, helper

SCRIPT = REPO / "scripts" / "real_models.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("real_models_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def metrics(script):
    from real_models import metrics  # importable once the script put scripts/ on sys.path

    return metrics


def one_hot_sequence(ids: list[int], classes: int = 6) -> np.ndarray:
    """(1, T, classes) CTC scores whose best path is `ids`."""
    out = np.full((1, len(ids), classes), 0.01, np.float32)
    out[0, np.arange(len(ids)), ids] = 0.95
    return out


def test_ctc_greedy_merges_repeats_and_drops_blanks(metrics):
    assert metrics.ctc_greedy(one_hot_sequence([0, 3, 3, 0, 3, 1, 1, 0])[0]) == [3, 3, 1]


def test_edit_distance(metrics):
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance([], [1, 2]) == 2


def test_metric_ctc_cer_of_candidate_against_reference(script):
    reference = [(one_hot_sequence([1, 0, 2, 0, 3]),), (one_hot_sequence([4, 4, 5]),)]
    candidate = [(one_hot_sequence([1, 0, 0, 0, 3]),), (one_hot_sequence([4, 5, 5]),)]
    result = script.metric("ocr_rec", reference, candidate)
    assert result["metric"] == "cer"
    assert result["cer"] == pytest.approx(1 / 5)  # one deletion over five reference characters
    assert result["string_agreement"] == 0.5
    assert 0 < result["cosine_min"] < result["cosine_mean"] <= 1


def test_metric_top1_and_cosine_accept_bare_arrays(script):
    reference = [np.array([[0.9, 0.1]]), np.array([[0.2, 0.8]])]
    candidate = [np.array([[0.6, 0.4]]), np.array([[0.7, 0.3]])]
    result = script.metric("ocr_cls", reference, candidate)
    assert result["top1_agreement"] == 0.5
    same = script.metric("ocr_cls", reference, reference)
    assert same["top1_agreement"] == 1.0 and same["cosine_min"] == pytest.approx(1.0)


def test_metric_vad_decisions_at_half(script):
    reference = [(np.array([[0.9]]), np.zeros((2, 1, 128))), (np.array([[0.1]]), np.zeros((2, 1, 128)))]
    candidate = [(np.array([[0.6]]), np.zeros((2, 1, 128))), (np.array([[0.55]]), np.zeros((2, 1, 128)))]
    result = script.metric("silero_vad", reference, candidate)
    assert result["decision_agreement"] == 0.5
    assert result["reference_positive_rate"] == 0.5


def test_metric_rejects_unequal_runs_and_unknown_models(script):
    with pytest.raises(ValueError):
        script.metric("ocr_cls", [np.zeros((1, 2))], [])
    with pytest.raises(KeyError):
        script.metric("no_such_model", [], [])


def test_box_iou_nms_and_matching(metrics):
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
    assert metrics.box_iou(boxes[:1], boxes[2:]).item() == 0
    assert metrics.box_iou(boxes[:1], boxes[:1]).item() == pytest.approx(1)
    assert list(metrics.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]
    assert metrics.matched_fraction(boxes[[0, 2]], boxes[[1]]) == (1, 2)
    # A label mismatch is no match.
    assert metrics.matched_fraction(boxes[:1], boxes[:1], 0.5, np.array([0]), np.array([1])) == (0, 1)


def test_mtcnn_pnet_boxes_are_12px_windows_at_stride_2(metrics):
    reg = np.zeros((1, 4, 5, 6), np.float32)
    prob = np.zeros((1, 2, 5, 6), np.float32)
    prob[0, 1, 2, 3] = 0.9  # row 2, column 3
    boxes, _ = metrics.mtcnn_pnet_boxes((reg, prob))
    assert boxes.tolist() == [[7.0, 5.0, 18.0, 16.0]]


def test_picodet_decode_places_a_box_around_its_cell(metrics):
    hw, strides, classes, bins = (64, 64), (8, 16, 32, 64), 3, 8
    scores, dists = [], []
    for s in strides:
        cells = -(-hw[0] // s) * -(-hw[1] // s)
        scores.append(np.zeros((1, cells, classes), np.float32))
        d = np.full((1, cells, 4 * bins), -10.0, np.float32)
        d[..., [2, bins + 2, 2 * bins + 2, 3 * bins + 2]] = 10.0  # every side 2 bins away
        dists.append(d)
    scores[0][0, 9, 1] = 0.9  # stride 8, cell (row 1, column 1): centre (12, 12)
    boxes, labels = metrics.picodet_boxes((*scores, *dists), hw, strides)
    assert labels.tolist() == [1]
    np.testing.assert_allclose(boxes[0], [12 - 16, 12 - 16, 12 + 16, 12 + 16], atol=1e-3)


def test_fix_input_shapes_makes_inputs_static_and_infers_outputs(script):
    from real_models.onnx_files import dims, fix_input_shapes

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    fixed = fix_input_shapes(model, {"x": [1, 3, 8, 8]})
    assert dims(fixed.graph.input[0]) == [1, 3, 8, 8]
    assert dims(fixed.graph.output[0]) == [1, 3, 8, 8]
    onnx.checker.check_model(fixed)
    with pytest.raises(ValueError):
        fix_input_shapes(model, {"image": [1, 3, 8, 8]})


def test_atomic_path_leaves_nothing_when_the_write_fails(script, tmp_path):
    from real_models.onnx_files import atomic_path

    dest = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_every_model_is_pinned_and_has_a_metric(script):
    specs = script.all_specs()
    assert len(specs) >= 8
    for name, spec in specs.items():
        assert spec.source.package in script.PIP_PINS, name
        assert name in script.MODEL_METRICS, name
        assert all(isinstance(d, int) for shape in spec.input_shapes.values() for d in shape), name
