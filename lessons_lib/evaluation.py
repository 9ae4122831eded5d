"""Scoring colorizers: model outputs -> metrics beside the "keep the gray" baseline -> tables.

    scores = evaluate(model, photos)              # photos: (N, 3, H, W) in [0, 1]
    scores["model"]["delta_e76"], scores["gray"]["delta_e76"]
    print(results_table({"unet": scores["model"], "gray baseline": scores["gray"]}))

Every number is a mean over the images: SSIM and PSNR (higher is better), Delta E 76
and 2000 in CIELAB and LPIPS (lower is better), and colourfulness, which has no
"better" direction by itself: the best is the one closest to the real photos'
(``target_colorfulness``). LPIPS is None when its backbone weights are not available
offline.
"""
from __future__ import annotations

import csv
import inspect
import io
import math
import warnings
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from . import metrics, tables
from . import validate as V
from .files import atomic_write_text
from .images import rgb_to_gray, to_signed, to_unit

__all__ = ["METRICS", "HIGHER_IS_BETTER", "colorize", "gray_baseline", "image_metrics", "load_lpips",
           "evaluate", "results_table", "results_csv", "save_results"]

METRICS = ("ssim", "psnr", "delta_e76", "delta_e2000", "colorfulness", "lpips")
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "delta_e76": False, "delta_e2000": False, "lpips": False}
LABELS = {"ssim": "SSIM", "psnr": "PSNR (dB)", "delta_e76": "Delta E 76", "delta_e2000": "Delta E 2000",
          "colorfulness": "colourfulness", "lpips": "LPIPS"}


