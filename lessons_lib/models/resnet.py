"""A ResNet colorizer: residual convolutional features, then transposed-convolution upsampling.

Residual blocks (``x + F(x)``) let the network be deeper without the gradient fading;
there are no skips from encoder to decoder, so the colour is rebuilt from 1/4-size features.
"""
from __future__ import annotations

import torch
from torch import nn

from .unet import check_side, gray_plus, offset_head


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (a strided 1x1 conv when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNetColorizer(nn.Module):
    """Stem, two strided residual stages (to 1/4 size), ``blocks`` residual blocks, two
    transposed convolutions back up to a colour offset added to the gray input.
    Sides divisible by 4."""

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: int = 32, blocks: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.features = nn.Sequential(
            ResidualBlock(width, 2 * width, stride=2), ResidualBlock(2 * width, 4 * width, stride=2),
            *[ResidualBlock(4 * width, 4 * width) for _ in range(blocks)])
        self.upsample = nn.Sequential(up_block(4 * width, 2 * width), up_block(2 * width, width))
        self.head = offset_head(width, out_channels)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        check_side(gray, 4, type(self).__name__, self.in_channels)
        return gray_plus(gray, self.head(self.upsample(self.features(self.stem(gray)))))

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self(gray).clamp(-1, 1)
