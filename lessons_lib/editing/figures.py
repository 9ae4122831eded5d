"""Figures of the editing notebooks: original vs edits, the strength sweep, the guidance grid."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from ..figures import side_by_side
from .running import EditResult

__all__ = ["show_edit", "sweep_figure", "grid_figure"]


def show_edit(original: Image.Image, *results: EditResult | Image.Image, titles: Sequence[str] | None = None,
              title: str | None = None):
    """Original and edits side by side (titles default to each edit's prompt)."""
    _check_original(original, "show_edit")
    for i, r in enumerate(results):
        if not isinstance(r, (EditResult, Image.Image)):
            raise TypeError(f"show_edit shows edits (what the editing helpers return) or PIL images; edit "
                            f"{i + 1} is {type(r).__name__}.")
    images = [original] + [r.image if isinstance(r, EditResult) else r for r in results]
    if titles is None:
        titles = ["original"] + [_short_title(r) for r in results]
    return side_by_side(images, titles, title=title)


def _short_title(result) -> str:
    if not isinstance(result, EditResult):
        return "edited"
    text = result.label
    return text if len(text) <= 28 else text[:26] + "..."


def sweep_figure(original: Image.Image, results: Sequence[EditResult]):
    """The strength sweep: input, then one panel per strength with the steps that ran."""
    _check_original(original, "sweep_figure")
    _check_results(results, "sweep_figure", "strength_sweep", "strength")
    titles = ["input"] + [f"strength {r.params['strength']:.1f}\n{r.steps_run} of "
                          f"{r.params['num_inference_steps']} steps" for r in results]
    return side_by_side([original] + [r.image for r in results], titles, cell=2.6)


def grid_figure(grid: Sequence[Sequence[EditResult]], cell: float = 2.2):
    """The InstructPix2Pix guidance grid: rows image_guidance_scale, columns guidance_scale."""
    import matplotlib.pyplot as plt

    if isinstance(grid, (str, bytes)) or not hasattr(grid, "__len__") or not len(grid):
        raise ValueError(f"grid_figure draws what guidance_grid returns (rows of edits), got {grid!r}.")
    for row in grid:
        _check_results(row, "grid_figure", "guidance_grid", "image_guidance_scale")
    rows, cols = len(grid), len(grid[0])
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + 1, cell * rows), squeeze=False)
    for i, row in enumerate(grid):
        for j, res in enumerate(row):
            ax = axes[i][j]
            ax.imshow(np.asarray(res.image))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"guidance_scale {res.params['guidance_scale']:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"image_guidance\n{res.params['image_guidance_scale']:g}", fontsize=9)
    fig.suptitle(f"“{grid[0][0].params['instruction']}”: text strength →, image stability ↓")
    fig.tight_layout()
    return fig


def _check_results(results, figure: str, helper: str, param: str) -> None:
    """The edits a figure draws: a non-empty list of EditResults from ``helper``."""
    if isinstance(results, (str, bytes)) or not hasattr(results, "__len__") or not len(results) or any(
            not isinstance(r, EditResult) or param not in r.params for r in results):
        raise ValueError(f"{figure} draws the edits {helper} returns (a non-empty list of EditResults), "
                         f"got {results!r:.80}.")


def _check_original(original, figure: str) -> None:
    if original is None or isinstance(original, EditResult):
        raise TypeError(f"{figure} needs the original image first (a PIL image), got "
                        f"{type(original).__name__}: {figure}(image, ...).")
