"""Inpainting masks: the one convention, its checks, the generators, and converters.

**The course's convention is the keep-mask**: a float tensor (N, 1, H, W) with
1 = a known pixel that is kept and 0 = a hole to fill (RePaint's convention, used by
:mod:`lessons_lib.diffusion`, :mod:`lessons_lib.inpainting` and lesson 3). Two other
forms exist outside the course, and are converted explicitly, never guessed:

* the **Stable Diffusion form** (``diffusers``' inpainting pipelines, lesson 4): a PIL
  ``"L"`` image, white (255) = repaint, black (0) = keep -> :func:`to_sd_mask` /
  :func:`from_sd_mask`;
* the **boolean-hole form** (exercise 4, NumPy code): a 2-D bool array, True = hole
  -> :func:`to_holes` / :func:`from_holes`.

Soft (feathered) keep-masks hold values between 0 and 1; :func:`to_sd_mask` keeps the
softness (255 * (1 - keep)), :func:`to_holes` thresholds at one half. Every generator
is batched and seeded: the same ``seed`` always gives the same masks. The random ones
draw a whole batch in one vectorised call on the device of their generator (``device=``
for a seed), so a training loop on a GPU makes its masks there, in step with the model;
CPU and CUDA generators are different algorithms, so one seed gives other masks (from
the same distribution) on each kind of device.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import validate as V

__all__ = ["KEEP", "HOLE", "MASK_KINDS", "check_mask", "center_box", "random_boxes", "free_form",
           "half_image", "make_masks", "box_mask", "feather", "apply_mask", "hole_fraction",
           "to_sd_mask", "from_sd_mask", "to_holes", "from_holes"]

KEEP, HOLE = 1.0, 0.0  # the values of a keep-mask
MASK_KINDS = ("center", "boxes", "strokes", "half")


def _size(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    hint = "A mask is at least 2x2 pixels; size is its side, or (height, width)."
    return V.count("The mask height", h, 2, hint=hint), V.count("The mask width", w, 2, hint=hint)


def _check_n(n: int) -> int:
    return V.count("n (the number of masks)", n)


def _gen(seed: int | torch.Generator | None, device=None) -> torch.Generator:
    """The generator to draw from: ``seed`` itself, or a new one seeded with it on ``device``."""
    if isinstance(seed, torch.Generator):
        if device is not None and torch.device(device).type != seed.device.type:
            raise ValueError(f"device={device!r} differs from the generator's device ({seed.device}): "
                             f"the masks are drawn where the generator is. Leave device out.")
        return seed
    return torch.Generator(device or "cpu").manual_seed(0 if seed is None else int(seed))


def _grid(h: int, w: int, device, dtype=torch.long) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices shaped (1, 1, h, 1) and (1, 1, 1, w), to broadcast against a batch."""
    return (torch.arange(h, device=device, dtype=dtype).view(1, 1, h, 1),
            torch.arange(w, device=device, dtype=dtype).view(1, 1, 1, w))


def check_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """A keep-mask (1 = known pixel, 0 = fill) as a float (N or 1, 1, H, W) tensor for ``image``.

    Accepts (H, W), (1, H, W), (N, 1, H, W) or (N, H, W); values must be 0/1. Refuses a
    mask of another size than the image, and a mask that keeps nothing or everything
    (for any image in the batch), since inpainting is then meaningless.
    """
    m = _as_batch(mask)
    h, w = image.shape[-2:]
    if m.shape[-2:] != (h, w):
        raise ValueError(f"The mask is {m.shape[-2]}x{m.shape[-1]} "
                         f"but the image is {h}x{w}: make the mask the same height and width as the image.")
    n = image.shape[0] if image.dim() == 4 else 1
    if m.shape[0] not in (1, n):
        raise ValueError(f"Got {m.shape[0]} masks for {n} images: give one mask, or one per image.")
    if not torch.all((m == 0) | (m == 1)):
        raise ValueError("The mask must hold only 0 (fill) and 1 (keep); threshold it first, "
                         "e.g. (mask > 0.5).float().")
    kept = m.flatten(1).sum(1)
    if (kept == 0).any():
        raise ValueError("The mask keeps no pixel (all zeros; 1 = keep, 0 = fill): there is nothing "
                         "known to inpaint from. Use ordinary sampling, or mark the known pixels with 1.")
    if (kept == h * w).any():
        raise ValueError("The mask keeps every pixel (all ones; 1 = keep, 0 = fill): there is nothing "
                         "to inpaint. Mark the region to fill with 0.")
    return m.to(image.device)


