"""Neural style transfer: VGG features, Gram matrices, Gatys optimisation, AdaIN, perceptual loss.

Everything works on RGB tensors in [0, 1], shape (N, 3, H, W); the ImageNet
normalisation VGG expects happens inside :class:`VGGFeatures`.

Weights. In the full profile (or whenever ``vgg19-dcbb9e9d.pth`` is already in the
torch hub cache) the features come from torchvision's ImageNet VGG19, fetched through
the course registry (entry ``"vgg19"``). In the fast profile without the cached file,
nothing is downloaded: the same VGG19 layout is built at a quarter of the width with
fixed random weights, and a note says so. Random convolutional features still capture
texture statistics (Ustyuzhaninov et al., 2016), so every cell runs and every loss
behaves; the pictures are simply less painterly than with trained features.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from . import registry
from . import validate as V
from .images import load_image, pil_to_tensor
from .runtime import get_profile
from .training import Task

__all__ = [
    "VGG19_LAYERS", "STYLE_LAYERS", "CONTENT_LAYERS", "VGGFeatures", "vgg_features",
    "vgg19_weights_cached", "gram_matrix", "content_loss", "style_loss", "as_image",
    "prepare_pair", "StyleTransferResult", "style_transfer", "channel_stats", "adain",
    "AdaINStyleTransfer", "adain_losses", "AdaINTask", "PerceptualLoss", "make_sr_pairs",
]

# torchvision's VGG19 ("E") configuration: channel counts, "M" = max pooling.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


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
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
FALLBACK_WIDTH = 0.25
_RANDOM_SEED = 1234  # the random fallback is the same network on every run


# --------------------------------------------------------------------------- weights
def _weights_enum():
    from torchvision.models import get_weight

    return get_weight(registry.get_source("vgg19").location)


def _weights_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_weights_enum().url).name


def vgg19_weights_cached() -> bool:
    """True when torchvision's ImageNet VGG19 weights are already on this machine."""
    return _weights_file().is_file()


@functools.lru_cache(maxsize=2)
def _trunk(pretrained: bool, width: float) -> nn.Sequential:
    """The 37 VGG19 feature layers, frozen, in eval mode (built once per setting)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            cout = max(1, round(v * width))
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


def _resolve(pretrained: bool | None, width: float | None) -> tuple[bool, float]:
    if pretrained is None:
        pretrained = get_profile() == "full" or vgg19_weights_cached()
    if width is None:
        width = 1.0 if pretrained or get_profile() == "full" else FALLBACK_WIDTH
    if pretrained and width != 1.0:
        raise ValueError(f"Pretrained VGG19 weights exist only at width 1.0, got width={width}.")
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width}.")
    return bool(pretrained), float(width)


# --------------------------------------------------------------------------- features
def _check_layers(layers: Iterable[str]) -> tuple[str, ...]:
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

    ``x`` is (N, 3, H, W) RGB in [0, 1]. The network is frozen (no parameter takes a
    gradient) but gradients flow to ``x``, which is what style transfer optimises.
    ``pretrained``: None = ImageNet weights in the full profile or when cached, else the
    random fallback; True insists on the weights (downloading them if allowed);
    False always uses the random network.
    """

    def __init__(self, layers: Sequence[str] = STYLE_LAYERS + CONTENT_LAYERS,
                 pretrained: bool | None = None, width: float | None = None,
                 device: torch.device | str | None = None, verbose: bool = True):
        super().__init__()
        self.layers = _check_layers(layers)
        self.pretrained, self.width = _resolve(pretrained, width)
        if not self.pretrained and verbose:
            print(f"Note: using a randomly initialised VGG19 at width {self.width:g} "
                  "(ImageNet weights are not on this machine, and the fast profile does not "
                  "download). Random features still measure texture, so everything runs; "
                  "run the full profile for the real look.")
        self._index = {name: VGG19_LAYERS.index(name) for name in self.layers}
        depth = max(self._index.values()) + 1
        self.body = _trunk(self.pretrained, self.width)[:depth]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        if device is not None:
            self.to(device)

    def channels(self, name: str) -> int:
        """Number of channels of layer ``name`` in this network."""
        idx = VGG19_LAYERS.index(_check_layers([name])[0])
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


