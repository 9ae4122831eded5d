"""Image-to-image translation: pix2pix (paired) and CycleGAN (unpaired).

* Losses, written out as the papers define them: the GAN loss (``"vanilla"`` binary
  cross-entropy, or ``"lsgan"`` least squares), pix2pix's L1 term (lambda 100),
  CycleGAN's cycle-consistency (lambda 10) and identity (0.5 x lambda) losses.
* :class:`ImagePool`: the history of generated images the CycleGAN discriminators
  learn from (50 images, as in Shrivastava et al. 2017).
* :class:`Pix2PixTask` and :class:`CycleGANTask`: :class:`lessons_lib.training.Task`
  subclasses, so :func:`lessons_lib.training.fit` trains them with progress bars,
  checkpoints (pool and learning-rate schedule included) and resume.
* Data: paired label maps -> scenes (:mod:`lessons_lib.scenes`), edges -> photo from any photo
  set (scikit-image's Canny), unpaired
  domains (horse2zebra in the full profile; an offline pair the course makes in the
  fast profile), and unpaired folders of your own.

Images enter the networks in [-1, 1] (Tanh outputs); datasets here return that range.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from . import registry, tables
from . import validate as V
from .data import data_root
from .downloads import fetch_archive
from .images import rgb_to_gray, to_signed, to_unit
from .runtime import cache_dir, get_profile
from .training import Task

__all__ = [
    "gan_loss", "lsgan_loss", "discriminator_loss", "cycle_loss", "identity_loss", "luminance_loss",
    "pix2pix_generator_loss", "ImagePool", "LinearDecay", "linear_decay_scheduler",
    "Pix2PixTask", "CycleGANTask", "canny_edges", "EdgePairs", "hue_rotate", "UnpairedImages",
    "offline_domains", "unpaired_folders", "horse2zebra", "unpaired_domains", "HUE_DEGREES",
    "pix2pix_scores", "picture_scores", "cyclegan_scores", "colour_distance",
    "course_pix2pix", "course_cyclegan",
]

LAMBDA_L1 = 100.0
LAMBDA_CYCLE = 10.0
LAMBDA_IDENTITY = 0.5
#: The fast profile's domain B is domain A's kind of photo with the hue turned by this much.
HUE_DEGREES = 150.0


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
    raise ValueError(f"GAN loss mode must be 'lsgan' or 'vanilla', got {mode!r}.")


def discriminator_loss(real_prediction: torch.Tensor, fake_prediction: torch.Tensor,
                       mode: str = "lsgan") -> torch.Tensor:
    """0.5 * (loss on real as real + loss on fake as fake): halved, as in both papers,
    so the discriminator learns more slowly than the generator."""
    return 0.5 * (gan_loss(real_prediction, True, mode) + gan_loss(fake_prediction, False, mode))


def cycle_loss(real: torch.Tensor, reconstructed: torch.Tensor,
               lambda_cycle: float = LAMBDA_CYCLE) -> torch.Tensor:
    """lambda * mean |x - F(G(x))|: translating there and back must give the input again."""
    return lambda_cycle * F.l1_loss(reconstructed, real)


def identity_loss(real: torch.Tensor, same: torch.Tensor, lambda_cycle: float = LAMBDA_CYCLE,
                  lambda_identity: float = LAMBDA_IDENTITY) -> torch.Tensor:
    """lambda_identity * lambda * mean |y - G(y)|: a target-domain image should pass unchanged
    (keeps colours from drifting)."""
    return lambda_identity * lambda_cycle * F.l1_loss(same, real)


# sRGB's luminance weights (ITU-R BT.709 primaries). hue_rotate's CSS matrix is written with their
# three-digit rounding (0.213, 0.715, 0.072), so it keeps this sum to within 4e-4 of a pixel's value.
_LUMA_709 = (0.2126, 0.7152, 0.0722)


def luminance_loss(real: torch.Tensor, translated: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * mean |Y(x) - Y(G(x))|, Y the BT.709 luma: the translation keeps each pixel's light and
    changes only its colour. Not in the paper: a prior for domains that differ in colour, not in light
    (the identity loss on the input's light, where the paper's wants the whole target image back)."""
    w = real.new_tensor(_LUMA_709).view(1, 3, 1, 1)
    return weight * F.l1_loss((translated * w).sum(dim=1), (real * w).sum(dim=1))


