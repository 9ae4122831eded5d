"""What every GAN in the course shares: its losses, its optimizer, and the update.

One place for the adversarial machinery that the zoo's GAN (lesson 2), the adversarial
inpainter (lesson 3), and pix2pix and CycleGAN (lesson 7) all use:

* the GAN loss (``"vanilla"`` binary cross-entropy on logits, or ``"lsgan"`` least squares)
  and the discriminator's halved loss on real and fake;
* :func:`gan_adam`, the DCGAN optimizer settings every one of them trains with;
* :func:`frozen`, which keeps a discriminator's weights out of the generator's backward pass;
* :class:`ImagePool` (a history of fakes) and :class:`LinearDecay` (the papers'
  learning-rate schedule);
* :class:`AdversarialTask`: a :class:`lessons_lib.training.Task` whose step is "update D on
  real and detached fakes, freeze D, update G" (or G first, as CycleGAN's authors do). A GAN
  supplies only its three pieces: how it makes its fakes, D's loss and G's losses;
* :class:`Pix2PixTask`: the conditional GAN with an L1 term (Isola et al., 2017), which the
  zoo uses to colourise and lesson 7 to translate.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import validate as V
from .tasks import Task

__all__ = ["gan_loss", "lsgan_loss", "discriminator_loss", "pix2pix_generator_loss", "gan_adam", "frozen",
           "ImagePool", "LinearDecay", "linear_decay_scheduler", "AdversarialTask", "Pix2PixTask", "LAMBDA_L1",
           "GAN_MODES"]

#: pix2pix's weight on the L1 term (the paper's lambda).
LAMBDA_L1 = 100.0
GAN_MODES = ("lsgan", "vanilla")


# --------------------------------------------------------------------------- losses
def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al., 2017): mean((D(x) - label)^2), label 1 or 0."""
    return ((prediction - (1.0 if target_is_real else 0.0)) ** 2).mean()


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """The adversarial loss on discriminator outputs (logits for ``"vanilla"``)."""
    if mode == "lsgan":
        return lsgan_loss(prediction, target_is_real)
    if mode == "vanilla":
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"GAN loss mode must be {' or '.join(map(repr, GAN_MODES))}, got {mode!r}.")


def discriminator_loss(real_prediction: torch.Tensor, fake_prediction: torch.Tensor,
                       mode: str = "lsgan") -> torch.Tensor:
    """0.5 * (loss on real as real + loss on fake as fake): halved, as in the pix2pix and
    CycleGAN papers, so the discriminator learns more slowly than the generator."""
    return 0.5 * (gan_loss(real_prediction, True, mode) + gan_loss(fake_prediction, False, mode))


def pix2pix_generator_loss(fake_prediction: torch.Tensor, fake: torch.Tensor, target: torch.Tensor,
                           lambda_l1: float = LAMBDA_L1, mode: str = "vanilla") -> dict[str, torch.Tensor]:
    """pix2pix's generator objective: fool D, and stay close to the target in L1.

    Returns {"gan", "l1", "loss"} with loss = gan + lambda_l1 * l1.
    """
    adv = gan_loss(fake_prediction, True, mode)
    l1 = F.l1_loss(fake, target)
    return {"gan": adv, "l1": l1, "loss": adv + lambda_l1 * l1}


# --------------------------------------------------------------------------- optimizer, freezing
def gan_adam(params: Iterable, lr: float) -> torch.optim.Adam:
    """Adam with beta1 = 0.5 (Radford et al., 2016): a shorter momentum memory, which the
    two players' moving targets need; every GAN in the course uses it for its discriminator."""
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


@contextlib.contextmanager
def frozen(modules: Sequence[nn.Module]):
    """Inside the block the modules' weights need no gradient: the generator's loss goes back
    through the discriminator without computing (or keeping) gradients for D's own weights."""
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m in modules:
            m.requires_grad_(True)


