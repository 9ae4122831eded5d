"""AdaIN style transfer (Huang & Belongie, 2017): the AdaIN operation, its decoder, the model.

* :func:`adain`: give content features the channel means and standard deviations of
  style features (notebook 6 writes it out; this is the library's copy).
* :class:`AdaINDecoder`: relu4_1 features back to an image. It mirrors VGG19 from
  relu4_1 down to the pixels: reflection-padded 3x3 convolutions, nearest-neighbour
  upsampling instead of un-pooling (fewer checkerboard artefacts), no normalisation
  layers (they would wash out the statistics AdaIN just set).
* :class:`AdaINStyleTransfer`: frozen VGG encoder -> AdaIN -> decoder. With
  ``residual=True`` (the course's recipe for short budgets) the decoder paints a
  correction on top of the same AdaIN done on pixels (each colour channel given the
  style's mean and std): an untrained model then already transfers the palette, and
  training only has to add what colour statistics cannot (texture, strokes). Its
  correction is scaled by ``alpha`` like everything else, so ``alpha = 0`` returns the
  content image exactly (the pixel AdaIN at alpha 0 is the content, and nothing is
  added). The paper's decoder (``residual=False``) must learn the whole image from
  features, which takes GPU-hours.

``width`` is the channel count of VGG's first block (64 for VGG19, 16 for the course's
feature network); the decoder's levels have 8x, 4x, 2x and 1x ``width``.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import validate as V
from .vgg import FULL_WIDTH, VGGFeatures

__all__ = ["ADAIN_STYLE_LAYERS", "channel_stats", "adain", "AdaINDecoder", "AdaINStyleTransfer"]

ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def channel_stats(features: torch.Tensor, eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation, each (N, C, 1, 1).

    The standard deviation is sqrt(unbiased variance + eps) over the H*W positions.
    """
    if features.dim() != 4:
        raise ValueError(f"Features must be (N, C, H, W), got {tuple(features.shape)}.")
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    if flat.shape[-1] < 2:
        raise ValueError("Features need at least 2 spatial positions to have a standard deviation.")
    mean = flat.mean(dim=2).view(n, c, 1, 1)
    std = (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)
    return mean, std


def adain(content_features: torch.Tensor, style_features: torch.Tensor, alpha: float = 1.0,
          eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: sigma(s) * (c - mu(c)) / sigma(c) + mu(s).

    Each channel of the content features is normalised to zero mean and unit standard
    deviation, then given the style features' mean and standard deviation. ``alpha``
    blends: 1 = full style statistics, 0 = the content features unchanged. ``eps``
    only guards the division by a constant content channel.
    """
    if content_features.dim() != 4 or style_features.dim() != 4:
        raise ValueError("adain needs (N, C, H, W) content and style features, got "
                         f"{tuple(content_features.shape)} and {tuple(style_features.shape)}.")
    if content_features.shape[1] != style_features.shape[1]:
        raise ValueError(f"Content features have {content_features.shape[1]} channels and style "
                         f"features {style_features.shape[1]}: take both from the same layer.")
    if style_features.shape[0] not in (1, content_features.shape[0]):
        raise ValueError(f"{style_features.shape[0]} style images for {content_features.shape[0]} "
                         "content images: give one style for all, or one per content image.")
    V.number("alpha", alpha, 0.0, 1.0, hint="1 = full style, 0 = the content's own statistics.")
    c_mean, c_std = channel_stats(content_features, eps)
    s_mean, s_std = channel_stats(style_features)
    stylised = (content_features - c_mean) / c_std * s_std + s_mean
    return alpha * stylised + (1 - alpha) * content_features


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return layers + [nn.ReLU()] if relu else layers


class AdaINDecoder(nn.Module):
    """(N, 8*width, H/8, W/8) relu4_1 features -> (N, 3, H, W) image (about [0, 1])."""

    def __init__(self, width: int = FULL_WIDTH, zero_last: bool = False):
        super().__init__()
        c = [8 * width, 4 * width, 2 * width, width]
        self.in_channels = c[0]
        self.net = nn.Sequential(
            *_conv(c[0], c[1]), nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c[1], c[1]), *_conv(c[1], c[1]), *_conv(c[1], c[1]), *_conv(c[1], c[2]),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c[2], c[2]), *_conv(c[2], c[3]),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c[3], c[3]), *_conv(c[3], 3, relu=False),
        )
        if zero_last:  # start as "add nothing": the residual model starts at its baseline
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, features):
        if features.dim() != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"The decoder expects relu4_1 features (N, {self.in_channels}, h, w), "
                             f"got {tuple(features.shape)}. Build it with the encoder's width.")
        return self.net(features)


class AdaINStyleTransfer(nn.Module):
    """Fast arbitrary style transfer: VGG encoder (to relu4_1) -> AdaIN -> trained decoder.

    ``model(content, style, alpha)`` stylises in one forward pass. Only the decoder
    has trainable parameters (train it with ``lessons_lib.style.AdaINTask``).
    ``residual``: decode a correction added to the pixel-space AdaIN (see the module note).
    """

    def __init__(self, encoder: VGGFeatures | None = None, residual: bool = False, **vgg_kwargs):
        super().__init__()
        self.residual = residual
        self.encoder = encoder or VGGFeatures(ADAIN_STYLE_LAYERS, **vgg_kwargs)
        missing = [n for n in ADAIN_STYLE_LAYERS if n not in self.encoder.layers]
        if missing:
            raise ValueError(f"The AdaIN encoder must return {ADAIN_STYLE_LAYERS}; it lacks {missing}.")
        self.decoder = AdaINDecoder(width=self.encoder.width, zero_last=residual)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
                return_target: bool = False):
        for name, x in (("content", content), ("style", style)):
            if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] % 8 or x.shape[-2] % 8:
                raise ValueError(f"The {name} batch must be (N, 3, H, W) with H and W multiples of 8 "
                                 f"(three poolings and three upsamplings), got {tuple(x.shape)}.")
        t = adain(self.encoder(content)["relu4_1"], self.encoder(style)["relu4_1"], alpha)
        out = self.decoder(t)
        if self.residual:
            out = alpha * out + adain(content, style, alpha, eps=1e-5).clamp(0, 1)
        return (out, t) if return_target else out
