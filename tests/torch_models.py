"""Small PyTorch models of varied architecture, each a `file.py:factory` export source.

Random weights from a fixed seed: these test that export, compile and check are general, not
that the models are useful.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyEncoder(nn.Module):
    """BERT-style: token + position embeddings, 2 encoder layers (MatMul, Softmax, LayerNorm, GELU), pooled output."""

    def __init__(self, vocab: int = 100, dim: int = 32, heads: int = 4, layers: int = 2, tokens: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=64, activation="gelu", batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.embed(input_ids) + self.position
        # Additive mask from the float minimum, as Hugging Face builds it.
        bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        bias = bias.expand(-1, self.encoder.layers[0].self_attn.num_heads, input_ids.shape[1], -1).reshape(-1, input_ids.shape[1], input_ids.shape[1])
        hidden = self.norm(self.encoder(hidden, mask=bias))
        weights = attention_mask.to(hidden.dtype)[..., None]
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        return hidden, pooled


class MobileBlockNet(nn.Module):
    """MobileNetV2-style: inverted residuals with depthwise convolutions, ReLU6, global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6())
        self.block = nn.Sequential(
            nn.Conv2d(16, 64, 1), nn.BatchNorm2d(64), nn.ReLU6(),
            nn.Conv2d(64, 64, 3, 1, 1, groups=64), nn.BatchNorm2d(64), nn.ReLU6(),
            nn.Conv2d(64, 16, 1), nn.BatchNorm2d(16),
        )
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = y + self.block(y)
        return self.head(y.mean(dim=(2, 3)))


class TwoHeads(nn.Module):
    """Two inputs of different rank and two outputs: an image branch and a vector branch, fused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.vec = nn.Linear(6, 4)
        self.out = nn.Linear(8, 3)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.nn.functional.adaptive_avg_pool2d(torch.sigmoid(self.conv(image)), 1).flatten(1)
        fused = torch.cat([pooled, torch.tanh(self.vec(features))], dim=1)
        return torch.softmax(self.out(fused), dim=-1), fused


def encoder():
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (1, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(1, 16, dtype=torch.int64)
    mask[0, 12:] = 0  # padded tail: exercises the float-minimum mask
    return TinyEncoder().eval(), (ids, mask)


def mobile():
    torch.manual_seed(0)
    return MobileBlockNet().eval(), (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)),)


def two_heads():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    return TwoHeads().eval(), (torch.randn(1, 1, 8, 8, generator=gen), torch.randn(1, 6, generator=gen))


def deep_matmul_chain():
    """Enough float arithmetic that ONNX Runtime and PyTorch never agree bit for bit."""
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Sequential(nn.Linear(256, 256), nn.GELU(approximate="tanh")) for _ in range(4)])
    return model.eval(), (torch.randn(4, 256, generator=torch.Generator().manual_seed(1)) * 10,)


def not_a_tuple():
    return nn.Linear(2, 2)
