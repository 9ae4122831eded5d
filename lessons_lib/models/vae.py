"""Variational autoencoders for colorization (loss: MSE + 0.001 x KL, see ``training.VAETask``).

The encoder gives a mean and a log-variance per latent unit; a sample
``z = mu + sigma * eps`` (the reparameterisation trick, so gradients flow through
``mu`` and ``sigma``) is decoded to colour. The KL term pulls the latent distribution
towards N(0, 1), averaged per latent value. The latent is spatial (``latent_dim`` channels,
no default here: ``ZooConfig`` holds it, at 1/8 of the image size), so the same network runs
at 32, 64, 128 or 256 pixels. As in every zoo model the decoder's output is a colour offset
added to the gray input. In eval mode the decoder gets ``z = mu``: the most likely colouring,
the same every time.
"""
from __future__ import annotations

import torch
from torch import nn

from .unet import UNet, check_side, gray_plus, offset_head


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    if not sample:
        return mu
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


class BasicVAE(nn.Module):
    """Strided-conv encoder -> (mu, logvar) -> z -> transposed-conv decoder; no skips."""

    def __init__(self, latent_dim: int, in_channels: int = 1, out_channels: int = 2, width: int = 32):
        super().__init__()

        def down(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))

        def up(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.encoder = nn.Sequential(down(in_channels, width), down(width, 2 * width), down(2 * width, 4 * width))
        self.in_channels = in_channels
        self.to_stats = nn.Conv2d(4 * width, 2 * latent_dim, 1)
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_dim, 4 * width, 1), nn.ReLU(inplace=True),
            up(4 * width, 2 * width), up(2 * width, width), up(width, width), offset_head(width, out_channels))
        self.latent_dim = latent_dim

    def forward(self, gray: torch.Tensor):
        check_side(gray, 8, type(self).__name__, self.in_channels)
        mu, logvar = self.to_stats(self.encoder(gray)).chunk(2, dim=1)
        logvar = logvar.clamp(-10.0, 10.0)  # keeps exp(logvar) finite early in training
        z = reparameterize(mu, logvar, self.training)
        return gray_plus(gray, self.decoder(z)), mu, logvar

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self(gray)[0].clamp(-1, 1)


class UNetVAE(nn.Module):
    """A U-Net whose bottleneck is variational: skips carry detail, z carries the rest."""

    def __init__(self, latent_dim: int, in_channels: int = 1, out_channels: int = 2,
                 width: int = 32, depth: int = 3):
        super().__init__()
        self.unet = UNet(in_channels, out_channels, width=width, depth=depth)
        c = self.unet.bottleneck_channels
        self.to_stats = nn.Conv2d(c, 2 * latent_dim, 1)
        self.from_latent = nn.Sequential(nn.Conv2d(latent_dim, c, 1), nn.ReLU(inplace=True))
        self.latent_dim = latent_dim

    def forward(self, gray: torch.Tensor):
        h, skips = self.unet.encode(gray)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        logvar = logvar.clamp(-10.0, 10.0)
        z = reparameterize(mu, logvar, self.training)
        return gray_plus(gray, self.unet.decode(self.from_latent(z), skips)), mu, logvar

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self(gray)[0].clamp(-1, 1)
