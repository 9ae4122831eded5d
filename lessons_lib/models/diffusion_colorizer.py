"""Colorization by conditional diffusion: the grayscale image is the condition.

A time-conditioned UNet (``time_unet.TimeUNet``) gets the noisy sample ``x_t``, the
step ``t`` and the grayscale image, and predicts the noise (``training.DiffusionTask``).
As in the rest of the zoo what is generated is the colour offset from the gray image
(``colour - gray``), so the sampler only has to invent chroma. Sampling starts from pure
noise and runs DDIM (deterministic, ``unetddim``) or strided ancestral DDPM
(stochastic, ``unetddpm``) steps from ``lessons_lib.diffusion``.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import diffusion
from .time_unet import TimeUNet

SAMPLERS = ("ddim", "ddpm")


class DiffusionColorizer(nn.Module):
    def __init__(self, base: int = 32, sampler: str = "ddim", schedule: str = "linear", T: int = 1000,
                 channel_mults: tuple[int, ...] = (1, 2, 2), attention: bool = False):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
        self.unet = TimeUNet(in_channels=3, cond_channels=1, base_channels=base,
                             channel_mults=channel_mults, attention=attention)
        self.schedule = diffusion.make_schedule(schedule, T)
        self.sampler = sampler

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        """The predicted noise in ``x_t`` (the noisy colour offset) at step ``t``, given ``gray``."""
        return self.unet(x_t, t, gray)

    @staticmethod
    def training_target(gray: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        """What is diffused: the colour offset from the gray image."""
        return colour - gray

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, num_inference_steps: int = 50,
                 generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Colour in [-1, 1] for gray (N, 1, H, W) in [-1, 1], sampled in ``num_inference_steps``."""
        shape = (gray.shape[0], 3, *gray.shape[-2:])
        sample = diffusion.ddim_sample if self.sampler == "ddim" else diffusion.ddpm_sample
        offset = sample(self.unet, shape, self.schedule, num_inference_steps=num_inference_steps,
                        generator=generator, cond=gray, progress=progress)
        return (gray + offset).clamp(-1, 1)