def pix2pix_generator_loss(fake_prediction: torch.Tensor, fake: torch.Tensor, target: torch.Tensor,
                           lambda_l1: float = LAMBDA_L1, mode: str = "vanilla") -> dict[str, torch.Tensor]:
    """pix2pix's generator objective: fool D, and stay close to the target in L1.

    Returns {"gan", "l1", "loss"} with loss = gan + lambda_l1 * l1.
    """
    adv = gan_loss(fake_prediction, True, mode)
    l1 = F.l1_loss(fake, target)
    return {"gan": adv, "l1": l1, "loss": adv + lambda_l1 * l1}


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
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}.")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

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
        if n_epochs < 0 or n_epochs_decay < 0:
            raise ValueError(f"Epoch counts must be >= 0, got {n_epochs} and {n_epochs_decay}.")
        self.n_epochs, self.n_epochs_decay = int(n_epochs), int(n_epochs_decay)

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - self.n_epochs) / float(self.n_epochs_decay + 1)


def linear_decay_scheduler(optimizer: torch.optim.Optimizer, n_epochs: int, n_epochs_decay: int):
    """A LambdaLR with :class:`LinearDecay` (stepped once per epoch by ``training.fit``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(n_epochs, n_epochs_decay))


# --------------------------------------------------------------------------- tasks
def _adam(params, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def _requires_grad(modules: Sequence[nn.Module], flag: bool) -> None:
    for m in modules:
        m.requires_grad_(flag)


class Pix2PixTask(Task):
    """pix2pix on batches ``(input, target)`` in [-1, 1]: one D update, then one G update.

    D is conditional: it judges (input, output) pairs. G's loss is GAN + ``lambda_l1`` x L1.
    ``discriminator=None`` trains the generator on L1 alone (the paper's "L1" column: no GAN term),
    with the same optimizer and logs (``g_gan`` is then 0).
    ``n_epochs``/``n_epochs_decay``: the linear learning-rate schedule (None: constant).
    """

    batch_parts = ("inputs", "targets")

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, lr: float = 2e-4,
                 lambda_l1: float = LAMBDA_L1, gan_mode: str = "vanilla",
                 n_epochs: int | None = None, n_epochs_decay: int = 0):
        models, optimizers = {"generator": generator}, {"generator": _adam(generator.parameters(), lr)}
        if discriminator is not None:
            models["discriminator"] = discriminator
            optimizers["discriminator"] = _adam(discriminator.parameters(), lr)
        schedulers = None
        if n_epochs is not None:
            schedulers = {k: linear_decay_scheduler(o, n_epochs, n_epochs_decay) for k, o in optimizers.items()}
        super().__init__(models, optimizers, schedulers)
        gan_loss(torch.zeros(1), True, gan_mode)  # validates the mode now, not mid-training
        self.lambda_l1, self.gan_mode = lambda_l1, gan_mode

    def training_step(self, batch):
        x, y = batch
        g, d = self.models["generator"], self.models.get("discriminator")
        fake = g(x)
        if d is None:  # L1 alone: what the GAN term is compared against
            l1 = F.l1_loss(fake, y)
            loss = self.optimize(self.lambda_l1 * l1, "generator")
            return {"g_loss": loss, "g_gan": 0.0, "l1": float(l1.detach()) / 2}
        d_loss = discriminator_loss(d(x, y), d(x, fake.detach()), self.gan_mode)
        logs = {"d_loss": self.optimize(d_loss, "discriminator")}
        _requires_grad([d], False)
        losses = pix2pix_generator_loss(d(x, fake), fake, y, self.lambda_l1, self.gan_mode)
        logs["g_loss"] = self.optimize(losses["loss"], "generator")
        _requires_grad([d], True)
        # L1 logged in [0, 1] image units (half the [-1, 1] difference), like the validation and the tables.
        logs["g_gan"], logs["l1"] = float(losses["gan"].detach()), float(losses["l1"].detach()) / 2
        return logs

    def validation_step(self, batch):
        """L1 in [0, 1] image units (half the [-1, 1] difference), as the results table reports it."""
        x, y = batch
        fake = self.models["generator"](x)
        return {"loss": float(F.mse_loss(fake, y)), "l1": float(F.l1_loss(fake, y)) / 2}


class CycleGANTask(Task):
    """CycleGAN on batches ``(a, b)`` of unpaired images in [-1, 1].

    Models: ``g_ab`` (A -> B), ``g_ba`` (B -> A), ``d_a`` (is it a real A?), ``d_b``.
    Generators: LSGAN loss + cycle loss (``lambda_cycle``, both directions) + identity loss
    (``lambda_identity`` x ``lambda_cycle``), and optionally a luminance loss (``lambda_luminance``,
    both directions; 0, the paper's recipe, leaves it out). Discriminators: LSGAN loss on real images
    and on fakes drawn from a 50-image :class:`ImagePool` each. Both generators share one
    Adam optimizer and both discriminators another, as in the authors' code.
    """

    batch_parts = ("A images", "B images")

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module,
                 lr: float = 2e-4, lambda_cycle: float = LAMBDA_CYCLE,
                 lambda_identity: float = LAMBDA_IDENTITY, pool_size: int = 50,
                 n_epochs: int | None = None, n_epochs_decay: int = 0, seed: int = 0,
                 lambda_luminance: float = 0.0):
        opt_g = _adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr)
        opt_d = _adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr)
        schedulers = None
        if n_epochs is not None:
            schedulers = {"generators": linear_decay_scheduler(opt_g, n_epochs, n_epochs_decay),
                          "discriminators": linear_decay_scheduler(opt_d, n_epochs, n_epochs_decay)}
        super().__init__({"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b},
                         {"generators": opt_g, "discriminators": opt_d}, schedulers)
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.lambda_luminance = V.number("lambda_luminance", lambda_luminance, 0.0,
                                         hint="0 leaves the luminance loss out (the paper's recipe).")
        self.pool_a, self.pool_b = ImagePool(pool_size, seed), ImagePool(pool_size, seed + 1)

    def translate(self, a: torch.Tensor | None = None, b: torch.Tensor | None = None):
        """(fake_b, rec_a) for a batch of A, or (fake_a, rec_b) for B: A -> B -> A and back."""
        m = self.models
        if (a is None) == (b is None):
            raise ValueError("Pass exactly one of a= (domain A images) or b= (domain B images).")
        if a is not None:
            fake_b = m["g_ab"](a)
            return fake_b, m["g_ba"](fake_b)
        fake_a = m["g_ba"](b)
        return fake_a, m["g_ab"](fake_a)

    def generator_losses(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.models
        fake_b, rec_a = self.translate(a=a)
        fake_a, rec_b = self.translate(b=b)
        losses = {
            "gan_ab": lsgan_loss(m["d_b"](fake_b), True),
            "gan_ba": lsgan_loss(m["d_a"](fake_a), True),
            "cycle_a": cycle_loss(a, rec_a, self.lambda_cycle),
            "cycle_b": cycle_loss(b, rec_b, self.lambda_cycle),
        }
        if self.lambda_identity > 0:
            losses["idt_b"] = identity_loss(b, m["g_ab"](b), self.lambda_cycle, self.lambda_identity)
            losses["idt_a"] = identity_loss(a, m["g_ba"](a), self.lambda_cycle, self.lambda_identity)
        if self.lambda_luminance > 0:
            losses["lum_ab"] = luminance_loss(a, fake_b, self.lambda_luminance)
            losses["lum_ba"] = luminance_loss(b, fake_a, self.lambda_luminance)
        losses["loss"] = sum(losses.values())
        return losses, fake_a, fake_b

    def training_step(self, batch):
        a, b = batch
        m = self.models
        discs = [m["d_a"], m["d_b"]]
        _requires_grad(discs, False)  # the generator step must not compute D's gradients
        losses, fake_a, fake_b = self.generator_losses(a, b)
        logs = {"g_loss": self.optimize(losses["loss"], "generators")}
        _requires_grad(discs, True)
        d_a = discriminator_loss(m["d_a"](a), m["d_a"](self.pool_a.query(fake_a)), "lsgan")
        d_b = discriminator_loss(m["d_b"](b), m["d_b"](self.pool_b.query(fake_b)), "lsgan")
        logs["d_loss"] = self.optimize(d_a + d_b, "discriminators")
        logs.update({k: float(v.detach()) for k, v in losses.items() if k != "loss"})
        return logs

    def validation_step(self, batch):
        a, b = batch
        _, rec_a = self.translate(a=a)
        _, rec_b = self.translate(b=b)
        return {"cycle": float(F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b))}

    def extra_state(self) -> dict:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        if "pool_a" in state:
            self.pool_a.load_state_dict(state["pool_a"])
            self.pool_b.load_state_dict(state["pool_b"])


# --------------------------------------------------------------------------- paired data
def canny_edges(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Edge maps (N, 1, H, W) in {0, 1} of (N, 3, H, W) [0, 1] images, by scikit-image's Canny."""
    from skimage.feature import canny

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"canny_edges needs RGB images (N, 3, H, W) in [0, 1], got {tuple(images.shape)}.")
    V.number("sigma (the Canny blur)", sigma, 0.0, hint="Try 1 (larger: fewer, smoother edges).")
    V.value_range("The images given to canny_edges", images, 0.0, 1.0)
    gray = rgb_to_gray(images)[:, 0].cpu().numpy().astype(np.float64)
    edges = np.stack([canny(g, sigma=sigma) for g in gray])
    return torch.from_numpy(edges).float().unsqueeze(1)


class EdgePairs(Dataset):
    """pix2pix's edges -> photo pairs from any photo dataset: (edges, photo) in [-1, 1].

    The input is a (1, H, W) drawing: black Canny edges on white, like edges2shoes.
    The edges are computed once, when the dataset is made.
    """

    def __init__(self, photos: Dataset | torch.Tensor, sigma: float = 1.0):
        if len(photos) == 0:
            raise ValueError("The photo set is empty: EdgePairs needs at least one photo.")
        if not torch.is_tensor(photos):
            photos = torch.stack([photos[i] for i in range(len(photos))])
        self.photos = photos
        self.edges = 1.0 - canny_edges(self.photos, sigma)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int):
        return to_signed(self.edges[i]), to_signed(self.photos[i])


