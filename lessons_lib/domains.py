"""Unpaired domains for CycleGAN, and the recipe each one trains with.

* ``"hue"``: a pair the course makes offline from photos (:func:`offline_domains`): B is other
  photos with their hue turned by :data:`HUE_DEGREES`, so every held-out photo has an exact
  answer to score against. What the fast profile and the course weights train on.
* ``"horse2zebra"``: CycleGAN's own dataset, downloaded once (:func:`horse2zebra`). What the full
  profile trains on; there is no exact answer, only how close the colours come.
* Your own two folders: :func:`unpaired_folders`.

:data:`CYCLEGAN_RECIPES` holds the settings per domain pair. They follow the *data*, not the
profile: a change of colour wants a colour path, no identity loss and a luminance loss; horses to
zebras want the paper's network and identity loss.

Images here are [0, 1]; :class:`UnpairedImages` gives the networks' [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from . import registry
from . import validate as V
from .data import data_root
from .downloads import fetch_archive
from .images import to_signed
from .runtime import cache_dir

__all__ = ["HUE_DEGREES", "DOMAINS", "CycleGANRecipe", "CYCLEGAN_RECIPES", "hue_rotate", "UnpairedImages",
           "offline_domains", "unpaired_folders", "horse2zebra", "unpaired_domains"]

#: The hue domains' B is A's kind of photo with the hue turned by this much.
HUE_DEGREES = 150.0
DOMAINS = ("hue", "horse2zebra")


@dataclass(frozen=True)
class CycleGANRecipe:
    """One domain pair's CycleGAN settings: image size, networks, losses, optimiser, batch.

    ``exact_hue``: the hue turn domain B was made with, when there is one (then A -> B has an
    exact answer, :func:`lessons_lib.translation.cyclegan_scores`); None for real domains.
    """
    size: int
    ngf: int                      # generator filters
    blocks: int                   # generator residual blocks (the paper: 6 at 128 px, 9 at 256)
    colour_path: bool             # a 1x1 path that lets the generator see absolute colours
    lambda_identity: float        # x lambda_cycle; 0 leaves the identity loss out
    lambda_luminance: float       # the course's luminance loss; 0 leaves it out
    lr: float
    batch_size: int
    ndf: int                      # PatchGAN filters
    d_layers: int                 # PatchGAN strided layers
    exact_hue: float | None = None

    def generator(self):
        """A fresh A -> B (or B -> A) generator of this recipe."""
        from .models.cyclegan import ResnetGenerator

        return ResnetGenerator(3, 3, self.ngf, self.blocks, colour_path=self.colour_path)

    def discriminator(self):
        """A fresh PatchGAN of this recipe (instance norm, as the paper's)."""
        from .models.pix2pix import PatchDiscriminator

        return PatchDiscriminator(3, ndf=self.ndf, n_layers=self.d_layers, norm="instance")

    def to_dict(self) -> dict:
        return asdict(self)


CYCLEGAN_RECIPES = {
    # A change of colour: the paper's network cannot see absolute colours (hence the colour path);
    # the identity loss asks G_AB to leave B's photos unchanged, the opposite of a change of colour;
    # the luminance loss (weighted as the paper weights identity, 0.5 x lambda_cycle = 5) rules out
    # the colour-inverting map one seed in four settled on without it. Small: a CPU trains it in minutes.
    "hue": CycleGANRecipe(size=32, ngf=16, blocks=4, colour_path=True, lambda_identity=0.0, lambda_luminance=5.0,
                          lr=1e-3, batch_size=8, ndf=16, d_layers=2, exact_hue=HUE_DEGREES),
    # The paper's recipe at 128 px (6 blocks, identity 0.5, Adam 2e-4, batch 1, a 70x70 PatchGAN), with
    # half its filters so that a free Colab T4 session fits 8 + 8 epochs.
    "horse2zebra": CycleGANRecipe(size=128, ngf=32, blocks=6, colour_path=False, lambda_identity=0.5,
                                  lambda_luminance=0.0, lr=2e-4, batch_size=1, ndf=64, d_layers=3),
}


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

    n = V.count("n (the number of photos per domain)", n)
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
    saying what to do (the hue domains, :func:`offline_domains`, need no download).
    """
    V.choice("split", split, ("train", "test"))
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


def unpaired_domains(name: str = "hue", size: int | None = None, n: int | None = None, split: str = "train"):
    """The course's unpaired domains ``name`` (one of :data:`DOMAINS`): the offline hue domains
    (:func:`offline_domains`, ``n`` images each) or horse2zebra (every image); ``size`` defaults to
    the domains' recipe's. ``split="test"`` gives the held-out images of both."""
    V.choice("unpaired domains", name, DOMAINS, hint="'hue' is made offline; 'horse2zebra' is downloaded once.")
    V.choice("split", split, ("train", "test"))
    size = size or CYCLEGAN_RECIPES[name].size
    if name == "horse2zebra":
        return horse2zebra(size=size, split=split)
    return offline_domains(n=n or 256, size=size, split=split)
