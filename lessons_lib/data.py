"""Datasets of colour photos, and the grayscale -> colour pairs built from them.

One call gives the notebooks their photos in either profile::

    photos = data.colour_images("train", size=32)

* full: CIFAR-10 (downloaded once into the cache, checksum verified, or read from
  ``LESSONS_DATA_DIR``);
* fast: the real CIFAR-10 subset at ``$LESSONS_DATA_DIR/cifar10-subset`` when it
  is there (CI has it), otherwise random crops of scikit-image's bundled photos,
  which the project makes itself and which need no download.

Every item is a float tensor (3, H, W) in [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from . import registry
from . import validate as V
from .images import IMAGE_SUFFIXES, load_image, pil_to_tensor, rgb_to_gray, to_signed
from .runtime import cache_dir, get_profile

__all__ = ["DATA_ENV", "data_root", "ImageFolderDataset", "TensorImages", "CifarBatches", "cifar10",
           "sample_photos", "colour_images", "load_photos", "ColorizationPairs", "split", "make_loader", "stack",
           "CIFAR10_CLASSES", "class_labels"]

DATA_ENV = "LESSONS_DATA_DIR"
CIFAR_SUBSET = "cifar10-subset"


def data_root() -> Path | None:
    """The folder ``LESSONS_DATA_DIR`` points at, or None."""
    value = os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{DATA_ENV}={value} is not a folder. Point it at the folder that holds your "
            f"local data (for example one containing '{CIFAR_SUBSET}/' or 'cifar-10-batches-py/'), "
            f"or unset it.")
    return path


# --------------------------------------------------------------------------- folders
def list_images(root: str | Path) -> list[Path]:
    """Image files under ``root``: flat, or one sub-folder per class (ImageFolder)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(
            f"Data folder '{root}' does not exist. Check the path, or pass a folder of "
            f"colour images (flat, or one sub-folder per class).")
    if not root.is_dir():
        raise NotADirectoryError(f"'{root}' is a file; pass the folder that holds the images.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        others = [p.name for p in root.rglob("*") if p.is_file()][:5]
        hint = f" It holds other files ({', '.join(others)}...)." if others else " It is empty."
        raise ValueError(
            f"No images found in '{root}'.{hint} Put .png/.jpg files in it, directly or "
            f"in one sub-folder per class.")
    return files


class ImageFolderDataset(Dataset):
    """Colour images from a folder (flat or ImageFolder), as (3, size, size) in [0, 1].

    Images are resized (shorter side) and centre-cropped to ``size``. Class labels
    are the sub-folder names when there are sub-folders (``self.classes``).
    A file that turns out not to be an image raises a message naming it.
    """

    def __init__(self, root: str | Path, size: int | None = 32, cache: bool = True):
        V.optional_count("size (pixels a side)", size, 1, hint="For example 32; None keeps each image's own size.")
        self.root = Path(root)
        self.files = list_images(self.root)
        self.size = size
        self.classes = sorted({p.parent.name for p in self.files if p.parent != self.root})
        self._index = {c: i for i, c in enumerate(self.classes)}
        # Small photos are decoded once: re-reading PNGs every epoch dominates CPU time.
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def label(self, i: int) -> int:
        parent = self.files[i].parent
        return self._index.get(parent.name, 0) if parent != self.root else 0

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = load_image(self.files[i])
        if self.size is not None:
            img = _square(img, self.size)
        t = pil_to_tensor(img)
        if self._cache is not None:
            self._cache[i] = t
        return t


def _square(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if (w, h) == (size, size):
        return img
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


class TensorImages(Dataset):
    """A dataset over an (N, 3, H, W) tensor in [0, 1]."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


# --------------------------------------------------------------------------- CIFAR-10
CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_FILES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}


class CifarBatches(Dataset):
    """CIFAR-10 read from the "python version" batches (what cifar-10-python.tar.gz holds):
    (3, 32, 32) float tensors in [0, 1]; ``self.labels`` holds the class indices."""

    def __init__(self, folder: str | Path, train: bool = True):
        import pickle

        folder = Path(folder)
        data, labels = [], []
        for name in _CIFAR_FILES[train]:
            path = folder / name
            try:
                # The batches are pickles; they come from a checksum-verified archive or a
                # folder the user pointed us at.
                with open(path, "rb") as fh:
                    batch = pickle.load(fh, encoding="bytes")
                # The published files are Python 2 pickles (bytes keys); accept str keys too.
                batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
                data.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels += list(batch["labels"])
            except (OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as err:
                raise ValueError(
                    f"CIFAR-10 at '{folder}' is damaged or incomplete ({name}: {err!r}). Delete that "
                    f"folder and run again to download a fresh copy.") from None
        self.images = torch.from_numpy(np.concatenate(data))
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].float() / 255.0


def cifar10(train: bool = True, root: str | Path | None = None, download: bool | None = None) -> Dataset:
    """CIFAR-10 as (3, 32, 32) tensors in [0, 1] (labels in ``.labels``).

    Looked for in ``root``, then ``LESSONS_DATA_DIR``, then the course cache; downloaded
    (170 MB, from the registry's host or its mirrors, resumed after an interruption; md5
    checked, unpacked, then moved into place: :func:`lessons_lib.downloads.fetch_archive`)
    only when missing and ``download`` is not False. ``LESSONS_URL_CIFAR10`` replaces the
    hosts (one URL or several separated by spaces).
    """
    from .downloads import fetch_archive

    candidates = [Path(root)] if root else []
    if data_root() is not None:
        candidates.append(data_root())
    candidates.append(cache_dir() / "datasets")
    for folder in candidates:
        if (folder / CIFAR_FOLDER).is_dir():
            return CifarBatches(folder / CIFAR_FOLDER, train)
    if download is False:
        raise registry.DownloadUnavailable(registry.unavailable_message(
            "CIFAR-10", DATA_ENV, reason=f"not found in {', '.join(map(str, candidates))}"))
    target = candidates[0] if root else cache_dir() / "datasets"
    fetch_archive("cifar10", target / CIFAR_FOLDER)
    return CifarBatches(target / CIFAR_FOLDER, train)


# --------------------------------------------------------------------------- offline photos
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                   "colorwheel", "retina", "cat")


def sample_photos(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (N, 3, size, size) of scikit-image's bundled colour photos.

    These ship with scikit-image, so they work offline; crops are taken at random
    scales and flipped, which gives a varied (if small) photo set for the fast profile.
    """
    from skimage import data as skdata

    n = V.count("n (the number of photos)", n)
    V.count("size (pixels a side)", size, 1, hint="For example 32.")
    photos = []
    for name in _SKIMAGE_PHOTOS:
        loader = getattr(skdata, name, None)
        if loader is None:
            continue
        try:
            arr = loader()
        except Exception:  # some versions fetch a few photos on demand; skip those
            continue
        if arr.ndim == 3 and arr.shape[2] >= 3:
            photos.append(torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).float() / 255)
    if not photos:
        raise RuntimeError("scikit-image's bundled photos could not be loaded.")
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        photo = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        _, h, w = photo.shape
        side = int(torch.randint(max(size, min(h, w) // 8), min(h, w) + 1, (1,), generator=gen))
        top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        crop = photo[:, top:top + side, left:left + side].unsqueeze(0)
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="area")[0]
        if torch.rand(1, generator=gen) < 0.5:
            crop = crop.flip(-1)
        out[i] = crop
    return out.clamp(0, 1)


def colour_images(split_name: str = "train", size: int = 32, profile: str | None = None,
                  limit: int | None = None, seed: int = 0) -> Dataset:
    """The course's colour photos for ``split_name`` ("train" or "test").

    full: CIFAR-10. fast: the real CIFAR-10 subset when ``LESSONS_DATA_DIR`` has it
    (train/test are one fixed 90/10 split of it, whatever the seed), else scikit-image
    crops. ``limit`` caps the number of images (a random subset chosen by ``seed``).
    """
    V.choice("split", split_name, ("train", "test"))
    V.count("size (pixels a side)", size, 1, hint="For example 32.")
    V.optional_count("limit (the number of images to use)", limit,
                     hint="Leave it out (None) to use every image.")
    profile = profile or get_profile()
    if profile == "full":
        ds = cifar10(train=(split_name == "train"))
        if size != 32:
            ds = _Resized(ds, size)
    else:
        root = data_root()
        subset = root / CIFAR_SUBSET / "train" if root is not None else None
        if subset is not None and subset.is_dir():
            # The split never depends on ``seed``: training with one seed and testing with
            # another must not score on training images.
            train, test = split(ImageFolderDataset(subset, size=size), val_fraction=0.1, seed=0)
            ds = train if split_name == "train" else test
        else:
            n = limit or 512
            ds = TensorImages(sample_photos(n, size, seed=seed + (0 if split_name == "train" else 1)))
    if limit is not None and limit < len(ds):
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:limit]
        ds = Subset(ds, sorted(idx.tolist()))
    return ds


def load_photos(source: str | Path | None = None, size: int = 32, split: str = "train",
                limit: int | None = None, seed: int = 0, multiple_of: int = 1) -> torch.Tensor:
    """Colour photos (N, 3, size, size) in [0, 1] from a folder, ``"cifar10"`` or the profile default
    (:func:`colour_images`), as one tensor: what the command lines train and test on.

    ``split`` ("train"/"test") matters for CIFAR-10 and the default set only: a folder is
    used whole. ``limit`` keeps a fixed random subset. ``multiple_of``: the models' need (a
    network that halves the size three times takes multiples of 8), checked here, once.
    """
    V.count("image size", size, 8)
    V.optional_count("limit (the number of images to use)", limit,
                     hint="Leave it out (None) to use every image.")
    if source is None:
        ds = colour_images(split, size=size, limit=limit, seed=seed)
    elif str(source).lower() == "cifar10":
        ds = colour_images(split, size=size, profile="full", limit=limit, seed=seed)
    else:
        ds = ImageFolderDataset(source, size=size)
        if limit is not None and limit < len(ds):
            idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:limit]
            ds = Subset(ds, sorted(idx.tolist()))
    photos = stack(ds)
    if photos.shape[-1] % multiple_of or photos.shape[-2] % multiple_of:
        halvings = multiple_of.bit_length() - 1
        raise ValueError(f"Image size {tuple(photos.shape[-2:])} is not a multiple of {multiple_of}; the models "
                         f"halve the size {halvings} times. Use --image_size 32, 64, 128 or 256.")
    return photos


class _Resized(Dataset):
    def __init__(self, base: Dataset, size: int):
        self.base, self.size = base, size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.base[i].unsqueeze(0)
        return torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                               align_corners=False)[0].clamp(0, 1)


