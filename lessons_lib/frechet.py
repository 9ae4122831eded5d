"""The Frechet distance between two image sets (FID-style), with a pluggable feature extractor.

FID (Heusel et al., 2017) fits a Gaussian to the Inception-v3 pool features of each
image set and measures the Frechet distance between the two Gaussians
(:func:`lessons_lib.metrics.frechet_distance`). Here the features are pluggable: any
callable mapping an (N, 3, H, W) [0, 1] batch to (N, D) features works.

* :class:`InceptionFeatures`: torchvision's inception_v3 with ImageNet weights (the
  registry's ``"inception"`` entry), 2048-d pool features; the standard choice.
  Offline without cached weights it raises :class:`InceptionUnavailable` (a
  :class:`lessons_lib.registry.DownloadUnavailable`) before touching the network.
* :class:`RandomConvFeatures`: a fixed, seeded random conv net; needs no download.
  Its distances are only comparable with each other (same seed), never with
  published FIDs: fine for the fast profile and for ranking methods.
* ``"pixels"``: average-pooled pixels.

Few images give noisy, biased estimates (the covariance of D-dim features needs
many more than D images): compare methods on the same image count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import registry
from . import validate as V
from .metrics import frechet_distance

__all__ = ["FEATURE_EXTRACTORS", "InceptionUnavailable", "InceptionFeatures", "RandomConvFeatures",
           "PixelFeatures", "get_feature_extractor", "extract_features", "frechet_distance_images", "frechet_distances"]

FEATURE_EXTRACTORS = ("inception", "random-conv", "pixels")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class InceptionUnavailable(registry.DownloadUnavailable):
    """The Inception-v3 weights are not on this machine and cannot be downloaded."""


def _inception_weights():
    import torchvision.models as tvm

    enum_name, member = registry.get_source("inception").location.split(".")
    return getattr(tvm, enum_name)[member]


def inception_weights_cached() -> bool:
    """True when torchvision's Inception-v3 weights file is already in the torch hub cache."""
    filename = Path(_inception_weights().url).name
    return (Path(torch.hub.get_dir()) / "checkpoints" / filename).is_file()


class InceptionFeatures:
    """2048-d Inception-v3 pool features of [0, 1] images (resized to 299x299, bilinear).

    ``pretrained=False`` builds the network with random weights (for tests: the
    numbers then mean nothing).
    """

    dim = 2048

    def __init__(self, device: torch.device | str | None = None, batch_size: int = 64,
                 pretrained: bool = True, resize: int = 299):
        import torchvision.models as tvm

        model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=pretrained,
                                 init_weights=not pretrained)
        if pretrained:
            weights = _inception_weights()
            if not inception_weights_cached() and registry.offline():
                raise InceptionUnavailable(registry.unavailable_message(
                    "the Inception-v3 weights for the Frechet distance",
                    reason=f"they are not in the torch hub cache ({torch.hub.get_dir()}) and this "
                           f"session is offline. Or pass another feature extractor, e.g. "
                           f"get_feature_extractor('random-conv')"))
            try:
                model.load_state_dict(weights.get_state_dict(progress=True))
            except Exception as err:  # URLError, HTTPError, a truncated file
                raise InceptionUnavailable(registry.unavailable_message(
                    "the Inception-v3 weights for the Frechet distance", reason=str(err))) from None
        model.fc = nn.Identity()  # the 2048-d average-pooled features
        self.model = model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)
        self.batch_size, self.resize = batch_size, resize

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)
        feats = []
        for i in range(0, len(images), self.batch_size):
            x = images[i:i + self.batch_size].to(device).float()
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
            feats.append(self.model((x - mean) / std).cpu())
        return torch.cat(feats)


class RandomConvFeatures:
    """A fixed random conv net (seeded): 3 strided conv + ReLU layers, global average and
    standard-deviation pooling -> ``2 * width * 4`` features. Offline and cheap."""

    def __init__(self, width: int = 16, seed: int = 0, device: torch.device | str | None = None):
        gen = torch.Generator().manual_seed(seed)
        layers, cin = [], 3
        for w in (width, width * 2, width * 4):
            conv = nn.Conv2d(cin, w, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
            cin = w
        self.net = nn.Sequential(*layers).eval().requires_grad_(False)
        if device is not None:
            self.net.to(device)
        self.dim = 2 * cin

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        h = self.net(images.to(device).float() * 2 - 1)
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1).cpu()


class PixelFeatures:
    """Pixels average-pooled to ``side`` x ``side``: (N, 3 * side * side) features."""

    def __init__(self, side: int = 4):
        self.side = side
        self.dim = 3 * side * side

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images.float(), self.side).flatten(1).cpu()


def get_feature_extractor(name: str = "inception", device=None, **kwargs) -> Callable:
    """A feature extractor by name: "inception", "random-conv" or "pixels"."""
    V.choice("feature extractor", name, FEATURE_EXTRACTORS, hint="Or pass any callable images -> (N, D) features.")
    if name == "inception":
        return InceptionFeatures(device=device, **kwargs)
    if name == "random-conv":
        return RandomConvFeatures(device=device, **kwargs)
    if name == "pixels":
        return PixelFeatures(**kwargs)
    raise AssertionError(f"feature extractor {name!r} has no builder")


def extract_features(images: torch.Tensor, features: Callable | str = "inception") -> torch.Tensor:
    """(N, D) features of (N, 3, H, W) [0, 1] images, from a callable or an extractor name."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"Expected (N, 3, H, W) RGB images in [0, 1], got shape {tuple(images.shape)}.")
    extractor = get_feature_extractor(features) if isinstance(features, str) else features
    out = torch.as_tensor(extractor(images))
    if out.dim() != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(f"The feature extractor must return (N, D) = ({images.shape[0]}, D) features, "
                         f"got shape {tuple(out.shape)}.")
    return out


def frechet_distance_images(images_a: torch.Tensor, images_b: torch.Tensor,
                            features: Callable | str = "inception") -> float:
    """Frechet distance between the feature Gaussians of two [0, 1] image sets.

    ``features``: a callable images -> (N, D), or a name for :func:`get_feature_extractor`
    (built once here and used for both sets).
    """
    return frechet_distances(images_a, {"b": images_b}, features)["b"]


def frechet_distances(reference: torch.Tensor, candidates: Mapping[str, torch.Tensor],
                      features: Callable | str = "inception") -> dict[str, float]:
    """Frechet distance of each candidate image set to one reference set: the reference's
    features are extracted once (with Inception at 299 px, the costly part), not once a method."""
    extractor = get_feature_extractor(features) if isinstance(features, str) else features
    ref = extract_features(reference, extractor)
    return {name: frechet_distance(ref, extract_features(images.to(reference), extractor))
            for name, images in candidates.items()}
