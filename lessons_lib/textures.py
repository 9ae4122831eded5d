"""Style images and photos for notebook 6, all available offline.

Style transfer needs a few strongly patterned "paintings". Rather than downloading
artworks, the course draws them from formulas, or colours scikit-image's bundled
photographs of real textures (brick, grass, gravel) with a palette::

    style = textures.texture("waves", size=64)         # (3, 64, 64) in [0, 1], drawn
    wall = textures.real_texture("brick", size=128)    # a real texture, coloured

and takes its content photos and super-resolution photos from scikit-image's (and
matplotlib's) bundled colour photographs, with a fixed split into photos to train on
and photos held out (:func:`photo_crops`). Everything is deterministic for a ``seed``.
"""
from __future__ import annotations

import math

import torch

from . import validate as V

__all__ = ["TEXTURES", "REAL_TEXTURES", "texture", "textures", "real_texture", "style_bank", "style_images", "PHOTOS",
           "photo", "photo_crops"]

TEXTURES = ("waves", "stripes", "checker", "dots", "marble", "mosaic")
#: scikit-image's photographs of real textures (grayscale; coloured by a palette here).
REAL_TEXTURES = ("brick", "grass", "gravel")


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
    V.choice("texture", name, TEXTURES)
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
    V.choice("split", split, seeds)
    return torch.cat([textures(size=size, seed=s) for s in seeds[split]])


def real_texture(name: str, size: int = 128, seed: int = 0) -> torch.Tensor:
    """A photographed texture (3, size, size) in [0, 1]: scikit-image's ``name`` (one of
    :data:`REAL_TEXTURES`), a random crop of half its side, its gray levels mapped through
    a random palette of ``seed`` (a dark, two middle and a light colour)."""
    from skimage import data as skdata

    V.choice("real texture", name, REAL_TEXTURES)
    gen = torch.Generator().manual_seed(seed)
    gray = torch.from_numpy(getattr(skdata, name)().astype("float32") / 255)
    side = min(gray.shape) // 2
    top, left = (int(torch.randint(0, n - side + 1, (1,), generator=gen)) for n in gray.shape)
    crop = gray[top:top + side, left:left + side][None, None]
    crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="area")[0, 0]
    crop = (crop - crop.min()) / (crop.max() - crop.min()).clamp(min=1e-6)   # full contrast
    palette = torch.rand(4, 3, generator=gen)
    palette[0] *= 0.3
    palette[-1] = 0.6 + 0.4 * palette[-1]
    return _palette(crop, palette).clamp(0, 1)


def style_images(split: str = "train", size: int = 64) -> torch.Tensor:
    """Every style image of a split, (N, 3, size, size): the drawn textures of :func:`style_bank`
    (48 for "train", 12 for "test") and the photographed ones of :func:`real_texture` (3 textures
    in 8 palettes for "train", 2 others for "test"); training and held-out palettes never overlap."""
    seeds = {"train": range(0, 8), "test": range(100, 102)}
    V.choice("split", split, seeds)
    real = torch.stack([real_texture(n, size, seed=s) for s in seeds[split] for n in REAL_TEXTURES])
    return torch.cat([style_bank(split, size), real])


# --------------------------------------------------------------------------- photos
#: Bundled colour photos: (source, name). "train" photos teach the networks; "test" photos
#: are held out (whole photos, never cropped for training).
PHOTOS = {"train": (("skimage", "astronaut"), ("skimage", "rocket"), ("skimage", "hubble_deep_field"),
                    ("skimage", "immunohistochemistry"), ("skimage", "retina")),
          "test": (("skimage", "chelsea"), ("matplotlib", "grace_hopper.jpg"), ("skimage", "coffee"))}


def photo(source: str, name: str) -> torch.Tensor:
    """One bundled colour photo (3, H, W) in [0, 1]: scikit-image's ``skimage.data.<name>()``
    or matplotlib's sample file ``name`` (both ship with the libraries; no download)."""
    import numpy as np

    V.choice("photo source", source, ("skimage", "matplotlib"))
    if source == "skimage":
        from skimage import data as skdata

        arr = getattr(skdata, name)()
    elif source == "matplotlib":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data(name) as fh:
            arr = np.asarray(Image.open(fh).convert("RGB"))
    arr = np.array(arr[..., :3])  # a writable copy
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255


def photo_crops(split: str, n: int, size: int = 64, seed: int = 0, min_side: int | None = None) -> torch.Tensor:
    """``n`` square crops (N, 3, size, size) of the ``split`` photos (see :data:`PHOTOS`), in
    turn from each photo, at random places and scales (a side of ``min_side``, default
    ``size``, up to half the photo's shorter side), area-downsampled, half mirrored."""
    V.choice("split", split, PHOTOS)
    n = V.count("n (the number of crops)", n)
    photos = [photo(*p) for p in PHOTOS[split]]
    gen = torch.Generator().manual_seed(seed + (0 if split == "train" else 7919))
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = photos[i % len(photos)]
        _, h, w = img.shape
        lo = min(min_side or size, min(h, w) // 2)
        side = int(torch.randint(lo, min(h, w) // 2 + 1, (1,), generator=gen))
        top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        crop = torch.nn.functional.interpolate(img[None, :, top:top + side, left:left + side], size=(size, size),
                                               mode="area", antialias=False)[0]
        out[i] = crop.flip(-1) if torch.rand(1, generator=gen) < 0.5 else crop
    return out.clamp(0, 1)
