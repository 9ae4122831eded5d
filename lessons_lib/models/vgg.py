"""VGG19's feature layers by name, frozen: the "loss network" of style transfer.

Weights. In the full profile (or whenever ``vgg19-dcbb9e9d.pth`` is already in the
torch hub cache) the layers carry torchvision's ImageNet VGG19 weights, fetched through
the course registry (entry ``"vgg19"``). In the fast profile without the cached file
nothing is downloaded: the same layout is built at a quarter of the width (``width``
16 instead of 64) with fixed random weights, and a note says so. Random convolutional
features still measure texture statistics (Ustyuzhaninov et al., 2016), so every loss
behaves; the pictures are less painterly than with trained features.

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
from ..runtime import get_profile

__all__ = ["VGG19_LAYERS", "STYLE_LAYERS", "CONTENT_LAYERS", "FULL_WIDTH", "FALLBACK_WIDTH",
           "VGGFeatures", "vgg19_weights_cached", "check_layers"]

# torchvision's VGG19 ("E") configuration: channel counts, "M" = max pooling.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
FULL_WIDTH = 64
FALLBACK_WIDTH = 16
_RANDOM_SEED = 1234  # the random fallback is the same network on every run
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


def _weights_enum():
    from torchvision.models import get_weight

    return get_weight(registry.get_source("vgg19").location)


def _weights_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_weights_enum().url).name


def vgg19_weights_cached() -> bool:
    """True when torchvision's ImageNet VGG19 weights are already on this machine."""
    return _weights_file().is_file()


@functools.lru_cache(maxsize=2)
def _trunk(pretrained: bool, width: int) -> nn.Sequential:
    """The 37 VGG19 feature layers, frozen, in eval mode (built once per setting)."""
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
    trunk = nn.Sequential(*layers)
    if pretrained:
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
            "and this session is offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)"))
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as err:  # URLError, HTTPError, a hash mismatch
        raise registry.DownloadUnavailable(registry.unavailable_message(
            f"the ImageNet VGG19 weights from {weights.url}",
            reason=f"{err}. You can also copy vgg19-dcbb9e9d.pth into {_weights_file().parent}")) from None


def _resolve(pretrained: bool | None, width: int | None) -> tuple[bool, int]:
    if pretrained is None:
        pretrained = get_profile() == "full" or vgg19_weights_cached()
    if width is None:
        width = FULL_WIDTH if pretrained or get_profile() == "full" else FALLBACK_WIDTH
    if pretrained and width != FULL_WIDTH:
        raise ValueError(f"Pretrained VGG19 weights exist only at width {FULL_WIDTH}, got width={width}.")
    if not isinstance(width, int) or not 1 <= width <= FULL_WIDTH or FULL_WIDTH % width:
        raise ValueError(f"width (channels of the first block) must divide {FULL_WIDTH}, e.g. 16, "
                         f"got {width!r}.")
    return bool(pretrained), width


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
    """VGG19 activations by layer name: ``VGGFeatures(["relu1_1", "relu4_2"])(x)`` -> dict.

    ``x`` is (N, 3, H, W) RGB in [0, 1]; the ImageNet normalisation happens inside. The
    network is frozen (no parameter takes a gradient) but gradients flow to ``x``, which
    is what style transfer optimises. ``pretrained``: None = ImageNet weights in the full
    profile or when cached, else the random fallback; True insists on the weights
    (downloading them if allowed); False always uses the random network.
    """

    def __init__(self, layers: Sequence[str] = STYLE_LAYERS + CONTENT_LAYERS,
                 pretrained: bool | None = None, width: int | None = None,
                 device: torch.device | str | None = None, verbose: bool = True):
        super().__init__()
        self.layers = check_layers(layers)
        self.pretrained, self.width = _resolve(pretrained, width)
        if not self.pretrained and verbose:
            print(f"Note: using a randomly initialised VGG19 at width {self.width} of {FULL_WIDTH} "
                  "(ImageNet weights are not on this machine, and the fast profile does not "
                  "download). Random features still measure texture, so everything runs; "
                  "run the full profile for the real look.")
        self._index = {name: VGG19_LAYERS.index(name) for name in self.layers}
        depth = max(self._index.values()) + 1
        self.body = _trunk(self.pretrained, self.width)[:depth]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if device is not None:
            self.to(device)

    @property
    def description(self) -> str:
        """What this network is, for a manifest or a printout."""
        if self.pretrained:
            return "ImageNet VGG19"
        return f"random VGG19 (width {self.width}, seed {_RANDOM_SEED})"

    def channels(self, name: str) -> int:
        """Number of channels of layer ``name`` in this network."""
        idx = VGG19_LAYERS.index(check_layers([name])[0])
        convs = [m for m in _trunk(self.pretrained, self.width)[:idx + 1] if isinstance(m, nn.Conv2d)]
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