# --------------------------------------------------------------------------- unpaired data
def hue_rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate the hue of (N, 3, H, W) [0, 1] images, keeping luminance (the W3C/CSS
    ``hue-rotate`` matrix). Grays are unchanged; the result is clipped to [0, 1]."""
    V.number("degrees", degrees, hint="For example 150.")
    V.value_range("The images given to hue_rotate", images, 0.0, 1.0)
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    m = images.new_tensor([
        [0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928],
        [0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283],
        [0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072],
    ])
    return torch.einsum("ij,njhw->nihw", m, images).clamp(0, 1)


class UnpairedImages(Dataset):
    """Items ``(a, b)`` in [-1, 1] from two unrelated image sets (each item [0, 1] (3, H, W)).

    Length is the larger set's; item i takes A[i mod |A|] and a B image through a
    fixed random permutation, so A and B are never aligned by index.
    """

    def __init__(self, domain_a: Dataset, domain_b: Dataset, seed: int = 0):
        for name, ds in (("A", domain_a), ("B", domain_b)):
            if len(ds) == 0:
                raise ValueError(f"Domain {name} has no images: unpaired training needs images "
                                 "in both domains.")
        self.a, self.b = domain_a, domain_b
        self.perm = torch.randperm(len(domain_b), generator=torch.Generator().manual_seed(seed)).tolist()

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int):
        return to_signed(self.a[i % len(self.a)]), to_signed(self.b[self.perm[i % len(self.b)]])


def offline_domains(n: int = 256, size: int = 32, degrees: float = HUE_DEGREES, seed: int = 0,
                    profile: str | None = "fast", split: str = "train"):
    """A small unpaired pair of domains the course makes offline: (A, B), ``n`` images each, in [0, 1].

    A: photos. B: *other* photos with their hue rotated by ``degrees`` (skies turn
    orange-pink, foliage violet). The photos are the real CIFAR-10 subset when it is
    present, else crops of scikit-image's bundled photos (``lessons_lib.data``); A and B
    use disjoint photos, so no A image has its own counterpart in B: the mapping must be
    learned from the two distributions, as with horses and zebras. A hue rotation is a
    change any small generator can represent, so it is learned in a CPU-minute.
    """
    from .data import TensorImages, colour_images, stack

    if n < 1:
        raise ValueError(f"n must be positive, got {n}.")
    photos = stack(colour_images(split, size=size, profile=profile, limit=2 * n, seed=seed))
    if len(photos) < 2:
        raise ValueError(f"Need at least 2 photos to make two domains, found {len(photos)}.")
    # A seeded shuffle before halving: the photo sets come ordered by class, and halves in that
    # order would give A the airplanes and cars and B the ships and frogs, two domains that
    # differ in content as well as in hue.
    order = torch.randperm(len(photos), generator=torch.Generator().manual_seed(seed))
    half = len(photos) // 2
    return (TensorImages(photos[order[:half]]),
            TensorImages(hue_rotate(photos[order[half:2 * half]], degrees)))


def unpaired_folders(folder_a: str | Path, folder_b: str | Path, size: int = 64):
    """Two folders of your own images as domains A and B ([0, 1] datasets, ``size`` px squares)."""
    from .data import ImageFolderDataset

    domains = []
    for name, folder in (("A", folder_a), ("B", folder_b)):
        try:
            domains.append(ImageFolderDataset(folder, size=size))
        except ValueError as err:
            raise ValueError(
                f"Domain {name} folder '{folder}' has no images, so there is nothing to translate "
                f"{'from' if name == 'A' else 'to'}. Put .png/.jpg files of domain {name} in it "
                f"(CycleGAN's layout is trainA/ and trainB/). Details: {err}") from None
        except FileNotFoundError as err:
            raise FileNotFoundError(f"Domain {name}: {err}") from None
    return domains[0], domains[1]


def _horse2zebra_root() -> Path:
    local = data_root()
    if local is not None and (local / "horse2zebra" / "trainA").is_dir():
        return local / "horse2zebra"
    return cache_dir() / "datasets" / "horse2zebra"


def horse2zebra(size: int = 128, split: str = "train", download: bool | None = None):
    """The horse2zebra domains (A = horses, B = zebras) as [0, 1] datasets.

    Read from the course cache; downloaded (about 110 MB, from the registry's
    ``"horse2zebra"`` URL) only when missing and ``download`` is not False. Offline, or
    when the download fails, raises :class:`lessons_lib.registry.DownloadUnavailable`
    saying what to do (the fast profile uses :func:`offline_domains` instead).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    root = _horse2zebra_root()
    folders = (root / f"{split}A", root / f"{split}B")
    if not all(f.is_dir() for f in folders):
        source = registry.get_source("horse2zebra")
        # HF_HUB_OFFLINE is about the Hugging Face hub; an archive is tried like CIFAR-10's, and
        # every host's failure is then named (the offline rehearsal serves it from a local mirror).
        if download is False:
            raise registry.DownloadUnavailable(registry.unavailable_message(
                "the horse2zebra dataset", reason=f"it is not in {root} and downloading is switched off"
                f"; you can unzip {source.location} there yourself"))
        fetch_archive("horse2zebra", root)  # checksum verified, mirrors tried
    return unpaired_folders(*folders, size=size)


