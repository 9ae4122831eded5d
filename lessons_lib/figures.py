"""Matplotlib figures the notebooks share: image rows, side-by-side panels, loss curves."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from PIL import Image

__all__ = ["show_rows", "save_rows", "side_by_side", "plot_losses", "plot_loss_grid", "to_displayable"]


def to_displayable(img):
    """HxWx3 (or HxW) float array in [0, 1] from a PIL image or a CHW tensor in [0, 1]."""
    import numpy as np

    if isinstance(img, Image.Image):
        arr = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img, dtype=np.float32) / 255
        return arr
    if torch.is_tensor(img):
        t = img.detach().float().cpu().clamp(0, 1)
        if t.dim() == 3 and t.shape[0] == 1:
            return t[0].numpy()
        if t.dim() == 3:
            return t.permute(1, 2, 0).numpy()
        if t.dim() == 2:
            return t.numpy()
    raise TypeError(f"Cannot show a {type(img).__name__} of shape {getattr(img, 'shape', '?')}.")


def show_rows(rows: Mapping[str, Sequence], n: int | None = None, title: str | None = None,
              cell: float = 1.6):
    """One labelled row per entry: e.g. {"grayscale input": g, "output": y, "target": t}.

    Each value is an (N, C, H, W) tensor in [0, 1] or a list of PIL images; the
    first ``n`` of each are shown. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("show_rows needs at least one row of images.")
    lengths = [len(v) for v in rows.values()]
    cols = min(lengths) if n is None else min(n, *lengths)
    fig, axes = plt.subplots(len(rows), cols, figsize=(cell * cols, cell * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r][c]
            arr = to_displayable(images[c])
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_rows(rows: Mapping[str, Sequence], path, n: int | None = None, title: str | None = None,
              overwrite: bool = False):
    """:func:`show_rows` written to a PNG file (atomically; an existing file is kept unless
    ``overwrite``). Returns the path."""
    import matplotlib.pyplot as plt

    from .files import atomic_write

    fig = show_rows(rows, n, title)
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100), overwrite)
    finally:
        plt.close(fig)


def side_by_side(images: Sequence, titles: Sequence[str] | None = None, cell: float = 3.5,
                 title: str | None = None):
    """Images in one row with a title each (input / output / target, original / edited)."""
    import matplotlib.pyplot as plt

    if not images:
        raise ValueError("side_by_side needs at least one image.")
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles.")
    fig, axes = plt.subplots(1, len(images), figsize=(cell * len(images), cell), squeeze=False)
    for ax, img, t in zip(axes[0], images, titles):
        arr = to_displayable(img)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(t)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_LINE_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D")


def plot_losses(history: Mapping[str, Sequence[float]], title: str = "Training loss",
                xlabel: str = "epoch", logy: bool | None = None, ax=None):
    """Loss curves from a history dict {"train_loss": [...], "val_loss": [...]} (on ``ax`` when given).

    ``logy``: a log scale; by default (None) when the curves are all positive and span more
    than a factor of 100 (a GAN's generator loss beside its discriminator's), where a linear
    axis flattens the small ones into a line at zero."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.5)) if ax is None else (ax.figure, ax)
    for i, (name, values) in enumerate(history.items()):
        values = list(values)
        if values:
            # A line style and marker per curve as well as a colour: curves that coincide stay visible.
            ax.plot(range(1, len(values) + 1), values, ls=_LINE_STYLES[i % len(_LINE_STYLES)],
                    marker=_MARKERS[i % len(_MARKERS)] if len(values) < 30 else None, label=name)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no "epoch 1.2" ticks
    ax.set_ylabel("loss")
    if logy is None:
        values = [float(v) for curve in history.values() for v in curve]
        logy = bool(values) and min(values) > 0 and max(values) > 100 * min(values)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_loss_grid(histories: Mapping[str, Mapping[str, Sequence[float]]], keys: Sequence[str] | None = None,
                   columns: int = 4, xlabel: str = "epoch"):
    """One :func:`plot_losses` panel per model: {model: history}; ``keys`` picks the curves."""
    import math

    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("plot_loss_grid needs at least one history.")
    rows = math.ceil(len(histories) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, (name, history) in zip(axes.flat, histories.items()):
        curves = {k: v for k, v in history.items() if (keys is None or k in keys) and k != "epoch"}
        plot_losses(curves, title=name, xlabel=xlabel, ax=ax)
    for ax in list(axes.flat)[len(histories):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
