"""The benchmark suite's models (random weights: these measure speed, not accuracy).

Each factory returns (model, example_inputs) and is an `edgekit export` source:
    edgekit export scripts/bench_models.py:resnet18 -o resnet18.onnx
torchvision does not install beside the local torch build, so the architectures are written
out here, following the torchvision definitions.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c_in, c_out, 3, stride), _conv_bn(c_out, c_out, 3, act=None))
        self.skip = _conv_bn(c_in, c_out, 1, stride, act=None) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: 7x7 stem, 4 stages of 2 basic blocks, 1000 classes."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers = [_conv_bn(c_in, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), _conv_bn(hidden, c_out, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    """torchvision's mobilenet_v2 layout (width 1.0): depthwise-separable inverted residuals."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers, c_in = [_conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
        for expand, c_out, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expand))
                c_in = c_out
        layers.append(_conv_bn(c_in, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class TransformerEncoder(nn.Module):
    """A BERT-style encoder: 4 layers, 256 hidden, 4 heads, 1024 feed-forward, 128 tokens."""

    def __init__(self, vocab: int = 30522, hidden: int = 256, layers: int = 4, heads: int = 4, tokens: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.position = nn.Parameter(torch.randn(1, tokens, hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder(self.embed(input_ids) + self.position))


def _images(size: int) -> tuple[torch.Tensor]:
    return (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)),)


def resnet18():
    torch.manual_seed(0)
    return ResNet18().eval(), _images(224)


def mobilenet_v2():
    torch.manual_seed(0)
    return MobileNetV2().eval(), _images(224)


def transformer_encoder():
    torch.manual_seed(0)
    ids = torch.randint(0, 30522, (1, 128), generator=torch.Generator().manual_seed(0))
    return TransformerEncoder().eval(), (ids,)
