"""What each real model's users measure, computed from raw outputs (numpy only).

Every metric compares a candidate run (an edgekit artifact, an int8 model, ...) with a reference
run (the fp32 ONNX in ONNX Runtime) on the same samples. A run is a list with one entry per sample;
an entry is the model's outputs in ONNX output order (a tuple of arrays, or one array for a
single-output model). The decoders here are the small, honest versions of what the models' own
packages do after inference (greedy CTC, MTCNN's box generation, PicoDet's distribution decode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

Sample = tuple[np.ndarray, ...]


def as_samples(run: Sequence) -> list[Sample]:
    """Each per-sample entry as a tuple of float64 arrays (a bare array is a one-output model)."""
    out = []
    for entry in run:
        arrays = (entry,) if isinstance(entry, np.ndarray) else tuple(entry)
        out.append(tuple(np.asarray(a, dtype=np.float64) for a in arrays))
    return out


def output_cosine(reference: list[Sample], candidate: list[Sample]) -> dict:
    """Cosine similarity of each sample's outputs, flattened and joined, as min and mean."""
    values = []
    for ref, cand in zip(reference, candidate, strict=True):
        a = np.concatenate([x.ravel() for x in ref])
        b = np.concatenate([x.ravel() for x in cand])
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        # Two all-zero outputs are identical; one all-zero output against another is not.
        values.append(1.0 if denom == 0 and not b.any() and not a.any() else float(a @ b / denom) if denom else 0.0)
    return {"cosine_min": min(values), "cosine_mean": float(np.mean(values))}


# ---- classification and decisions ------------------------------------------------------------

def top1_agreement(reference: list[Sample], candidate: list[Sample], output: int = 0) -> dict:
    ref = [int(np.argmax(s[output])) for s in reference]
    cand = [int(np.argmax(s[output])) for s in candidate]
    return {"top1_agreement": float(np.mean([r == c for r, c in zip(ref, cand)]))}


def decisions(sample: Sample, output: int, channel: int | None, threshold: float) -> np.ndarray:
    """Boolean decisions of one sample: output[..., channel] (or the whole output) >= threshold."""
    x = sample[output]
    # Class scores sit on axis 1, as (1, classes) per window or (1, classes, H, W) per cell.
    x = x[:, channel] if channel is not None else x
    return x.ravel() >= threshold


def decision_agreement(reference: list[Sample], candidate: list[Sample], output: int = 0,
                       threshold: float = 0.5, channel: int | None = None) -> dict:
    """Fraction of decisions (every frame, cell or window) on which both runs agree."""
    agree = [decisions(r, output, channel, threshold) == decisions(c, output, channel, threshold)
             for r, c in zip(reference, candidate)]
    flat = np.concatenate(agree)
    positives = np.concatenate([decisions(r, output, channel, threshold) for r in reference])
    return {"decision_agreement": float(flat.mean()), "reference_positive_rate": float(positives.mean())}


def nearest_neighbour_agreement(reference: list[Sample], candidate: list[Sample], output: int = 0) -> dict:
    """For embeddings: does each sample's most similar other sample stay the same?"""
    def neighbours(run):
        e = np.stack([s[output].ravel() for s in run])
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return sim.argmax(axis=1)
    return {"nearest_neighbour_agreement": float(np.mean(neighbours(reference) == neighbours(candidate)))}


# ---- text: CTC recognizer ---------------------------------------------------------------------

def ctc_greedy(probs: np.ndarray, blank: int = 0) -> list[int]:
    """Best-path CTC decode of (T, classes) scores: argmax, merge repeats, drop blanks."""
    best = probs.reshape(-1, probs.shape[-1]).argmax(axis=1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(i) for i in best[keep] if i != blank]


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def ctc_cer(reference: list[Sample], candidate: list[Sample], output: int = 0, blank: int = 0) -> dict:
    """Character error rate of the candidate's decode against the reference's decode.

    Decoded class ids stand for characters one to one, so the CER on ids is the CER on text."""
    ref = [ctc_greedy(s[output], blank) for s in reference]
    cand = [ctc_greedy(s[output], blank) for s in candidate]
    errors = sum(edit_distance(r, c) for r, c in zip(ref, cand))
    return {"cer": errors / max(1, sum(len(r) for r in ref)),
            "string_agreement": float(np.mean([r == c for r, c in zip(ref, cand)]))}


# ---- boxes ------------------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N, 4) and (M, 4) corner boxes x1, y1, x2, y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        keep.append(order[0])
        order = order[1:][box_iou(boxes[order[:1]], boxes[order[1:]])[0] <= iou]
    return np.array(keep, dtype=np.int64)


