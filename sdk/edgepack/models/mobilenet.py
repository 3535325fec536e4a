"""A MobileNetV3-style network sized for the 8x8 digits, trained briefly with a fixed seed.

It has every MobileNetV3 block: a hard-swish stem, inverted residuals (1x1 expand, depthwise kxk,
1x1 project, identity shortcut when shapes allow), squeeze-excite (global average pool, two 1x1 convs,
hard-sigmoid, Mul), BatchNorm after each conv, ReLU or hard-swish activations, and a pooled head.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .digits import DigitsData, train_cached


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(torch.relu(self.reduce(self.pool(x))))
        return x * nn.functional.hardsigmoid(gate)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, expanded: int, c_out: int, kernel: int, stride: int, se: bool,
                 activation: type[nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers += [*_conv_bn(c_in, expanded, 1), activation()]
        layers += [*_conv_bn(expanded, expanded, kernel, stride, groups=expanded), activation()]
        if se:
            layers.append(SqueezeExcite(expanded, max(8, expanded // 4)))
        layers += _conv_bn(expanded, c_out, 1)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


# (expanded, out, kernel, stride, squeeze-excite, activation) per block: MobileNetV3-Small, shrunk to 8x8
_BLOCKS = [
    (16, 16, 3, 1, True, nn.ReLU),
    (48, 24, 3, 2, False, nn.ReLU),
    (64, 24, 3, 1, False, nn.ReLU),
    (72, 40, 5, 2, True, nn.Hardswish),
    (120, 40, 5, 1, True, nn.Hardswish),
]


class MobileNetV3Digits(nn.Module):
    """[N, 1, 8, 8] -> [N, 10] logits; 8x8 -> 4x4 -> 2x2 spatially."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(1, 16, 3), nn.Hardswish()]
        c_in = 16
        for expanded, c_out, kernel, stride, se, activation in _BLOCKS:
            layers.append(InvertedResidual(c_in, expanded, c_out, kernel, stride, se, activation))
            c_in = c_out
        layers += [*_conv_bn(c_in, 96, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(96, 128), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def train_mobilenet(cache_dir: str | Path | None = None, epochs: int = 20) -> tuple[MobileNetV3Digits, DigitsData]:
    """The trained network (eval mode) and the digits split it was trained on (seeded, a few seconds)."""
    return train_cached(MobileNetV3Digits, f"mobilenet_v3_digits_e{epochs}", epochs, 5e-3, cache_dir)