# --------------------------------------------------------------------------- image pool
class ImagePool:
    """A buffer of previously generated images (Shrivastava et al., 2017).

    ``query(images)`` goes through the batch one image at a time: while the pool holds
    fewer than ``pool_size`` images, the image is stored and returned. Once full, with
    probability 0.5 a random stored image is returned and replaced by the new one;
    otherwise the new image is returned and the pool is unchanged. The discriminator
    thus sees a mix of current and older fakes, which damps oscillation.
    ``pool_size=0`` turns the pool off. Draws come from a seeded generator, so a run
    (and a resumed run: see :meth:`state_dict`) is reproducible.
    """

    def __init__(self, pool_size: int = 50, seed: int = 0):
        self.pool_size = V.count("pool_size", pool_size, 0, hint="It is how many earlier fakes are kept; 0 turns "
                                 "the pool off (the CycleGAN paper keeps 50).")
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(V.seed("seed", seed))

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        if self.images and (self.images[0].device, self.images[0].dtype) != (images.device, images.dtype):
            # A resumed pool is read on the CPU: it joins the fakes' device (and precision).
            self.images = [im.to(images) for im in self.images]
        out = []
        for image in images.detach():
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(1, generator=self.generator)) > 0.5:
                i = int(torch.randint(0, self.pool_size, (1,), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"pool_size": self.pool_size, "generator": self.generator.get_state(),
                "images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict) -> None:
        self.pool_size = int(state["pool_size"])
        self.generator.set_state(state["generator"].cpu())  # a CPU generator, whatever the device
        self.images = [im for im in state["images"]] if state["images"].numel() else []


# --------------------------------------------------------------------------- learning rate
class LinearDecay:
    """Learning-rate factor: 1 for ``n_epochs`` epochs, then linearly towards 0 over
    ``n_epochs_decay`` more (the CycleGAN/pix2pix schedule). Epochs count from 0.

    factor(e) = 1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1)
    """

    def __init__(self, n_epochs: int, n_epochs_decay: int):
        self.n_epochs = V.count("n_epochs (epochs at the full learning rate)", n_epochs, 0)
        self.n_epochs_decay = V.count("n_epochs_decay (epochs of linear decay to 0)", n_epochs_decay, 0)

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - self.n_epochs) / float(self.n_epochs_decay + 1)


def linear_decay_scheduler(optimizer: torch.optim.Optimizer, n_epochs: int, n_epochs_decay: int):
    """A LambdaLR with :class:`LinearDecay` (stepped once per epoch by ``training.fit``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(n_epochs, n_epochs_decay))


def decay_schedulers(optimizers: dict, n_epochs: int | None, n_epochs_decay: int) -> dict | None:
    """One :func:`linear_decay_scheduler` per optimizer, or None for a constant rate."""
    if n_epochs is None:
        return None
    return {k: linear_decay_scheduler(o, n_epochs, n_epochs_decay) for k, o in optimizers.items()}


# --------------------------------------------------------------------------- the update
class AdversarialTask(Task):
    """A GAN's training step, written once: D learns on real images and detached fakes, then,
    with D frozen, G learns to fool it (and whatever else its loss asks).

    A subclass supplies:

    * ``generate(batch)``: the fakes (any object the two losses understand), made once a step;
    * ``discriminator_loss(batch, fakes)``: D's loss (detach the fakes there);
    * ``generator_losses(batch, fakes)``: a dict of tensors whose ``"loss"`` entry G minimises;
      the other entries are logged.

    ``discriminators`` names the models frozen during G's update and ``optimizer_names`` the
    (generator, discriminator) optimizers. ``generator_first = True`` updates G before D, as
    CycleGAN's authors do; pix2pix and DCGAN update D first. A task whose discriminator is
    absent from its models trains the generator alone (e.g. pix2pix's "L1 only" column).
    """

    discriminators: tuple[str, ...] = ("discriminator",)
    optimizer_names: tuple[str, str] = ("generator", "discriminator")
    generator_first = False

    def generate(self, batch):
        raise NotImplementedError

    def discriminator_loss(self, batch, fakes) -> torch.Tensor:
        raise NotImplementedError

    def generator_losses(self, batch, fakes) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _update_discriminator(self, batch, fakes, logs: dict) -> None:
        if self.optimizer_names[1] in self.optimizers:
            logs["d_loss"] = self.optimize(self.discriminator_loss(batch, fakes), self.optimizer_names[1])

    def training_step(self, batch):
        fakes = self.generate(batch)
        logs: dict[str, float] = {}
        if not self.generator_first:
            self._update_discriminator(batch, fakes, logs)
        with frozen([self.models[k] for k in self.discriminators if k in self.models]):
            losses = self.generator_losses(batch, fakes)
            logs["g_loss"] = self.optimize(losses.pop("loss"), self.optimizer_names[0])
        if self.generator_first:
            self._update_discriminator(batch, fakes, logs)
        logs.update({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()})
        return logs


class Pix2PixTask(AdversarialTask):
    """pix2pix on batches ``(input, target)`` in [-1, 1]: one D update, then one G update.

    D is conditional: it judges (input, output) pairs. G's loss is GAN + ``lambda_l1`` x L1.
    ``discriminator=None`` trains the generator on L1 alone (the paper's "L1" column: no GAN term),
    with the same optimizer and logs (``g_gan`` is then 0). L1 is logged in [0, 1] image units
    (half the [-1, 1] difference), like the validation and the results tables.
    ``n_epochs``/``n_epochs_decay``: the linear learning-rate schedule (None: constant).
    """

    batch_parts = ("inputs", "targets")

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, lr: float = 2e-4,
                 lambda_l1: float = LAMBDA_L1, gan_mode: str = "vanilla",
                 n_epochs: int | None = None, n_epochs_decay: int = 0):
        models, optimizers = {"generator": generator}, {"generator": gan_adam(generator.parameters(), lr)}
        if discriminator is not None:
            models["discriminator"] = discriminator
            optimizers["discriminator"] = gan_adam(discriminator.parameters(), lr)
        super().__init__(models, optimizers, decay_schedulers(optimizers, n_epochs, n_epochs_decay))
        self.lambda_l1, self.gan_mode = lambda_l1, V.choice("GAN loss mode", gan_mode, GAN_MODES)

    def generate(self, batch):
        return self.models["generator"](batch[0])

    def discriminator_loss(self, batch, fake):
        x, y = batch
        d = self.models["discriminator"]
        return discriminator_loss(d(x, y), d(x, fake.detach()), self.gan_mode)

    def generator_losses(self, batch, fake):
        x, y = batch
        d = self.models.get("discriminator")
        if d is None:  # L1 alone: what the GAN term is compared against
            l1 = F.l1_loss(fake, y)
            return {"loss": self.lambda_l1 * l1, "g_gan": 0.0, "l1": l1.detach() / 2}
        losses = pix2pix_generator_loss(d(x, fake), fake, y, self.lambda_l1, self.gan_mode)
        return {"loss": losses["loss"], "g_gan": losses["gan"], "l1": losses["l1"].detach() / 2}

    def validation_step(self, batch):
        """L1 in [0, 1] image units (half the [-1, 1] difference), as the results table reports it."""
        x, y = batch
        fake = self.models["generator"](x)
        return {"loss": float(F.mse_loss(fake, y)), "l1": float(F.l1_loss(fake, y)) / 2}
