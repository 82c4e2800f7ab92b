"""The second demo model, for quantization comparisons: residual adds and a channel concatenation.

The digits CNN (digits_cnn.py) is a plain chain with one residual add. Quantizers differ most
where tensors join: an Add or a Concat whose inputs have different ranges must requantize them to
one scale. This model has both, on the same data and input as the digits CNN, so the two can be
calibrated and evaluated with the same files in ``calibration_data/``:

    edgekit export edgekit/demo/digits_concat.py:digits_concat -o digits_concat.onnx \\
        --input-name image --output-name logits

The weights in ``digits_concat.pt`` are produced by ``scripts/train_concat_model.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.demo.digits_cnn import NUM_CLASSES, example_input

WEIGHTS = Path(__file__).with_name("digits_concat.pt")


class ResidualConcatNet(nn.Module):
    """Residual adds and a channel concatenation (an Inception/DenseNet-style join) on a 1x32x32 image."""

    def __init__(self, classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.branch_a = nn.Conv2d(16, 16, 1)
        self.branch_b = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.mix = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.res = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        self.head = nn.Linear(32, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)  # 16 x 16 x 16
        x = self.mix(torch.cat([F.relu(self.branch_a(x)), F.relu(x + self.branch_b(x))], dim=1))  # 32 x 8 x 8
        x = F.relu(x + self.res(x))
        return self.head(x.mean(dim=(2, 3)))


def digits_concat() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """The trained model in eval mode and a tuple of example inputs for export.

    Raises FileNotFoundError if ``digits_concat.pt`` is missing (run scripts/train_concat_model.py).
    """
    model = ResidualConcatNet()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval(), (example_input(),)
