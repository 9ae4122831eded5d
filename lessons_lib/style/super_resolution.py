"""Super-resolution with a perceptual loss (Johnson et al., 2016): the VGG-feature loss, the
low-/high-resolution pairs, the bicubic baseline, and the scores (PSNR, SSIM, VGG-feature
distance) of bicubic and each net on held-out photos."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..models.vgg import VGGFeatures, check_layers

__all__ = ["PerceptualLoss", "make_sr_pairs", "bicubic", "DISTANCE_LAYERS", "feature_distance", "sr_scores"]


class PerceptualLoss(nn.Module):
    """Johnson et al.'s feature reconstruction loss: MSE between VGG features.

    ``loss(output, target)`` with both (N, 3, H, W) in [0, 1]. Used for super-resolution
    instead of (or with, ``pixel_weight`` > 0) pixel MSE, which rewards blurry averages.
    """

    def __init__(self, layers: Sequence[str] = ("relu2_2",), weights: Sequence[float] | None = None,
                 pixel_weight: float = 0.0, extractor: VGGFeatures | None = None, **vgg_kwargs):
        super().__init__()
        self.layers = check_layers(layers)
        if weights is not None and len(weights) != len(self.layers):
            raise ValueError(f"{len(weights)} weights for {len(self.layers)} layers.")
        self.weights = tuple(weights) if weights is not None else (1.0,) * len(self.layers)
        self.pixel_weight = float(pixel_weight)
        if extractor is not None:
            missing = [n for n in self.layers if n not in extractor.layers]
            if missing:
                raise ValueError(f"The extractor does not return {missing}.")
        self.extractor = extractor or VGGFeatures(self.layers, **vgg_kwargs)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape != target.shape:
            raise ValueError(f"Output {tuple(output.shape)} and target {tuple(target.shape)} "
                             "differ in shape.")
        fo = self.extractor(output)
        with torch.no_grad():
            ft = self.extractor(target)
        loss = sum(w * F.mse_loss(fo[n], ft[n]) for n, w in zip(self.layers, self.weights, strict=True))
        if self.pixel_weight:
            loss = loss + self.pixel_weight * F.mse_loss(output, target)
        return loss


def make_sr_pairs(high_res: torch.Tensor, scale: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(low-res, high-res) for super-resolution: area-downsample (N, 3, H, W) by ``scale``."""
    if high_res.dim() != 4 or high_res.shape[-1] % scale or high_res.shape[-2] % scale:
        raise ValueError(f"High-resolution images must be (N, 3, H, W) with H and W divisible by "
                         f"{scale}, got {tuple(high_res.shape)}.")
    low = F.interpolate(high_res, scale_factor=1 / scale, mode="area")
    return low, high_res


def bicubic(low_res: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The baseline every super-resolution net must beat: bicubic upsampling, clipped to [0, 1]."""
    return F.interpolate(low_res, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


#: Layers of the VGG-feature distance that scores SR outputs: wider than the perceptual
#: net's training loss (relu2_2 alone), so the score is not just the loss it minimised.
DISTANCE_LAYERS = ("relu1_2", "relu2_2", "relu3_2")


@torch.no_grad()
def feature_distance(a: torch.Tensor, b: torch.Tensor, extractor: VGGFeatures) -> torch.Tensor:
    """Per-image VGG-feature distance (N,): mean squared difference, summed over the extractor's layers."""
    fa, fb = extractor(a), extractor(b)
    return sum(((fa[k] - fb[k]) ** 2).flatten(1).mean(1) for k in extractor.layers)


@torch.no_grad()
def sr_scores(nets: Mapping[str, nn.Module], high_res: torch.Tensor, extractor: VGGFeatures,
              scale: int = 4, batch: int = 128, per_image: bool = False) -> dict[str, dict]:
    """PSNR (dB), SSIM and VGG-feature distance of bicubic and each net on ``high_res`` photos.

    Returns {"bicubic": {...}, name: {...}}: means over the photos, or with ``per_image``
    a (N,) tensor per measure (for spreads and paired differences).
    """
    from ..metrics import psnr, ssim

    methods = {"bicubic": lambda x: bicubic(x, scale),
               **{name: (lambda x, n=net: n.eval()(x).clamp(0, 1)) for name, net in nets.items()}}
    device = extractor.mean.device
    values: dict[str, dict[str, list]] = {name: {"PSNR": [], "SSIM": [], "feature distance": []} for name in methods}
    for i in range(0, len(high_res), batch):
        hr = high_res[i:i + batch].to(device)
        low, _ = make_sr_pairs(hr, scale)
        for name, method in methods.items():
            out = method(low)
            values[name]["PSNR"].append(psnr(out, hr, reduction="none").cpu())
            values[name]["SSIM"].append(ssim(out, hr, reduction="none").cpu())
            values[name]["feature distance"].append(feature_distance(out, hr, extractor).cpu())
    per = {name: {k: torch.cat(v) for k, v in row.items()} for name, row in values.items()}
    if per_image:
        return per
    return {name: {k: float(v.mean()) for k, v in row.items()} for name, row in per.items()}