def unpaired_domains(size: int | None = None, n: int | None = None, profile: str | None = None,
                     split: str = "train"):
    """The course's unpaired domains: horse2zebra (full) or :func:`offline_domains` (fast);
    ``split="test"`` gives the held-out images of both."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    profile = profile or get_profile()
    if profile == "full":
        return horse2zebra(size=size or 128, split=split)
    return offline_domains(n=n or 256, size=size or 32, profile="fast", split=split)


# --------------------------------------------------------------------------- measures
@torch.no_grad()
def pix2pix_scores(generator: nn.Module, labels: torch.Tensor, targets: torch.Tensor,
                   batch: int = 128) -> dict:
    """A pix2pix generator on held-out pairs: ``labels`` and ``targets`` (N, 3, H, W) in [0, 1].

    * ``error``: the mean absolute error to the real target in [0, 1] units, and ``error_se`` its
      standard error over the N images;
    * ``sharpness``: the outputs' fine detail (:func:`lessons_lib.scenes.high_frequency_energy`) as a
      fraction of the real targets' (1 = as much as the real pictures; a blurry average is far below),
      and ``sharpness_se``;
    * ``error_values`` and ``sharpness_values``: the per-image values, in the order of ``labels``.
    """
    from .scenes import high_frequency_energy

    generator.eval()
    device = next(generator.parameters()).device
    out = torch.cat([to_unit(generator(to_signed(labels[i:i + batch].to(device))).clamp(-1, 1)).cpu()
                     for i in range(0, len(labels), batch)])
    return {**_mean_se("error", (out - targets).abs().mean(dim=(1, 2, 3))),
            **_mean_se("sharpness", high_frequency_energy(out) / high_frequency_energy(targets).mean())}


def picture_scores(pictures: torch.Tensor, targets: torch.Tensor) -> dict:
    """:func:`pix2pix_scores` for ready pictures, such as a baseline's (one picture is broadcast)."""
    from .scenes import high_frequency_energy

    pictures = pictures.expand_as(targets)
    return {**_mean_se("error", (pictures - targets).abs().mean(dim=(1, 2, 3))),
            **_mean_se("sharpness", high_frequency_energy(pictures) / high_frequency_energy(targets).mean())}