def vgg_features(layers: Sequence[str] = STYLE_LAYERS + CONTENT_LAYERS, **kwargs) -> VGGFeatures:
    """Shorthand for :class:`VGGFeatures`."""
    return VGGFeatures(layers, **kwargs)


# --------------------------------------------------------------------------- losses
def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C): channel correlations, divided by C*H*W."""
    if features.dim() != 4:
        raise ValueError(f"gram_matrix needs features (N, C, H, W), got {tuple(features.shape)}.")
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the feature maps of one layer."""
    return F.mse_loss(features, target.expand_as(features))


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Sum over layers of the mean squared difference between Gram matrices.

    ``features``: layer -> (N, C, H, W); ``target_grams``: layer -> (1 or N, C, C).
    ``weights``: per-layer weights (default 1 each).
    """
    missing = [name for name in target_grams if name not in features]
    if missing:
        raise ValueError(f"No features for style layer(s) {missing}; the extractor must return them.")
    total = 0.0
    for name, target in target_grams.items():
        g = gram_matrix(features[name])
        w = 1.0 if weights is None else weights.get(name, 1.0)
        total = total + w * F.mse_loss(g, target.expand_as(g))
    return total


# --------------------------------------------------------------------------- inputs
# Style transfer works on images of MIN_SIDE to MAX_SIDE pixels a side (after ``size=``
# scaling): VGG halves the image four times, and the optimisation keeps a VGG forward and
# backward pass of the whole image in memory (1024 x 1024 needs several GB). Files and
# tensors above MAX_INPUT_PIXELS are refused before they are decoded.
MIN_SIDE = 16
MAX_SIDE = 1024
MAX_INPUT_PIXELS = 40_000_000
_SHRINK = "Pass size=512 (the longer side after scaling), or downscale the file first."


def _check_input_size(image, name: str) -> None:
    """Refuses a huge file or image before it is decoded into a (3, H, W) float tensor."""
    if isinstance(image, (str, Path)):
        V.input_file(image, name)
        try:
            with Image.open(image) as im:  # reads the header only
                w, h = im.size
        except Image.DecompressionBombError:
            raise ValueError(f"The {name} '{image}' is too large to open safely (PIL's decompression-bomb "
                             f"limit); style transfer takes at most {MAX_INPUT_PIXELS // 1_000_000} "
                             f"megapixels. Downscale it first with an image editor, then pass size=512."
                             ) from None
        except Exception:
            return  # not an image: load_image says so
    elif isinstance(image, Image.Image):
        w, h = image.size
    elif torch.is_tensor(image) and image.dim() >= 2:
        h, w = image.shape[-2:]
    else:
        return
    if w * h > MAX_INPUT_PIXELS:
        raise ValueError(f"The {name} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); style transfer takes "
                         f"at most {MAX_INPUT_PIXELS // 1_000_000} megapixels. Downscale it first, e.g. "
                         f"img.thumbnail(({MAX_SIDE}, {MAX_SIDE})) with PIL, then pass size=512.")


def _check_sides(content: torch.Tensor, style_image: torch.Tensor, size) -> None:
    """The working sizes, before VGG sees them: one message that says how to resize."""
    h, w = content.shape[-2:]
    grow = "Use a larger image, or pass size=256 to scale it up."
    V.image_side("content image" + (f" (after size={size})" if size is not None else ""), h, w,
                 MIN_SIDE, MAX_SIDE, hint_small=f"VGG halves it four times. {grow}", hint_large=_SHRINK)
    sh, sw = style_image.shape[-2:]
    V.image_side("style image", sh, sw, MIN_SIDE, None,
                 hint_small="A smaller one has no texture to copy: use a larger style image.")


def as_image(image, name: str = "image") -> torch.Tensor:
    """A (1, 3, H, W) tensor in [0, 1] from a path, a PIL image (any mode) or a tensor.

    Files and PIL images go through :func:`lessons_lib.images.load_image`, which turns
    RGBA, palette, grayscale, CMYK and 16-bit images into RGB. A tensor must already be
    RGB in [0, 1]: anything else is refused with a message saying how to convert it.
    """
    _check_input_size(image, name)
    if isinstance(image, (str, Path, Image.Image)):
        return pil_to_tensor(load_image(image)).unsqueeze(0)
    if not torch.is_tensor(image):
        raise TypeError(f"The {name} must be a file path, a PIL image or a tensor, got {type(image).__name__}.")
    t = image.detach().float()
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] != 3:
        raise ValueError(
            f"The {name} tensor must be one RGB image, shape (3, H, W) or (1, 3, H, W), got "
            f"{tuple(image.shape)}. For a grayscale or RGBA picture pass the file or PIL image "
            f"instead: lessons_lib.images.load_image converts any mode to RGB.")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"The {name} tensor has values in [{lo:.3g}, {hi:.3g}]; style transfer "
                         "works on [0, 1]. Convert [-1, 1] tensors with lessons_lib.images.to_unit, "
                         "0..255 ones by dividing by 255.")
    return t.clamp(0, 1)


def _resize_cover(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Scale so the image covers ``size`` (H, W), keeping the aspect ratio, then centre-crop."""
    h, w = x.shape[-2:]
    th, tw = size
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return x[..., top:top + th, left:left + tw].clamp(0, 1)