def center_box(n: int, size=32, fraction: float = 0.5, device=None) -> torch.Tensor:
    """A centred square hole whose side is ``fraction`` of the image side (0.5: a quarter of the area)."""
    n = _check_n(n)
    h, w = _size(size)
    fraction = V.fraction("fraction (the hole's side, as a share of the image side)", fraction,
                          hint="0.5 removes a quarter of the area.")
    bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - bh) // 2, (w - bw) // 2
    mask = torch.ones(n, 1, h, w, device=device)
    mask[:, :, top:top + bh, left:left + bw] = 0
    return mask


def _check_count_range(name: str, pair) -> tuple[int, int]:
    """(min, max), two whole numbers with 1 <= min <= max."""
    hint = f"{name} is (min, max) with 1 <= min <= max, e.g. (1, 4)."
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be (min, max), got {pair!r}. {hint}")
    lo = V.count(f"{name}'s min", pair[0], 1, hint=hint)
    return lo, V.count(f"{name}'s max", pair[1], lo, hint=hint)


def random_boxes(n: int, size=32, num_boxes: tuple[int, int] = (1, 4), max_fraction: float = 0.4,
                 seed: int | torch.Generator | None = 0, device=None) -> torch.Tensor:
    """Between ``num_boxes[0]`` and ``num_boxes[1]`` random rectangles per image, each side
    at most ``max_fraction`` of the image side."""
    n = _check_n(n)
    V.number("max_fraction (the largest box side, as a share of the image side)", max_fraction, 0.0, 1.0,
             low_open=True, hint="Try 0.4.")
    h, w = _size(size)
    lo, hi = _check_count_range("num_boxes", num_boxes)
    g = _gen(seed, device)
    dev = g.device
    ys, xs = _grid(h, w, dev)
    counts = torch.randint(lo, hi + 1, (n,), generator=g, device=dev)
    k = hi  # draw hi boxes per image, use the first counts[i]
    bh = torch.randint(2, max(3, int(h * max_fraction) + 1), (n, k), generator=g, device=dev)
    bw = torch.randint(2, max(3, int(w * max_fraction) + 1), (n, k), generator=g, device=dev)
    top = (torch.rand(n, k, generator=g, device=dev) * (h - bh + 1)).long()
    left = (torch.rand(n, k, generator=g, device=dev) * (w - bw + 1)).long()
    used = (torch.arange(k, device=dev).view(1, k) < counts.view(n, 1))
    inside = ((ys >= top[..., None, None]) & (ys < (top + bh)[..., None, None])
              & (xs >= left[..., None, None]) & (xs < (left + bw)[..., None, None]))  # (n, k, h, w)
    hole = (inside & used[..., None, None]).any(dim=1, keepdim=True)
    return (~hole).float()


