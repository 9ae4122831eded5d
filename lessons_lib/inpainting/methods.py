"""The four inpainting methods: their training tasks (masks drawn per batch from a seeded,
checkpointed generator), :func:`make_task`, and inference: :func:`inpaint` for the networks
shown the masked image, :func:`repaint_inpaint` for the DDPM."""
from __future__ import annotations

import hashlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import diffusion as D
from .. import masks as M
from .. import validate as V
from ..adversarial import AdversarialTask, discriminator_loss, gan_adam
from ..images import to_signed, to_unit
from ..models.inpainting import ConvDiscriminator, InpaintUNet, PatchTransformer
from ..models.time_unet import TimeUNet
from ..training import DiffusionTask, Task
from .measures import _check_images, composite, masked_mse

__all__ = ["METHODS", "WIDTH", "InpaintTask", "AdversarialInpaintTask", "make_task", "default_schedule",
           "inference_network", "inpaint", "repaint_inpaint"]

METHODS = ("unet", "unet-gan", "transformer", "ddpm")


# --------------------------------------------------------------------------- training tasks
class _MaskRNG:
    """A seeded generator for training masks, saved in checkpoints so a resumed run
    sees the same masks as an uninterrupted one.

    It lives on the training device, where each batch's masks are drawn in one call (a
    per-image loop on the CPU cannot keep up with a GPU). CPU and CUDA generators are
    different algorithms: moved to another kind of device, the generator is reseeded from
    its own state, so the masks stay fixed by the seed (and by the checkpoint resumed).
    """

    def _init_masks(self, mask_kind: str, seed: int):
        M.make_masks(mask_kind, 1, 8, seed=0)  # fails early on an unknown kind
        self.mask_kind = mask_kind
        self.mask_generator = torch.Generator().manual_seed(seed)

    def _mask_generator_on(self, device) -> torch.Generator:
        device, g = torch.device(device), self.mask_generator
        other_index = None not in (device.index, g.device.index) and device.index != g.device.index
        if g.device.type != device.type or other_index:
            self.mask_generator = g = _reseeded(g.get_state(), device)
        return g

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        self._mask_generator_on(self.device)  # before fit loads a checkpoint's state into it
        return out

    def _batch(self, batch):
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        x = to_signed(images)
        g = self._mask_generator_on(x.device)
        mask = M.make_masks(self.mask_kind, x.shape[0], tuple(x.shape[-2:]), seed=g).to(x.dtype)
        return x, mask

    def extra_state(self) -> dict:
        # get_state() is a CPU tensor on every device; the device type says how to read it.
        return {"mask_rng": self.mask_generator.get_state().cpu(),
                "mask_rng_device": self.mask_generator.device.type}

    def load_extra_state(self, state: dict) -> None:
        if "mask_rng" not in state:
            return
        saved = state["mask_rng"].cpu()
        # Checkpoints written before the masks moved to the training device drew them on the CPU.
        if state.get("mask_rng_device", "cpu") == self.mask_generator.device.type:
            self.mask_generator.set_state(saved)
        else:  # written on another kind of device: its state cannot be set here
            self.mask_generator = _reseeded(saved, self.mask_generator.device)