# CIFAR-10's classes in label order (the subset's folders sort the same way).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_labels(ds: Dataset) -> list[int] | None:
    """The class index of every image of a :func:`colour_images` dataset, in its order; None for
    photos without classes (scikit-image crops, a flat folder)."""
    if isinstance(ds, Subset):
        inner = class_labels(ds.dataset)
        return None if inner is None else [inner[i] for i in ds.indices]
    if isinstance(ds, _Resized):
        return class_labels(ds.base)
    if isinstance(ds, CifarBatches):
        return [int(c) for c in ds.labels]
    if isinstance(ds, ImageFolderDataset) and ds.classes:
        return [ds.label(i) for i in range(len(ds))]
    return None


# --------------------------------------------------------------------------- pairs, splits, loaders
class ColorizationPairs(Dataset):
    """(grayscale input, colour target), both in [-1, 1]: (1, H, W) and (3, H, W)."""

    def __init__(self, images: Dataset):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        colour = self.images[i]
        gray = rgb_to_gray(colour.unsqueeze(0))[0]
        return to_signed(gray), to_signed(colour)


def split(dataset: Dataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[Subset, Subset]:
    """A fixed random (train, validation) split; the same seed gives the same split."""
    val_fraction = V.fraction("val_fraction", val_fraction, hint="It is the share of images held out, e.g. 0.1.")
    n = len(dataset)
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise ValueError(f"A dataset of {n} images is too small to split.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(perm[n_val:])), Subset(dataset, sorted(perm[:n_val]))


def make_loader(dataset: Dataset, batch_size: int = 64, shuffle: bool = True, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader with a seeded shuffle (the same seed gives the same batches)."""
    batch_size = V.count("batch_size", batch_size, hint="It is the number of images per batch, e.g. 64.")
    if len(dataset) == 0:
        raise ValueError("The dataset is empty: there is nothing to load.")
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def stack(dataset: Dataset, limit: int | None = None) -> torch.Tensor:
    """All items of an image dataset as one (N, 3, H, W) tensor (for metrics and figures)."""
    V.optional_count("limit (the number of images to use)", limit,
                     hint="Leave it out (None) to use every image.")
    if len(dataset) == 0:
        raise ValueError("The dataset is empty: there are no images to stack.")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return torch.stack([dataset[i] for i in range(n)])