def prepare_pair(content, style, size: int | None = None, verbose: bool = True):
    """Content and style as (1, 3, H, W) tensors of one size, ready for style transfer.

    Any mode is accepted through files / PIL images (see :func:`as_image`). ``size``
    scales the content so its longer side is ``size``. A style image of another size
    is scaled to cover the content's size and centre-cropped (aspect kept), with a note:
    Gram matrices do not need equal sizes, but equal sizes keep the texture scale the
    network sees comparable.
    """
    if size is not None:
        V.count("size (the content's longer side in pixels)", size, MIN_SIDE, MAX_SIDE,
                hint="VGG pools 4 times (at least 16); larger images need more memory (try 256 or 512).")
    c = as_image(content, "content image")
    s = as_image(style, "style image")
    if size is not None:
        V.count("size (the content's longer side in pixels)", size, MIN_SIDE, MAX_SIDE,
                hint="VGG pools 4 times (at least 16); larger images need more memory (try 256 or 512).")
        h, w = c.shape[-2:]
        scale = size / max(h, w)
        c = F.interpolate(c, size=(max(16, round(h * scale)), max(16, round(w * scale))),
                          mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    _check_sides(c, s, size)
    if s.shape[-2:] != c.shape[-2:]:
        if verbose:
            print(f"Note: the style image is {s.shape[-1]}x{s.shape[-2]}, the content "
                  f"{c.shape[-1]}x{c.shape[-2]}; scaling and centre-cropping the style to match.")
        s = _resize_cover(s, tuple(c.shape[-2:]))
    return c, s


# --------------------------------------------------------------------------- Gatys et al.
@dataclass
class StyleTransferResult:
    """The stylised image, the loss history and snapshots taken along the way."""
    image: torch.Tensor                                   # (1, 3, H, W) in [0, 1]
    history: dict[str, list[float]] = field(default_factory=dict)  # per step: content, style, total
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    @property
    def style_reduction(self) -> float:
        """Style loss at the start divided by the style loss at the end."""
        s = self.history["style"]
        return s[0] / max(s[-1], 1e-30)


def style_transfer(content, style, steps: int = 50, alpha: float = 1.0, beta: float = 1e5,
                   optimizer: str = "lbfgs", lr: float | None = None,
                   content_layers: Sequence[str] = CONTENT_LAYERS,
                   style_layers: Sequence[str] = STYLE_LAYERS,
                   extractor: VGGFeatures | None = None, init: str = "content",
                   size: int | None = None, snapshot_every: int | None = None,
                   seed: int = 0, progress: bool = True) -> StyleTransferResult:
    """Gatys et al. (2016): optimise the pixels so content and style losses both fall.

    Loss = ``alpha`` * content loss (``content_layers``) + ``beta`` * style loss
    (``style_layers``); the network is frozen, only the image changes. With Gram
    matrices normalised by C*H*W, alpha:beta around 1:1e5 balances the two.
    ``optimizer``: "lbfgs" (one iteration with a line search per step; few steps needed)
    or "adam" (``lr`` default 0.02). ``init``: "content" (start from the content
    image) or "noise". ``history`` holds the unweighted losses at the start of each
    step and, last, those of the result (``steps + 1`` entries).
    """
    from tqdm.auto import tqdm

    if steps < 1:
        raise ValueError(f"steps must be a positive number of optimisation steps, got {steps}.")
    V.count("steps (optimisation steps)", steps)
    V.number("alpha (content weight)", alpha, 0.0, hint="Try alpha=1, beta=1e5.")
    V.number("beta (style weight)", beta, 0.0, hint="Try alpha=1, beta=1e5.")
    if lr is not None:
        V.number("lr", lr, 0.0, low_open=True, hint="Leave it out for the optimizer's default.")
    V.optional_count("snapshot_every", snapshot_every)
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(f"alpha and beta must be >= 0 and not both 0, got alpha={alpha}, beta={beta}.")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}.")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}.")
    content_layers, style_layers = _check_layers(content_layers), _check_layers(style_layers)
    c, s = prepare_pair(content, style, size=size)
    if extractor is None:
        extractor = VGGFeatures(tuple(dict.fromkeys(style_layers + content_layers)))
    device = extractor.mean.device
    c, s = c.to(device), s.to(device)
    with torch.no_grad():
        content_targets = {k: v for k, v in extractor(c).items() if k in content_layers}
        style_targets = {k: gram_matrix(v) for k, v in extractor(s).items() if k in style_layers}
    gen = torch.Generator().manual_seed(seed)
    start = c.clone() if init == "content" else torch.rand(c.shape, generator=gen).to(device)
    image = start.requires_grad_(True)
    if optimizer == "lbfgs":
        # One iteration per step (so the bar and snapshots follow it); the strong-Wolfe line
        # search keeps L-BFGS from overshooting, which it does on style losses without one.
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, max_eval=20, history_size=50,
                                line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam([image], lr=lr or 0.02)

    history: dict[str, list[float]] = {"content": [], "style": [], "total": []}

    first = [True]

    def closure():
        # The first evaluation of each step records the losses at the current image.
        opt.zero_grad()
        feats = extractor(image)
        lc = sum(content_loss(feats[k], content_targets[k]) for k in content_layers)
        ls = style_loss(feats, style_targets)
        total = alpha * lc + beta * ls
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"The style-transfer loss became {float(total)} after {len(history['total'])} steps. "
                "Lower the learning rate (lr), use optimizer='adam', or reduce beta.")
        total.backward()
        if first[0]:
            for k, v in zip(("content", "style", "total"), (lc, ls, total)):
                history[k].append(float(v.detach()))
            first[0] = False
        return total

    result = StyleTransferResult(image=image.detach().clone(), history=history)
    bar = tqdm(range(1, steps + 1), desc="style transfer", disable=not progress)
    for step in bar:
        first[0] = True
        opt.step(closure)
        if optimizer == "adam":
            with torch.no_grad():
                image.clamp_(0, 1)
        bar.set_postfix(content=f"{history['content'][-1]:.3g}", style=f"{history['style'][-1]:.3g}")
        if snapshot_every and step % snapshot_every == 0:
            result.snapshots.append((step, image.detach().clamp(0, 1).cpu()))
    with torch.no_grad():
        # L-BFGS runs unconstrained (clamping every step stalls its line search);
        # the result is clamped to valid pixels once, and its losses recorded.
        image.clamp_(0, 1)
    first[0] = True
    closure()
    opt.zero_grad()
    result.image = image.detach().clone().cpu()
    return result


