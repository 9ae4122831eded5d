"""Neural style transfer: Gram matrices, Gatys optimisation, AdaIN, perceptual loss for SR.

Everything works on RGB tensors in [0, 1], shape (N, 3, H, W); the ImageNet
normalisation VGG expects happens inside :class:`~lessons_lib.models.vgg.VGGFeatures`
(the frozen VGG19 whose features every loss here is measured in): ImageNet's VGG19 in
the full profile, the course's own trained feature network in the fast one (see
:mod:`lessons_lib.models.vgg`). Notebook 6 writes ``gram_matrix``, ``content_loss``,
``style_loss``, ``total_variation`` and ``adain`` in its own cells; the copies here are
what the other code and the tests use (a test checks the two agree).

Measures for notebook 6's results rows, each against a trivial baseline on held-out photos:

* style (Gatys and AdaIN): :func:`patch_swd`, a sliced Wasserstein distance between
  the local pixel patches of the result and of the style image. It uses no network, so
  it cannot be won by matching the very features the method optimised; the baseline is
  a plain colour transfer (:func:`colour_transfer`), which moves the palette only;
* super-resolution: PSNR against bicubic (:func:`sr_scores`); the perceptual net on
  the VGG-feature distance, where bicubic is the baseline too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from . import course_weights
from . import validate as V
from .images import load_image, pil_to_tensor
from .models.adain import ADAIN_STYLE_LAYERS, AdaINDecoder, AdaINStyleTransfer, adain, channel_stats
from .models.srnet import SRNet
from .models.vgg import (
    CONTENT_LAYERS,
    COURSE_FEATURES,
    STYLE_LAYERS,
    VGG19_LAYERS,
    VGGFeatures,
    check_layers,
    vgg19_trunk,
)
from .training import Task

__all__ = [
    "VGG19_LAYERS", "STYLE_LAYERS", "CONTENT_LAYERS", "ADAIN_STYLE_LAYERS", "VGGFeatures",
    "gram_matrix", "content_loss", "style_loss", "as_image", "prepare_pair", "StyleTransferResult",
    "style_transfer", "channel_stats", "adain", "AdaINDecoder", "AdaINStyleTransfer", "adain_objective",
    "adain_losses", "AdaINTask", "colour_transfer", "adain_scores", "PerceptualLoss", "make_sr_pairs",
    "bicubic", "feature_distance", "sr_scores", "SRNet", "course_sr_net", "course_adain", "total_variation",
    "patch_swd",
]


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


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (down and across): small for smooth images."""
    return ((image[..., 1:, :] - image[..., :-1, :]) ** 2).mean() + \
        ((image[..., :, 1:] - image[..., :, :-1]) ** 2).mean()


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
        raise TypeError(f"The {name} must be a file path, a PIL image or a tensor, "
                        f"got {type(image).__name__}.")
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
                   tv_weight: float = 0.0, optimizer: str = "lbfgs", lr: float | None = None,
                   content_layers: Sequence[str] = CONTENT_LAYERS,
                   style_layers: Sequence[str] = STYLE_LAYERS,
                   extractor: VGGFeatures | None = None, init: str = "content",
                   size: int | None = None, snapshot_every: int | None = None,
                   seed: int = 0, progress: bool = True) -> StyleTransferResult:
    """Gatys et al. (2016): optimise the pixels so content and style losses both fall.

    Loss = ``alpha`` * content loss (``content_layers``) + ``beta`` * style loss
    (``style_layers``) + ``tv_weight`` * :func:`total_variation` (which smooths away the
    pixel-level speckle that feature losses leave); the network is frozen, only the image changes. With Gram
    matrices normalised by C*H*W, alpha:beta around 1:1e5 balances the two.
    ``optimizer``: "lbfgs" (one iteration with a line search per step; few steps needed)
    or "adam" (``lr`` default 0.02). ``init``: "content" (start from the content
    image) or "noise". ``history`` holds the unweighted losses at the start of each
    step and, last, those of the result (``steps + 1`` entries): content, style, tv, total.
    """
    from tqdm.auto import tqdm

    if steps < 1:
        raise ValueError(f"steps must be a positive number of optimisation steps, got {steps}.")
    V.count("steps (optimisation steps)", steps)
    V.number("alpha (content weight)", alpha, 0.0, hint="Try alpha=1, beta=1e5.")
    V.number("beta (style weight)", beta, 0.0, hint="Try alpha=1, beta=1e5.")
    V.number("tv_weight (total-variation weight)", tv_weight, 0.0, hint="Try 0 or 10.")
    if lr is not None:
        V.number("lr", lr, 0.0, low_open=True, hint="Leave it out for the optimizer's default.")
    V.optional_count("snapshot_every", snapshot_every)
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(f"alpha and beta must be >= 0 and not both 0, got alpha={alpha}, beta={beta}.")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}.")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}.")
    content_layers, style_layers = check_layers(content_layers), check_layers(style_layers)
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

    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}

    first = [True]

    def closure():
        # The first evaluation of each step records the losses at the current image.
        opt.zero_grad()
        feats = extractor(image)
        lc = sum(content_loss(feats[k], content_targets[k]) for k in content_layers)
        ls = style_loss(feats, style_targets)
        tv = total_variation(image)
        total = alpha * lc + beta * ls + tv_weight * tv
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"The style-transfer loss became {float(total)} after {len(history['total'])} steps. "
                "Lower the learning rate (lr), use optimizer='adam', or reduce beta.")
        total.backward()
        if first[0]:
            for k, v in zip(("content", "style", "tv", "total"), (lc, ls, tv, total), strict=True):
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


