"""Colorization by conditional diffusion: the grayscale image is the condition.

A time-conditioned UNet (``time_unet.TimeUNet``) gets the noisy sample ``x_t``, the
step ``t`` and the grayscale image. As in the rest of the zoo only the colour is
generated: the two chroma channels (Cb, Cr) around the gray image's luma, scaled by
``chroma_scale`` so they have roughly unit spread like the noise they are mixed with
(photos' chroma is small, about 0.12 in [-1, 1] units). The recipe is the one that
trains in minutes rather than days: a cosine schedule, v-prediction (the target stays
well scaled at every noise level) and an exponential moving average of the weights
(``training.DiffusionTask(ema_decay=...)``). Sampling starts from pure noise and runs
DDIM (deterministic, ``unetddim``) or strided ancestral DDPM (stochastic, ``unetddpm``)
steps from ``lessons_lib.diffusion``.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import diffusion
from ..images import rgb_to_chroma
from .time_unet import TimeUNet
from .unet import gray_plus

SAMPLERS = ("ddim", "ddpm")


class DiffusionColorizer(nn.Module):
    def __init__(self, width: int = 32, sampler: str = "ddim", schedule: str = "cosine", T: int = 1000,
                 prediction_type: str = "v_prediction", chroma_scale: float = 4.0,
                 channel_mults: tuple[int, ...] = (1, 2, 2), attention: bool = False):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
        self.unet = TimeUNet(in_channels=2, cond_channels=1, base_channels=width,
                             channel_mults=channel_mults, attention=attention)
        self.schedule = diffusion.make_schedule(schedule, T, prediction_type)
        self.sampler = sampler
        self.chroma_scale = float(chroma_scale)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        """The model's prediction (v, noise or x0, by the schedule) for ``x_t`` at step ``t``."""
        return self.unet(x_t, t, gray)

    def training_target(self, gray: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        """What is diffused: the colour's chroma, scaled."""
        return rgb_to_chroma(colour) * self.chroma_scale

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, num_inference_steps: int = 50,
                 generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Colour in [-1, 1] for gray (N, 1, H, W) in [-1, 1], sampled in ``num_inference_steps``."""
        shape = (gray.shape[0], 2, *gray.shape[-2:])
        sample = diffusion.ddim_sample if self.sampler == "ddim" else diffusion.ddpm_sample
        chroma = sample(self.unet, shape, self.schedule, num_inference_steps=num_inference_steps,
                        generator=generator, cond=gray, progress=progress,
                        clip_sample_range=self.chroma_scale)
        return gray_plus(gray, chroma / self.chroma_scale).clamp(-1, 1)
