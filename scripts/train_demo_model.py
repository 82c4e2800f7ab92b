"""Train the bundled demo model and write its calibration and evaluation data.

    python scripts/train_demo_model.py

Writes edgekit/demo/digits_cnn.pt and, under calibration_data/,
digits_calib.npz, digits_eval.npz and digits_metrics.json.  Running it twice
gives byte-identical outputs, so regenerating never produces a spurious diff.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing edgekit

from edgekit.demo.digits_cnn import (  # noqa: E402
    INPUT_NAME,
    INPUT_SHAPE,
    PIXEL_MEAN,
    PIXEL_STD,
    WEIGHTS,
    DigitsCNN,
    preprocess,
)

DATA_DIR = REPO / "calibration_data"
SEED = 0
EPOCHS = 12
BATCH_SIZE = 32
LEARNING_RATE = 3e-3
MAX_SHIFT = 2  # pixels, in the 32x32 image


def main() -> None:
    make_deterministic()
    start = time.perf_counter()

    splits = split_digits()
    model = train(*splits["train"])
    accuracy = evaluate(model, *splits["eval"])

    save_weights(model, WEIGHTS)
    for name in ("calib", "eval"):
        images, labels = splits[name]
        # A leading sample axis in front of the model's own (1, 1, 32, 32) input.
        save_npz(
            DATA_DIR / f"digits_{name}.npz",
            {INPUT_NAME: images.reshape(-1, *INPUT_SHAPE), "label": labels},
        )
    metrics = {
        "fp32_top1_eval": round(accuracy, 6),
        "n_eval": len(splits["eval"][1]),
        "n_calib": len(splits["calib"][1]),
        "n_train": len(splits["train"][1]),
        "torch": torch.__version__,
    }
    metrics_json = json.dumps(metrics, indent=2) + "\n"
    write_atomic(DATA_DIR / "digits_metrics.json", metrics_json.encode())

    print(f"train {metrics['n_train']}, calib {metrics['n_calib']}, eval {metrics['n_eval']} samples")
    print(f"held-out top-1 accuracy: {accuracy:.4f}")
    print(f"done in {time.perf_counter() - start:.1f} s")


def make_deterministic() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    # Thread count changes the order of float reductions, hence the weights.
    torch.set_num_threads(1)


def split_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified 70 / 10 / 20 split into train, calibration and held-out eval.

    Calibration data comes from the same distribution as training but is not
    trained on, and the eval set is touched only for the final accuracy.
    """
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    indices = np.arange(len(labels))
    rest, eval_idx = train_test_split(indices, test_size=0.2, stratify=labels, random_state=SEED)
    # 0.125 of the remaining 80% is 10% of the whole set.
    train_idx, calib_idx = train_test_split(
        rest, test_size=0.125, stratify=labels[rest], random_state=SEED
    )
    images = preprocess(digits.images)
    return {
        name: (images[idx], labels[idx])
        for name, idx in (("train", train_idx), ("calib", calib_idx), ("eval", eval_idx))
    }


def train(
    images: np.ndarray,
    labels: np.ndarray,
    model: torch.nn.Module | None = None,
    epochs: int = EPOCHS,
    learning_rate: float = LEARNING_RATE,
) -> torch.nn.Module:
    """Adam with a one-cycle schedule and random shifts; `model` defaults to a fresh DigitsCNN.

    scripts/train_concat_model.py trains the second demo model with this same loop.
    """
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    # A private generator keeps shuffling and augmentation independent of any
    # other code that draws random numbers.
    generator = torch.Generator().manual_seed(SEED)
    model = DigitsCNN() if model is None else model
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = -(-len(y_all) // BATCH_SIZE)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=epochs * steps_per_epoch
    )

    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y_all), generator=generator)
        total_loss = 0.0
        for batch in order.split(BATCH_SIZE):
            x = random_shift(x_all[batch], generator)
            loss = F.cross_entropy(model(x), y_all[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(batch)
        print(f"epoch {epoch + 1:2d}/{epochs}  loss {total_loss / len(y_all):.4f}")
    return model.eval()


def random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to MAX_SHIFT pixels, filling with background.

    The upsampled digits sit in a fixed position, so small shifts are the
    cheapest way to stop the model relying on exact pixel locations.
    """
    blank = (0.0 - PIXEL_MEAN) / PIXEL_STD  # a 0 pixel after normalization
    padded = F.pad(x, (MAX_SHIFT,) * 4, value=blank)
    height, width = x.shape[-2:]
    offsets = torch.randint(0, 2 * MAX_SHIFT + 1, (len(x), 2), generator=generator).tolist()
    return torch.stack(
        [padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)]
    )


@torch.no_grad()
def evaluate(model: DigitsCNN, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    predictions = model(torch.from_numpy(images)).argmax(dim=1).numpy()
    return float((predictions == labels).mean())


def save_weights(model: DigitsCNN, path: Path) -> None:
    # Serialize to memory: torch.save(path) names the archive's root folder
    # after the file, so saving to a temp file would embed its random name.
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(path, buffer.getvalue())


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip timestamps so reruns are byte-identical."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    write_atomic(path, buffer.getvalue())


def write_atomic(path: Path, data: bytes) -> None:
    """Write next to the target, then rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    main()
