"""MTCNN's three stages from facenet-pytorch, and the face photos and crops they are fed.

facenet_pytorch's package __init__ imports torchvision (for batched_nms and image transforms),
which does not install beside this project's CPU torch build. The three networks themselves need
only torch, so their class definitions are taken from the package's own mtcnn.py source and
executed alone; the weights are the package's data/pnet.pt, rnet.pt and onet.pt.
"""

from __future__ import annotations

import ast
import random
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from . import images
from .metrics import box_iou, nms
from .onnx_files import export_torch
from .spec import ModelData, ModelSpec, Source, split

PACKAGE = "facenet-pytorch"
NET_FILES = {"pnet": "facenet_pytorch/data/pnet.pt", "rnet": "facenet_pytorch/data/rnet.pt",
             "onet": "facenet_pytorch/data/onet.pt"}
MTCNN_SOURCE = "facenet_pytorch/models/mtcnn.py"
THRESHOLDS = (0.6, 0.7, 0.7)  # facenet_pytorch.MTCNN defaults per stage
PNET_SIZE = (240, 320)  # (H, W): one pyramid level of a VGA frame


def load_net(stage: str, weights: Path):
    """PNet, RNet or ONet with the package's weights, built from the package's class source."""
    import torch
    from torch import nn

    source = Path(weights).parent.parent / "models" / "mtcnn.py"
    tree = ast.parse(source.read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in ("PNet", "RNet", "ONet")]
    namespace = {"torch": torch, "nn": nn, "np": np, "os": __import__("os"), "__file__": str(source)}
    exec(compile(ast.Module(body=classes, type_ignores=[]), str(source), "exec"), namespace)  # noqa: S102
    net = namespace[stage.upper().replace("NET", "Net")](pretrained=False)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


@lru_cache(maxsize=None)
def nets() -> dict:
    return {stage: load_net(stage, Source(PACKAGE, f, "").path()) for stage, f in NET_FILES.items()}