def matched_fraction(ref_boxes: np.ndarray, cand_boxes: np.ndarray, iou: float = 0.5,
                     ref_labels: np.ndarray | None = None, cand_labels: np.ndarray | None = None) -> tuple[int, int]:
    """(matched, total): reference boxes matched one to one by a candidate box (same label) with IoU > iou."""
    overlap = box_iou(ref_boxes, cand_boxes)
    if ref_labels is not None and len(ref_boxes) and len(cand_boxes):
        overlap = np.where(ref_labels[:, None] == cand_labels[None, :], overlap, 0.0)
    used, matched = set(), 0
    for i in np.argsort(-overlap.max(axis=1)) if overlap.size else []:
        j = next((j for j in np.argsort(-overlap[i]) if j not in used and overlap[i, j] > iou), None)
        if j is not None:
            used.add(j)
            matched += 1
    return matched, len(ref_boxes)


def box_agreement(ref_sets: list, cand_sets: list, iou: float = 0.5) -> dict:
    """Over all samples: fraction of reference detections the candidate reproduces (and the reverse)."""
    m_ref = m_cand = n_ref = n_cand = 0
    for (rb, rl), (cb, cl) in zip(ref_sets, cand_sets):
        m, n = matched_fraction(rb, cb, iou, rl, cl)
        m_ref, n_ref = m_ref + m, n_ref + n
        m, n = matched_fraction(cb, rb, iou, cl, rl)
        m_cand, n_cand = m_cand + m, n_cand + n
    return {"box_recall": m_ref / n_ref if n_ref else 1.0, "box_precision": m_cand / n_cand if n_cand else 1.0,
            "reference_boxes": n_ref}


def mtcnn_pnet_boxes(sample: Sample, threshold: float = 0.6, nms_iou: float = 0.5) -> tuple:
    """PNet's proposals in input pixels: cells with face probability >= threshold, each a 12x12
    window at stride 2 moved by the regression offsets (facenet_pytorch generateBoundingBox + bbreg)."""
    reg, prob = sample[0][0], sample[1][0, 1]
    ys, xs = np.nonzero(prob >= threshold)
    q1 = np.stack([xs, ys], axis=1) * 2.0 + 1
    q2 = np.stack([xs, ys], axis=1) * 2.0 + 12
    boxes = np.concatenate([q1, q2], axis=1)
    size = (boxes[:, 2:] - boxes[:, :2])
    offsets = reg[:, ys, xs].T
    boxes = boxes + offsets * np.concatenate([size, size], axis=1)
    keep = nms(boxes, prob[ys, xs], nms_iou)
    return boxes[keep], None


def window_boxes(sample: Sample, reg_output: int, prob_output: int, threshold: float) -> tuple:
    """RNet/ONet on one window: its regressed box in unit window coordinates, if it is a face."""
    if sample[prob_output].ravel()[1] < threshold:
        return np.zeros((0, 4)), None
    return (np.array([0.0, 0.0, 1.0, 1.0]) + sample[reg_output].ravel()[:4])[None], None


def text_regions(sample: Sample, threshold: float = 0.3, min_area: int = 10) -> tuple:
    """DB text detector: bounding boxes of connected regions of probability > threshold."""
    from scipy import ndimage  # scipy ships with scikit-learn in the project's dev environment

    mask = sample[0].reshape(sample[0].shape[-2:]) > threshold
    labels, _ = ndimage.label(mask)
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndimage.find_objects(labels)
             if (s[0].stop - s[0].start) * (s[1].stop - s[1].start) >= min_area]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), None