def _mean_se(name: str, values: torch.Tensor) -> dict:
    """The mean, its standard error, and the per-image values (for ``tables.paired_row``)."""
    mean, se = tables.mean_se(values)
    return {name: mean, f"{name}_se": se, f"{name}_values": values.detach().cpu()}


def colour_distance(x: torch.Tensor, y: torch.Tensor, directions: int = 32, seed: int = 0) -> float:
    """How far apart the colours of two image sets are, ignoring which pixel is where: the
    sliced Wasserstein-1 distance between their pixel-colour distributions.

    ``x`` and ``y``: (N, C, H, W) and (M, C, H', W') on one scale. Every pixel is a point in
    colour space; both clouds are projected on ``directions`` random unit vectors (seeded),
    and the 1-D Wasserstein distance of each projection (mean gap between sorted values) is
    averaged. 0 for the same colours in any arrangement. Needs no pairs: it sees what a
    discriminator of colours could see (notebook 7 draws it against the hue angle).
    """
    if x.dim() != 4 or y.dim() != 4 or x.shape[1] != y.shape[1]:
        raise ValueError(f"colour_distance needs two (N, C, H, W) batches with the same channels, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}.")
    px = x.detach().float().movedim(1, -1).reshape(-1, x.shape[1])
    py = y.detach().float().movedim(1, -1).reshape(-1, y.shape[1]).to(px.device)
    if len(px) == 0 or len(py) == 0:
        raise ValueError("colour_distance needs at least one pixel in each set.")
    # Both quantile functions at the same levels: exact when one count divides the other.
    k = max(len(px), len(py))
    levels = (torch.arange(k, device=px.device) + 0.5) / k
    ix, iy = (levels * len(px)).long(), (levels * len(py)).long()
    gen = torch.Generator().manual_seed(seed)
    units = F.normalize(torch.randn(x.shape[1], directions, generator=gen), dim=0).to(px.device)
    # (directions, pixels) rows, sorted along the rows: contiguous sorts, a few directions at a time.
    total = 0.0
    for d in units.split(8, dim=1):
        qx = (d.T @ px.T).sort(dim=1).values[:, ix]
        qy = (d.T @ py.T).sort(dim=1).values[:, iy]
        total += float((qx - qy).abs().sum())
    return total / (k * directions)


