"""VGG19's feature layers by name, frozen: the "loss network" of style transfer.

Which weights, said explicitly (``weights=``), never picked silently:

* ``"imagenet"``: torchvision's ImageNet VGG19 at full width (``width`` 64), fetched
  through the course registry (entry ``"vgg19"``). The full profile's choice.
* ``"course"``: the course's own feature network, course weights ``style/features``:
  the VGG19 layout at a quarter of the width (``width`` 16) up to ``relu5_1``, trained
  by the course as a CIFAR-10 classifier (its held-out accuracy is in the manifest; batch
  normalisation folded into the convolutions after training, so the layers are plain
  conv / ReLU / max-pool as in VGG19). The fast profile's choice: a few MB, offline.
* ``"random"``: the same layout with fixed random weights (tests, the budget's FLOP
  counts). Random features carry little of what a picture looks like; no lesson uses them.

The default is ``"course"`` whatever the profile (offline, a few MB): the caller that wants
ImageNet's features says so (notebook 6 picks ``weights=`` by profile, in the open), and
:attr:`VGGFeatures.description` always names what was built.
``width`` is the channel count of the first block (64 in VGG19); blocks 2-5 have
2x, 4x, 8x, 8x as many, as in the paper.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from .. import registry

__all__ = ["VGG19_LAYERS", "STYLE_LAYERS", "CONTENT_LAYERS", "FULL_WIDTH", "COURSE_WIDTH", "COURSE_LAST_LAYER",
           "WEIGHTS", "COURSE_FEATURES", "DEFAULT_WEIGHTS", "VGGFeatures", "vgg19_trunk", "fold_batch_norm",
           "VGGClassifier", "vgg19_weights_cached", "check_layers"]

# torchvision's VGG19 ("E") configuration: channel counts, "M" = max pooling.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
FULL_WIDTH = 64
COURSE_WIDTH = 16
#: The course's feature network stops here (nothing in style transfer reads deeper).
COURSE_LAST_LAYER = "relu5_1"
#: The course weights that hold it.
COURSE_FEATURES = "style/features"
WEIGHTS = ("imagenet", "course", "random")
_RANDOM_SEED = 1234  # the random network is the same on every run
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> tuple[str, ...]:
    names, block, i = [], 1, 1
    for v in _VGG19_CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, i = block + 1, 1
        else:
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
            i += 1
    return tuple(names)


#: Names of the 37 layers of ``torchvision.models.vgg19().features``, in order.
VGG19_LAYERS = _layer_names()
#: Gatys et al.'s choice: style from the first ReLU of every block, content from relu4_2.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)


#: What ``weights=None`` means, in every profile: the course's own network (offline, a few MB).
DEFAULT_WEIGHTS = "course"


def _weights_enum():
    from torchvision.models import get_weight

    return get_weight(registry.get_source("vgg19").location)


def _weights_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_weights_enum().url).name


def vgg19_weights_cached() -> bool:
    """True when torchvision's ImageNet VGG19 weights are already on this machine."""
    return _weights_file().is_file()


def vgg19_trunk(width: int, last: str = VGG19_LAYERS[-1], batch_norm: bool = False) -> nn.Sequential:
    """VGG19's layers up to ``last`` at ``width`` (random init). ``batch_norm``: a BatchNorm2d
    after each convolution, for training (:func:`fold_batch_norm` removes them after)."""
    depth = VGG19_LAYERS.index(check_layers([last])[0]) + 1
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            cout = v * width // FULL_WIDTH
            # Not in-place: we read conv outputs and ReLU outputs separately.
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False)]
            cin = cout
    layers = layers[:depth]
    if batch_norm:
        layers = [m for layer in layers for m in (
            [layer, nn.BatchNorm2d(layer.out_channels)] if isinstance(layer, nn.Conv2d) else [layer])]
    return nn.Sequential(*layers)


