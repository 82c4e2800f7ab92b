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


class ConvSiLU(nn.Sequential):
    """YOLOv8's Conv: conv, batch norm, SiLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


class C2f(nn.Module):
    """YOLOv8's C2f: split, a chain of residual bottlenecks, concat of every stage."""

    def __init__(self, c_in: int, c_out: int, repeats: int, residual: bool = True) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.stem = ConvSiLU(c_in, 2 * self.hidden)
        self.blocks = nn.ModuleList(nn.Sequential(ConvSiLU(self.hidden, self.hidden, 3), ConvSiLU(self.hidden, self.hidden, 3)) for _ in range(repeats))
        self.residual = residual
        self.out = ConvSiLU((2 + repeats) * self.hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.stem(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(parts[-1] + block(parts[-1]) if self.residual else block(parts[-1]))
        return self.out(torch.cat(parts, dim=1))


class YoloStyle(nn.Module):
    """A YOLOv8n-style detector: Conv-BN-SiLU backbone of C2f blocks, SPPF, a top-down FPN with
    nearest upsampling and concats, and a box/class head at strides 8 and 16 (widths 16-128)."""

    def __init__(self, classes: int = 80) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvSiLU(3, 16, 3, 2), ConvSiLU(16, 32, 3, 2), C2f(32, 32, 1))
        self.p3 = nn.Sequential(ConvSiLU(32, 64, 3, 2), C2f(64, 64, 2))
        self.p4 = nn.Sequential(ConvSiLU(64, 128, 3, 2), C2f(128, 128, 2))
        self.sppf_in, self.sppf_out, self.pool = ConvSiLU(128, 64), ConvSiLU(256, 128), nn.MaxPool2d(5, 1, 2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse3 = C2f(128 + 64, 64, 1, residual=False)
        self.head3 = nn.Sequential(ConvSiLU(64, 64, 3), nn.Conv2d(64, 4 * 16 + classes, 1))
        self.head4 = nn.Sequential(ConvSiLU(128, 64, 3), nn.Conv2d(64, 4 * 16 + classes, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        a = self.sppf_in(p4)
        b = self.pool(a)
        c = self.pool(b)
        p4 = self.sppf_out(torch.cat([a, b, c, self.pool(c)], dim=1))
        p3 = self.fuse3(torch.cat([self.up(p4), p3], dim=1))
        return self.head3(p3), self.head4(p4)


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


def _images(size: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor]:
    return (torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)),)


RESIDUAL_BRANCH_SCALE = 0.25  # trained residual branches are corrections to their input, not equals


def _settled(model: nn.Module, size: int) -> nn.Module:
    """`model` in eval mode with its batch-norm statistics measured on random images.

    Freshly initialized statistics (mean 0, variance 1) let activations shrink or grow layer
    after layer until a deep network's output no longer depends on its input (MobileNetV2's did:
    the same logits for every image), which no int8 grid can represent. Measured statistics keep
    every layer's activations near unit scale, as training would.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the settling batches
    model.train()
    with torch.no_grad():
        for seed in range(4):
            model(*_images(size, batch=8, seed=100 + seed))
        # Trained residual branches add a correction to their input, not a second signal as
        # large (torchvision's zero_init_residual starts them at zero). At unit scale, a random
        # network amplifies every rounding difference block after block (a one-LSB flip in an
        # early MobileNetV2 layer grew to 48 LSB at its last; one LSB at one of the 102,400
        # values of yolo_style's first SiLU moved its heads by 10-16% of their range in ONNX
        # Runtime alone), so no two int8 runtimes would agree. The scale is applied after
        # settling: later layers keep the statistics of the unscaled network, so the scaled
        # network also runs below unit scale (scaled before settling, yolo_style still failed
        # the integer self-check by 7.4% of its range).
        for module in model.modules():
            for branch in _identity_residual_branches(module):
                last = [m for m in branch.modules() if isinstance(m, nn.BatchNorm2d)][-1]
                last.weight.mul_(RESIDUAL_BRANCH_SCALE)
                last.bias.mul_(RESIDUAL_BRANCH_SCALE)
    return model.eval()


def _identity_residual_branches(module: nn.Module) -> list[nn.Module]:
    """The branches added to their own input: a ResNet or MobileNetV2 block's body, each bottleneck of a residual C2f (YOLOv8's shortcut)."""
    if isinstance(module, C2f):
        return list(module.blocks) if module.residual else []
    if isinstance(module, (BasicBlock, InvertedResidual)) and _is_identity_residual(module):
        return [module.body]
    return []


def _is_identity_residual(block: nn.Module) -> bool:
    return getattr(block, "residual", False) or isinstance(getattr(block, "skip", None), nn.Identity)


def resnet18():
    torch.manual_seed(0)
    return _settled(ResNet18(), 224), _images(224)


def mobilenet_v2():
    torch.manual_seed(0)
    return _settled(MobileNetV2(), 224), _images(224)


def resnet18_112():
    """ResNet-18 at 112x112, the size of the board-less (estimated A76/A78AE) benchmarks: qemu runs ~50x slower than the host."""
    torch.manual_seed(0)
    return _settled(ResNet18(), 112), _images(112)


def mobilenet_v2_112():
    torch.manual_seed(0)
    return _settled(MobileNetV2(), 112), _images(112)


def yolo_style():
    """The YOLOv8n-style detector at 160x160: SiLU everywhere, nearest upsampling, concats, SPPF max pools."""
    torch.manual_seed(0)
    return _settled(YoloStyle(), 160), _images(160)


def transformer_encoder():
    torch.manual_seed(0)
    ids = torch.randint(0, 30522, (1, 128), generator=torch.Generator().manual_seed(0))
    return TransformerEncoder().eval(), (ids,)
