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


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing edgekit
sys.path.insert(0, str(REPO / "scripts"))

from train_demo_model import evaluate, make_deterministic, save_weights, split_digits, train

from edgekit.demo.digits_concat import WEIGHTS, ResidualConcatNet

# Twice the demo model's epochs: without batch normalization this network leaves its
# initial plateau only in the one-cycle warm-up's later steps.
EPOCHS = 30
LEARNING_RATE = 3e-3


def main() -> None:
    make_deterministic()
    start = time.perf_counter()
    splits = split_digits()
    # The demo's training loop (Adam, one-cycle schedule, random shifts) with this model.
    model = train(*splits["train"], ResidualConcatNet(), EPOCHS, LEARNING_RATE)
    accuracy = evaluate(model, *splits["eval"])
    save_weights(model, WEIGHTS)
    print(f"train {len(splits['train'][1])}, eval {len(splits['eval'][1])} samples")
    print(f"held-out top-1 accuracy: {accuracy:.4f}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
