"""Networks whose activations are lookup tables in int8: each a `file.py:factory` export source.

Random weights from fixed seeds, BatchNorm statistics set to non-trivial values: the tests check
that these run integer end to end and agree with ONNX Runtime, which needs no training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, act: nn.Module | None = None, groups: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act if act is not None else nn.SiLU())


class Bottleneck(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = conv_bn(c, c), conv_bn(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class C2f(nn.Module):
    """YOLOv8's C2f: split, a chain of residual bottlenecks, concat of every stage, 1x1 conv."""

    def __init__(self, cin: int, cout: int, n: int = 1) -> None:
        super().__init__()
        self.c = cout // 2
        self.cv1 = conv_bn(cin, 2 * self.c, 1)
        self.cv2 = conv_bn((2 + n) * self.c, cout, 1)
        self.m = nn.ModuleList(Bottleneck(self.c) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class YoloBlock(nn.Module):
    """A YOLOv8-style neck in small: Conv-BN-SiLU stem, C2f, a stride-2 conv, nearest upsample, concat, head conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        self.c2f = C2f(16, 32)
        self.down = conv_bn(32, 32, 3, 2)
        self.fuse = C2f(64, 32)
        self.head = nn.Conv2d(32, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c2f(self.stem(x))
        b = F.interpolate(self.down(a), scale_factor=2.0, mode="nearest")
        return self.head(self.fuse(torch.cat([b, a], 1)))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class MobileV3Block(nn.Module):
    """MobileNetV3-style: hard-swish stem, inverted residual with depthwise conv, squeeze-excite, pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, nn.Hardswish())
        self.expand = conv_bn(16, 64, 1, act=nn.Hardswish())
        self.depthwise = conv_bn(64, 64, 3, groups=64, act=nn.Hardswish())
        self.se = SqueezeExcite(64)
        self.project = nn.Sequential(nn.Conv2d(64, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = y + self.project(self.se(self.depthwise(self.expand(y))))
        return self.head(F.adaptive_avg_pool2d(y, 1)).flatten(1)


class PReluNet(nn.Module):
    """MTCNN's P-Net: convs with per-channel PReLU, max pooling, a leaky-ReLU branch, two heads."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 10, 3), nn.PReLU(10), nn.MaxPool2d(2, 2, ceil_mode=True),
            nn.Conv2d(10, 16, 3), nn.PReLU(16),
            nn.Conv2d(16, 32, 3), nn.PReLU(),  # one slope for every channel
        )
        self.leaky = nn.Sequential(nn.Conv2d(32, 32, 1), nn.LeakyReLU(0.1))
        self.score, self.box = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.leaky(self.body(x))
        return self.score(y), self.box(y)


class GeluNet(nn.Module):
    """Conv-BN-GELU three times (GELU exported as x * (0.5 * (1 + erf(x / sqrt 2)))), a mean pool and a 1x1 conv head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(3, 16, act=nn.GELU()), conv_bn(16, 24, s=2, act=nn.GELU()), conv_bn(24, 24, act=nn.GELU()))
        self.head = nn.Conv2d(24, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.body(x), 1)).flatten(1)


class Lab(nn.Module):
    """PP-LCNetV3's learnable affine block: one scalar scale and one scalar bias."""

    def __init__(self, scale: float, bias: float) -> None:
        super().__init__()
        self.scale, self.bias = nn.Parameter(torch.tensor([scale])), nn.Parameter(torch.tensor([bias]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.bias


def paddle_hard_swish(x: torch.Tensor) -> torch.Tensor:
    # As paddle2onnx writes it: Add 3, Clip 0..6, Mul by x, Div 6 (no HardSwish op).
    return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


class LcnetNet(nn.Module):
    """PP-LCNetV3-style blocks (PP-OCRv4's text detector backbone): conv, affine, decomposed
    hard-swish, affine; a 1x1 conv whose output channels span 1000x feeding a depthwise conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.pointwise = nn.Conv2d(16, 32, 1)
        self.depthwise = nn.Conv2d(32, 32, 3, 2, 1, groups=32)
        self.project = nn.Conv2d(32, 24, 1)
        self.labs = nn.ModuleList(Lab(s, b) for s, b in ((0.9, 0.5), (0.5, -0.01), (1.9, 0.8), (0.6, -0.5), (0.4, 0.0)))
        self.head = nn.Conv2d(24, 10, 1)
        with torch.no_grad():  # channel ranges from 0.03 to 30, as in the real backbone
            spread = torch.logspace(-1.5, 1.5, 32)[torch.randperm(32, generator=torch.Generator().manual_seed(5))]
            self.pointwise.weight.mul_(spread[:, None, None, None])
            self.pointwise.bias.mul_(spread)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d, e = self.labs
        x = b(paddle_hard_swish(a(self.stem(x))))
        x = d(paddle_hard_swish(c(self.pointwise(x))))
        x = e(self.depthwise(x))
        return self.head(F.adaptive_avg_pool2d(F.relu(self.project(x)), 1)).flatten(1)


def _randomize(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=gen) * 0.2)
        if isinstance(module, nn.PReLU):
            module.weight.data.copy_(torch.rand(module.weight.shape, generator=gen) * 0.5)
    return model.eval()


def yolo_block():
    torch.manual_seed(0)
    return _randomize(YoloBlock()), (torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)),)


def mobile_v3_block():
    torch.manual_seed(0)
    return _randomize(MobileV3Block()), (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)),)


def prelu_net():
    torch.manual_seed(0)
    return _randomize(PReluNet()), (torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(1)),)


def gelu_net():
    torch.manual_seed(0)
    return _randomize(GeluNet()), (torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)),)


def lcnet_net():
    torch.manual_seed(0)
    return _randomize(LcnetNet()), (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)),)
