"""The convolutional encoder-decoder of notebook 1 (grayscale -> colour)."""
from __future__ import annotations

import torch
from torch import nn

from .inputs import check_side


class EncoderDecoder(nn.Module):
    """Conv 1->32->64 with stride 2 down to a 64-channel latent at 1/4 of the size
    (32x32 -> 8x8), then ConvTranspose 64->32->3 back up; Tanh gives [-1, 1] colour.

    Works on any size divisible by 4.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 3, width: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        check_side(gray, 4, type(self).__name__, self.encoder[0].in_channels)
        return self.decoder(self.encoder(gray))