@torch.no_grad()
def colorize(model: nn.Module, gray: torch.Tensor, batch_size: int = 256, num_inference_steps: int = 50,
             generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Colour (N, 3, H, W) in [-1, 1] for grayscale (N, 1, H, W) in [-1, 1], in eval mode.

    Runs in batches on the model's device; diffusion models take ``num_inference_steps``
    and ``generator`` (the sampling noise), the others ignore them.
    """
    if gray.dim() != 4 or gray.shape[1] != 1:
        raise ValueError(f"colorize needs grayscale (N, 1, H, W), got {tuple(gray.shape)}.")
    V.count("batch_size", batch_size, hint="It is the number of images per forward pass, e.g. 256.")
    V.count("num_inference_steps", num_inference_steps, hint="The diffusion models' sampling steps, e.g. 50.")
    V.value_range("The grayscale input of colorize", gray, -1.0, 1.0,
                  hint="colorize takes [-1, 1]; convert [0, 1] images with lessons_lib.images.to_signed.")
    device = next(model.parameters()).device
    params = inspect.signature(model.colorize).parameters
    kwargs = {}
    if "num_inference_steps" in params:
        kwargs["num_inference_steps"] = num_inference_steps
    if "generator" in params:
        kwargs["generator"] = generator
    if "progress" in params:
        kwargs["progress"] = progress
    was_training = model.training
    model.eval()
    try:
        out = [model.colorize(g.to(device), **kwargs).float().cpu() for g in gray.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def gray_baseline(photos: torch.Tensor) -> torch.Tensor:
    """The trivial colorizer: the grayscale image copied to R, G and B ([0, 1] in and out)."""
    return rgb_to_gray(photos, keep_channels=True)


def load_lpips(device: torch.device | str | None = None):
    """The LPIPS metric, or None (with a warning saying why) when its weights are unavailable."""
    try:
        return metrics.LPIPS(device=device)
    except metrics.LPIPSUnavailable as err:
        warnings.warn(f"LPIPS is left out (reported as null): {err}", stacklevel=2)
        return None


def image_metrics(output: torch.Tensor, target: torch.Tensor, lpips=None) -> dict[str, float | None]:
    """Mean SSIM, PSNR, Delta E 76/2000, colourfulness (of ``output``) and LPIPS; [0, 1] RGB."""
    output, target = output.float().clamp(0, 1), target.float().clamp(0, 1)
    scores = metrics.compare(output, target)  # one pass: one CIELAB conversion for both Delta E
    return {
        **{k: float(v) for k, v in scores.items()},
        "colorfulness": float(metrics.colorfulness(output)),
        "lpips": float(lpips(output, target)) if lpips is not None else None,
    }


def evaluate(model: nn.Module, photos: torch.Tensor, batch_size: int = 256, num_inference_steps: int = 50,
             seed: int = 0, lpips="auto", progress: bool = False) -> dict:
    """Colorizes the grayscale versions of ``photos`` ((N, 3, H, W) in [0, 1]) and scores them.

    Returns ``{"model": metrics, "gray": metrics of the gray baseline on the same images,
    "target_colorfulness": float, "n_images": N, "outputs": (N, 3, H, W) in [0, 1]}``.
    ``lpips="auto"`` loads LPIPS when its weights are there (else the values are None);
    pass an ``LPIPS`` instance to reuse one, or None to skip it.
    """
    if photos.dim() != 4 or photos.shape[1] != 3:
        raise ValueError(f"evaluate needs colour photos (N, 3, H, W) in [0, 1], got {tuple(photos.shape)}.")
    if len(photos) == 0:
        raise ValueError("There are no images to evaluate on.")
    V.value_range("The photos given to evaluate", photos, 0.0, 1.0)
    if isinstance(lpips, str):
        lpips = load_lpips()
    gray = to_signed(rgb_to_gray(photos))
    gen = torch.Generator().manual_seed(seed)
    outputs = to_unit(colorize(model, gray, batch_size, num_inference_steps, gen, progress)).clamp(0, 1)
    return {
        "model": image_metrics(outputs, photos, lpips),
        "gray": image_metrics(gray_baseline(photos), photos, lpips),
        "target_colorfulness": float(metrics.colorfulness(photos)),
        "n_images": len(photos),
        "outputs": outputs,
    }


# --------------------------------------------------------------------------- tables
def _best(results: Mapping[str, Mapping], key: str, target_colorfulness: float | None):
    values = {name: r.get(key) for name, r in results.items()}
    values = {n: v for n, v in values.items() if v is not None and math.isfinite(v)}
    if not values:
        return set()
    if key == "colorfulness":
        if target_colorfulness is None:
            return set()
        score = {n: -abs(v - target_colorfulness) for n, v in values.items()}
    else:
        sign = 1 if HIGHER_IS_BETTER[key] else -1
        score = {n: sign * v for n, v in values.items()}
    top = max(score.values())
    return {n for n, s in score.items() if math.isclose(s, top, rel_tol=0, abs_tol=1e-12)}


def _fmt(value, key) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if key in ("psnr", "colorfulness", "delta_e76", "delta_e2000") else f"{value:.4f}"


def results_table(results: Mapping[str, Mapping], target_colorfulness: float | None = None) -> str:
    """A Markdown table, one row per model (include the gray baseline as a row), best in bold.

    Colourfulness is "best" when closest to ``target_colorfulness`` (the real photos').
    """
    if not results:
        raise ValueError("results_table needs at least one row of results.")
    best = {k: _best(results, k, target_colorfulness) for k in METRICS}
    real = f"{target_colorfulness:.2f}" if target_colorfulness is not None else "n/a"
    arrows = {k: (" (higher better)" if HIGHER_IS_BETTER[k] else " (lower better)")
              if k in HIGHER_IS_BETTER else f" (real photos: {real})" for k in METRICS}
    rows = []
    for name, r in results.items():
        texts = [_fmt(r.get(k), k) for k in METRICS]
        rows.append([name, *(f"**{t}**" if name in best[k] else t for k, t in zip(METRICS, texts))])
    return tables.markdown_table(["model", *(LABELS[k] + arrows[k] for k in METRICS)], rows) + "\n"


def results_csv(results: Mapping[str, Mapping]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", *METRICS])
    for name, r in results.items():
        writer.writerow([name, *("" if r.get(k) is None else f"{r[k]:.6g}" for k in METRICS)])
    return buf.getvalue()


def save_results(results: Mapping[str, Mapping], out_dir: str | Path, stem: str = "comparison",
                 target_colorfulness: float | None = None, overwrite: bool = False) -> tuple[Path, Path]:
    """Writes ``stem.md`` and ``stem.csv`` atomically; an existing table is kept unless ``overwrite``."""
    out_dir = V.output_dir(out_dir, "output folder")
    md, cs = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    for path in (md, cs):
        if path.exists() and not overwrite:
            raise FileExistsError(f"'{path}' already exists and is kept. Pass --overwrite (overwrite=True) "
                                  f"to replace it, or choose another output folder.")
    with V.writing(md):
        atomic_write_text(md, results_table(results, target_colorfulness))
        atomic_write_text(cs, results_csv(results))
    return md, cs