# --------------------------------------------------------------------------- AdaIN training
def adain_objective(encoder: VGGFeatures, output: torch.Tensor, target: torch.Tensor,
                    style: torch.Tensor) -> dict[str, torch.Tensor]:
    """How well ``output`` images do what AdaIN asks: {"content", "style"}.

    content: MSE between the output's relu4_1 and the AdaIN target ``target`` (the
    content features carrying the style's statistics). style: MSE of channel means plus
    MSE of channel standard deviations, summed over relu1_1 .. relu4_1, against ``style``.
    It scores any image: the decoder's, or a baseline's.
    """
    out_feats = encoder(output)
    with torch.no_grad():
        style_feats = encoder(style)
    ls = 0.0
    for name in ADAIN_STYLE_LAYERS:
        om, os_ = channel_stats(out_feats[name], 1e-5)
        sm, ss = channel_stats(style_feats[name], 1e-5)
        ls = ls + F.mse_loss(om, sm.expand_as(om)) + F.mse_loss(os_, ss.expand_as(os_))
    return {"content": F.mse_loss(out_feats["relu4_1"], target), "style": ls}


def adain_losses(model: AdaINStyleTransfer, content: torch.Tensor, style: torch.Tensor,
                 style_weight: float = 10.0) -> dict[str, torch.Tensor]:
    """The AdaIN training losses for one batch: {"content", "style", "loss"}.

    The content loss compares with the AdaIN target t, not with the content image's
    features: the decoder must invert AdaIN's output (see :func:`adain_objective`).
    """
    out, t = model(content, style, return_target=True)
    losses = adain_objective(model.encoder, out, t, style)
    return {**losses, "loss": losses["content"] + style_weight * losses["style"]}


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