@torch.no_grad()
def unpaired_scores(g_ab: nn.Module, domain_a, domain_b, n: int = 256, batch: int = 32) -> dict[str, float]:
    """How close A -> B comes to domain B's colours where no exact answer exists (horses to zebras):
    the :func:`colour_distance` of the translated held-out A images to held-out B images, beside that
    of the A images unchanged. {"CycleGAN A->B": ..., "identity": ...}, lower is closer."""
    a = torch.stack([domain_a[i] for i in range(min(n, len(domain_a)))])
    b = torch.stack([domain_b[i] for i in range(min(n, len(domain_b)))])
    g_ab.eval()
    device = next(g_ab.parameters()).device
    fake = torch.cat([to_unit(g_ab(to_signed(a[i:i + batch].to(device)))).cpu() for i in range(0, len(a), batch)])
    return {"CycleGAN A->B": colour_distance(fake, b), "identity": colour_distance(a, b)}


@torch.no_grad()
def cyclegan_scores(g_ab: nn.Module, photos: torch.Tensor, degrees: float = HUE_DEGREES,
                    batch: int = 128) -> dict[str, float]:
    """How close A -> B comes to the exact map the fast-profile domains were made with.

    Domain B is photos with their hue rotated by ``degrees``, so for a held-out photo
    a the right answer is known: ``hue_rotate(a, degrees)``. Returns the mean absolute
    error (in [0, 1]) to it of {"CycleGAN A->B": g_ab(a), "identity": a unchanged}.
    """
    g_ab.eval()
    device = next(g_ab.parameters()).device
    err = {"CycleGAN A->B": 0.0, "identity": 0.0}
    for i in range(0, len(photos), batch):
        a = photos[i:i + batch].to(device)
        truth = hue_rotate(a, degrees)
        fake = (g_ab(to_signed(a)).clamp(-1, 1) + 1) / 2
        err["CycleGAN A->B"] += float((fake - truth).abs().mean(dim=(1, 2, 3)).sum())
        err["identity"] += float((a - truth).abs().mean(dim=(1, 2, 3)).sum())
    return {k: v / len(photos) for k, v in err.items()}


