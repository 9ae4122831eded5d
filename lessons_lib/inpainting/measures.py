"""What every inpainting method is scored and trained by: composites (known pixels the input's),
the masked MSE and masked-region PSNR, and the naive fill every method must beat."""
from __future__ import annotations

import torch

from .. import diffusion as D
from .. import validate as V

__all__ = ["composite", "masked_mse", "masked_psnr", "naive_fill"]


def composite(prediction: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, holes from ``prediction``."""
    return mask * image + (1 - mask) * prediction


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hole pixels only (mask 0), averaged over those pixels."""
    hole = (1 - mask).expand_as(target)
    return ((prediction - target) ** 2 * hole).sum() / hole.sum().clamp_min(1)


def masked_psnr(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                data_range: float = 1.0) -> torch.Tensor:
    """PSNR (dB) of each image over its hole pixels only, (N,). Images in [0, data_range]."""
    V.number("data_range", data_range, 0.0, low_open=True, hint="Use 1 for [0, 1] images, 255 for 0..255.")
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape.")
    hole = (1 - mask.to(output)).expand_as(output)
    n = hole.flatten(1).sum(1)
    if (n == 0).any():
        raise ValueError("A mask has no hole pixels: the masked-region PSNR is undefined for it.")
    mse = ((output - target) ** 2 * hole).flatten(1).sum(1) / n
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-12))


def naive_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The baseline: each hole pixel is the mean colour of that image's known pixels."""
    _check_images(images)
    mask = D.check_mask(mask, images).to(images)
    mean = (images * mask).flatten(2).sum(2) / mask.flatten(2).sum(2)
    return composite(mean[..., None, None].expand_as(images), images, mask)


def _check_images(images, name: str = "images") -> None:
    """A (N, 3, H, W) batch in [0, 1], the interface of this package."""
    if not torch.is_tensor(images) or images.dim() != 4:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"{name} must be a (N, C, H, W) batch in [0, 1], got {got}.")
    V.value_range(name, images, 0.0, 1.0, hint="Inpainting takes [0, 1] images (what datasets and "
                  "metrics use); it converts to the models' [-1, 1] itself.")


def _check_finite_output(method: str, out: torch.Tensor) -> None:
    bad = ~torch.isfinite(out.detach()).flatten(1).all(1)
    if bad.any():
        raise ValueError(f"The {method} inpainter produced NaN or infinite pixels in {int(bad.sum())} of "
                         f"{len(out)} images: its weights are broken (a diverged training run?). Retrain it "
                         f"or load other weights; nothing was scored.")
