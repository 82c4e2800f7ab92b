"""A small CNN that classifies scikit-learn's 8x8 digits, upsampled to 32x32.

The weights in ``digits_cnn.pt`` and the data sets in ``calibration_data/`` are
produced by ``scripts/train_demo_model.py``.  The model expects an input that is
already normalized: ``preprocess`` does that, and it is the one implementation
shared by training and data generation, so the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
INPUT_SHAPE = (1, 1, 32, 32)
NUM_CLASSES = 10
WEIGHTS = Path(__file__).with_name("digits_cnn.pt")
CALIBRATION_NPZ = Path(__file__).resolve().parents[2] / "calibration_data" / "digits_calib.npz"

# Mean and std of the training split's pixels after scaling to [0, 1] and
# upsampling to 32x32 (computed once by hand from the split used in
# scripts/train_demo_model.py: 1257 images).  Hard-coded rather than computed
# at import time so that preprocessing never depends on how the data is split.
PIXEL_MEAN = 0.3049
PIXEL_STD = 0.3233


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU stages with max pooling, one residual block, then GAP + linear.

    Small on purpose (about 60k parameters) yet it exports to the operators that
    matter for edge deployment: Conv, BatchNormalization (folded or not), Relu,
    MaxPool, Add, GlobalAveragePool and Gemm.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        # Residual branch at the lowest resolution (8x8), where it is cheapest.
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))  # 16 x 16 x 16
        x = self.pool(F.relu(self.bn2(self.conv2(x))))  # 32 x 8 x 8
        x = F.relu(self.bn3(self.conv3(x)))  # 64 x 8 x 8
        x = F.relu(x + self.bn4(self.conv4(x)))
        return self.fc(self.flatten(self.gap(x)))


def preprocess(images_8x8: np.ndarray) -> np.ndarray:
    """Turn sklearn digits images (N, 8, 8), values 0..16, into model inputs.

    Returns normalized float32 of shape (N, 1, 32, 32).
    """
    images = np.asarray(images_8x8, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"expected images of shape (N, 8, 8), got {images.shape}")
    x = torch.from_numpy(images / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=INPUT_SHAPE[2:], mode="bilinear", align_corners=False)
    x = (x - PIXEL_MEAN) / PIXEL_STD
    return x.numpy().astype(np.float32, copy=False)


def example_input() -> torch.Tensor:
    """First calibration sample if the bundled data exists, else fixed noise."""
    if CALIBRATION_NPZ.is_file():
        with np.load(CALIBRATION_NPZ) as data:
            return torch.from_numpy(np.ascontiguousarray(data[INPUT_NAME][0]))
    generator = torch.Generator().manual_seed(0)
    return torch.randn(INPUT_SHAPE, generator=generator, dtype=torch.float32)


def factory() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """The trained model in eval mode and a tuple of example inputs for export."""
    model = DigitsCNN()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval(), (example_input(),)