def colour_transfer(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN on pixels: each colour channel of ``content`` given ``style``'s mean and std.

    The baseline a trained AdaIN decoder must beat: it moves the palette, and nothing else.
    """
    return adain(content, style, eps=1e-5).clamp(0, 1)


@torch.no_grad()
def adain_scores(model: AdaINStyleTransfer, contents: torch.Tensor, styles: torch.Tensor,
                 style_weight: float = 10.0, batch: int = 64) -> dict[str, dict[str, float]]:
    """The AdaIN objective (content + ``style_weight`` x style) on held-out pairs, for
    the decoder, the pixel colour transfer and the unchanged content image.

    Returns {method: {"content", "style", "total"}}, means over the pairs.
    """
    model.eval()
    sums: dict[str, dict[str, float]] = {}
    device = next(model.decoder.parameters()).device
    for i in range(0, len(contents), batch):
        c, s = contents[i:i + batch].to(device), styles[i:i + batch].to(device)
        out, t = model(c, s, return_target=True)
        for name, image in (("AdaIN decoder", out.clamp(0, 1)), ("colour transfer", colour_transfer(c, s)),
                            ("content image", c)):
            losses = adain_objective(model.encoder, image, t, s)
            row = sums.setdefault(name, {"content": 0.0, "style": 0.0, "total": 0.0})
            row["content"] += float(losses["content"]) * len(c)
            row["style"] += float(losses["style"]) * len(c)
            row["total"] += float(losses["content"] + style_weight * losses["style"]) * len(c)
    return {name: {k: v / len(contents) for k, v in row.items()} for name, row in sums.items()}


# --------------------------------------------------------------------------- judging style
def _projected_patches(images: torch.Tensor, patch: int, count: int, dirs: torch.Tensor,
                       gen: torch.Generator) -> torch.Tensor:
    """``count`` random ``patch`` x ``patch`` patches of each image, projected on ``dirs``: (N, count, K)."""
    n, c, h, w = images.shape
    top = torch.randint(h - patch + 1, (count, 1), generator=gen)
    left = torch.randint(w - patch + 1, (count, 1), generator=gen)
    offsets = torch.arange(patch)
    index = ((top + offsets.repeat_interleave(patch)) * w + left + offsets.repeat(patch)).flatten()
    cols = images.reshape(n, c, h * w)[..., index].reshape(n, c, count, patch * patch)
    return torch.einsum("ncqp,cpk->nqk", cols, dirs.view(c, patch * patch, -1))


@torch.no_grad()
def patch_swd(images: torch.Tensor, styles: torch.Tensor, patch: int = 7, scales: Sequence[int] = (1, 2, 4),
              projections: int = 64, count: int = 2048, seed: int = 0) -> torch.Tensor:
    """How far each image's local look is from its style image's: (N,), lower = closer.

    The sliced Wasserstein distance between the distributions of ``patch`` x ``patch``
    RGB patches of ``images[i]`` and of ``styles[i]`` (or ``styles[0]`` for all), at each of
    ``scales`` (the images area-downsampled by that factor), averaged over the scales:
    the patches are projected on ``projections`` random unit directions, the projections
    sorted, and the sorted lists compared (root mean square), which is the exact 1-D
    Wasserstein-2 distance along each direction. It sees colour, edges and texture at the
    patch's scale, and no network at all: a method cannot win it by matching the features
    it was optimised in. Directions and patch positions are fixed by ``seed``.
    """
    if images.dim() != 4 or styles.dim() != 4 or styles.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"patch_swd needs (N, 3, H, W) images and 1 or N styles, got {tuple(images.shape)} "
                         f"and {tuple(styles.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    images, styles = images.float().cpu(), styles.float().cpu().expand(len(images), -1, -1, -1)
    out = torch.zeros(len(images))
    for s in scales:
        a = F.avg_pool2d(images, s) if s > 1 else images
        b = F.avg_pool2d(styles, s) if s > 1 else styles
        dirs = torch.randn(3 * patch * patch, projections, generator=gen)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa = _projected_patches(a, patch, count, dirs, gen).sort(1).values
        pb = _projected_patches(b, patch, count, dirs, gen).sort(1).values
        out += ((pa - pb) ** 2).mean(dim=(1, 2)).sqrt() / len(scales)
    return out


# --------------------------------------------------------------------------- perceptual loss, SR
class PerceptualLoss(nn.Module):
    """Johnson et al.'s feature reconstruction loss: MSE between VGG features.

    ``loss(output, target)`` with both (N, 3, H, W) in [0, 1]. Used for super-resolution
    instead of (or with, ``pixel_weight`` > 0) pixel MSE, which rewards blurry averages.
    """

    def __init__(self, layers: Sequence[str] = ("relu2_2",), weights: Sequence[float] | None = None,
                 pixel_weight: float = 0.0, extractor: VGGFeatures | None = None, **vgg_kwargs):
        super().__init__()
        self.layers = check_layers(layers)
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
            raise ValueError(f"Output {tuple(output.shape)} and target {tuple(target.shape)} "
                             "differ in shape.")
        fo = self.extractor(output)
        with torch.no_grad():
            ft = self.extractor(target)
        loss = sum(w * F.mse_loss(fo[n], ft[n]) for n, w in zip(self.layers, self.weights, strict=True))
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


def bicubic(low_res: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The baseline every super-resolution net must beat: bicubic upsampling, clipped to [0, 1]."""
    return F.interpolate(low_res, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


#: Layers of the VGG-feature distance that scores SR outputs: wider than the perceptual
#: net's training loss (relu2_2 alone), so the score is not just the loss it minimised.
DISTANCE_LAYERS = ("relu1_2", "relu2_2", "relu3_2")


@torch.no_grad()
def feature_distance(a: torch.Tensor, b: torch.Tensor, extractor: VGGFeatures) -> torch.Tensor:
    """Per-image VGG-feature distance (N,): mean squared difference, summed over the extractor's layers."""
    fa, fb = extractor(a), extractor(b)
    return sum(((fa[k] - fb[k]) ** 2).flatten(1).mean(1) for k in extractor.layers)


@torch.no_grad()
def sr_scores(nets: Mapping[str, nn.Module], high_res: torch.Tensor, extractor: VGGFeatures,
              scale: int = 4, batch: int = 128, per_image: bool = False) -> dict[str, dict]:
    """PSNR (dB), SSIM and VGG-feature distance of bicubic and each net on ``high_res`` photos.

    Returns {"bicubic": {...}, name: {...}}: means over the photos, or with ``per_image``
    a (N,) tensor per measure (for spreads and paired differences).
    """
    from .metrics import psnr, ssim

    methods = {"bicubic": lambda x: bicubic(x, scale),
               **{name: (lambda x, n=net: n.eval()(x).clamp(0, 1)) for name, net in nets.items()}}
    device = extractor.mean.device
    values: dict[str, dict[str, list]] = {name: {"PSNR": [], "SSIM": [], "feature distance": []} for name in methods}
    for i in range(0, len(high_res), batch):
        hr = high_res[i:i + batch].to(device)
        low, _ = make_sr_pairs(hr, scale)
        for name, method in methods.items():
            out = method(low)
            values[name]["PSNR"].append(psnr(out, hr, reduction="none").cpu())
            values[name]["SSIM"].append(ssim(out, hr, reduction="none").cpu())
            values[name]["feature distance"].append(feature_distance(out, hr, extractor).cpu())
    per = {name: {k: torch.cat(v) for k, v in row.items()} for name, row in values.items()}
    if per_image:
        return per
    return {name: {k: float(v.mean()) for k, v in row.items()} for name, row in per.items()}


# --------------------------------------------------------------------------- course weights
def _course_sr_net(name: str, state: dict, info: dict) -> SRNet:
    return course_weights.load_into(SRNet(**info["config"]["net"]), state, name)


def _course_adain(name: str, state: dict, info: dict) -> AdaINStyleTransfer:
    encoder = VGGFeatures(ADAIN_STYLE_LAYERS, verbose=False, **info["config"]["encoder"])
    model = AdaINStyleTransfer(encoder, residual=info["config"]["residual"])
    course_weights.load_into(model.decoder, state, name)
    return model


def _course_features(name: str, state: dict, info: dict) -> nn.Module:
    trunk = vgg19_trunk(info["config"]["width"], info["config"]["last"])
    return course_weights.load_into(trunk, state, name)


for _name in ("style/sr_pixel", "style/sr_perceptual"):
    course_weights.register(_name, _course_sr_net)
course_weights.register("style/adain_decoder", _course_adain)
course_weights.register(COURSE_FEATURES, _course_features)


def course_sr_net(name: str) -> tuple[SRNet, dict]:
    """The course's trained SR net ``name`` ("style/sr_pixel" or "style/sr_perceptual"),
    eval mode, and its manifest entry (config, training command, held-out metrics)."""
    return course_weights.load(name)


def course_adain() -> tuple[AdaINStyleTransfer, dict]:
    """The course's trained AdaIN model (decoder weights + the encoder they were trained
    with, named in the manifest), eval mode, and its manifest entry."""
    return course_weights.load("style/adain_decoder")