# --------------------------------------------------------------------------- course weights
def course_pix2pix(which: str = "gan") -> tuple[nn.Module, dict]:
    """A course pix2pix generator (label map -> scene, 64 px), eval mode, and its manifest entry:
    ``which="gan"`` the L1 + GAN one (``translation/pix2pix``), ``"l1"`` the same U-Net on L1 alone
    (``translation/pix2pix-l1``)."""
    from . import course_weights
    from .models.pix2pix import UNetGenerator

    names = {"gan": "translation/pix2pix", "l1": "translation/pix2pix-l1"}
    if which not in names:
        raise ValueError(f"which must be 'gan' (L1 + GAN) or 'l1' (L1 alone), got {which!r}.")
    state, info = course_weights.load_state(names[which])
    generator = UNetGenerator(**info["config"]["generator"])
    course_weights.load_into(generator, state, names[which])
    return generator.eval(), info


def course_cyclegan() -> tuple[nn.Module, nn.Module, dict]:
    """The course's trained CycleGAN generators (A -> B, B -> A) for the fast profile's
    hue domains, eval mode, and the manifest entry."""
    from . import course_weights
    from .models.cyclegan import ResnetGenerator

    state, info = course_weights.load_state("translation/cyclegan")
    nets = []
    for prefix in ("g_ab.", "g_ba."):
        net = ResnetGenerator(**info["config"]["generator"])
        course_weights.load_into(net, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                 "translation/cyclegan")
        nets.append(net.eval())
    return nets[0], nets[1], info