def _reseeded(state: torch.Tensor, device) -> torch.Generator:
    """A generator on ``device`` whose seed is fixed by another generator's ``state``."""
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    return torch.Generator(device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class InpaintTask(_MaskRNG, Task):
    """Masked-MSE training of ``model(masked, mask) -> image`` on random masks of ``mask_kind``.

    Batches are [0, 1] image tensors (or (images, ...) tuples); masks are drawn per batch.
    """

    def __init__(self, model: nn.Module, lr: float = 2e-3, mask_kind: str = "mixed", seed: int = 0):
        super().__init__({"model": model}, {"model": torch.optim.Adam(model.parameters(), lr=lr)})
        self._init_masks(mask_kind, seed)

    def _loss(self, batch):
        x, mask = self._batch(batch)
        pred = self.models["model"](M.apply_mask(x, mask), mask)
        return masked_mse(pred, x, mask)

    def training_step(self, batch):
        return {"loss": self.optimize(self._loss(batch), "model")}

    def validation_step(self, batch):
        return {"loss": float(self._loss(batch))}


class AdversarialInpaintTask(_MaskRNG, AdversarialTask):
    """Masked MSE plus an adversarial term for the generator: ``masked MSE - lambda log D(G)``.

    The discriminator learns real image vs. composite (known pixels + generated hole)
    with binary cross-entropy; ``adv_weight`` is lambda (Context Encoders used 0.001
    beside 0.999 for the reconstruction; 0.01 here, so that the term still shows in
    short training runs). -log D(G) is computed as softplus(-logit), the same value
    without overflow. The update is :class:`lessons_lib.adversarial.AdversarialTask`'s.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, lr: float = 2e-3,
                 d_lr: float = 2e-4, adv_weight: float = 1e-2, mask_kind: str = "mixed", seed: int = 0):
        super().__init__({"generator": generator, "discriminator": discriminator},
                         {"generator": torch.optim.Adam(generator.parameters(), lr=lr),
                          "discriminator": gan_adam(discriminator.parameters(), d_lr)})
        self.adv_weight = adv_weight
        self._init_masks(mask_kind, seed)

    def generate(self, batch):
        x, mask = self._batch(batch)
        return x, mask, composite(self.models["generator"](M.apply_mask(x, mask), mask), x, mask)

    def discriminator_loss(self, batch, fakes):
        x, mask, fake = fakes
        d = self.models["discriminator"]
        return discriminator_loss(d(x, mask), d(fake.detach(), mask), "vanilla")

    def generator_losses(self, batch, fakes):
        x, mask, fake = fakes
        mse = masked_mse(fake, x, mask)
        adv = F.softplus(-self.models["discriminator"](fake, mask)).mean()  # = -log D(fake)
        return {"loss": mse + self.adv_weight * adv, "masked_mse": mse, "g_adv": adv}

    def validation_step(self, batch):
        x, mask = self._batch(batch)
        pred = self.models["generator"](M.apply_mask(x, mask), mask)
        return {"loss": float(masked_mse(pred, x, mask))}


#: Every inpainting network's channel width unless told otherwise: the course weights' (and notebook 3's).
WIDTH = 32


def make_task(method: str, image_size: int = 32, width: int = WIDTH, lr: float | None = None,
              seed: int = 0, schedule=None, loss: str = "mse", **kwargs) -> Task:
    """A fresh, seeded model and its training task for one of :data:`METHODS`.

    ``width`` scales every network (:data:`WIDTH`, the course weights', by default).
    Extra keyword arguments go to the model (e.g. ``depth`` for the transformer,
    ``channel_mults`` for the DDPM UNet).
    """
    V.choice("inpainting method", method, METHODS)
    torch.manual_seed(seed)
    if method == "unet":
        return InpaintTask(InpaintUNet(width=width, **kwargs), lr=lr or 2e-3, seed=seed)
    if method == "unet-gan":
        return AdversarialInpaintTask(InpaintUNet(width=width, **kwargs),
                                      ConvDiscriminator(width=width, image_size=image_size),
                                      lr=lr or 2e-3, seed=seed)
    if method == "transformer":
        kwargs.setdefault("dim", 4 * width)
        return InpaintTask(PatchTransformer(image_size=image_size, **kwargs), lr=lr or 1e-3, seed=seed)
    kwargs.setdefault("channel_mults", (1, 2, 2))
    # The DDPM: v-prediction on a cosine schedule with averaged weights, the recipe that
    # learns in minutes (see lessons_lib.diffusion); the images are diffused in [-1, 1].
    return DiffusionTask(TimeUNet(width=width, **kwargs), schedule=schedule or default_schedule(),
                         lr=lr or 2e-3, loss=loss, target=_signed_images, ema_decay=0.999)


def default_schedule() -> D.NoiseSchedule:
    """The DDPM inpainter's schedule: cosine, T = 1000, v-prediction."""
    return D.make_schedule("cosine", 1000, "v_prediction")


def _signed_images(cond, images: torch.Tensor) -> torch.Tensor:
    return to_signed(images)


# --------------------------------------------------------------------------- inference
@torch.no_grad()
def inpaint(model: nn.Module, images: torch.Tensor, mask: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Fills the holes of [0, 1] ``images`` with a trained ``model(masked, mask)``; returns
    [0, 1] composites (known pixels exactly the input's)."""
    _check_images(images)
    V.count("batch_size", batch_size, hint="It is the number of images per forward pass, e.g. 64.")
    mask = D.check_mask(mask, images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_signed(images[i:i + batch_size].to(device))
        m = (mask[i:i + batch_size] if mask.shape[0] > 1 else mask).to(device)
        pred = model(M.apply_mask(x, m), m)
        out.append(to_unit(pred).clamp(0, 1).cpu())
    model.train(was_training)
    return composite(torch.cat(out), images.cpu(), mask.cpu())


def repaint_inpaint(model: nn.Module, images: torch.Tensor, mask: torch.Tensor, schedule=None,
                    num_inference_steps: int = 50, jump_length: int = 5, jump_n_sample: int = 2,
                    generator: torch.Generator | None = None, progress: bool = True) -> torch.Tensor:
    """RePaint with an unconditional denoiser on [0, 1] ``images``; returns [0, 1] composites."""
    _check_images(images)
    schedule = schedule if schedule is not None else default_schedule()
    mask = D.check_mask(mask, images)
    was_training = model.training
    model.eval()
    out = D.repaint_sample(model, to_signed(images), mask, schedule, num_inference_steps=num_inference_steps,
                           jump_length=jump_length, jump_n_sample=jump_n_sample, generator=generator,
                           progress=progress)
    model.train(was_training)
    # RePaint already ends on the known pixels; pasting the [0, 1] originals back also
    # removes the rounding of the [-1, 1] round trip.
    return composite(to_unit(out).clamp(0, 1).cpu(), images.cpu(), mask.cpu())


def inference_network(task: Task) -> nn.Module:
    """The network that inpaints: the generator, the model, or the DDPM's averaged weights."""
    if isinstance(task, DiffusionTask):
        return task.inference_model()
    return task.models["generator"] if "generator" in task.models else task.models["model"]