def free_form(n: int, size=32, strokes: tuple[int, int] = (1, 4), max_vertices: int = 6,
              max_width: float | None = None, seed: int | torch.Generator | None = 0,
              device=None) -> torch.Tensor:
    """Free-form brush strokes (as in DeepFill v2): random walks of thick line segments.

    Each image gets ``strokes`` (min, max) strokes; each stroke a width, a start and 2 to
    ``max_vertices`` segments of random angle and length, clamped to the image.
    """
    n = _check_n(n)
    h, w = _size(size)
    lo, hi = _check_count_range("strokes", strokes)
    V.count("max_vertices (the most segments in a stroke)", max_vertices, 2, hint="Try 6.")
    g = _gen(seed, device)
    dev = g.device
    max_width = max_width or max(2.0, min(h, w) / 8)
    max_len = min(h, w) / 3

    def uniform(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    # Every image draws the most strokes and segments; the first counts[i] strokes and the
    # first segs[i, s] segments of each are used. A fixed number of draws per batch keeps
    # it one vectorised call, with no per-image Python and no device synchronisation.
    s, v = hi, max_vertices
    counts = torch.randint(lo, hi + 1, (n, 1), generator=g, device=dev)
    y, x = uniform(n, s) * h, uniform(n, s) * w
    radius = (1 + uniform(n, s) * (max_width - 1)) / 2
    segs = torch.randint(2, v + 1, (n, s), generator=g, device=dev)
    angle = uniform(n, s, v) * (2 * math.pi)
    length = (0.3 + 0.7 * uniform(n, s, v)) * max_len
    stroke_used = torch.arange(s, device=dev).view(1, s) < counts  # (n, s)
    ys, xs = [y], [x]
    for j in range(v):  # the random walk: each vertex from the last, clamped to the image
        ys.append((ys[-1] + length[..., j] * torch.sin(angle[..., j])).clamp(0, h - 1))
        xs.append((xs[-1] + length[..., j] * torch.cos(angle[..., j])).clamp(0, w - 1))
    walk_y, walk_x = torch.stack(ys, -1), torch.stack(xs, -1)  # (n, s, v + 1)
    # The n * s * v segments as (n, s * v): start, direction, radius^2; unused strokes and
    # segments get a negative radius^2 (no pixel is that close).
    y0, x0 = walk_y[..., :-1].flatten(1), walk_x[..., :-1].flatten(1)
    dy, dx = walk_y.diff(dim=-1).flatten(1), walk_x.diff(dim=-1).flatten(1)
    on = stroke_used[..., None] & (torch.arange(v, device=dev) < segs[..., None])  # (n, s, v)
    reach = torch.where(on, (radius * radius)[..., None], -1.0).flatten(1)
    yy, xx = _grid(h, w, dev, torch.float32)
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool, device=dev)
    chunk = max(1, (1 << 22) // (n * h * w))  # segments per pass: temporaries of at most 4M values
    for k in range(0, s * v, chunk):
        part = slice(k, k + chunk)
        hole |= _near_segments(yy, xx, y0[:, part], x0[:, part], dy[:, part], dx[:, part], reach[:, part])
    return (~hole).float()


def _near_segments(yy, xx, y0, x0, dy, dx, reach) -> torch.Tensor:
    """(n, 1, h, w): the pixels within sqrt(reach) of any of the (n, k) segments (y0, x0) + [0, 1] (dy, dx)."""
    y0, x0, dy, dx, reach = (v[..., None, None] for v in (y0, x0, dy, dx, reach))
    # With a = p - start, d the direction, t = clamp(a.d / |d|^2, 0, 1), the squared distance
    # is |a|^2 + t (t |d|^2 - 2 a.d); a is (n, k, h, 1) and (n, k, 1, w), so only the terms
    # after it are full size (a third of the work of forming p - (start + t d)).
    ay, ax = yy - y0, xx - x0
    d2 = (dy * dy + dx * dx).clamp_min(1e-8)
    dot = ay * dy + ax * dx
    t = (dot / d2).clamp_(0, 1)
    dist2 = (t * d2).sub_(dot, alpha=2).mul_(t).add_(ay * ay).add_(ax * ax)
    return (dist2 <= reach).any(dim=1, keepdim=True)


_SIDES = ("left", "right", "top", "bottom")


def half_image(n: int, size=32, side: str | None = None,
               seed: int | torch.Generator | None = 0, device=None) -> torch.Tensor:
    """Half of the image is a hole: ``side`` "left", "right", "top" or "bottom" (the half
    that is removed), or None for a random side per image."""
    n = _check_n(n)
    h, w = _size(size)
    if side is not None:
        V.choice("side", side, _SIDES, also="or None for a random side per image")
    g = _gen(seed, device)
    dev = g.device
    if side:
        chosen = torch.full((n,), _SIDES.index(side), device=dev)
    else:
        chosen = torch.randint(0, 4, (n,), generator=g, device=dev)
    c = chosen.view(n, 1, 1, 1)
    ys, xs = _grid(h, w, dev)
    hole = (((c == 0) & (xs < w // 2)) | ((c == 1) & (xs >= w // 2))
            | ((c == 2) & (ys < h // 2)) | ((c == 3) & (ys >= h // 2)))
    return (~hole).float()


def make_masks(kind: str, n: int, size=32, seed: int | torch.Generator | None = 0, device=None) -> torch.Tensor:
    """``n`` keep-masks of one ``kind`` ("center", "boxes", "strokes", "half"), or "mixed":
    a random kind per image (what the inpainting models train on). They are made on
    ``device`` (default: the generator's, or the CPU for a seed)."""
    V.choice("mask kind", kind, MASK_KINDS + ("mixed",))
    if kind == "center":  # not random: only the device is taken from the generator
        return center_box(n, size, device=_gen(seed, device).device if isinstance(seed, torch.Generator) else device)
    if kind == "boxes":
        return random_boxes(n, size, seed=seed, device=device)
    if kind == "strokes":
        return free_form(n, size, seed=seed, device=device)
    if kind == "half":
        return half_image(n, size, seed=seed, device=device)
    if kind == "mixed":
        g = _gen(seed, device)
        kinds = torch.randint(0, len(MASK_KINDS), (_check_n(n), 1, 1, 1), generator=g, device=g.device)
        # Every kind is drawn for every image and each image keeps its own: a fixed amount of
        # work and of random numbers per batch, without a device sync to count each kind.
        out = center_box(n, size, device=g.device)
        for j, k in enumerate(MASK_KINDS[1:], start=1):
            out = torch.where(kinds == j, make_masks(k, n, size, g), out)
        return out
    raise AssertionError(f"mask kind {kind!r} has no maker")


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
    """Fraction of each keep-mask's pixels that are holes, (N,): exercise 4's ``coverage``."""
    return 1 - _as_batch(mask).flatten(1).mean(dim=1)


# --------------------------------------------------------------------------- boxes and feathering
def box_mask(size, bbox: Sequence[float]) -> torch.Tensor:
    """A (1, 1, H, W) keep-mask of ``size`` (an int or (height, width)) with a hole inside
    ``bbox`` = (left, top, right, bottom) in pixels, right/bottom exclusive (PIL's box order)."""
    h, w = _size(size)
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (left, top, right, bottom), got {bbox!r}.")
    left, top, right, bottom = (int(round(float(v))) for v in bbox)
    if not (0 <= left < right <= w and 0 <= top < bottom <= h):
        raise ValueError(f"bbox {tuple(bbox)} is not a box inside the {w}x{h} image: it needs "
                         f"0 <= left < right <= {w} and 0 <= top < bottom <= {h}.")
    mask = torch.ones(1, 1, h, w)
    mask[..., top:bottom, left:right] = HOLE
    return mask


def feather(mask: torch.Tensor, radius: float) -> torch.Tensor:
    """A soft keep-mask: ``mask`` blurred by a Gaussian of standard deviation ``radius``
    pixels (0 returns a copy), so a seam fades over a few pixels instead of a hard edge.
    Edges are padded by replication, so the border of the image does not darken."""
    radius = V.number("The feather radius", radius, 0, hint="It is in pixels; 0 leaves the mask as it is.")
    m = _as_batch(mask)
    if radius == 0:
        return m.clone()
    half = max(1, math.ceil(3 * radius))
    x = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / radius) ** 2)
    kernel = (kernel / kernel.sum()).to(m)
    # Separable blur: rows, then columns.
    out = F.conv2d(F.pad(m, (half, half, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, half, half), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out.clamp(0, 1)


def _as_batch(mask) -> torch.Tensor:
    """A keep-mask in any accepted shape as a float (N, 1, H, W) tensor."""
    m = torch.as_tensor(mask).float()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1:
        raise ValueError(f"A keep-mask must be (H, W), (N, H, W) or (N, 1, H, W); got {tuple(m.shape)}.")
    return m


def _one_mask(mask, converter: str) -> torch.Tensor:
    m = _as_batch(mask)
    if m.shape[0] != 1:
        raise ValueError(f"{converter} converts one mask at a time, got a batch of {m.shape[0]}.")
    return m


# --------------------------------------------------------------------------- converters
def to_sd_mask(mask: torch.Tensor) -> Image.Image:
    """Keep-mask (one image; 1 = keep) -> Stable Diffusion's PIL "L" mask (white = repaint).

    Soft values stay soft: a keep value k becomes round(255 * (1 - k))."""
    m = _one_mask(mask, "to_sd_mask")
    # Rounded in NumPy: torch.round wakes every CPU thread even for a small mask (ms on a busy machine).
    arr = np.rint((1 - m[0, 0].clamp(0, 1)).cpu().numpy() * 255).astype(np.uint8)
    return Image.fromarray(arr, mode="L")


def from_sd_mask(image: Image.Image, binary: bool = False) -> torch.Tensor:
    """Stable Diffusion mask (white = repaint; any PIL mode) -> (1, 1, H, W) keep-mask.

    ``binary=True`` thresholds at mid-gray (values >= 128 are holes), as diffusers does."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"from_sd_mask needs a PIL image (white = repaint), got {type(image).__name__}.")
    gray = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    repaint = (gray >= 0.5).float() if binary else gray
    return (1 - repaint)[None, None]


def to_holes(mask: torch.Tensor) -> np.ndarray:
    """Keep-mask (one image) -> 2-D boolean NumPy array, True = hole (exercise 4's form)."""
    m = _one_mask(mask, "to_holes")
    return (m[0, 0] < 0.5).cpu().numpy()


def from_holes(holes) -> torch.Tensor:
    """2-D boolean array (True = hole) -> (1, 1, H, W) float keep-mask (1 = keep)."""
    arr = np.asarray(holes)
    if arr.ndim != 2:
        raise ValueError(f"A hole mask must be 2-D (height, width), got shape {arr.shape}.")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError("A hole mask must be boolean (True = hole) or hold only 0 and 1.")
        arr = arr.astype(bool)
    return torch.from_numpy(~arr).float()[None, None]
