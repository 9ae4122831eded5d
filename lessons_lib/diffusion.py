"""Diffusion from scratch: noise schedules, forward noising, DDPM / DDIM sampling, RePaint.

The conventions are diffusers' so the two can be compared line by line (and are, in
the tests): images live in [-1, 1]; ``betas[t]`` for t = 0 ... T-1; a model predicts
the noise ``eps`` from ``(x_t, t)`` (and an optional condition); the DDPM step is
``DDPMScheduler.step`` with ``variance_type="fixed_small"``, the DDIM step is
``DDIMScheduler.step``; inference timesteps use diffusers' default "leading" spacing.

What the network predicts is the schedule's ``prediction_type``, as in diffusers'
scheduler configs: ``"epsilon"`` (the noise, Ho et al.), ``"v_prediction"``
(v = sqrt(abar) eps - sqrt(1 - abar) x0, Salimans and Ho, 2022) or ``"sample"`` (x0
itself). Noise prediction is the classic; v-prediction trains much faster at small
scale, because its target stays well scaled at every noise level.

A *model* here is any callable ``model(x_t, t)`` or, with a condition,
``model(x_t, t, cond)`` returning a tensor shaped like ``x_t``; ``t`` is a (N,) long
tensor. :class:`lessons_lib.models.time_unet.TimeUNet` is one.

Masks follow RePaint: 1 = keep (a known pixel), 0 = fill.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import validate as V
from .masks import check_mask  # the one mask convention (1 = keep) lives in masks.py

__all__ = ["SCHEDULES", "beta_schedule", "NoiseSchedule", "make_schedule", "q_sample",
           "inference_timesteps", "StepOutput", "ddpm_step", "ddim_step",
           "classifier_free_guidance", "predict_noise", "ddpm_sample", "ddim_sample",
           "noise_prediction_loss", "check_mask", "repaint_schedule", "repaint_step",
           "repaint_undo_step", "repaint_sample", "LOSSES", "PREDICTION_TYPES",
           "training_target", "diffusion_loss", "predicted_x0"]

SCHEDULES = ("linear", "cosine")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
LOSSES = ("l1", "mse")


# --------------------------------------------------------------------------- schedules
def beta_schedule(name: str = "linear", T: int = 1000, beta_start: float = 1e-4,
                  beta_end: float = 0.02) -> torch.Tensor:
    """The (T,) float32 betas of a named schedule.

    ``"linear"``: evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al., 2020),
    diffusers' ``beta_schedule="linear"``. ``"cosine"``: alpha-bar follows
    cos^2((t/T + s) / (1 + s) * pi/2) with s = 0.008 and each beta capped at 0.999
    (Nichol and Dhariwal, 2021), diffusers' ``"squaredcos_cap_v2"``.
    """
    V.choice("beta schedule", name, SCHEDULES)
    T = _check_T(T)
    if name == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    if name == "cosine":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)]
        return torch.tensor(betas, dtype=torch.float32)
    raise AssertionError(f"beta schedule {name!r} has no formula")


def _check_T(T) -> int:
    return V.count("The number of diffusion steps T", T, hint="The course's schedules use T=1000.")


@dataclass
class NoiseSchedule:
    """Betas and the products derived from them, kept in float32 as diffusers keeps them,
    and what the model predicts (``prediction_type``, one of ``PREDICTION_TYPES``)."""

    betas: torch.Tensor
    name: str = "custom"
    prediction_type: str = "epsilon"
    alphas: torch.Tensor = field(init=False)
    alphas_cumprod: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.betas = torch.as_tensor(self.betas, dtype=torch.float32)
        if self.betas.dim() != 1 or len(self.betas) == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(self.betas.shape)}.")
        if (self.betas <= 0).any() or (self.betas >= 1).any():
            raise ValueError("Every beta must lie strictly between 0 and 1.")
        V.choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    @property
    def T(self) -> int:
        return len(self.betas)

    def to(self, device) -> "NoiseSchedule":
        return NoiseSchedule(self.betas.to(device), self.name, self.prediction_type)

    def alpha_bar(self, t: int) -> torch.Tensor:
        """alpha-bar at step t as a float32 scalar tensor; 1 for t < 0 (the clean image,
        diffusers' set_alpha_to_one). Kept in float32 so the step arithmetic rounds as
        diffusers' does."""
        return torch.tensor(1.0) if t < 0 else self.alphas_cumprod[t].cpu()

    def timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        return inference_timesteps(self.T, num_inference_steps)


def make_schedule(name: str = "linear", T: int = 1000, prediction_type: str = "epsilon",
                  **kwargs) -> NoiseSchedule:
    """``NoiseSchedule`` for a named schedule: ``make_schedule("cosine", 1000, "v_prediction")``."""
    return NoiseSchedule(beta_schedule(name, T, **kwargs), name=name, prediction_type=prediction_type)


def _as_schedule(schedule) -> NoiseSchedule:
    if isinstance(schedule, NoiseSchedule):
        return schedule
    if isinstance(schedule, str):
        return make_schedule(schedule)
    if isinstance(schedule, torch.Tensor):
        return NoiseSchedule(schedule)
    raise TypeError(f"Expected a NoiseSchedule, a schedule name or a tensor of betas, "
                    f"got {type(schedule).__name__}.")


def _check_steps(num_inference_steps, T: int, name: str = "num_inference_steps") -> int:
    return V.count(name, num_inference_steps, 1, T, counts="denoising steps", hint=(
        f"The schedule has T={T} steps: use at most as many as the model was trained with, and at least one."))


def inference_timesteps(T: int, num_inference_steps: int | None = None) -> torch.Tensor:
    """Descending timesteps, diffusers' "leading" spacing: (0, k, 2k, ...) reversed, k = T // n."""
    T = _check_T(T)
    n = T if num_inference_steps is None else _check_steps(num_inference_steps, T)
    ratio = T // n
    return (torch.arange(n) * ratio).flip(0).long()


def _check_timestep(t, T: int) -> int:
    return V.count("timestep", t, 0, T - 1, hint=f"The schedule has T={T} steps, numbered 0 to T-1.")


# --------------------------------------------------------------------------- forward process
def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (N, 1, 1, ...) to broadcast against ``like``."""
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, t, noise: torch.Tensor | None = None, schedule="linear",
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Forward noising ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.

    ``t`` is an int (the same step for the whole batch) or a (N,) tensor of steps.
    Without ``noise``, fresh Gaussian noise is drawn (from ``generator`` when given).
    """
    schedule = _as_schedule(schedule)
    t = torch.as_tensor(t, dtype=torch.long)
    if t.dim() == 0:
        t = t.expand(x0.shape[0])
    if t.shape[0] != x0.shape[0]:
        raise ValueError(f"Got {t.shape[0]} timesteps for a batch of {x0.shape[0]} images.")
    if (t < 0).any() or (t >= schedule.T).any():
        raise ValueError(f"timesteps must be between 0 and T-1={schedule.T - 1}, got "
                         f"{int(t.min())}..{int(t.max())}.")
    if noise is None:
        noise = _randn(x0.shape, generator, x0)
    abar = _gather(schedule.alphas_cumprod, t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def _randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device, then moved: a CPU generator gives the
    same numbers whatever device the model runs on."""
    gen_device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=like.dtype).to(like.device)


# --------------------------------------------------------------------------- reverse steps
class StepOutput(NamedTuple):
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def _prev_timestep(timestep: int, T: int, num_inference_steps: int | None,
                   prev_timestep: int | None) -> int:
    if prev_timestep is not None:
        return int(prev_timestep)
    if num_inference_steps is None:
        return timestep - 1
    return timestep - T // _check_steps(num_inference_steps, T)


def _pred_x0_eps(model_output, sample, abar_t, prediction_type: str):
    """(x0, eps) implied by the model's output at a step with alpha-bar ``abar_t``."""
    a, s = abar_t ** 0.5, (1 - abar_t) ** 0.5
    if prediction_type == "epsilon":
        return (sample - s * model_output) / a, model_output
    if prediction_type == "v_prediction":
        return a * sample - s * model_output, a * model_output + s * sample
    return model_output, (sample - a * model_output) / s


def predicted_x0(model_output: torch.Tensor, timestep: int, sample: torch.Tensor, schedule="linear") -> torch.Tensor:
    """The clean sample the model's output implies at ``timestep`` (by the schedule's prediction type)."""
    schedule = _as_schedule(schedule)
    t = _check_timestep(timestep, schedule.T)
    return _pred_x0_eps(model_output, sample, schedule.alpha_bar(t), schedule.prediction_type)[0]


def _pred_x0(model_output, sample, abar_t, clip_sample, clip_range, prediction_type="epsilon"):
    x0, eps = _pred_x0_eps(model_output, sample, abar_t, prediction_type)
    return (x0.clamp(-clip_range, clip_range) if clip_sample else x0), eps


def ddpm_step(model_output: torch.Tensor, timestep: int, sample: torch.Tensor, schedule="linear",
              num_inference_steps: int | None = None, prev_timestep: int | None = None,
              noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
              clip_sample: bool = True, clip_sample_range: float = 1.0) -> StepOutput:
    """One DDPM ancestral step x_t -> x_{t'} (t' = t - 1, or t - T // num_inference_steps).

    The posterior q(x_{t'} | x_t, x0) with x0 predicted from the noise estimate:
    mean = sqrt(abar_t') beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_t') / (1 - abar_t) x_t,
    variance = (1 - abar_t') / (1 - abar_t) beta_t, where alpha_t = abar_t / abar_t'.
    No noise is added at t = 0. Same result as ``DDPMScheduler.step`` (fixed_small).
    """
    schedule = _as_schedule(schedule)
    t = _check_timestep(timestep, schedule.T)
    prev_t = _prev_timestep(t, schedule.T, num_inference_steps, prev_timestep)
    abar_t, abar_prev = schedule.alpha_bar(t), schedule.alpha_bar(prev_t)
    alpha_t = abar_t / abar_prev
    beta_t = 1 - alpha_t
    x0, _ = _pred_x0(model_output, sample, abar_t, clip_sample, clip_sample_range, schedule.prediction_type)
    x0_coeff = abar_prev ** 0.5 * beta_t / (1 - abar_t)
    xt_coeff = alpha_t ** 0.5 * (1 - abar_prev) / (1 - abar_t)
    prev = x0_coeff * x0 + xt_coeff * sample
    if t > 0:
        variance = ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp_min(1e-20)
        if noise is None:
            noise = _randn(model_output.shape, generator, model_output)
        prev = prev + variance ** 0.5 * noise
    return StepOutput(prev, x0)


def ddim_step(model_output: torch.Tensor, timestep: int, sample: torch.Tensor, schedule="linear",
              num_inference_steps: int | None = None, prev_timestep: int | None = None,
              eta: float = 0.0, noise: torch.Tensor | None = None,
              generator: torch.Generator | None = None, clip_sample: bool = True,
              clip_sample_range: float = 1.0, use_clipped_model_output: bool = False) -> StepOutput:
    """One DDIM step x_t -> x_{t'} (Song et al., 2021), as ``DDIMScheduler.step`` computes it.

    x_{t'} = sqrt(abar_t') x0 + sqrt(1 - abar_t' - sigma^2) eps + sigma z, with
    sigma = eta * sqrt((1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t')).
    eta = 0 is deterministic; eta = 1 has DDPM's variance. Before step 0 the target
    is the clean image (abar = 1).
    """
    schedule = _as_schedule(schedule)
    V.number("eta", eta, 0.0, hint=_ETA_HINT)
    t = _check_timestep(timestep, schedule.T)
    prev_t = _prev_timestep(t, schedule.T, num_inference_steps, prev_timestep)
    abar_t, abar_prev = schedule.alpha_bar(t), schedule.alpha_bar(prev_t)
    x0, eps = _pred_x0(model_output, sample, abar_t, clip_sample, clip_sample_range, schedule.prediction_type)
    variance = (1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)
    std = eta * variance ** 0.5
    if use_clipped_model_output:
        eps = (sample - abar_t ** 0.5 * x0) / (1 - abar_t) ** 0.5
    prev = abar_prev ** 0.5 * x0 + (1 - abar_prev - std ** 2) ** 0.5 * eps
    if eta > 0:
        if noise is None:
            noise = _randn(model_output.shape, generator, model_output)
        prev = prev + std * noise
    return StepOutput(prev, x0)


# --------------------------------------------------------------------------- guidance
def classifier_free_guidance(noise_uncond: torch.Tensor, noise_cond: torch.Tensor,
                             guidance_scale: float) -> torch.Tensor:
    """uncond + s (cond - uncond): s = 1 is the conditional prediction, s > 1 pushes past it."""
    if not torch.is_tensor(guidance_scale) or guidance_scale.dim() == 0:
        V.number("guidance_scale", guidance_scale, hint=_GUIDANCE_HINT)
    return noise_uncond + guidance_scale * (noise_cond - noise_uncond)


def predict_noise(model: Callable, x: torch.Tensor, t: int, cond: torch.Tensor | None = None,
                  guidance_scale: float = 1.0, uncond: torch.Tensor | None = None) -> torch.Tensor:
    """The model's noise estimate at step ``t`` for the whole batch.

    With a condition and ``guidance_scale != 1``, the conditional and unconditional
    predictions (``uncond`` defaults to an all-zero condition, the "dropped" condition
    of classifier-free training) come from one doubled batch and are combined by
    :func:`classifier_free_guidance`.
    """
    tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
    if cond is None:
        return model(x, tt)
    if guidance_scale == 1.0:
        return model(x, tt, cond)
    if uncond is None:
        uncond = torch.zeros_like(cond)
    out = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([uncond.expand_as(cond), cond]))
    eps_uncond, eps_cond = out.chunk(2)
    return classifier_free_guidance(eps_uncond, eps_cond, guidance_scale)


# --------------------------------------------------------------------------- samplers
_ETA_HINT = "0 is deterministic DDIM, 1 has DDPM's variance."
_GUIDANCE_HINT = "1 is the plain conditional prediction; 2-7 follow the condition more strongly."


def _check_sampling(eta=0.0, guidance_scale=1.0, clip_sample_range=1.0, trajectory_points=1) -> None:
    """The numbers every sampler takes, checked before the first model call."""
    V.number("eta", eta, 0.0, hint=_ETA_HINT)
    V.number("guidance_scale", guidance_scale, 0.0, hint=_GUIDANCE_HINT)
    V.number("clip_sample_range", clip_sample_range, 0.0, low_open=True, hint="Images in [-1, 1] use 1.")
    V.count("trajectory_points", trajectory_points)


def _start(shape, x_T, generator, device, dtype=torch.float32):
    if x_T is not None:
        return x_T.to(device)
    like = torch.empty(0, device=device, dtype=dtype)
    return _randn(tuple(shape), generator, like)


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _trajectory_marks(n_steps: int, points: int) -> set[int]:
    points = max(1, min(points, n_steps))
    return {round(i * (n_steps - 1) / max(points - 1, 1)) for i in range(points)}


@torch.no_grad()
def ddpm_sample(model: Callable, shape, schedule="linear", num_inference_steps: int | None = None,
                generator: torch.Generator | None = None, cond: torch.Tensor | None = None,
                guidance_scale: float = 1.0, uncond: torch.Tensor | None = None,
                x_T: torch.Tensor | None = None, clip_sample: bool = True, device=None,
                progress: bool = True, return_trajectory: bool = False, trajectory_points: int = 8,
                clip_sample_range: float = 1.0):
    """Ancestral DDPM sampling from pure noise: T steps (or ``num_inference_steps``, strided).

    Returns the samples in [-clip_sample_range, clip_sample_range] ([-1, 1] for images);
    with ``return_trajectory`` also a list of
    ``(t, x_t)`` pairs (``trajectory_points`` of them, noise to image) for strips.
    """
    schedule = _as_schedule(schedule)
    _check_sampling(0.0, guidance_scale, clip_sample_range, trajectory_points)
    if num_inference_steps is not None:
        num_inference_steps = _check_steps(num_inference_steps, schedule.T)

    def step(eps, t, x):
        return ddpm_step(eps, t, x, schedule, num_inference_steps=num_inference_steps,
                         generator=generator, clip_sample=clip_sample,
                         clip_sample_range=clip_sample_range).prev_sample

    return _sample("DDPM", step, model, shape, schedule, num_inference_steps, generator, cond,
                   guidance_scale, uncond, x_T, device, progress, return_trajectory, trajectory_points,
                   clip_sample_range)


@torch.no_grad()
def ddim_sample(model: Callable, shape, schedule="linear", num_inference_steps: int = 50,
                eta: float = 0.0, generator: torch.Generator | None = None,
                cond: torch.Tensor | None = None, guidance_scale: float = 1.0,
                uncond: torch.Tensor | None = None, x_T: torch.Tensor | None = None,
                clip_sample: bool = True, device=None, progress: bool = True,
                return_trajectory: bool = False, trajectory_points: int = 8, clip_sample_range: float = 1.0):
    """DDIM sampling in ``num_inference_steps`` steps (default 50); ``eta`` = 0 is deterministic,
    so the same ``x_T`` always gives the same image. Returns like :func:`ddpm_sample`."""
    schedule = _as_schedule(schedule)
    num_inference_steps = _check_steps(num_inference_steps, schedule.T)
    _check_sampling(eta, guidance_scale, clip_sample_range, trajectory_points)

    def step(eps, t, x):
        return ddim_step(eps, t, x, schedule, num_inference_steps=num_inference_steps, eta=eta,
                         generator=generator, clip_sample=clip_sample,
                         clip_sample_range=clip_sample_range).prev_sample

    return _sample("DDIM", step, model, shape, schedule, num_inference_steps, generator, cond,
                   guidance_scale, uncond, x_T, device, progress, return_trajectory, trajectory_points,
                   clip_sample_range)


def _sample(name, step, model, shape, schedule, num_inference_steps, generator, cond, guidance_scale,
            uncond, x_T, device, progress, return_trajectory, trajectory_points, clip_range=1.0):
    """The loop both samplers share: noise in, ``step`` from t to the previous t, image out."""
    device = torch.device(device) if device is not None else _model_device(model)
    timesteps = inference_timesteps(schedule.T, num_inference_steps)
    x = _start(shape, x_T, generator, device)
    if cond is not None:
        cond = cond.to(device)
    marks, traj = _trajectory_marks(len(timesteps), trajectory_points), []
    for i, t in enumerate(tqdm(timesteps.tolist(), desc=f"{name} sampling", disable=not progress, leave=False)):
        eps = predict_noise(model, x, t, cond, guidance_scale, uncond)
        x = step(eps, t, x)
        if return_trajectory and i in marks:
            traj.append((t, x.detach().cpu()))
    x = x.clamp(-clip_range, clip_range)
    return (x, traj) if return_trajectory else x


# --------------------------------------------------------------------------- training loss
def training_target(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule="linear") -> torch.Tensor:
    """What the network should output for ``x_t = q_sample(x0, t, noise)``: the noise, v or x0,
    by the schedule's ``prediction_type`` (diffusers' ``get_velocity`` for v)."""
    schedule = _as_schedule(schedule)
    if schedule.prediction_type == "epsilon":
        return noise
    if schedule.prediction_type == "sample":
        return x0
    abar = _gather(schedule.alphas_cumprod, t, x0)
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0


def diffusion_loss(model: Callable, x0: torch.Tensor, schedule="linear", loss: str = "mse",
                   cond: torch.Tensor | None = None, cond_drop_prob: float = 0.0,
                   generator: torch.Generator | None = None,
                   t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The denoising objective: noise x0 to a random step t, ask the model for the
    schedule's target (:func:`training_target`: the noise by default).

    ``loss`` is ``"l1"`` (mean absolute error) or ``"mse"`` (Ho et al.'s simple loss).
    With a condition, ``cond_drop_prob`` zeroes it for that fraction of the batch so the
    same model also learns the unconditional prediction (classifier-free guidance).
    """
    V.choice("loss", loss, LOSSES)
    schedule = _as_schedule(schedule)
    n = x0.shape[0]
    if t is None:
        gen_device = generator.device if generator is not None else x0.device
        t = torch.randint(0, schedule.T, (n,), generator=generator, device=gen_device).to(x0.device)
    if noise is None:
        noise = _randn(x0.shape, generator, x0)
    x_t = q_sample(x0, t, noise, schedule)
    if cond is None:
        pred = model(x_t, t)
    else:
        if cond_drop_prob > 0:
            gen_device = generator.device if generator is not None else x0.device
            keep = (torch.rand(n, generator=generator, device=gen_device) >= cond_drop_prob).to(x0.device)
            cond = cond * keep.to(cond.dtype).reshape(-1, *([1] * (cond.dim() - 1)))
        pred = model(x_t, t, cond)
    target = training_target(x0, noise, t, schedule)
    return F.l1_loss(pred, target) if loss == "l1" else F.mse_loss(pred, target)


# The classic name, for the epsilon objective of the lessons.
noise_prediction_loss = diffusion_loss


# --------------------------------------------------------------------------- RePaint
def repaint_schedule(num_inference_steps: int, jump_length: int = 10, jump_n_sample: int = 10) -> list[int]:
    """RePaint's time walk in units of inference steps (Lugmayr et al., 2022, diffusers' get_schedule).

    Going down from ``num_inference_steps``, every ``jump_length`` steps the walk jumps
    back up ``jump_length`` steps, ``jump_n_sample - 1`` times, so each stretch is
    denoised ``jump_n_sample`` times in all (the "resample count"). Returns the list of
    step indices visited (a decrease = a denoising step, an increase = re-noising).
    """
    jump_length = V.count("jump_length", jump_length, hint="RePaint's paper uses 10.")
    jump_n_sample = V.count("jump_n_sample (the resample count)", jump_n_sample, hint="RePaint's paper uses 10.")
    jumps = {j: jump_n_sample - 1 for j in range(0, num_inference_steps - jump_length, jump_length)}
    t, walk = num_inference_steps, []
    while t >= 1:
        t -= 1
        walk.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                walk.append(t)
    return walk


def repaint_step(model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
                 original_image: torch.Tensor, mask: torch.Tensor, schedule="linear",
                 num_inference_steps: int | None = None, eta: float = 1.0,
                 generator: torch.Generator | None = None, clip_sample: bool = True,
                 noise: torch.Tensor | None = None, known_noise: torch.Tensor | None = None) -> StepOutput:
    """One RePaint denoising step (Lugmayr et al., 2022, Algorithm 1, lines 4-8).

    The unknown region comes from the model (a DDIM step with ``eta``; 1 gives DDPM's
    variance, the paper's choice), the known region is ``original_image`` noised to the
    previous step, and the mask (1 = keep) joins them. The two noises are independent
    draws as in the paper (diffusers' ``RePaintScheduler.step`` reuses one draw for
    both; pass the same tensor as ``noise`` and ``known_noise`` to reproduce it).
    Before step 0 the known region is the original image itself.
    """
    schedule = _as_schedule(schedule)
    t = _check_timestep(timestep, schedule.T)
    prev_t = _prev_timestep(t, schedule.T, num_inference_steps, None)
    # The unknown region is exactly a DDIM step; at t = 0 it adds no noise (none is drawn).
    unknown, x0 = ddim_step(model_output, t, sample, schedule, num_inference_steps=num_inference_steps,
                            eta=eta, generator=generator, clip_sample=clip_sample,
                            noise=noise if t > 0 else torch.zeros_like(model_output))
    abar_prev = schedule.alpha_bar(prev_t)
    if known_noise is None:
        known_noise = _randn(original_image.shape, generator, original_image)
    known = abar_prev ** 0.5 * original_image + (1 - abar_prev) ** 0.5 * known_noise
    return StepOutput(mask * known + (1 - mask) * unknown, x0)


def repaint_undo_step(sample: torch.Tensor, timestep: int, schedule="linear",
                      num_inference_steps: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Re-noise x_t forward to the next inference step with q(x_{t+1} | x_t), one beta at a time."""
    schedule = _as_schedule(schedule)
    n = 1 if num_inference_steps is None else schedule.T // num_inference_steps
    for i in range(n):
        beta = float(schedule.betas[timestep + i])
        sample = (1 - beta) ** 0.5 * sample + beta ** 0.5 * _randn(sample.shape, generator, sample)
    return sample


@torch.no_grad()
def repaint_sample(model: Callable, image: torch.Tensor, mask: torch.Tensor, schedule="linear",
                   num_inference_steps: int = 250, jump_length: int = 10, jump_n_sample: int = 10,
                   eta: float = 1.0, generator: torch.Generator | None = None,
                   clip_sample: bool = True, device=None, progress: bool = True) -> torch.Tensor:
    """Inpaint ``image`` ([-1, 1], (N, C, H, W)) where ``mask`` is 0 with an unconditional
    noise-prediction model, RePaint-style.

    Every denoising step re-noises the known pixels to the current step and pastes
    them in, so the model only has to make the unknown region agree with them; every
    ``jump_length`` steps the walk goes back up ``jump_length`` steps and denoises
    again (``jump_n_sample`` passes in all) so the two regions harmonise. The cost is
    about ``num_inference_steps * jump_n_sample`` model calls.
    """
    schedule = _as_schedule(schedule)
    num_inference_steps = _check_steps(num_inference_steps, schedule.T)
    _check_sampling(eta)
    if not torch.is_tensor(image) or image.dim() != 4:
        raise ValueError(f"image must be a (N, C, H, W) batch in [-1, 1], got "
                         f"{tuple(image.shape) if torch.is_tensor(image) else type(image).__name__}.")
    V.value_range("The image given to RePaint", image, -1.0, 1.0,
                  hint="RePaint works on [-1, 1]; convert [0, 1] images with lessons_lib.images.to_signed.")
    device = torch.device(device) if device is not None else _model_device(model)
    image = image.to(device)
    mask = check_mask(mask, image).to(device)
    walk = repaint_schedule(num_inference_steps, jump_length, jump_n_sample)
    ratio = schedule.T // num_inference_steps
    timesteps = [s * ratio for s in walk]
    x = _randn(image.shape, generator, image)
    t_last = timesteps[0] + 1
    for t in tqdm(timesteps, desc="RePaint", disable=not progress, leave=False):
        if t < t_last:
            eps = predict_noise(model, x, t)
            x = repaint_step(eps, t, x, image, mask, schedule, num_inference_steps, eta,
                             generator, clip_sample).prev_sample
        else:
            x = repaint_undo_step(x, t_last, schedule, num_inference_steps, generator)
        t_last = t
    return x
