"""Image-to-image translation: pix2pix (paired) and CycleGAN (unpaired).

* CycleGAN's losses, written out as the paper defines them: cycle-consistency (lambda 10)
  and identity (0.5 x lambda), and a luminance prior of the course's own. The GAN losses,
  pix2pix's L1 term (lambda 100), :class:`ImagePool` and the learning-rate decay live in
  :mod:`lessons_lib.adversarial`, shared with the zoo's GAN and the adversarial inpainter,
  and are re-exported here under the names lesson 7 teaches.
* :class:`CycleGANTask` (and :class:`Pix2PixTask`, from :mod:`lessons_lib.adversarial`):
  :class:`lessons_lib.adversarial.AdversarialTask` subclasses, so
  :func:`lessons_lib.training.fit` trains them with progress bars, checkpoints (pool and
  learning-rate schedule included) and resume.
* Data: paired label maps -> scenes (:mod:`lessons_lib.scenes`), edges -> photo from any photo
  set (scikit-image's Canny); unpaired domains and the CycleGAN recipe of each (the offline hue
  domains, horse2zebra, folders of your own) live in :mod:`lessons_lib.domains`, re-exported here.

Images enter the networks in [-1, 1] (Tanh outputs); datasets here return that range.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from . import course_weights, tables
from . import validate as V
from .adversarial import (  # re-exported: lesson 7 teaches them, the adversarial module keeps them
    LAMBDA_L1,
    AdversarialTask,
    ImagePool,
    LinearDecay,
    Pix2PixTask,
    decay_schedulers,
    discriminator_loss,
    gan_adam,
    gan_loss,
    linear_decay_scheduler,
    lsgan_loss,
    pix2pix_generator_loss,
)
from .domains import (  # re-exported: lesson 7's data, kept with the recipe each domain pair trains with
    CYCLEGAN_RECIPES,
    DOMAINS,
    HUE_DEGREES,
    CycleGANRecipe,
    UnpairedImages,
    horse2zebra,
    hue_rotate,
    offline_domains,
    unpaired_domains,
    unpaired_folders,
)
from .images import rgb_to_gray, to_signed, to_unit
from .metrics import high_frequency_energy

__all__ = [
    "LAMBDA_L1", "gan_loss", "lsgan_loss", "discriminator_loss", "cycle_loss", "identity_loss", "luminance_loss",
    "pix2pix_generator_loss", "ImagePool", "LinearDecay", "linear_decay_scheduler",
    "Pix2PixTask", "CycleGANTask", "canny_edges", "EdgePairs", "hue_rotate", "UnpairedImages",
    "offline_domains", "unpaired_folders", "horse2zebra", "unpaired_domains", "HUE_DEGREES", "DOMAINS",
    "CycleGANRecipe", "CYCLEGAN_RECIPES",
    "pix2pix_scores", "picture_scores", "cyclegan_scores", "colour_distance",
    "course_pix2pix", "course_cyclegan",
]

LAMBDA_CYCLE = 10.0
LAMBDA_IDENTITY = 0.5

# --------------------------------------------------------------------------- losses
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


# --------------------------------------------------------------------------- tasks
class CycleGANTask(AdversarialTask):
    """CycleGAN on batches ``(a, b)`` of unpaired images in [-1, 1].

    Models: ``g_ab`` (A -> B), ``g_ba`` (B -> A), ``d_a`` (is it a real A?), ``d_b``.
    Generators: LSGAN loss + cycle loss (``lambda_cycle``, both directions) + identity loss
    (``lambda_identity`` x ``lambda_cycle``), and optionally a luminance loss (``lambda_luminance``,
    both directions; 0, the paper's recipe, leaves it out). Discriminators: LSGAN loss on real images
    and on fakes drawn from a 50-image :class:`ImagePool` each. Both generators share one
    Adam optimizer and both discriminators another, as in the authors' code, which also updates the
    generators first.
    """

    batch_parts = ("A images", "B images")
    discriminators, optimizer_names = ("d_a", "d_b"), ("generators", "discriminators")
    generator_first = True  # as in the authors' code: G's update, then D's on the pooled fakes

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module,
                 lr: float = 2e-4, lambda_cycle: float = LAMBDA_CYCLE,
                 lambda_identity: float = LAMBDA_IDENTITY, pool_size: int = 50,
                 n_epochs: int | None = None, n_epochs_decay: int = 0, seed: int = 0,
                 lambda_luminance: float = 0.0):
        optimizers = {"generators": gan_adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr),
                      "discriminators": gan_adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr)}
        super().__init__({"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b}, optimizers,
                         decay_schedulers(optimizers, n_epochs, n_epochs_decay))
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

    def generate(self, batch):
        a, b = batch
        fake_b, rec_a = self.translate(a=a)
        fake_a, rec_b = self.translate(b=b)
        return fake_a, fake_b, rec_a, rec_b

    def generator_losses(self, batch, fakes) -> dict[str, torch.Tensor]:
        (a, b), m = batch, self.models
        fake_a, fake_b, rec_a, rec_b = fakes
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
        return losses

    def discriminator_loss(self, batch, fakes) -> torch.Tensor:
        (a, b), m = batch, self.models
        fake_a, fake_b = fakes[:2]
        d_a = discriminator_loss(m["d_a"](a), m["d_a"](self.pool_a.query(fake_a)), "lsgan")
        d_b = discriminator_loss(m["d_b"](b), m["d_b"](self.pool_b.query(fake_b)), "lsgan")
        return d_a + d_b

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
# --------------------------------------------------------------------------- measures
@torch.no_grad()
def pix2pix_scores(generator: nn.Module, labels: torch.Tensor, targets: torch.Tensor,
                   batch: int = 128) -> dict:
    """A pix2pix generator on held-out pairs: ``labels`` and ``targets`` (N, 3, H, W) in [0, 1].

    * ``error``: the mean absolute error to the real target in [0, 1] units, and ``error_se`` its
      standard error over the N images;
    * ``sharpness``: the outputs' fine detail (:func:`lessons_lib.metrics.high_frequency_energy`) as a
      fraction of the real targets' (1 = as much as the real pictures; a blurry average is far below),
      and ``sharpness_se``;
    * ``error_values`` and ``sharpness_values``: the per-image values, in the order of ``labels``.
    """
    generator.eval()
    device = next(generator.parameters()).device
    out = torch.cat([to_unit(generator(to_signed(labels[i:i + batch].to(device))).clamp(-1, 1)).cpu()
                     for i in range(0, len(labels), batch)])
    return {**_mean_se("error", (out - targets).abs().mean(dim=(1, 2, 3))),
            **_mean_se("sharpness", high_frequency_energy(out) / high_frequency_energy(targets).mean())}


def picture_scores(pictures: torch.Tensor, targets: torch.Tensor) -> dict:
    """:func:`pix2pix_scores` for ready pictures, such as a baseline's (one picture is broadcast)."""
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
def _course_pix2pix(name: str, state: dict, info: dict) -> nn.Module:
    from .models.pix2pix import UNetGenerator

    return course_weights.load_into(UNetGenerator(**info["config"]["generator"]), state, name)


def _course_cyclegan(name: str, state: dict, info: dict) -> nn.ModuleDict:
    """Both generators, as ``{"g_ab": A -> B, "g_ba": B -> A}`` (the state's key prefixes)."""
    from .models.cyclegan import ResnetGenerator

    nets = nn.ModuleDict({k: ResnetGenerator(**info["config"]["generator"]) for k in ("g_ab", "g_ba")})
    return course_weights.load_into(nets, state, name)


course_weights.register("translation/pix2pix", _course_pix2pix)
course_weights.register("translation/pix2pix-l1", _course_pix2pix)
course_weights.register("translation/cyclegan", _course_cyclegan)


def course_pix2pix(which: str = "gan") -> tuple[nn.Module, dict]:
    """A course pix2pix generator (label map -> scene, 64 px), eval mode, and its manifest entry:
    ``which="gan"`` the L1 + GAN one (``translation/pix2pix``), ``"l1"`` the same U-Net on L1 alone
    (``translation/pix2pix-l1``)."""
    names = {"gan": "translation/pix2pix", "l1": "translation/pix2pix-l1"}
    V.choice("pix2pix (which)", which, names, hint="'gan' is L1 + GAN, 'l1' the U-Net on L1 alone.")
    return course_weights.load(names[which])


def course_cyclegan() -> tuple[nn.Module, nn.Module, dict]:
    """The course's trained CycleGAN generators (A -> B, B -> A) for the fast profile's
    hue domains, eval mode, and the manifest entry."""
    nets, info = course_weights.load("translation/cyclegan")
    return nets["g_ab"], nets["g_ba"], info
