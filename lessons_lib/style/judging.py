"""Judging style without a network: :func:`patch_swd` compares the local pixel patches of a
result and of its style image, and :func:`colour_transfer` is the trivial baseline (the
palette moved, nothing else) that Gatys and AdaIN must beat on it."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F

from ..models.adain import adain

__all__ = ["colour_transfer", "patch_swd"]


def colour_transfer(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN on pixels: each colour channel of ``content`` given ``style``'s mean and std.

    The baseline a trained AdaIN decoder must beat: it moves the palette, and nothing else.
    """
    return adain(content, style, eps=1e-5).clamp(0, 1)


def _projected_patches(images: torch.Tensor, patch: int, count: int, dirs: torch.Tensor,
                       gen: torch.Generator) -> torch.Tensor:
    """``count`` random ``patch`` x ``patch`` patches of each image, projected on ``dirs``: (N, count, K)."""
    n, c, h, w = images.shape
    top = torch.randint(h - patch + 1, (count, 1), generator=gen)
    left = torch.randint(w - patch + 1, (count, 1), generator=gen)
    offsets = torch.arange(patch)
    index = ((top + offsets.repeat_interleave(patch)) * w + left + offsets.repeat(patch)).flatten()
    cols = images.reshape(n, c, h * w)[..., index].reshape(n, c, count, patch * patch)
    return torch.einsum("ncqp,cpk->nqk", cols, dirs.view(c, patch * patch, -1))


@torch.no_grad()
def patch_swd(images: torch.Tensor, styles: torch.Tensor, patch: int = 7, scales: Sequence[int] = (1, 2, 4),
              projections: int = 64, count: int = 2048, seed: int = 0) -> torch.Tensor:
    """How far each image's local look is from its style image's: (N,), lower = closer.

    The sliced Wasserstein distance between the distributions of ``patch`` x ``patch``
    RGB patches of ``images[i]`` and of ``styles[i]`` (or ``styles[0]`` for all), at each of
    ``scales`` (the images area-downsampled by that factor), averaged over the scales:
    the patches are projected on ``projections`` random unit directions, the projections
    sorted, and the sorted lists compared (root mean square), which is the exact 1-D
    Wasserstein-2 distance along each direction. It sees colour, edges and texture at the
    patch's scale, and no network at all: a method cannot win it by matching the features
    it was optimised in. Directions and patch positions are fixed by ``seed``.
    """
    if images.dim() != 4 or styles.dim() != 4 or styles.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"patch_swd needs (N, 3, H, W) images and 1 or N styles, got {tuple(images.shape)} "
                         f"and {tuple(styles.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    images, styles = images.float().cpu(), styles.float().cpu().expand(len(images), -1, -1, -1)
    out = torch.zeros(len(images))
    for s in scales:
        a = F.avg_pool2d(images, s) if s > 1 else images
        b = F.avg_pool2d(styles, s) if s > 1 else styles
        dirs = torch.randn(3 * patch * patch, projections, generator=gen)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa = _projected_patches(a, patch, count, dirs, gen).sort(1).values
        pb = _projected_patches(b, patch, count, dirs, gen).sort(1).values
        out += ((pa - pb) ** 2).mean(dim=(1, 2)).sqrt() / len(scales)
    return out
