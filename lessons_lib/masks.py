"""Inpainting masks, batched and seeded: centre box, random boxes, free-form strokes, half image.

Every function returns a float tensor (N, 1, H, W) of *keep* masks, RePaint's
convention: 1 = a known pixel that is kept, 0 = a hole to fill. (Stable Diffusion's
inpainting pipelines use the opposite, white = repaint: pass ``1 - mask`` there.)
The same ``seed`` always gives the same masks.
"""
from __future__ import annotations

import math

import torch

from . import validate as V

__all__ = ["MASK_KINDS", "center_box", "random_boxes", "free_form", "half_image", "make_masks",
           "apply_mask", "hole_fraction"]

MASK_KINDS = ("center", "boxes", "strokes", "half")


def _size(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 2 or w < 2:
        raise ValueError(f"Mask size must be at least 2x2, got {h}x{w}.")
    return int(h), int(w)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"The number of masks must be a positive integer, got {n!r}.")
    return n


def _gen(seed: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def center_box(n: int, size=32, fraction: float = 0.5) -> torch.Tensor:
    """A centred square hole whose side is ``fraction`` of the image side (0.5: a quarter of the area)."""
    _check_n(n)
    h, w = _size(size)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}.")
    bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - bh) // 2, (w - bw) // 2
    mask = torch.ones(n, 1, h, w)
    mask[:, :, top:top + bh, left:left + bw] = 0
    return mask


def _check_count_range(name: str, pair) -> tuple[int, int]:
    lo, hi = pair
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must be (min, max) with 1 <= min <= max, got {pair}.")
    return lo, hi


def random_boxes(n: int, size=32, num_boxes: tuple[int, int] = (1, 4), max_fraction: float = 0.4,
                 seed: int | torch.Generator | None = 0) -> torch.Tensor:
    """Between ``num_boxes[0]`` and ``num_boxes[1]`` random rectangles per image, each side
    at most ``max_fraction`` of the image side."""
    _check_n(n)
    V.number("max_fraction (the largest box side, as a share of the image side)", max_fraction, 0.0, 1.0,
             low_open=True, hint="Try 0.4.")
    h, w = _size(size)
    lo, hi = _check_count_range("num_boxes", num_boxes)
    g = _gen(seed)
    ys = torch.arange(h).view(1, 1, h, 1)
    xs = torch.arange(w).view(1, 1, 1, w)
    counts = torch.randint(lo, hi + 1, (n,), generator=g)
    k = hi  # draw hi boxes per image, use the first counts[i]
    bh = torch.randint(2, max(3, int(h * max_fraction) + 1), (n, k), generator=g)
    bw = torch.randint(2, max(3, int(w * max_fraction) + 1), (n, k), generator=g)
    top = (torch.rand(n, k, generator=g) * (h - bh + 1)).long()
    left = (torch.rand(n, k, generator=g) * (w - bw + 1)).long()
    used = (torch.arange(k).view(1, k) < counts.view(n, 1))
    inside = ((ys >= top[..., None, None]) & (ys < (top + bh)[..., None, None])
              & (xs >= left[..., None, None]) & (xs < (left + bw)[..., None, None]))  # (n, k, h, w)
    hole = (inside & used[..., None, None]).any(dim=1, keepdim=True)
    return (~hole).float()


def free_form(n: int, size=32, strokes: tuple[int, int] = (1, 4), max_vertices: int = 6,
              max_width: float | None = None, seed: int | torch.Generator | None = 0) -> torch.Tensor:
    """Free-form brush strokes (as in DeepFill v2): random walks of thick line segments."""
    _check_n(n)
    h, w = _size(size)
    lo, hi = _check_count_range("strokes", strokes)
    g = _gen(seed)
    max_width = max_width or max(2.0, min(h, w) / 8)
    max_len = min(h, w) / 3
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    mask = torch.ones(n, 1, h, w)
    for i in range(n):
        hole = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(int(torch.randint(lo, hi + 1, (1,), generator=g))):
            y, x = float(torch.rand(1, generator=g)) * h, float(torch.rand(1, generator=g)) * w
            radius = (1 + float(torch.rand(1, generator=g)) * (max_width - 1)) / 2
            for _ in range(int(torch.randint(2, max_vertices + 1, (1,), generator=g))):
                angle = float(torch.rand(1, generator=g)) * 2 * math.pi
                length = (0.3 + 0.7 * float(torch.rand(1, generator=g))) * max_len
                y2 = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
                x2 = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
                # Distance from every pixel to the segment (y, x)-(y2, x2).
                dy, dx = y2 - y, x2 - x
                seg = max(dy * dy + dx * dx, 1e-8)
                s = (((yy - y) * dy + (xx - x) * dx) / seg).clamp(0, 1)
                dist2 = (yy - (y + s * dy)) ** 2 + (xx - (x + s * dx)) ** 2
                hole |= dist2 <= radius * radius
                y, x = y2, x2
        mask[i, 0] = (~hole).float()
    return mask


def half_image(n: int, size=32, side: str | None = None,
               seed: int | torch.Generator | None = 0) -> torch.Tensor:
    """Half of the image is a hole: ``side`` "left", "right", "top" or "bottom" (the half
    that is removed), or None for a random side per image."""
    _check_n(n)
    h, w = _size(size)
    sides = ("left", "right", "top", "bottom")
    if side is not None and side not in sides:
        raise ValueError(f"side must be one of {', '.join(sides)} or None, got {side!r}.")
    g = _gen(seed)
    chosen = [side] * n if side else [sides[int(i)] for i in torch.randint(0, 4, (n,), generator=g)]
    mask = torch.ones(n, 1, h, w)
    for i, s in enumerate(chosen):
        if s == "left":
            mask[i, :, :, : w // 2] = 0
        elif s == "right":
            mask[i, :, :, w // 2:] = 0
        elif s == "top":
            mask[i, :, : h // 2] = 0
        else:
            mask[i, :, h // 2:] = 0
    return mask


def make_masks(kind: str, n: int, size=32, seed: int | torch.Generator | None = 0) -> torch.Tensor:
    """``n`` keep-masks of one ``kind`` ("center", "boxes", "strokes", "half"), or "mixed":
    a random kind per image (what the inpainting models train on)."""
    if kind == "center":
        return center_box(n, size)
    if kind == "boxes":
        return random_boxes(n, size, seed=seed)
    if kind == "strokes":
        return free_form(n, size, seed=seed)
    if kind == "half":
        return half_image(n, size, seed=seed)
    if kind == "mixed":
        g = _gen(seed)
        kinds = torch.randint(0, len(MASK_KINDS), (n,), generator=g)
        out = torch.empty(_check_n(n), 1, *_size(size))
        for j, k in enumerate(MASK_KINDS):
            idx = (kinds == j).nonzero().flatten()
            if len(idx):
                out[idx] = make_masks(k, len(idx), size, g)
        return out
    raise ValueError(f"Unknown mask kind {kind!r}. Use one of: {', '.join(MASK_KINDS + ('mixed',))}.")


def apply_mask(images: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Images with their holes (mask 0) set to ``fill`` (what a model is shown)."""
    V.number("fill (the value shown in the holes)", fill,
             hint="0 is black in [0, 1] images, gray in [-1, 1].")
    if mask.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"The mask is {mask.shape[-2]}x{mask.shape[-1]} but the images are "
                         f"{images.shape[-2]}x{images.shape[-1]}: make them the same size.")
    mask = mask.to(images.device, images.dtype)
    return images * mask + fill * (1 - mask)


def hole_fraction(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of each mask's pixels that are holes, (N,)."""
    return 1 - mask.flatten(1).float().mean(dim=1)
