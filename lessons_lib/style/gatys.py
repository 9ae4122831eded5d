"""Gatys et al. (2016): Gram matrices, the content and style losses, and the optimisation of the
image's pixels (:func:`style_transfer`) in the features of a frozen VGG."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch.nn import functional as F

from .. import validate as V
from ..models.vgg import CONTENT_LAYERS, STYLE_LAYERS, VGGFeatures, check_layers
from .inputs import prepare_pair

__all__ = ["gram_matrix", "content_loss", "style_loss", "total_variation", "StyleTransferResult",
           "style_transfer"]


# --------------------------------------------------------------------------- losses
def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C): channel correlations, divided by C*H*W."""
    if features.dim() != 4:
        raise ValueError(f"gram_matrix needs features (N, C, H, W), got {tuple(features.shape)}.")
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the feature maps of one layer."""
    return F.mse_loss(features, target.expand_as(features))


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Sum over layers of the mean squared difference between Gram matrices.

    ``features``: layer -> (N, C, H, W); ``target_grams``: layer -> (1 or N, C, C).
    ``weights``: per-layer weights (default 1 each).
    """
    missing = [name for name in target_grams if name not in features]
    if missing:
        raise ValueError(f"No features for style layer(s) {missing}; the extractor must return them.")
    total = 0.0
    for name, target in target_grams.items():
        g = gram_matrix(features[name])
        w = 1.0 if weights is None else weights.get(name, 1.0)
        total = total + w * F.mse_loss(g, target.expand_as(g))
    return total


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (down and across): small for smooth images."""
    return ((image[..., 1:, :] - image[..., :-1, :]) ** 2).mean() + \
        ((image[..., :, 1:] - image[..., :, :-1]) ** 2).mean()


# --------------------------------------------------------------------------- the optimisation
@dataclass
class StyleTransferResult:
    """The stylised image, the loss history and snapshots taken along the way."""
    image: torch.Tensor                                   # (1, 3, H, W) in [0, 1]
    history: dict[str, list[float]] = field(default_factory=dict)  # per step: content, style, total
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    @property
    def style_reduction(self) -> float:
        """Style loss at the start divided by the style loss at the end."""
        s = self.history["style"]
        return s[0] / max(s[-1], 1e-30)


def style_transfer(content, style, steps: int = 50, alpha: float = 1.0, beta: float = 1e5,
                   tv_weight: float = 0.0, optimizer: str = "lbfgs", lr: float | None = None,
                   content_layers: Sequence[str] = CONTENT_LAYERS,
                   style_layers: Sequence[str] = STYLE_LAYERS,
                   extractor: VGGFeatures | None = None, init: str = "content",
                   size: int | None = None, snapshot_every: int | None = None,
                   seed: int = 0, progress: bool = True) -> StyleTransferResult:
    """Gatys et al. (2016): optimise the pixels so content and style losses both fall.

    Loss = ``alpha`` * content loss (``content_layers``) + ``beta`` * style loss
    (``style_layers``) + ``tv_weight`` * :func:`total_variation` (which smooths away the
    pixel-level speckle that feature losses leave); the network is frozen, only the image changes. With Gram
    matrices normalised by C*H*W, alpha:beta around 1:1e5 balances the two.
    ``optimizer``: "lbfgs" (one iteration with a line search per step; few steps needed)
    or "adam" (``lr`` default 0.02). ``init``: "content" (start from the content
    image) or "noise". ``history`` holds the unweighted losses at the start of each
    step and, last, those of the result (``steps + 1`` entries): content, style, tv, total.
    """
    from tqdm.auto import tqdm

    if steps < 1:
        raise ValueError(f"steps must be a positive number of optimisation steps, got {steps}.")
    V.count("steps (optimisation steps)", steps)
    V.number("alpha (content weight)", alpha, 0.0, hint="Try alpha=1, beta=1e5.")
    V.number("beta (style weight)", beta, 0.0, hint="Try alpha=1, beta=1e5.")
    V.number("tv_weight (total-variation weight)", tv_weight, 0.0, hint="Try 0 or 10.")
    if lr is not None:
        V.number("lr", lr, 0.0, low_open=True, hint="Leave it out for the optimizer's default.")
    V.optional_count("snapshot_every", snapshot_every)
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(f"alpha and beta must be >= 0 and not both 0, got alpha={alpha}, beta={beta}.")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}.")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}.")
    content_layers, style_layers = check_layers(content_layers), check_layers(style_layers)
    c, s = prepare_pair(content, style, size=size)
    if extractor is None:
        extractor = VGGFeatures(tuple(dict.fromkeys(style_layers + content_layers)))
    device = extractor.mean.device
    c, s = c.to(device), s.to(device)
    with torch.no_grad():
        content_targets = {k: v for k, v in extractor(c).items() if k in content_layers}
        style_targets = {k: gram_matrix(v) for k, v in extractor(s).items() if k in style_layers}
    gen = torch.Generator().manual_seed(seed)
    start = c.clone() if init == "content" else torch.rand(c.shape, generator=gen).to(device)
    image = start.requires_grad_(True)
    if optimizer == "lbfgs":
        # One iteration per step (so the bar and snapshots follow it); the strong-Wolfe line
        # search keeps L-BFGS from overshooting, which it does on style losses without one.
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, max_eval=20, history_size=50,
                                line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam([image], lr=lr or 0.02)

    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}

    first = [True]

    def closure():
        # The first evaluation of each step records the losses at the current image.
        opt.zero_grad()
        feats = extractor(image)
        lc = sum(content_loss(feats[k], content_targets[k]) for k in content_layers)
        ls = style_loss(feats, style_targets)
        tv = total_variation(image)
        total = alpha * lc + beta * ls + tv_weight * tv
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"The style-transfer loss became {float(total)} after {len(history['total'])} steps. "
                "Lower the learning rate (lr), use optimizer='adam', or reduce beta.")
        total.backward()
        if first[0]:
            for k, v in zip(("content", "style", "tv", "total"), (lc, ls, tv, total), strict=True):
                history[k].append(float(v.detach()))
            first[0] = False
        return total

    result = StyleTransferResult(image=image.detach().clone(), history=history)
    bar = tqdm(range(1, steps + 1), desc="style transfer", disable=not progress)
    for step in bar:
        first[0] = True
        opt.step(closure)
        if optimizer == "adam":
            with torch.no_grad():
                image.clamp_(0, 1)
        bar.set_postfix(content=f"{history['content'][-1]:.3g}", style=f"{history['style'][-1]:.3g}")
        if snapshot_every and step % snapshot_every == 0:
            result.snapshots.append((step, image.detach().clamp(0, 1).cpu()))
    with torch.no_grad():
        # L-BFGS runs unconstrained (clamping every step stalls its line search);
        # the result is clamped to valid pixels once, and its losses recorded.
        image.clamp_(0, 1)
    first[0] = True
    closure()
    opt.zero_grad()
    result.image = image.detach().clone().cpu()
    return result
