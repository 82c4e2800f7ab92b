"""PP-OCR's text detector, recognizer and direction classifier (rapidocr-onnxruntime) on rendered text."""

from __future__ import annotations

import math
import random

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFont

from . import corpus, images
from .metrics import box_iou, ctc_greedy, edit_distance, text_regions
from .onnx_files import fix_shipped
from .spec import ModelData, ModelSpec, Source, split

LICENSE = "Apache-2.0 (rapidocr and the PaddleOCR models)"
DET = Source("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", LICENSE)
REC = Source("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", LICENSE)
CLS = Source("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", LICENSE)
DET_HW = (480, 640)  # a VGA camera frame; multiples of 32 as DBNet needs
REC_HW = (48, 320)  # rapidocr's rec_img_shape
CLS_HW = (48, 192)  # rapidocr's cls_image_shape
# rapidocr's det config: normalise with mean = std = 0.5; rec and cls: (x / 255 - 0.5) / 0.5. All BGR (cv2).
HALF = [0.5, 0.5, 0.5]


def characters(rec_path) -> list[str]:
    """The recognizer's classes, as rapidocr builds them: the model's 'character' metadata
    (one per line), a space appended, and the CTC blank inserted at 0."""
    meta = {p.key: p.value for p in onnx.load(str(rec_path), load_external_data=False).metadata_props}
    return ["blank"] + meta["character"].splitlines() + [" "]


def line_input(image: Image.Image, hw: tuple[int, int]) -> np.ndarray:
    """rapidocr resize_norm_img: height to hw[0] keeping the aspect ratio (capped at hw[1] wide),
    normalised, zero-padded on the right."""
    w, h = image.size
    width = min(hw[1], math.ceil(hw[0] * w / h))
    out = np.zeros((3, *hw), np.float32)
    out[:, :, :width] = images.to_chw(image.resize((width, hw[0]), Image.BILINEAR), HALF, HALF, bgr=True)
    return out


def short_phrases(rng: random.Random, n: int, max_chars: int = 16) -> list[str]:
    """Word runs from the prose, as short as labels: text the eval lines do not contain."""
    out = []
    while len(out) < n:
        words = rng.choice(corpus.SENTENCES).split()
        start = rng.randrange(len(words))
        phrase = " ".join(words[start:start + rng.randint(1, 3)])
        if len(phrase) <= max_chars:
            out.append(phrase)
    return out


# ---- recognizer -------------------------------------------------------------------------------

def rec_data() -> ModelData:
    rng = random.Random(41)
    calib_texts, eval_texts = short_phrases(rng, 48), corpus.OCR_LINES
    lines = [line_input(images.render_line(rng, t), REC_HW)[None] for t in calib_texts + eval_texts]
    calib, eval_ = split({"x": np.stack(lines)}, len(calib_texts))
    return ModelData(calib, eval_, list(eval_texts), {
        "images": "printed text lines rendered with PIL in DejaVu/Liberation fonts (regular and bold), random "
                  "ink/paper tones (20% light-on-dark), margins, blur and noise; resized to height 48, padded to 320",
        "calib": f"{len(calib_texts)} phrases cut from prose", "eval": f"{len(eval_texts)} label/receipt/sign lines",
        "truth": "the rendered string"})


def rec_sanity(outputs: list, truth: list, chars: list[str]) -> dict:
    decoded = ["".join(chars[i] for i in ctc_greedy(o[0][0])).strip() for o in outputs]
    errors = sum(edit_distance(d, t) for d, t in zip(decoded, truth))
    wrong = [(t, d) for d, t in zip(decoded, truth) if d != t]
    return {"exact_match": 1 - len(wrong) / len(truth), "cer": errors / sum(len(t) for t in truth),
            "examples_wrong": wrong[:5]}


# ---- direction classifier ---------------------------------------------------------------------

def cls_data() -> ModelData:
    rng = random.Random(42)
    texts = short_phrases(rng, 48, 24) + corpus.OCR_LINES[:64]
    flips = [i % 2 for i in range(len(texts))]
    lines = []
    for text, flip in zip(texts, flips):
        line = images.render_line(rng, text)
        lines.append(line_input(line.rotate(180) if flip else line, CLS_HW)[None])
    arrays = {"x": np.stack(lines), "label": np.array(flips, np.int64)}
    calib, eval_ = split(arrays, 48)
    return ModelData(calib, eval_, flips[48:], {
        "images": "rendered text lines (as for the recognizer), every other one turned 180 degrees; "
                  "height 48, padded to 192", "calib": 48, "eval": len(texts) - 48,
        "label": "0 upright, 1 upside down (the model's label_list ['0', '180'])"})


def top1_sanity(outputs: list, truth: list) -> dict:
    predicted = [int(np.argmax(o[0])) for o in outputs]
    return {"accuracy": float(np.mean([p == t for p, t in zip(predicted, truth)]))}


# ---- detector ---------------------------------------------------------------------------------

def page_frame(rng: random.Random) -> tuple[Image.Image, list]:
    """A 640x480 view of a printed page (as a phone would frame it), and the lines wholly inside."""
    page = images.render_page(rng)
    scale = rng.uniform(0.55, 0.8)  # the page (1216 px wide) stays wider than the frame
    w, h = int(page.image.width * scale), int(page.image.height * scale)
    x0, y0 = rng.randint(0, w - DET_HW[1]), rng.randint(0, min(int(h * 0.6), h - DET_HW[0]))
    frame = page.image.resize((w, h), Image.BILINEAR).crop((x0, y0, x0 + DET_HW[1], y0 + DET_HW[0]))
    lines = [tuple(c * scale - o for c, o in zip(b, (x0, y0, x0, y0))) for b in page.lines]
    return frame, [b for b in lines if b[0] >= 0 and b[1] >= 0 and b[2] <= DET_HW[1] and b[3] <= DET_HW[0]]


