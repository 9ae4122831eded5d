"""The AdaIN decoder (Huang & Belongie, 2017): VGG relu4_1 features back to an image.

It mirrors VGG19 from relu4_1 down to the pixels: reflection-padded 3x3 convolutions,
nearest-neighbour upsampling instead of un-pooling (fewer checkerboard artefacts),
no normalisation layers (they would wash out the style statistics AdaIN just set).
``width`` scales every channel count, to match a narrower VGG encoder.
"""
from __future__ import annotations

from torch import nn

__all__ = ["AdaINDecoder"]


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return layers + [nn.ReLU()] if relu else layers


class AdaINDecoder(nn.Module):
    """(N, 512*width, H/8, W/8) relu4_1 features -> (N, 3, H, W) image (about [0, 1])."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = [max(1, round(v * width)) for v in (512, 256, 128, 64)]
        self.in_channels = c[0]
        self.net = nn.Sequential(
            *_conv(c[0], c[1]), nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c[1], c[1]), *_conv(c[1], c[1]), *_conv(c[1], c[1]), *_conv(c[1], c[2]),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c[2], c[2]), *_conv(c[2], c[3]),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c[3], c[3]), *_conv(c[3], 3, relu=False),
        )

    def forward(self, features):
        if features.dim() != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"The decoder expects relu4_1 features (N, {self.in_channels}, h, w), "
                             f"got {tuple(features.shape)}. Build it with the encoder's width.")
        return self.net(features)