def picodet_boxes(sample: Sample, input_hw: tuple[int, int] = (800, 608), strides=(8, 16, 32, 64),
                  threshold: float = 0.5, nms_iou: float = 0.5) -> tuple:
    """PicoDet (GFL head) decode as rapid_layout does: per-level class scores and 4 x (reg_max+1)
    distance distributions, softmax expectation x stride from cell centres, NMS per class."""
    levels = len(strides)
    boxes, scores = [], []
    for stride, score, dist in zip(strides, sample[:levels], sample[levels:]):
        h, w = -(-input_hw[0] // stride), -(-input_hw[1] // stride)
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        centre = np.stack([(xx.ravel() + 0.5) * stride, (yy.ravel() + 0.5) * stride] * 2, axis=1)
        d = dist[0].reshape(-1, 4, dist.shape[-1] // 4)
        d = np.exp(d - d.max(axis=2, keepdims=True))
        d = (d / d.sum(axis=2, keepdims=True) * np.arange(d.shape[2])).sum(axis=2) * stride
        boxes.append(centre + d * np.array([-1, -1, 1, 1]))
        scores.append(score[0])
    boxes, scores = np.concatenate(boxes), np.concatenate(scores)
    out_boxes, out_labels = [], []
    for cls in range(scores.shape[1]):
        idx = np.nonzero(scores[:, cls] > threshold)[0]
        keep = idx[nms(boxes[idx], scores[idx, cls], nms_iou)]
        out_boxes.append(boxes[keep])
        out_labels += [cls] * len(keep)
    return np.concatenate(out_boxes).reshape(-1, 4), np.array(out_labels, dtype=np.int64)


def text_mask_iou(reference: list[Sample], candidate: list[Sample], threshold: float = 0.3) -> dict:
    ious = []
    for r, c in zip(reference, candidate):
        a, b = r[0] > threshold, c[0] > threshold
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else np.logical_and(a, b).sum() / union)
    return {"text_mask_iou_mean": float(np.mean(ious)), "text_mask_iou_min": float(np.min(ious))}


# ---- the registry: one entry per model --------------------------------------------------------

@dataclass(frozen=True)
class ModelMetric:
    """How one model is judged: `name` is the headline key in `compute`'s result."""

    name: str
    compute: Callable[[list[Sample], list[Sample]], dict]
    info: dict = field(default_factory=dict)  # what the metric needs, written to meta.json


def _boxes_metric(decode: Callable[[Sample], tuple]) -> Callable:
    return lambda ref, cand: box_agreement([decode(s) for s in ref], [decode(s) for s in cand])


def _text_detector(ref, cand):
    return {**_boxes_metric(text_regions)(ref, cand), **text_mask_iou(ref, cand)}


def _window_detector(reg_output: int, prob_output: int, threshold: float) -> Callable:
    def compute(ref, cand):
        boxes = _boxes_metric(lambda s: window_boxes(s, reg_output, prob_output, threshold))(ref, cand)
        return {**decision_agreement(ref, cand, prob_output, threshold, channel=1), **boxes}
    return compute


MODEL_METRICS: dict[str, ModelMetric] = {
    "ocr_det": ModelMetric("box_recall", _text_detector,
                           {"output": 0, "threshold": 0.3, "boxes": "connected regions of prob > 0.3, area >= 10 px",
                            "match_iou": 0.5}),
    "ocr_rec": ModelMetric("cer", lambda r, c: ctc_cer(r, c, 0, 0),
                           {"output": 0, "decode": "greedy CTC", "blank": 0,
                            "characters": "meta.json 'characters': class i is characters[i]; 0 is the CTC blank"}),
    "ocr_cls": ModelMetric("top1_agreement", top1_agreement, {"output": 0, "labels": ["0", "180"]}),
    "doc_orientation": ModelMetric("top1_agreement", top1_agreement, {"output": 0, "labels": ["0", "90", "180", "270"]}),
    "layout_cdla": ModelMetric("box_recall", _boxes_metric(picodet_boxes),
                               {"decode": "PicoDet GFL: outputs 0-3 class scores, 4-7 distance distributions, "
                                          "strides 8/16/32/64", "score_threshold": 0.5, "nms_iou": 0.5,
                                "match_iou": 0.5, "match": "same class"}),
    "mtcnn_pnet": ModelMetric("box_recall", _boxes_metric(mtcnn_pnet_boxes),
                              {"prob_output": 1, "prob_channel": 1, "reg_output": 0, "threshold": 0.6,
                               "cell": 12, "stride": 2, "nms_iou": 0.5, "match_iou": 0.5}),
    "mtcnn_rnet": ModelMetric("decision_agreement", _window_detector(0, 1, 0.7),
                              {"prob_output": 1, "prob_channel": 1, "reg_output": 0, "threshold": 0.7}),
    "mtcnn_onet": ModelMetric("decision_agreement", _window_detector(0, 2, 0.7),
                              {"prob_output": 2, "prob_channel": 1, "reg_output": 0, "landmark_output": 1,
                               "threshold": 0.7}),
    "silero_vad": ModelMetric("decision_agreement", lambda r, c: decision_agreement(r, c, 0, 0.5),
                              {"output": 0, "threshold": 0.5, "decision": "speech if output >= 0.5"}),
    "oww_melspec": ModelMetric("cosine_min", lambda r, c: {}, {"output": 0, "note": "feature extractor: output cosine"}),
    "oww_embedding": ModelMetric("cosine_min", lambda r, c: {}, {"output": 0, "note": "feature extractor: output cosine"}),
    "oww_hey_jarvis": ModelMetric("decision_agreement", lambda r, c: decision_agreement(r, c, 0, 0.5),
                                  {"output": 0, "threshold": 0.5, "decision": "wake word if score >= 0.5"}),
    "minilm_l6": ModelMetric("cosine_min", nearest_neighbour_agreement,
                             {"output": 0, "note": "L2-normalised sentence embedding: cosine, nearest-neighbour agreement"}),
}


def metric(name: str, reference_outputs: Sequence, candidate_outputs: Sequence) -> dict:
    """Model `name`'s own metric plus min/mean output cosine, candidate run against reference run.

    Each run is a list with one entry per sample (a tuple of output arrays in ONNX order, or one
    array). The result holds the model's keys (see MODEL_METRICS), cosine_min, cosine_mean, and
    `metric`: the name of the headline key. KeyError for a model not in MODEL_METRICS; ValueError
    when the runs have different sample counts."""
    spec = MODEL_METRICS[name]
    ref, cand = as_samples(reference_outputs), as_samples(candidate_outputs)
    if len(ref) != len(cand):
        raise ValueError(f"{len(ref)} reference samples but {len(cand)} candidate samples")
    return {"metric": spec.name, **spec.compute(ref, cand), **output_cosine(ref, cand)}
