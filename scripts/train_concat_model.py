"""Train the second demo model (residual adds and a concat) on the demo model's digits split.

    python scripts/train_concat_model.py

Writes edgekit/demo/digits_concat.pt only. The data split, augmentation, determinism settings
and file writing are the demo model's (scripts/train_demo_model.py), imported rather than
copied, so both models train on the same samples and are calibrated and evaluated with the
same calibration_data/digits_calib.npz and digits_eval.npz. Running it twice gives
byte-identical weights.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing edgekit
sys.path.insert(0, str(REPO / "scripts"))

from train_demo_model import SEED, evaluate, make_deterministic, random_shift, save_weights, split_digits

from edgekit.demo.digits_concat import WEIGHTS, ResidualConcatNet

# Twice the demo model's epochs: without batch normalization this network leaves its
# initial plateau only in the one-cycle warm-up's later steps.
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 3e-3


def main() -> None:
    make_deterministic()
    start = time.perf_counter()
    splits = split_digits()
    model = train(*splits["train"])
    accuracy = evaluate(model, *splits["eval"])
    save_weights(model, WEIGHTS)
    print(f"train {len(splits['train'][1])}, eval {len(splits['eval'][1])} samples")
    print(f"held-out top-1 accuracy: {accuracy:.4f}")
    print(f"done in {time.perf_counter() - start:.1f} s")


def train(images: np.ndarray, labels: np.ndarray) -> ResidualConcatNet:
    """Adam with a one-cycle schedule and random shifts, as the demo model is trained."""
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(SEED)
    model = ResidualConcatNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    steps_per_epoch = -(-len(y_all) // BATCH_SIZE)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=EPOCHS * steps_per_epoch)

    model.train()
    for epoch in range(EPOCHS):
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
        print(f"epoch {epoch + 1:2d}/{EPOCHS}  loss {total_loss / len(y_all):.4f}")
    return model.eval()


if __name__ == "__main__":
    main()
