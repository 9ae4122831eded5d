"""Procedurally generated colour textures: style images the course makes itself.

Style transfer needs a few strongly patterned "paintings". Rather than downloading
artworks, the course draws them from formulas, so they exist offline and in CI::

    style = textures.texture("waves", size=64)   # (3, 64, 64) in [0, 1]

Every texture is deterministic for a given ``seed``.
"""
from __future__ import annotations

import math

import torch

__all__ = ["TEXTURES", "texture", "textures", "style_bank"]

TEXTURES = ("waves", "stripes", "checker", "dots", "marble", "mosaic")


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.linspace(0.0, 1.0, size)
    return torch.meshgrid(coords, coords, indexing="ij")


def _palette(t: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Map t in [0, 1] (H, W) through a piecewise-linear palette of K colours (K, 3)."""
    k = colours.shape[0] - 1
    pos = t.clamp(0, 1) * k
    lo = pos.floor().long().clamp(max=k - 1)
    frac = (pos - lo).unsqueeze(-1)
    rgb = colours[lo] * (1 - frac) + colours[lo + 1] * frac
    return rgb.permute(2, 0, 1)


def _smooth_noise(size: int, cells: int, gen: torch.Generator) -> torch.Tensor:
    """Value noise: a coarse random grid upsampled smoothly to (size, size), in [0, 1]."""
    coarse = torch.rand(1, 1, cells, cells, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic",
                                           align_corners=True)[0, 0].clamp(0, 1)


def texture(name: str, size: int = 64, seed: int = 0) -> torch.Tensor:
    """One texture (3, size, size) in [0, 1]. ``name`` is one of :data:`TEXTURES`."""
    if name not in TEXTURES:
        raise ValueError(f"Unknown texture {name!r}. Choose one of: {', '.join(TEXTURES)}.")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}.")
    gen = torch.Generator().manual_seed(seed)
    y, x = _grid(size)
    palette = torch.rand(4, 3, generator=gen)
    palette[0] *= 0.3                      # one dark colour for contrast
    palette[-1] = 0.6 + 0.4 * palette[-1]  # and one light one
    if name == "waves":
        warp = _smooth_noise(size, 4, gen)
        t = 0.5 + 0.5 * torch.sin(2 * math.pi * (6 * y + 1.5 * torch.sin(2 * math.pi * 2 * x) + 2 * warp))
    elif name == "stripes":
        angle = float(torch.rand(1, generator=gen)) * math.pi
        t = (torch.sin(2 * math.pi * 8 * (x * math.cos(angle) + y * math.sin(angle))) > 0).float()
        t = 0.15 + 0.7 * t + 0.15 * _smooth_noise(size, 8, gen)
    elif name == "checker":
        n = 6
        t = ((torch.floor(x * n) + torch.floor(y * n)) % 2) * 0.8 + 0.2 * _smooth_noise(size, 6, gen)
    elif name == "dots":
        n = 7
        fx, fy = (x * n) % 1 - 0.5, (y * n) % 1 - 0.5
        t = ((fx ** 2 + fy ** 2).sqrt() < 0.3).float() * 0.85 + 0.15 * _smooth_noise(size, 5, gen)
    elif name == "marble":
        turbulence = sum(_smooth_noise(size, c, gen) / (i + 1) for i, c in enumerate((4, 8, 16, 32)))
        t = 0.5 + 0.5 * torch.sin(2 * math.pi * (3 * x + 2.5 * turbulence))
    else:  # mosaic: random flat-coloured cells with dark grout
        n = 8
        cell = (torch.floor(y * n) * n + torch.floor(x * n)).long()
        values = torch.rand(n * n, generator=gen)
        t = values[cell.clamp(max=n * n - 1)]
        grout = (((x * n) % 1 < 0.12) | ((y * n) % 1 < 0.12)).float()
        t = t * (1 - grout)
    return _palette(t, palette).clamp(0, 1)


def textures(names=TEXTURES, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Several textures stacked (N, 3, size, size)."""
    return torch.stack([texture(n, size, seed + i) for i, n in enumerate(names)])


def style_bank(split: str = "train", size: int = 32) -> torch.Tensor:
    """The AdaIN lessons' styles: every texture in several palettes, (N, 3, size, size).

    "train" gives 8 palettes of each texture (48 styles), "test" 2 other palettes (12
    styles) that training never sees, so held-out scores measure *arbitrary* style.
    """
    seeds = {"train": range(0, 800, 100), "test": range(5000, 5200, 100)}
    if split not in seeds:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    return torch.cat([textures(size=size, seed=s) for s in seeds[split]])