def fold_batch_norm(trunk: nn.Sequential) -> nn.Sequential:
    """The same function without its BatchNorm2d layers (eval mode): each folded into its conv."""
    out: list[nn.Module] = []
    for layer in trunk:
        if isinstance(layer, nn.BatchNorm2d):
            conv = out[-1]
            scale = layer.weight / (layer.running_var + layer.eps).sqrt()
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1)
            with torch.no_grad():
                folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                folded.bias.copy_((conv.bias - layer.running_mean) * scale + layer.bias)
            out[-1] = folded
        else:
            out.append(layer)
    return nn.Sequential(*out)


@functools.lru_cache(maxsize=4)
def _trunk(kind: str, width: int) -> nn.Sequential:
    """The frozen VGG19 feature layers of ``kind`` (built once per setting), eval mode."""
    if kind == "course":
        from .. import course_weights

        trunk, _ = course_weights.load(COURSE_FEATURES)  # built by lesson 6's registered builder
        return trunk.requires_grad_(False)
    trunk = vgg19_trunk(width)
    if kind == "imagenet":
        state = _load_pretrained_state()
        trunk.load_state_dict({k[len("features."):]: v for k, v in state.items()
                               if k.startswith("features.")})
    else:
        gen = torch.Generator().manual_seed(_RANDOM_SEED)
        for m in trunk:
            if isinstance(m, nn.Conv2d):
                # torchvision's VGG initialisation, from a fixed seed.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                nn.init.zeros_(m.bias)
    return trunk.eval().requires_grad_(False)


def _load_pretrained_state() -> dict:
    weights = _weights_enum()
    if not vgg19_weights_cached() and registry.offline():
        raise registry.DownloadUnavailable(registry.unavailable_message(
            "the ImageNet VGG19 weights", reason=f"they are not in {_weights_file().parent} "
            "and this session is offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE). The fast profile's "
            "features need no download: weights='course'"))
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as err:  # URLError, HTTPError, a hash mismatch
        raise registry.DownloadUnavailable(registry.unavailable_message(
            f"the ImageNet VGG19 weights from {weights.url}",
            reason=f"{err}. You can also copy vgg19-dcbb9e9d.pth into {_weights_file().parent}")) from None


def _resolve(weights: str | None, pretrained: bool | None, width: int | None) -> tuple[str, int]:
    if pretrained is not None:  # the older spelling: pretrained=True / False
        if weights is not None:
            raise ValueError("Pass weights= ('imagenet', 'course' or 'random') or pretrained=, not both.")
        weights = "imagenet" if pretrained else "random"
    weights = weights or DEFAULT_WEIGHTS
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(map(repr, WEIGHTS))}, got {weights!r}.")
    fixed = {"imagenet": FULL_WIDTH, "course": COURSE_WIDTH}.get(weights)
    if width is None:
        width = fixed or COURSE_WIDTH
    if fixed is not None and width != fixed:
        raise ValueError(f"The {weights} weights exist only at width {fixed}, got width={width}.")
    if not isinstance(width, int) or not 1 <= width <= FULL_WIDTH or FULL_WIDTH % width:
        raise ValueError(f"width (channels of the first block) must divide {FULL_WIDTH}, e.g. 16, "
                         f"got {width!r}.")
    return weights, width


def check_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """The layer names as a tuple; an unknown name is refused with the list of valid ones."""
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ValueError("Ask for at least one VGG19 layer, e.g. ('relu4_2',).")
    unknown = [name for name in layers if name not in VGG19_LAYERS]
    if unknown:
        raise ValueError(
            f"Unknown VGG19 layer name(s) {', '.join(map(repr, unknown))}. Valid names are: "
            f"{', '.join(VGG19_LAYERS)}. Style transfer usually takes style from "
            f"{', '.join(STYLE_LAYERS)} and content from {CONTENT_LAYERS[0]}.")
    return layers


