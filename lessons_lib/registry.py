"""The one list of everything the course downloads, and the one way to fail.

Each entry names a dataset or checkpoint, where it comes from (a URL or a Hugging
Face hub id and revision), its checksum where the source publishes one, and how to
override it. Nothing downloads in the fast profile or in the tests; when a download
is needed and cannot happen, :class:`DownloadUnavailable` says what to do.

Hub ids can be overridden without editing code: ``LESSONS_MODEL_<NAME>`` (name
upper-cased, ``-`` as ``_``), e.g. ``LESSONS_MODEL_IMG2IMG=my-org/my-sd15``; archive
URLs with ``LESSONS_URL_<NAME>`` (a mirror, or ``file:///path/to/copy.zip``), whose
download is still checked against the recorded checksum.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .runtime import cache_dir

__all__ = ["Source", "SOURCES", "get_source", "hub_id", "url_env_key", "DownloadUnavailable",
           "unavailable_message", "offline"]


@dataclass(frozen=True)
class Source:
    name: str
    kind: str                 # "hub", "url" or "torchvision"
    location: str             # hub id, URL, or torchvision weights enum name
    revision: str | None = None
    checksum: str | None = None   # "md5:..." or "sha256:..." when the source publishes one
    note: str = ""
    mirrors: tuple[str, ...] = ()  # tried in order when ``location`` fails (same checksum)


SOURCES: dict[str, Source] = {s.name: s for s in [
    # Datasets
    Source("cifar10", "url", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
           checksum="md5:c58f30108f718f92721af3b95e74349a",
           note="CIFAR-10, python version (lessons_lib.data.cifar10 reads it)"),
    # sha256 and size (116,867,962 bytes) as recorded by TensorFlow Datasets for this archive.
    Source("horse2zebra", "url",
           "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip",
           checksum="sha256:a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
           mirrors=("https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/horse2zebra.zip",),
           note="If both CycleGAN servers are down: download horse2zebra.zip from any mirror, then set "
                "LESSONS_URL_HORSE2ZEBRA=file:///path/to/horse2zebra.zip (the checksum is still checked), "
                "or unzip it so that LESSONS_DATA_DIR/horse2zebra/trainA exists"),
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


def get_source(name: str) -> Source:
    """The entry for ``name``, with any ``LESSONS_MODEL_<NAME>`` override applied."""
    if name not in SOURCES:
        raise KeyError(f"Unknown source {name!r}. Known: {', '.join(sorted(SOURCES))}.")
    source = SOURCES[name]
    override = os.environ.get(_env_key(name))
    if override and source.kind == "hub":
        source = replace(source, location=override, revision=None)
    url = os.environ.get(url_env_key(name))
    if url and source.kind == "url":
        source = replace(source, location=url, mirrors=())
    return source


def hub_id(name: str) -> str:
    return get_source(name).location


def offline() -> bool:
    """True when the Hugging Face libraries are told not to touch the network."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def unavailable_message(what: str, env_var: str | None = None, reason: str = "") -> str:
    reason = reason.strip().rstrip(".")
    parts = [f"Could not get {what}" + (f": {reason}." if reason else ".")]
    parts.append("What to do: enable internet access (in Colab it is on by default)")
    parts.append("or run the small offline version with LESSONS_PROFILE=fast")
    if env_var:
        parts.append(f"or point {env_var} at a local copy")
    parts[-1] += f". Downloads are cached under {cache_dir()}."
    return parts[0] + " " + ", ".join(parts[1:])


class DownloadUnavailable(RuntimeError):
    """A dataset or checkpoint is needed and cannot be downloaded here."""