# --------------------------------------------------------------------------- AdaIN
def channel_stats(features: torch.Tensor, eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation, each (N, C, 1, 1).

    The standard deviation is sqrt(unbiased variance + eps) over the H*W positions.
    """
    if features.dim() != 4:
        raise ValueError(f"Features must be (N, C, H, W), got {tuple(features.shape)}.")
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    if flat.shape[-1] < 2:
        raise ValueError("Features need at least 2 spatial positions to have a standard deviation.")
    mean = flat.mean(dim=2).view(n, c, 1, 1)
    std = (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)
    return mean, std


def adain(content_features: torch.Tensor, style_features: torch.Tensor, alpha: float = 1.0,
          eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie, 2017).

    Each channel of the content features is normalised to zero mean and unit standard
    deviation, then given the style features' mean and standard deviation. ``alpha``
    blends: 1 = full style statistics, 0 = the content features unchanged. ``eps``
    only guards the division by a constant content channel.
    """
    if content_features.dim() != 4 or style_features.dim() != 4:
        raise ValueError("adain needs (N, C, H, W) content and style features, got "
                         f"{tuple(content_features.shape)} and {tuple(style_features.shape)}.")
    if content_features.shape[1] != style_features.shape[1]:
        raise ValueError(f"Content features have {content_features.shape[1]} channels and style "
                         f"features {style_features.shape[1]}: take both from the same layer.")
    if style_features.shape[0] not in (1, content_features.shape[0]):
        raise ValueError(f"{style_features.shape[0]} style images for {content_features.shape[0]} "
                         "content images: give one style for all, or one per content image.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (1 = full style), got {alpha}.")
    c_mean, c_std = channel_stats(content_features, eps)
    s_mean, s_std = channel_stats(style_features)
    stylised = (content_features - c_mean) / c_std * s_std + s_mean
    return alpha * stylised + (1 - alpha) * content_features


ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


class AdaINStyleTransfer(nn.Module):
    """Fast arbitrary style transfer: VGG encoder (to relu4_1) -> AdaIN -> trained decoder.

    ``model(content, style, alpha)`` stylises in one forward pass. Only the decoder
    has trainable parameters; train it with :func:`adain_losses` (content loss on the
    AdaIN target + style-statistics loss on relu1_1..relu4_1).
    """

    def __init__(self, encoder: VGGFeatures | None = None, **vgg_kwargs):
        super().__init__()
        from .models.adain import AdaINDecoder

        self.encoder = encoder or VGGFeatures(ADAIN_STYLE_LAYERS, **vgg_kwargs)
        missing = [n for n in ADAIN_STYLE_LAYERS if n not in self.encoder.layers]
        if missing:
            raise ValueError(f"The AdaIN encoder must return {ADAIN_STYLE_LAYERS}; it lacks {missing}.")
        self.decoder = AdaINDecoder(width=self.encoder.width)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.encoder(x)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
                return_target: bool = False):
        for name, x in (("content", content), ("style", style)):
            if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] % 8 or x.shape[-2] % 8:
                raise ValueError(f"The {name} batch must be (N, 3, H, W) with H and W multiples of 8 "
                                 f"(three poolings and three upsamplings), got {tuple(x.shape)}.")
        t = adain(self.encoder(content)["relu4_1"], self.encoder(style)["relu4_1"], alpha)
        out = self.decoder(t)
        return (out, t) if return_target else out


