"""A small super-resolution network (the SRResNet idea, scaled down).

Residual blocks at low resolution, then sub-pixel convolution (PixelShuffle) to
upsample by 2 at a time; the output is added to a bicubic upsampling so the network
only learns the missing detail. Its last convolution starts at zero, so an untrained
net *is* bicubic and training can only move it away where that lowers the loss: in a
short budget that is the difference between beating bicubic and losing to it.
SRGAN's generator is this design, deeper.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .inputs import check_side

__all__ = ["SRNet"]


class _Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.PReLU(ch),
                                  nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class SRNet(nn.Module):
    """(N, 3, h, w) in [0, 1] -> (N, 3, scale*h, scale*w); ``scale`` a power of 2."""

    def __init__(self, scale: int = 4, width: int = 32, blocks: int = 4):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of 2 (2, 4, 8), got {scale}.")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.PReLU(width))
        self.body = nn.Sequential(*[_Residual(width) for _ in range(blocks)])
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_side(x, 1, "The super-resolution network", 3)
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = self.head(x)
        return base + self.tail(self.up(h + self.body(h)))
