"""A conditional GAN for colorization: a generator and a convolutional discriminator.

The discriminator sees the grayscale input beside a colour image (real or generated) and
scores each patch as real or fake; the generator learns to fool it (binary cross-entropy)
while an L1 term keeps its colours near the target (see ``adversarial.Pix2PixTask``).
``GANColorizer`` pairs a generator without skips (an encoder-decoder) with the
discriminator; the ``unetgan`` variant uses the U-Net as generator.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .pix2pix import PatchDiscriminator
from .unet import UNet, check_side, gray_plus, offset_head


class EncoderDecoderGenerator(nn.Module):
    """Strided convolutions down to 1/8 size, transposed convolutions back; no skips."""

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: int = 32):
        super().__init__()

        def down(cin, cout, norm=True):
            return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm),
                                 nn.BatchNorm2d(cout) if norm else nn.Identity(), nn.LeakyReLU(0.2, inplace=True))

        def up(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.in_channels = in_channels
        self.encoder = nn.Sequential(down(in_channels, width, norm=False), down(width, 2 * width),
                                     down(2 * width, 4 * width))
        self.decoder = nn.Sequential(up(4 * width, 2 * width), up(2 * width, width), up(width, width),
                                     offset_head(width, out_channels))

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        check_side(gray, 8, type(self).__name__, self.in_channels)
        return gray_plus(gray, self.decoder(self.encoder(gray)))


class GANColorizer(nn.Module):
    """Generator + discriminator in one module (one state dict, one checkpoint).

    ``forward``/``colorize`` run the generator only; training uses both (``adversarial.Pix2PixTask``).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None = None):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator if discriminator is not None else zoo_discriminator()

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return self.generator(gray)

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        """Colour for a gray batch, the generator run as pix2pix runs it at test time: batch norm
        uses the statistics of the batch at hand, as in training (Isola et al., 2017, sec. 3.3).
        The running averages drift away from them while the discriminator keeps moving the
        generator (measured here: the U-Net GAN loses to the gray image with them, beats it
        without). The running averages themselves are left untouched."""
        with batch_statistics(self.generator):
            return self.generator(gray).clamp(-1, 1)


@contextlib.contextmanager
def batch_statistics(module: nn.Module):
    """Batch norm layers of ``module`` normalise with the batch's own statistics (train mode)
    without updating their running averages (momentum 0); everything else is left as it is."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0
    try:
        yield module
    finally:
        for m, (training, momentum) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum


def zoo_discriminator(width: int = 32) -> PatchDiscriminator:
    """pix2pix's PatchGAN, judging (gray, colour) pairs, two strided layers deep: on a 32x32
    photo each of its 6x6 logits sees a 22-pixel patch, about the size of an object."""
    return PatchDiscriminator(in_channels=1 + 3, ndf=width, n_layers=2)


def gan(width: int = 32) -> GANColorizer:
    """The ``gan`` model: encoder-decoder generator (no skips) + patch discriminator."""
    return GANColorizer(EncoderDecoderGenerator(width=width), zoo_discriminator(width))


def unet_gan(width: int = 32, depth: int = 3) -> GANColorizer:
    """The ``unetgan`` model: U-Net generator + patch discriminator."""
    return GANColorizer(UNet(width=width, depth=depth), zoo_discriminator(width))
