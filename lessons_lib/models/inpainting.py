"""The inpainting networks of lesson 3: all take (masked image, keep-mask) in [-1, 1].

* ``InpaintUNet``: a UNet (skip connections) from the masked image and its mask to the
  whole image; trained with masked MSE, alone or against ``ConvDiscriminator``.
* ``ConvDiscriminator``: strided convolutions to one real/fake logit per image (a
  global critic, as in Context Encoders, not a patch one).
* ``PatchTransformer``: an encoder-only transformer over patches, trained by masked
  patch prediction (MAE / BEiT style).

The fourth method, the DDPM, is ``time_unet.TimeUNet`` used through RePaint.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .inputs import check_side

__all__ = ["InpaintUNet", "ConvDiscriminator", "PatchTransformer"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8 if cout % 8 == 0 else 1, cout),
                         nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
                         nn.GroupNorm(8 if cout % 8 == 0 else 1, cout), nn.SiLU())


class InpaintUNet(nn.Module):
    """UNet (skip connections) from (masked image, mask) to the full image in [-1, 1].

    Input: the masked image in [-1, 1] (holes at 0) and the keep-mask, 4 channels;
    ``levels`` resolution levels of ``width * 2**i`` channels.
    """

    def __init__(self, channels: int = 3, width: int = 32, levels: int = 3):
        super().__init__()
        self.levels = levels
        widths = [width * 2 ** i for i in range(levels)]
        self.enc = nn.ModuleList()
        cin = channels + 1
        for w in widths:
            self.enc.append(_block(cin, w))
            cin = w
        self.dec = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.dec.append(_block(2 * w, w))
            cin = w
        self.out = nn.Conv2d(cin, channels, 1)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.levels - 1)
        check_side(masked, factor, "The inpainting U-Net's masked image", self.out.out_channels)
        h = torch.cat([masked, mask.expand(masked.shape[0], 1, *masked.shape[-2:])], dim=1)
        skips = []
        for i, block in enumerate(self.enc):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        skips.pop()
        for up, block in zip(self.up, self.dec):
            h = block(torch.cat([up(h), skips.pop()], dim=1))
        return torch.tanh(self.out(h))


class ConvDiscriminator(nn.Module):
    """Strided convolutions to one real/fake logit per image; sees the image and the mask."""

    def __init__(self, channels: int = 3, width: int = 32, image_size: int = 32):
        super().__init__()
        layers, cin, side = [], channels + 1, image_size
        for i, w in enumerate([width, width * 2, width * 4]):
            layers += [nn.Conv2d(cin, w, 4, stride=2, padding=1)]
            if i:
                layers += [nn.GroupNorm(8 if w % 8 == 0 else 1, w)]
            layers += [nn.LeakyReLU(0.2)]
            cin, side = w, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.features(torch.cat([image, mask.expand(image.shape[0], 1, *image.shape[-2:])], dim=1))
        return self.head(h.mean(dim=(2, 3))).squeeze(1)


class PatchTransformer(nn.Module):
    """Encoder-only transformer over ``patch_size`` patches: masked patch prediction.

    Each patch (its masked pixels and its mask) is embedded linearly; patches that are
    entirely hole are replaced by a learned mask token (MAE / BEiT style); learned
    position embeddings; ``depth`` pre-norm transformer encoder layers; a linear head
    predicts every patch's pixels in [-1, 1].
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, channels: int = 3, dim: int = 128,
                 depth: int = 4, heads: int = 4, mlp_ratio: int = 2, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}.")
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        n = (image_size // patch_size) ** 2
        self.embed = nn.Linear((channels + 1) * patch_size ** 2, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * mlp_ratio, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, channels * patch_size ** 2)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        n, c, h, w = x.shape
        patches = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return patches.reshape(n, (h // p) * (w // p), c * p * p)

    def _unpatch(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        p, c = self.patch_size, self.channels
        n = tokens.shape[0]
        return tokens.reshape(n, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_side(masked, self.patch_size, "The patch transformer's masked image", self.channels)
        h, w = masked.shape[-2:]
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"This transformer was built for {self.image_size}x{self.image_size} "
                             f"images, got {h}x{w}.")
        mask = mask.expand(masked.shape[0], 1, h, w)
        tokens = self.embed(self._patches(torch.cat([masked, mask], dim=1)))
        all_hole = self._patches(mask).amax(dim=2) == 0  # (N, L): patch has no known pixel
        tokens = torch.where(all_hole[..., None], self.mask_token.expand_as(tokens), tokens)
        out = self.head(self.norm(self.encoder(tokens + self.pos)))
        return torch.tanh(self._unpatch(out, h, w))