def sign_frame(rng: random.Random) -> tuple[Image.Image, list]:
    """A photo with 2-4 labels or signs on it (text on a plate, or straight on the picture)."""
    name = rng.choice(images.SCENE_PHOTOS + images.FACE_PHOTOS)
    frame = images.photometric(rng, images.random_crop(rng, images.photo(name), DET_HW[::-1], 0.5))
    draw, lines = ImageDraw.Draw(frame), []
    for text in rng.sample(corpus.OCR_LINES, rng.randint(2, 4)):
        font = ImageFont.truetype(rng.choice(images.fonts() + images.bold_fonts()), rng.randint(18, 40))
        x, y = rng.randint(10, 400), rng.randint(10, 430)
        box = draw.textbbox((x, y), text, font=font)
        if box[2] > DET_HW[1] - 10 or box[3] > DET_HW[0] - 8 or _overlaps(box, lines):
            continue
        if rng.random() < 0.7:
            plate = tuple(rng.randint(200, 255) for _ in range(3))
            draw.rectangle((box[0] - 8, box[1] - 6, box[2] + 8, box[3] + 6), fill=plate)
            ink = (20, 20, 20)
        else:
            ink = (255, 255, 255) if np.asarray(frame.crop(box)).mean() < 128 else (0, 0, 0)
        draw.text((x, y), text, font=font, fill=ink)
        lines.append(box)
    return frame, lines


def _overlaps(box, boxes: list, margin: int = 12) -> bool:
    grown = np.array([[box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin]], float)
    return bool(boxes) and box_iou(grown, np.array(boxes, float)).max() > 0


def det_data() -> ModelData:
    rng = random.Random(43)
    frames = [(page_frame if i % 2 else sign_frame)(rng) for i in range(72)]
    arrays = {"x": np.stack([images.to_chw(f, HALF, HALF, bgr=True)[None] for f, _ in frames])}
    calib, eval_ = split(arrays, 32)
    return ModelData(calib, eval_, [[list(map(float, b)) for b in lines] for _, lines in frames[32:]], {
        "images": "480x640 frames: views of rendered report pages (paragraphs, tables, captions) at 55-80% "
                  "scale, and skimage.data photos with 2-4 printed labels/signs drawn on them",
        "calib": 32, "eval": 40, "truth": "boxes of the printed lines wholly inside the frame"})


def unclip(boxes: np.ndarray, ratio: float = 1.6) -> np.ndarray:
    """DB's region grows back by area x ratio / perimeter (rapidocr unclip_ratio 1.6), on boxes."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    d = (w * h * ratio / np.maximum(2 * (w + h), 1e-9))[:, None]
    return boxes + np.concatenate([-d, -d, d, d], axis=1)


def det_sanity(outputs: list, truth: list) -> dict:
    """Printed lines found: a detected region, grown back as DB's unclip does, overlapping the
    line's tight glyph box (PIL textbbox) with IoU > 0.3. IoU 0.3, not 0.5: the unclipped region
    keeps a margin around the glyphs, which halves the IoU of short words (a 20x12 px cell)."""
    found = total = regions = matched_regions = 0
    for out, lines in zip(outputs, truth):
        boxes = unclip(text_regions((out[0],))[0])
        lines = np.array(lines).reshape(-1, 4)
        iou = box_iou(lines, boxes)
        total, regions = total + len(lines), regions + len(boxes)
        found += int((iou.max(axis=1, initial=0) > 0.3).sum()) if len(boxes) else 0
        matched_regions += int((iou.max(axis=0, initial=0) > 0.1).sum()) if len(lines) else 0
    return {"lines": total, "line_recall_iou0.3": found / max(total, 1),
            "regions_on_a_line": matched_regions / max(regions, 1)}


def _shipped(shapes):
    return lambda src, dest, feed: fix_shipped(src, dest, shapes, feed)


SPECS = [
    ModelSpec("ocr_det", "text detector (DBNet, PP-OCRv4 mobile; paddle2onnx)",
              "per-pixel text probability map; regions above 0.3 are text lines", DET,
              {"x": [1, 3, *DET_HW]}, _shipped({"x": [1, 3, *DET_HW]}), det_data, det_sanity),
    ModelSpec("ocr_rec", "CTC text recognizer (SVTR-LCNet, PP-OCRv4 mobile; paddle2onnx)",
              "per-column character probabilities over 6625 classes (Chinese, Latin, digits, punctuation)",
              REC, {"x": [1, 3, *REC_HW]}, _shipped({"x": [1, 3, *REC_HW]}), rec_data,
              lambda outputs, truth: rec_sanity(outputs, truth, characters(REC.path())),
              lambda src: {"characters": characters(src)}),
    ModelSpec("ocr_cls", "image classifier (MobileNetV3, PP-OCR v2.0 direction classifier; paddle2onnx)",
              "is a text line upright (0) or upside down (180)", CLS,
              {"x": [1, 3, *CLS_HW]}, _shipped({"x": [1, 3, *CLS_HW]}), cls_data, top1_sanity),
]
