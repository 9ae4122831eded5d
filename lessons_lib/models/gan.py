"""A conditional GAN for colorization: a generator and a convolutional discriminator.

The discriminator sees the grayscale input beside a colour image (real or generated) and
scores each patch as real or fake; the generator learns to fool it (binary cross-entropy)
while an L1 term keeps its colours near the target (see ``translation.Pix2PixTask``).
``GANColorizer`` pairs a generator without skips (an encoder-decoder) with the
discriminator; the ``unetgan`` variant uses the U-Net as generator.
"""
from __future__ import annotations

import torch
from torch import nn

from .unet import UNet, check_side, gray_plus, offset_head


class EncoderDecoderGenerator(nn.Module):
    """Strided convolutions down to 1/8 size, transposed convolutions back; no skips."""

    def __init__(self, in_channels: int = 1, out_channels: int = 2, base: int = 32):
        super().__init__()

        def down(cin, cout, norm=True):
            return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm),
                                 nn.BatchNorm2d(cout) if norm else nn.Identity(), nn.LeakyReLU(0.2, inplace=True))

        def up(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.encoder = nn.Sequential(down(in_channels, base, norm=False), down(base, 2 * base),
                                     down(2 * base, 4 * base))
        self.decoder = nn.Sequential(up(4 * base, 2 * base), up(2 * base, base), up(base, base),
                                     offset_head(base, out_channels))

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        check_side(gray, 8, type(self).__name__)
        return gray_plus(gray, self.decoder(self.encoder(gray)))


class PatchDiscriminator(nn.Module):
    """Scores overlapping patches of (grayscale, colour) as real (logit > 0) or fake.

    Fully convolutional: a 32x32 input gives a 4x4 map of logits, larger inputs larger maps.
    """

    def __init__(self, in_channels: int = 1 + 3, base: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, base, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(base, 2 * base, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * base),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * base, 4 * base, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * base),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * base, 1, 3, padding=1),
        )

    def forward(self, gray: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([gray, colour], dim=1))


class GANColorizer(nn.Module):
    """Generator + discriminator in one module (one state dict, one checkpoint).

    ``forward``/``colorize`` run the generator only; training uses both (``translation.Pix2PixTask``).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None = None):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator if discriminator is not None else PatchDiscriminator()

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return self.generator(gray)

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self.generator(gray).clamp(-1, 1)


def gan(base: int = 32) -> GANColorizer:
    """The ``gan`` model: encoder-decoder generator (no skips) + patch discriminator."""
    return GANColorizer(EncoderDecoderGenerator(base=base), PatchDiscriminator(base=base))


def unet_gan(base: int = 32, depth: int = 3) -> GANColorizer:
    """The ``unetgan`` model: U-Net generator + patch discriminator."""
    return GANColorizer(UNet(base=base, depth=depth), PatchDiscriminator(base=base))