def normalise(array: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB to CHW float32 as facenet_pytorch feeds its nets: (x - 127.5) / 128."""
    return ((array.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)


def run(stage: str, batch: np.ndarray) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [o.numpy() for o in nets()[stage](torch.from_numpy(batch))]


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet_pytorch rerec: grow each box to a square around its centre."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x1, y1 = boxes[:, 0] + w / 2 - side / 2, boxes[:, 1] + h / 2 - side / 2
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box cut from the image (clipped to it) and resized to size x size, normalised, NCHW."""
    h, w = image.shape[:2]
    out = []
    for x1, y1, x2, y2 in boxes.astype(int):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        patch = Image.fromarray(image[y1:y2, x1:x2]).resize((size, size), Image.BOX)
        out.append(normalise(np.asarray(patch)))
    return np.stack(out) if out else np.zeros((0, 3, size, size), np.float32)


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    size = np.concatenate([boxes[:, 2:4] - boxes[:, :2]] * 2, axis=1)
    return boxes[:, :4] + reg * size


def pnet_proposals(image: np.ndarray, min_face: int = 20, factor: float = 0.709) -> np.ndarray:
    """Stage 1 over an image pyramid (facenet_pytorch detect_face): squared candidate boxes."""
    h, w = image.shape[:2]
    scale, found = 12.0 / min_face, []
    while min(h, w) * scale >= 12:
        level = np.asarray(Image.fromarray(image).resize((int(w * scale + 1), int(h * scale + 1)), Image.BOX))
        reg, prob = run("pnet", normalise(level)[None])
        ys, xs = np.nonzero(prob[0, 1] >= THRESHOLDS[0])
        cells = np.stack([xs, ys], axis=1).astype(np.float64)
        boxes = np.concatenate([np.floor((2 * cells + 1) / scale), np.floor((2 * cells + 12) / scale)], axis=1)
        scores = prob[0, 1, ys, xs]
        keep = nms(boxes, scores, 0.5)
        found.append((boxes[keep], scores[keep], reg[0][:, ys, xs].T[keep]))
        scale *= factor
    boxes = np.concatenate([f[0] for f in found]).reshape(-1, 4)
    scores = np.concatenate([f[1] for f in found])
    regs = np.concatenate([f[2] for f in found]).reshape(-1, 4)
    keep = nms(boxes, scores, 0.7)
    return square(regress(boxes[keep], regs[keep]))


def refine(stage: str, image: np.ndarray, boxes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RNet or ONet on the candidate windows: (windows fed, kept boxes regressed and squared, their scores)."""
    size = 24 if stage == "rnet" else 48
    windows = crops(image, boxes, size)
    if not len(windows):
        return windows, boxes, np.zeros(0)
    outputs = run(stage, windows)
    reg, prob = outputs[0], outputs[-1][:, 1]
    ok = prob > threshold
    kept, scores = regress(boxes[ok], reg[ok]), prob[ok]
    keep = nms(kept, scores, 0.7)
    return windows, square(kept[keep]) if stage == "rnet" else kept[keep], scores[keep]


def detect(image: np.ndarray) -> dict:
    """The whole cascade on one RGB image: what each stage was fed and the final face boxes."""
    proposals = pnet_proposals(image)
    rnet_in, candidates, _ = refine("rnet", image, proposals, THRESHOLDS[1])
    onet_in, faces, scores = refine("onet", image, candidates, THRESHOLDS[2])
    return {"rnet_windows": rnet_in, "onet_windows": onet_in, "faces": faces, "scores": scores}


FRAME = (PNET_SIZE[1] * 2, PNET_SIZE[0] * 2)  # (w, h): the 480x640 camera frame a 240x320 level halves


@lru_cache(maxsize=None)
def face_box(name: str) -> np.ndarray:
    """Where the cascade finds the face in a whole skimage.data photo (one face in each)."""
    return detect(np.asarray(images.photo(name)))["faces"][0]


def frame(rng: random.Random, with_face: bool) -> tuple[Image.Image, list]:
    """A 480x640 camera frame of a room: a scene photo as the backdrop and, with_face, 1-4 prints of
    the face photos hung on it, scaled so each face spans 24-40 px (12-20 px at the 240x320 level,
    where PNet's 12 px window finds them). Returns the frame and its face boxes."""
    canvas = images.photometric(rng, images.random_crop(rng, images.photo(rng.choice(images.SCENE_PHOTOS)), FRAME, 0.5))
    prints, faces = [], []
    for _ in range(rng.randint(1, 4) if with_face else 0):
        name = rng.choice(images.FACE_PHOTOS)
        box = face_box(name)
        scale = rng.uniform(24, 40) / (box[2] - box[0])
        pic = images.photometric(rng, images.photo(name).resize(
            (int(images.photo(name).width * scale), int(images.photo(name).height * scale)), Image.BILINEAR), mirror=False)
        for _ in range(20):  # a free spot on the wall
            x, y = rng.randint(-pic.width // 4, FRAME[0] - pic.width * 3 // 4), rng.randint(0, max(0, FRAME[1] - pic.height))
            spot = np.array([[x, y, x + pic.width, y + pic.height]], float)
            face = box * scale + [x, y, x, y]
            inside = face[0] >= 0 and face[2] <= FRAME[0] and face[3] <= FRAME[1]
            if inside and not (prints and box_iou(spot, np.array(prints)).max() > 0):
                canvas.paste(pic, (x, y))
                prints.append(spot[0])
                faces.append(face.tolist())
                break
    return canvas, faces


def pnet_data() -> ModelData:
    """PNet at one 240x320 pyramid level: the 480x640 frames above halved with a box filter, two
    thirds with faces. Truth: the pasted faces' boxes (the cascade's box on the whole photo, moved)."""
    rng = random.Random(11)
    frames = [frame(rng, with_face=i % 3 != 2) for i in range(112)]
    inputs = np.stack([normalise(np.asarray(f.resize(PNET_SIZE[::-1], Image.BOX)))[None] for f, _ in frames])
    truth = [(np.array(boxes).reshape(-1, 4) / 2).tolist() for _, boxes in frames[48:]]
    calib, eval_ = split({"input": inputs}, 48)
    return ModelData(calib, eval_, truth, {
        "images": "480x640 frames: a skimage.data scene (coffee, chelsea, rocket, ...) as backdrop with 1-4 prints "
                  "of skimage.data astronaut/camera hung on it (faces 24-40 px), brightness/contrast/mirror/blur/"
                  "noise; one third without faces; halved to 240x320 with a box filter (one pyramid level)",
        "preprocessing": "RGB, (x - 127.5) * 0.0078125, NCHW (facenet_pytorch)", "calib": 48, "eval": len(truth),
        "truth": "face boxes in level pixels: the MTCNN cascade's box on the whole photo, scaled and moved"})


def window_data(stage: str) -> ModelData:
    """RNet/ONet inputs as the cascade makes them: the previous stage's candidate windows on real
    frames (faces and false alarms alike), plus labelled skimage.data.lfw_subset crops (100 faces,
    100 non-faces, 25x25 greyscale) so that both decisions are well represented."""
    rng = random.Random(12 if stage == "rnet" else 13)
    size = 24 if stage == "rnet" else 48
    windows, truth = [], []
    for i in range(40):
        result = detect(np.asarray(frame(rng, with_face=i % 2 == 0)[0]))
        fed = result[f"{stage}_windows"]
        picks = rng.sample(range(len(fed)), min(3, len(fed)))
        windows += [fed[j] for j in picks]
        truth += [None] * len(picks)  # unlabelled: a candidate window of the cascade
    crops_, labels = images.lfw_faces()
    order = rng.sample(range(200), 200)
    for j in order[:80]:
        rgb = np.stack([crops_[j]] * 3, axis=-1)
        windows.append(normalise(np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))))
        truth.append(int(labels[j]))
    # Interleave so calib and eval both get cascade windows and labelled crops.
    idx = rng.sample(range(len(windows)), len(windows))
    arrays = {"input": np.stack([windows[i][None] for i in idx]).astype(np.float32)}
    truth = [truth[i] for i in idx]
    n_calib = min(64, len(idx) // 2)
    calib, eval_ = split(arrays, n_calib)
    return ModelData(calib, eval_, truth[n_calib:], {
        "windows": f"{size}x{size} windows: candidates of the MTCNN cascade's previous stage on the 480x640 "
                   "frames of pnet_data (face prints on scene backdrops), and skimage.data.lfw_subset crops "
                   "(faces/non-faces, upscaled from 25x25)",
        "preprocessing": "RGB, (x - 127.5) * 0.0078125, NCHW", "calib": n_calib, "eval": len(idx) - n_calib,
        "truth": "1/0 for lfw_subset face/non-face crops, null for cascade windows"})


def pnet_sanity(outputs: list, truth: list) -> dict:
    """Recall of the cascade's faces among PNet's own proposals at this one level (IoU > 0.3:
    PNet proposals are rough), and how many proposals frames without faces get."""
    from .metrics import mtcnn_pnet_boxes

    found = total = 0
    false_alarms = []
    for out, faces in zip(outputs, truth):
        boxes, _ = mtcnn_pnet_boxes(tuple(out), THRESHOLDS[0])
        faces = np.array(faces).reshape(-1, 4)
        total += len(faces)
        found += int((box_iou(faces, boxes).max(axis=1, initial=0) > 0.3).sum()) if len(boxes) else 0
        if not len(faces):
            false_alarms.append(len(boxes))
    return {"faces": total, "face_recall_iou0.3": found / max(total, 1),
            "proposals_per_faceless_frame": float(np.mean(false_alarms)) if false_alarms else None}


def window_sanity(prob_output: int) -> callable:
    def sanity(outputs: list, truth: list) -> dict:
        pairs = [(int(o[prob_output].ravel()[1] > 0.7), t) for o, t in zip(outputs, truth) if t is not None]
        faces = [p for p, t in pairs if t == 1]
        others = [p for p, t in pairs if t == 0]
        return {"lfw_faces": len(faces), "lfw_face_recall": float(np.mean(faces)),
                "lfw_non_faces": len(others), "lfw_non_face_rejection": 1 - float(np.mean(others)),
                "cascade_windows": sum(t is None for t in truth)}
    return sanity


OUTPUTS = {"pnet": ["reg", "prob"], "rnet": ["reg", "prob"], "onet": ["reg", "landmarks", "prob"]}


def exporter(stage: str):
    def build(src: Path, dest: Path, feed: dict) -> str:
        import torch

        from .onnx_files import run_onnx

        net = load_net(stage, src)
        example = (torch.from_numpy(np.asarray(feed["input"])),)
        made = export_torch(net, example, dest, ["input"], OUTPUTS[stage])
        with torch.no_grad():
            expected = [o.numpy() for o in net(*example)]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(run_onnx(dest, [feed])[0], expected))
        return f"{made}; ONNX Runtime vs torch max abs diff {diff:.2e}"
    return build


LICENSE = "MIT (facenet-pytorch; MTCNN weights converted from Zhang et al.'s release)"
SPECS = [
    ModelSpec("mtcnn_pnet", "face proposal CNN (MTCNN stage 1, fully convolutional)",
              "face probability and box offsets for every 12x12 window (stride 2) of one pyramid level",
              Source(PACKAGE, NET_FILES["pnet"], LICENSE), {"input": [1, 3, *PNET_SIZE]},
              exporter("pnet"), pnet_data, pnet_sanity),
    ModelSpec("mtcnn_rnet", "face window classifier + box regressor (MTCNN stage 2)",
              "is a 24x24 candidate window a face, and how to move its box",
              Source(PACKAGE, NET_FILES["rnet"], LICENSE), {"input": [1, 3, 24, 24]},
              exporter("rnet"), lambda: window_data("rnet"), window_sanity(1)),
    ModelSpec("mtcnn_onet", "face window classifier + box and 5-landmark regressor (MTCNN stage 3)",
              "is a 48x48 candidate window a face, its refined box and eye/nose/mouth landmarks",
              Source(PACKAGE, NET_FILES["onet"], LICENSE), {"input": [1, 3, 48, 48]},
              exporter("onet"), lambda: window_data("onet"), window_sanity(2)),
]
