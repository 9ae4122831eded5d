"""Colorization by conditional diffusion, predict-and-refine: a regressor guesses, diffusion adds what it cannot.

Two networks, trained together:

* ``mean``, a small U-Net (``unet.UNet``), regresses the colour from the gray image with
  MSE, like the zoo's ``unet``. MSE makes it predict the *average* plausible colour:
  faithful (low Delta E) but dull, because where a car may be red or blue it paints
  the mix of the two.
* ``unet``, a time-conditioned UNet (``time_unet.TimeUNet``), learns the
  distribution of the *residual*, the true colour minus that guess, by diffusion. It
  sees the noisy residual ``x_t``, the step ``t``, the gray image and the guess.

As in the rest of the zoo only the colour is generated: the two chroma channels
(Cb, Cr) around the gray image's luma. The residual is scaled by ``residual_scale`` so
it has about unit spread, like the noise it is mixed with. The diffusion recipe is the
one that trains in minutes rather than days: a cosine schedule, v-prediction (the
target stays well scaled at every noise level) and an exponential moving average of
the weights (``training.DiffusionTask(ema_decay=...)``). Sampling starts from pure
noise and runs DDIM (deterministic, ``unetddim``) or strided ancestral DDPM
(stochastic, ``unetddpm``) steps from ``lessons_lib.diffusion``.

Why not diffuse the colour itself? Measured on the CIFAR-10 subset: after a few CPU
minutes a plain conditional diffusion model's samples are worse than keeping the gray
(it must learn the average colour *and* the spread through the noise); starting from a
guess, the diffusion network only has to learn the spread (the idea of "predict and
refine" in Whang et al., 2022, and of SR3-style residual diffusion).

``temperature`` scales the sampled residual: ``colour = guess + temperature *
residual``. 0 is the regressor alone; 1 a full sample, vivid but, measured against the
one true photo, about 1.4 times the error of the average (a sample commits to the red
car *or* the blue one: the perception-distortion trade-off).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import diffusion
from .. import validate as V
from ..images import rgb_to_chroma
from .time_unet import TimeUNet
from .unet import UNet, gray_plus

SAMPLERS = ("ddim", "ddpm")


class DiffusionColorizer(nn.Module):
    def __init__(self, width: int = 32, sampler: str = "ddim", schedule: str = "cosine", T: int = 1000,
                 prediction_type: str = "v_prediction", residual_scale: float = 8.0,
                 channel_mults: tuple[int, ...] = (1, 2, 4, 4), attention: bool = False,
                 temperature: float = 0.5):
        super().__init__()
        V.choice("sampler", sampler, SAMPLERS)
        self.mean = UNet(in_channels=1, out_channels=2, width=width)
        # Condition: the gray image and the (scaled) guess, 1 + 2 channels.
        self.unet = TimeUNet(in_channels=2, cond_channels=3, width=width,
                             channel_mults=channel_mults, attention=attention)
        self.schedule = diffusion.make_schedule(schedule, T, prediction_type)
        self.sampler = sampler
        self.residual_scale = float(residual_scale)
        self.temperature = float(temperature)

    def guess(self, gray: torch.Tensor) -> torch.Tensor:
        """The regressor's chroma (N, 2, H, W): the mean colour, before any diffusion."""
        return self.mean.decode(*self.mean.encode(gray))

    def condition(self, gray: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
        # The guess is an input, not a path for gradients: the diffusion loss must not
        # pull the regressor away from the mean.
        return torch.cat([gray, guess.detach() * self.residual_scale], dim=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        """The diffusion network's prediction (v, noise or x0, by the schedule) for the noisy residual."""
        return self.unet(x_t, t, self.condition(gray, self.guess(gray)))

    def training_loss(self, gray: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        """Both losses in one pass: the regressor's MSE on the chroma, plus the diffusion
        loss on the residual (true chroma - guess, scaled)."""
        chroma = rgb_to_chroma(colour)
        guess = self.guess(gray)
        residual = (chroma - guess.detach()) * self.residual_scale
        return (F.mse_loss(guess, chroma)
                + diffusion.diffusion_loss(self.unet, residual, self.schedule, cond=self.condition(gray, guess)))

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, num_inference_steps: int = 50,
                 generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Colour in [-1, 1] for gray (N, 1, H, W) in [-1, 1], sampled in ``num_inference_steps``."""
        V.number("temperature", self.temperature, 0.0, 1.0, hint="1 = a full sample, 0 = the regressor's guess "
                 "alone.")
        guess = self.guess(gray)
        if self.temperature == 0.0:
            return gray_plus(gray, guess).clamp(-1, 1)
        shape = (gray.shape[0], 2, *gray.shape[-2:])
        x_T = torch.randn(shape, generator=generator).to(gray.device)
        sample = diffusion.ddim_sample if self.sampler == "ddim" else diffusion.ddpm_sample
        # Chroma differences lie within [-2, 2] in [-1, 1] units.
        residual = sample(self.unet, shape, self.schedule, num_inference_steps=num_inference_steps,
                          generator=generator, cond=self.condition(gray, guess), progress=progress, x_T=x_T,
                          clip_sample_range=2 * self.residual_scale)
        chroma = guess + self.temperature * residual / self.residual_scale
        return gray_plus(gray, chroma).clamp(-1, 1)
