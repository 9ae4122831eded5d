"""A U-Net for image-to-image tasks: an encoder, a decoder, and skip connections between them.

Like every colorizer in the zoo it predicts only the colour (the two chroma channels)
and keeps the gray input as the luma (see ``gray_plus``). The skips hand the decoder the
encoder's full-resolution features, so fine detail (edges, the grayscale image itself)
does not have to squeeze through the bottleneck. That is why a U-Net colourises sharply
where a plain encoder-decoder blurs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..images import luma_chroma_to_rgb
from .inputs import check_side


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU (the classic U-Net block)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def offset_head(cin: int, cout: int = 2) -> nn.Conv2d:
    """The last layer of every colorizer: the chroma (Cb, Cr), zero at the start of training."""
    head = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def gray_plus(gray: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Colour = the gray input as luma + the predicted chroma (YCbCr back to RGB).

    The models predict only what the gray image lacks, the colour: at the start
    (chroma 0) a model is exactly the "keep the gray" baseline, and the input's lightness
    and detail come through untouched, so training spends all its effort on colour.
    Values may leave [-1, 1] during training; ``colorize`` clamps them.
    """
    return luma_chroma_to_rgb(gray, chroma)


class UNet(nn.Module):
    """``depth`` poolings (sides must be divisible by 2**depth); widths width, 2*width, ...

    ``encode`` returns the bottleneck and the skips, ``decode`` goes back up, so a
    variant (the VAE) can change what happens in the middle.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: int = 32, depth: int = 3):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.depth, self.in_channels = depth, in_channels
        self.inc = conv_block(in_channels, widths[0])
        self.downs = nn.ModuleList(conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth)))
        self.up_blocks = nn.ModuleList(conv_block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = offset_head(widths[0], out_channels)
        self.bottleneck_channels = widths[-1]

    def encode(self, x: torch.Tensor):
        check_side(x, 2 ** self.depth, type(self).__name__, self.in_channels)
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        return skips.pop(), skips

    def decode(self, h: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Bottleneck + skips -> the colour offset (add the gray input for the colour)."""
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            h = block(torch.cat([up(h), skip], dim=1))
        return self.head(h)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return gray_plus(gray, self.decode(*self.encode(gray)))

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        """Colour in [-1, 1] for a grayscale batch in [-1, 1]."""
        return self(gray).clamp(-1, 1)
