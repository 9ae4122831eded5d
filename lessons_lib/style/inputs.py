"""Style transfer's inputs: any picture made a (1, 3, H, W) tensor in [0, 1], content and style
brought to one size, and sizes VGG cannot take refused before any work (one message that says
how to resize)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.nn import functional as F

from .. import validate as V
from ..images import load_image, pil_to_tensor

__all__ = ["MIN_SIDE", "MAX_SIDE", "MAX_INPUT_PIXELS", "as_image", "prepare_pair"]


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
