"""Paired data for pix2pix that the course draws itself: label maps -> rendered scenes.

Each scene is a little landscape: sky, grass, one or two houses (brick wall, roof, framed
windows) and a few bushes. The **label map** colours every pixel by what is there, like the
facades and cityscapes datasets of the pix2pix paper; the **scene** renders it::

    labels, scenes = scenes.scene_pairs(256, size=64, split="train")   # (N, 3, 64, 64) each, [0, 1]

Two kinds of detail, on purpose:

* **fixed by the label map** (a net can learn it): every region's colour, the sky's gradient
  down to the horizon, the grass lighter towards the horizon, mortar lines of the bricks
  counted from the wall's corner, roof shingles, a white frame and a lit pane in each window,
  the bushes lit from the upper left;
* **random** (no net can know it): the grain of the grass and of the leaves, each brick's own
  shade. L1 can only average this away (a smooth picture); a discriminator asks for grain
  that looks like the real one: pix2pix's GAN term, measured by :func:`high_frequency_energy`.

Deterministic for a split and a seed; the train and test splits never share a scene.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import validate as V
from .metrics import high_frequency_energy  # re-exported: pix2pix's sharpness measure

__all__ = ["CLASSES", "LABEL_COLOURS", "scene_pairs", "draw_scene", "ScenePairs", "high_frequency_energy"]

CLASSES = ("sky", "grass", "wall", "roof", "window", "bush")
#: The colour each class has in the label map (the pix2pix input), like the facades palette.
LABEL_COLOURS = torch.tensor([
    [0.55, 0.80, 1.00],   # sky
    [0.55, 0.90, 0.25],   # grass
    [1.00, 0.55, 0.15],   # wall
    [0.60, 0.15, 0.45],   # roof
    [1.00, 0.95, 0.30],   # window
    [0.05, 0.45, 0.30],   # bush
])
_SPLIT_SEEDS = {"train": 0, "test": 1_000_003}


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen))


def _int(gen: torch.Generator, lo: int, hi: int) -> int:
    """A random integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _blotches(size: int, cells: int, gen: torch.Generator) -> torch.Tensor:
    """Smooth random noise (size, size) in about [-1, 1]: a coarse grid upsampled."""
    coarse = torch.rand(1, 1, cells, cells, generator=gen) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def draw_scene(size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One (label map, scene) pair, each (3, size, size) in [0, 1], and the class index map inside.

    Returns ``(labels, scene)``; ``labels`` holds :data:`LABEL_COLOURS`.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}.")
    gen = torch.Generator().manual_seed(int(seed))
    s = size
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    y, x = torch.meshgrid(coords, coords, indexing="ij")          # in (0, 1), y down
    cls = torch.zeros(s, s, dtype=torch.long)
    img = torch.zeros(3, s, s)

    def paint(mask, colour):
        img[:, mask] = colour[:, mask] if colour.dim() == 3 else colour[:, None]

    # Sky: deep blue at the top, pale at the horizon; the horizon a gentle slope.
    h0, slope = _uniform(gen, 0.42, 0.62), _uniform(gen, -0.15, 0.15)
    horizon = h0 + slope * (x - 0.5)
    t = (y / horizon).clamp(0, 1)[None]
    top, low = torch.tensor([0.20, 0.40, 0.85])[:, None, None], torch.tensor([0.78, 0.88, 0.96])[:, None, None]
    sky = y < horizon
    paint(sky, top * (1 - t) + low * t)
    # Grass: lighter and bluer far away (near the horizon), darker near; grain and blotches random.
    ground = ~sky
    cls[ground] = 1
    depth = ((y - horizon) / (1 - horizon).clamp(min=1e-3)).clamp(0, 1)[None]
    far, near = torch.tensor([0.55, 0.70, 0.35])[:, None, None], torch.tensor([0.18, 0.42, 0.10])[:, None, None]
    grain = 0.10 * torch.randn(s, s, generator=gen) + 0.06 * _blotches(s, max(4, s // 8), gen)
    paint(ground, (far * (1 - depth) + near * depth) * (1 + grain)[None])

    # Houses, far ones first: a brick wall, a roof, a grid of framed windows.
    houses = []
    for _ in range(_int(gen, 1, 2)):
        w, h = _uniform(gen, 0.24, 0.42), _uniform(gen, 0.18, 0.30)
        x0 = _uniform(gen, 0.0, 1.0 - w)
        base = _uniform(gen, 0.05, 0.30) + h0 + abs(slope) * 0.5
        houses.append((min(base, 0.97), x0, w, h))
    px = 1.0 / s
    for base, x0, w, h in sorted(houses):
        top_y = base - h
        wall = (x >= x0) & (x < x0 + w) & (y >= top_y) & (y < base)
        cls[wall] = 2
        brick_h = max(2, round(s / 16)) * px
        row = torch.floor((y - top_y) / brick_h)
        offset = (row % 2) * brick_h
        col = torch.floor((x - x0 + offset) / (2 * brick_h))
        mortar = (((y - top_y) % brick_h) < px) | (((x - x0 + offset) % (2 * brick_h)) < px)
        # Each brick's own shade: random, from a hash of its row and column.
        shade = torch.rand(64, 64, generator=gen)[row.long().clamp(0, 63), col.long().clamp(0, 63)]
        brick = torch.tensor([0.62, 0.28, 0.20])[:, None, None] * (0.85 + 0.3 * shade)[None]
        brick = torch.where(mortar[None], torch.tensor([0.82, 0.78, 0.72])[:, None, None], brick)
        paint(wall, brick)
        # Roof: a triangle over the wall, dark shingle lines every few pixels.
        rh = _uniform(gen, 0.5, 0.8) * h
        cx = x0 + w / 2
        roof = (y < top_y) & (y >= top_y - rh) & ((x - cx).abs() <= (w / 2 + px) * (y - (top_y - rh)) / rh)
        cls[roof] = 3
        shingle = (((top_y - y) % (3 * px)) < px).float()[None]
        paint(roof, torch.tensor([0.40, 0.20, 0.16])[:, None, None] * (1 - 0.35 * shingle))
        # Windows: rows x cols, each a white frame around a pane lit at its upper left.
        rows, cols = _int(gen, 1, 2), _int(gen, 1, 3)
        ww, wh = w / (2 * cols + 1), h / (2 * rows + 1)
        if ww * s < 3 or wh * s < 3:
            continue
        for i in range(rows):
            for j in range(cols):
                wx, wy = x0 + (2 * j + 1) * ww, top_y + (2 * i + 1) * wh
                win = (x >= wx) & (x < wx + ww) & (y >= wy) & (y < wy + wh)
                cls[win] = 4
                inner = (x >= wx + px) & (x < wx + ww - px) & (y >= wy + px) & (y < wy + wh - px)
                u = ((x - wx) / ww + (y - wy) / wh).clamp(0, 2)[None] / 2
                pane = torch.tensor([0.60, 0.75, 0.90])[:, None, None] * (1 - u) + \
                    torch.tensor([0.12, 0.20, 0.38])[:, None, None] * u
                paint(win, torch.where(inner[None], pane, torch.tensor([0.95, 0.95, 0.92])[:, None, None]))

    # Bushes in front: dark green discs lit from the upper left; the leaves' grain random.
    for _ in range(_int(gen, 1, 3)):
        r = _uniform(gen, 0.06, 0.12)
        cx, cy = _uniform(gen, 0.05, 0.95), _uniform(gen, h0 + 0.1, 0.95)
        d2 = ((x - cx) ** 2 + (y - cy) ** 2) / r ** 2
        bush = (d2 <= 1) & (y > horizon)
        cls[bush] = 5
        light = (0.6 - 0.5 * ((x - cx) + (y - cy)) / r).clamp(0.2, 1.2)
        leaves = 0.18 * torch.randn(s, s, generator=gen) + 0.12 * _blotches(s, max(4, s // 6), gen)
        paint(bush, torch.tensor([0.12, 0.40, 0.12])[:, None, None] * (light * (1 + leaves))[None])

    labels = LABEL_COLOURS[cls].permute(2, 0, 1).contiguous()
    return labels, img.clamp(0, 1)


def scene_pairs(n: int, size: int = 64, split: str = "train", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (label map, scene) pairs: two (n, 3, size, size) tensors in [0, 1]."""
    V.choice("split", split, _SPLIT_SEEDS)
    n = V.count("n (the number of scenes)", n, hint="For example 256.")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny tensor ops: threads only add overhead (15x slower on 2 cores)
    try:
        pairs = [draw_scene(size, _SPLIT_SEEDS[split] + 7919 * seed + i) for i in range(int(n))]
    finally:
        torch.set_num_threads(threads)
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


class ScenePairs(torch.utils.data.Dataset):
    """(label map, scene) pairs for pix2pix, both in [-1, 1] as the networks take them."""

    def __init__(self, labels: torch.Tensor, scenes: torch.Tensor):
        if labels.shape != scenes.shape or labels.dim() != 4 or len(labels) == 0:
            raise ValueError(f"ScenePairs needs two equal, non-empty (N, 3, H, W) batches, got "
                             f"{tuple(labels.shape)} and {tuple(scenes.shape)}.")
        self.labels, self.scenes = labels, scenes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.labels[i] * 2 - 1, self.scenes[i] * 2 - 1