def adain_losses(model: AdaINStyleTransfer, content: torch.Tensor, style: torch.Tensor,
                 style_weight: float = 10.0) -> dict[str, torch.Tensor]:
    """The AdaIN training losses for one batch: {"content", "style", "loss"}.

    content: MSE between the decoded image's relu4_1 and the AdaIN target t (not the
    content image's features: the decoder must invert AdaIN's output). style: MSE of
    channel means plus MSE of channel standard deviations, summed over relu1_1..relu4_1.
    """
    out, t = model(content, style, return_target=True)
    out_feats = model.encoder(out)
    with torch.no_grad():
        style_feats = model.encoder(style)
    lc = F.mse_loss(out_feats["relu4_1"], t)
    ls = 0.0
    for name in ADAIN_STYLE_LAYERS:
        om, os_ = channel_stats(out_feats[name], 1e-5)
        sm, ss = channel_stats(style_feats[name], 1e-5)
        ls = ls + F.mse_loss(om, sm.expand_as(om)) + F.mse_loss(os_, ss.expand_as(os_))
    return {"content": lc, "style": ls, "loss": lc + style_weight * ls}


class AdaINTask(Task):
    """Trains an :class:`AdaINStyleTransfer` decoder with :func:`lessons_lib.training.fit`.

    Batches are ``(content, style)`` in [0, 1]; only the decoder is optimised (Adam).
    """

    def __init__(self, model: AdaINStyleTransfer, lr: float = 1e-4, style_weight: float = 10.0):
        super().__init__({"adain": model}, {"decoder": torch.optim.Adam(model.decoder.parameters(), lr=lr)})
        self.style_weight = style_weight

    def training_step(self, batch):
        content, style_images = batch
        losses = adain_losses(self.models["adain"], content, style_images, self.style_weight)
        return {"loss": self.optimize(losses["loss"], "decoder"),
                "content": float(losses["content"].detach()), "style": float(losses["style"].detach())}