class VGGFeatures(nn.Module):
    """VGG19 activations by layer name: ``VGGFeatures(["relu1_1", "relu4_2"], weights="course")(x)`` -> dict.

    ``x`` is (N, 3, H, W) RGB in [0, 1]; the ImageNet normalisation happens inside (the
    course network was trained with it too). The network is frozen (no parameter takes a
    gradient) but gradients flow to ``x``, which is what style transfer optimises.
    ``weights``: "imagenet", "course" or "random" (see the module note); None =
    :data:`DEFAULT_WEIGHTS`. ``pretrained=True/False`` is the older spelling of
    "imagenet"/"random". ``verbose`` prints what was built.
    """

    def __init__(self, layers: Sequence[str] = STYLE_LAYERS + CONTENT_LAYERS, weights: str | None = None,
                 device: torch.device | str | None = None, verbose: bool = True, *,
                 pretrained: bool | None = None, width: int | None = None):
        super().__init__()
        self.layers = check_layers(layers)
        self.weights, self.width = _resolve(weights, pretrained, width)
        self.pretrained = self.weights == "imagenet"
        self._index = {name: VGG19_LAYERS.index(name) for name in self.layers}
        if self.weights == "course":
            too_deep = [n for n in self.layers if self._index[n] > VGG19_LAYERS.index(COURSE_LAST_LAYER)]
            if too_deep:
                raise ValueError(f"The course's feature network stops at {COURSE_LAST_LAYER}; {too_deep} lie "
                                 f"deeper. Use layers up to {COURSE_LAST_LAYER}, or weights='imagenet'.")
        depth = max(self._index.values()) + 1
        self.body = _trunk(self.weights, self.width)[:depth]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if device is not None:
            self.to(device)
        if verbose:
            print(f"VGG features: {self.description}")

    @property
    def description(self) -> str:
        """What this network is, for a manifest or a printout."""
        if self.weights == "imagenet":
            return "ImageNet VGG19 (torchvision)"
        if self.weights == "course":
            from .. import course_weights

            acc = course_weights.entry(COURSE_FEATURES)["metrics"]["model"]
            return (f"the course's VGG19-layout feature network (width {self.width}, up to {COURSE_LAST_LAYER}), "
                    f"a CIFAR-10 classifier with {100 * acc:.1f}% held-out accuracy (course weights "
                    f"{COURSE_FEATURES})")
        return f"random VGG19 (width {self.width}, seed {_RANDOM_SEED})"

    def channels(self, name: str) -> int:
        """Number of channels of layer ``name`` in this network."""
        idx = VGG19_LAYERS.index(check_layers([name])[0])
        convs = [m for m in _trunk(self.weights, self.width)[:idx + 1] if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def train(self, mode: bool = True):
        # The feature network stays in eval mode, whatever the surrounding model does.
        super().train(mode)
        self.body.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG features need RGB images (N, 3, H, W) in [0, 1], got {tuple(x.shape)}.")
        h = (x - self.mean) / self.std
        wanted = {i: name for name, i in self._index.items()}
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.body):
            h = layer(h)
            if i in wanted:
                out[wanted[i]] = h
        return {name: out[name] for name in self.layers}


class VGGClassifier(nn.Module):
    """The course's feature network while it trains: VGG19's layers up to ``relu5_1`` with
    batch normalisation, global average pooling and one linear layer to ``classes`` logits.

    Input (N, 3, H, W) in [0, 1], normalised inside as :class:`VGGFeatures` does. After
    training, :meth:`feature_state` is what ``VGGFeatures(weights="course")`` loads.
    """

    def __init__(self, classes: int = 10, width: int = COURSE_WIDTH, last: str = COURSE_LAST_LAYER):
        super().__init__()
        self.last = last
        self.features = vgg19_trunk(width, last, batch_norm=True)
        channels = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.head = nn.Linear(channels, classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features((x - self.mean) / self.std)
        return self.head(h.mean(dim=(2, 3)))

    def feature_state(self) -> dict[str, torch.Tensor]:
        """The trunk with batch norm folded in: the state dict of ``vgg19_trunk(width, last)``."""
        was = self.training
        self.eval()
        state = fold_batch_norm(self.features).state_dict()
        self.train(was)
        return state