# --------------------------------------------------------------------------- perceptual loss
class PerceptualLoss(nn.Module):
    """Johnson et al.'s feature reconstruction loss: MSE between VGG features.

    ``loss(output, target)`` with both (N, 3, H, W) in [0, 1]. Used for super-resolution
    instead of (or with, ``pixel_weight`` > 0) pixel MSE, which rewards blurry averages.
    """

    def __init__(self, layers: Sequence[str] = ("relu2_2",), weights: Sequence[float] | None = None,
                 pixel_weight: float = 0.0, extractor: VGGFeatures | None = None, **vgg_kwargs):
        super().__init__()
        self.layers = _check_layers(layers)
        if weights is not None and len(weights) != len(self.layers):
            raise ValueError(f"{len(weights)} weights for {len(self.layers)} layers.")
        self.weights = tuple(weights) if weights is not None else (1.0,) * len(self.layers)
        self.pixel_weight = float(pixel_weight)
        if extractor is not None:
            missing = [n for n in self.layers if n not in extractor.layers]
            if missing:
                raise ValueError(f"The extractor does not return {missing}.")
        self.extractor = extractor or VGGFeatures(self.layers, **vgg_kwargs)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape != target.shape:
            raise ValueError(f"Output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape.")
        fo = self.extractor(output)
        with torch.no_grad():
            ft = self.extractor(target)
        loss = sum(w * F.mse_loss(fo[n], ft[n]) for n, w in zip(self.layers, self.weights))
        if self.pixel_weight:
            loss = loss + self.pixel_weight * F.mse_loss(output, target)
        return loss


def make_sr_pairs(high_res: torch.Tensor, scale: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(low-res, high-res) for super-resolution: area-downsample (N, 3, H, W) by ``scale``."""
    if high_res.dim() != 4 or high_res.shape[-1] % scale or high_res.shape[-2] % scale:
        raise ValueError(f"High-resolution images must be (N, 3, H, W) with H and W divisible by "
                         f"{scale}, got {tuple(high_res.shape)}.")
    low = F.interpolate(high_res, scale_factor=1 / scale, mode="area")
    return low, high_res
