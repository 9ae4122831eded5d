"""Images in and out: loading, mode/EXIF normalisation, PIL <-> tensor, colour spaces.

Conventions used across the course:

* tensors are NCHW (or CHW for one image), float, RGB in [0, 1] unless a function
  says ``[-1, 1]`` (the range models with a Tanh output and diffusers use);
* CIELAB is D65 / 2 degree, exactly as ``skimage.color.rgb2lab`` computes it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "MAX_IMAGE_PIXELS", "load_image", "decode_image", "normalize_image", "resize_to_multiple",
    "pil_to_tensor", "tensor_to_pil",
    "pils_to_batch", "to_signed", "to_unit", "rgb_to_gray", "rgb_to_lab",
    "lab_to_rgb", "check_batch", "rgb_to_chroma", "luma_chroma_to_rgb",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


# --------------------------------------------------------------------------- loading
# 50 megapixels: every phone camera's full resolution, well below Pillow's own bomb limit.
MAX_IMAGE_PIXELS = 50_000_000
DOWNSCALE_ADVICE = ("Downscale it first: export a smaller copy from your photo app, or in Python "
                    "Image.open(path).reduce(4).save('smaller.jpg') (Image.MAX_IMAGE_PIXELS = None first, "
                    "only for a file you trust).")


def load_image(source: str | Path | Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Open an image file (or take a PIL image) and return it upright, in RGB mode.

    Handles EXIF rotation and the modes photos and masks come in: RGBA / LA / P
    with transparency (composited on ``background``), L, 1, CMYK, 16-bit (I;16, I)
    and float (F). A file is refused before decoding when it is larger than
    :data:`MAX_IMAGE_PIXELS` (see :func:`decode_image`).
    """
    if isinstance(source, Image.Image):
        return normalize_image(source, background)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"No image file at '{path}'. Check the path (it is relative to "
            f"'{Path.cwd()}') or upload the file first."
        )
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder, not an image file. Pass one image file.")
    return decode_image(path.read_bytes(), f"'{path}'", background)


def decode_image(data: bytes, what: str, background=(255, 255, 255)) -> Image.Image:
    """The bytes of an image file -> an upright RGB PIL image (see :func:`normalize_image`).

    ``what`` names the source in messages. Refuses, before decoding the pixels, an empty
    file, a decompression bomb, and an image above :data:`MAX_IMAGE_PIXELS`; a damaged
    or non-image file gets one message saying so.
    """
    if not data:
        raise ValueError(f"{what} is empty (0 bytes): upload or download it again.")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ValueError(f"{what} claims to be enormous ({err}); it is refused as a possible "
                         f"decompression bomb. If it is a real photo: {DOWNSCALE_ADVICE}") from None
    except UnidentifiedImageError:
        raise ValueError(f"{what} is not an image that can be read (PNG, JPEG, BMP, GIF, TIFF, WebP "
                         "are). Check that it is a picture and not, say, an HTML page saved with an "
                         "image name.") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(f"{what} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); the course opens "
                         f"photos up to {MAX_IMAGE_PIXELS // 1_000_000} megapixels (a larger file may "
                         f"be a decompression bomb, and the pipelines work at 512 px anyway). "
                         f"{DOWNSCALE_ADVICE}")
    try:
        img.load()
    except OSError as err:  # truncated or damaged file
        raise ValueError(f"{what} could not be decoded as an image ({err}). The file is probably "
                         "damaged: download or export it again.") from None
    return normalize_image(img, background)


def normalize_image(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Apply the EXIF orientation and convert any mode to 8-bit RGB."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"Expected a PIL image, got {type(img).__name__}.")
    if img.width == 0 or img.height == 0:
        raise ValueError(f"The image is empty ({img.width}x{img.height} pixels).")
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit sources hold 0..65535; 32-bit "I" images decoded from PNGs do too.
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        arr = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    # L, 1, CMYK, YCbCr, LAB, HSV: Pillow's conversions are the right ones.
    return img.convert("RGB")


def resize_to_multiple(img: Image.Image, multiple: int = 8, max_side: int | None = 512,
                       resample=Image.LANCZOS) -> Image.Image:
    """Scale so the longer side is ``max_side`` (None keeps the size), then round both
    sides down to a multiple of ``multiple`` (8 for Stable Diffusion's VAE)."""
    img = normalize_image(img)
    w, h = img.size
    if max_side is not None:
        if max_side < multiple:
            raise ValueError(f"max_side={max_side} is smaller than the multiple {multiple}.")
        scale = max_side / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    new_w, new_h = (w // multiple) * multiple, (h // multiple) * multiple
    if new_w == 0 or new_h == 0:
        raise ValueError(
            f"The image is {img.width}x{img.height} pixels; after resizing it would be "
            f"{w}x{h}, smaller than {multiple} pixels on a side. Use a larger image.")
    if (new_w, new_h) == img.size:
        return img
    return img.resize((new_w, new_h), resample)


# --------------------------------------------------------------------------- tensors
def pil_to_tensor(img: Image.Image, value_range=(0.0, 1.0)) -> torch.Tensor:
    """(3, H, W) float tensor of an RGB image, in ``value_range``."""
    arr = np.asarray(normalize_image(img), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    lo, hi = value_range
    return t * (hi - lo) + lo


def pils_to_batch(images: Iterable[Image.Image], value_range=(0.0, 1.0)) -> torch.Tensor:
    """(N, 3, H, W) from same-sized PIL images."""
    tensors = [pil_to_tensor(im, value_range) for im in images]
    if not tensors:
        raise ValueError("No images given.")
    sizes = {tuple(t.shape) for t in tensors}
    if len(sizes) > 1:
        raise ValueError(f"Images differ in size {sorted(sizes)}; resize them to one size first.")
    return torch.stack(tensors)


def tensor_to_pil(t: torch.Tensor, value_range=(0.0, 1.0)) -> Image.Image:
    """A PIL image from a (3, H, W), (1, H, W) or (H, W) tensor in ``value_range``."""
    t = t.detach().float().cpu()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    lo, hi = value_range
    t = ((t - lo) / (hi - lo)).clamp(0, 1)
    arr = (t * 255.0 + 0.5).to(torch.uint8)
    if arr.dim() == 2:
        return Image.fromarray(arr.numpy(), mode="L")
    if arr.dim() == 3 and arr.shape[0] == 3:
        return Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")
    raise ValueError(f"Cannot make an image from a tensor of shape {tuple(t.shape)}; "
                     "expected (3, H, W), (1, H, W) or (H, W).")


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (clamped, for display and metrics)."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def check_batch(x: torch.Tensor, name: str = "images", channels: int | None = 3) -> torch.Tensor:
    """Accept CHW or NCHW; return NCHW, or say clearly what shape was expected."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor (N, C, H, W), got {type(x).__name__}.")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels else "(N, C, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}.")
    return x


# Luma weights of ITU-R 601-2, as PIL's convert("L") and torchvision use.
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_gray(x: torch.Tensor, keep_channels: bool = False) -> torch.Tensor:
    """Batched grayscale: (N, 3, H, W) -> (N, 1, H, W) (or 3 equal channels)."""
    x = check_batch(x)
    w = x.new_tensor(_GRAY_WEIGHTS).view(1, 3, 1, 1)
    gray = (x * w).sum(dim=1, keepdim=True)
    return gray.expand(-1, 3, -1, -1).contiguous() if keep_channels else gray


# Chroma of YCbCr (ITU-R 601, the JPEG form) around that luma: Cb = (B - Y) / 1.772,
# Cr = (R - Y) / 1.402. Both are differences, so the same formulas hold for images in
# [0, 1] and in [-1, 1]: a colorizer that predicts chroma keeps the input's luma exactly.
_CB_SCALE = 2 * (1 - _GRAY_WEIGHTS[2])
_CR_SCALE = 2 * (1 - _GRAY_WEIGHTS[0])


def rgb_to_chroma(x: torch.Tensor) -> torch.Tensor:
    """Batched chroma (Cb, Cr): (N, 3, H, W) -> (N, 2, H, W); zero for any gray image."""
    x = check_batch(x)
    y = rgb_to_gray(x)
    return torch.cat([(x[:, 2:3] - y) / _CB_SCALE, (x[:, 0:1] - y) / _CR_SCALE], dim=1)


def luma_chroma_to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """The inverse of (``rgb_to_gray``, ``rgb_to_chroma``): (N, 1, H, W) + (N, 2, H, W) -> RGB."""
    luma = check_batch(luma, "luma", channels=1)
    chroma = check_batch(chroma, "chroma", channels=2)
    cb, cr = chroma[:, 0:1], chroma[:, 1:2]
    r = luma + _CR_SCALE * cr
    b = luma + _CB_SCALE * cb
    g = (luma - _GRAY_WEIGHTS[0] * r - _GRAY_WEIGHTS[2] * b) / _GRAY_WEIGHTS[1]
    return torch.cat([r, g, b], dim=1)


# --------------------------------------------------------------------------- CIELAB
# sRGB (linear) -> XYZ, and the D65 / 2 degree white point, as in skimage.color.
_XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)


def _mix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    m = matrix.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,njhw->nihw", m, x)


def _pow_(x: torch.Tensor, p: float) -> torch.Tensor:
    """x ** p, in place (x must be a temporary), as exp2(p log2 x): pow() with a fractional
    exponent is several times slower on CPUs, and exp2 about four times faster than exp."""
    return x.log2_().mul_(p).exp2_()


# Piecewise formulas below are written as f(max(x, k)) + g(min(x, k) - k): exact on both
# sides of the knee k (g(0) = 0), and without boolean masks, which are slow to build and apply.
_SRGB_KNEE = 0.04045
_LAB_KNEE = 0.008856
# The sRGB curve's ((c + 0.055) / 1.055) ** 2.4 is computed as (c + 0.055) ** 2.4 (and its linear
# part scaled to match); the missing 1 / 1.055 ** 2.4 goes into the matrix to XYZ, with the
# division by the white point: two passes fewer over the image.
_GAMMA_SCALE = 1.055 ** 2.4
_XYZN_FROM_SCALED_RGB = _XYZ_FROM_RGB / _WHITE_D65.view(3, 1) / _GAMMA_SCALE


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Batched sRGB [0, 1] (N, 3, H, W) -> CIELAB (L in [0, 100], a/b about +-128).

    Same formulas and constants as ``skimage.color.rgb2lab`` (D65, 2 degree).
    """
    rgb = check_batch(rgb, "rgb")
    if not rgb.is_floating_point():
        raise TypeError("rgb_to_lab needs a float tensor in [0, 1].")
    if rgb.requires_grad and torch.is_grad_enabled():
        return _rgb_to_lab_differentiable(rgb)
    # sRGB gamma (times 1.055 ** 2.4): (c + 0.055) ** 2.4 above the knee, c / 12.92 below.
    # Every step works in place on a fresh temporary: fewer allocations, fewer passes.
    linear = _pow_(rgb.clamp_min(_SRGB_KNEE).add_(0.055), 2.4)
    linear.add_((rgb - _SRGB_KNEE).clamp_max_(0.0), alpha=_GAMMA_SCALE / 12.92)
    xyz = _mix(linear, _XYZN_FROM_SCALED_RGB)  # X / Xn, Y / Yn, Z / Zn
    # Cube root above the knee, 7.787 t + 16/116 below (the two meet at the knee to 3e-7).
    f = _pow_(xyz.clamp_min(_LAB_KNEE), 1.0 / 3.0)
    f.add_(xyz.sub_(_LAB_KNEE).clamp_max_(0.0), alpha=7.787)
    fx, fy, fz = f.unbind(1)
    lab = torch.empty_like(f)
    torch.mul(fy, 116.0, out=lab[:, 0]).sub_(16.0)
    torch.sub(fx, fy, out=lab[:, 1]).mul_(500.0)
    torch.sub(fy, fz, out=lab[:, 2]).mul_(200.0)
    return lab


def _rgb_to_lab_differentiable(rgb: torch.Tensor) -> torch.Tensor:
    """rgb_to_lab's formulas without in-place steps, so gradients flow through it (a loss in
    CIELAB, e.g. :func:`lessons_lib.zoo.delta_e76_loss`). Both sides of each knee are clamped
    before the power, so the gradient stays finite at 0."""
    linear = rgb.clamp_min(_SRGB_KNEE).add(0.055).pow(2.4) \
        + (rgb - _SRGB_KNEE).clamp_max(0.0) * (_GAMMA_SCALE / 12.92)
    xyz = _mix(linear, _XYZN_FROM_SCALED_RGB)
    f = xyz.clamp_min(_LAB_KNEE).pow(1.0 / 3.0) + (xyz - _LAB_KNEE).clamp_max(0.0) * 7.787
    fx, fy, fz = f.unbind(1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Batched CIELAB -> sRGB in [0, 1] (clipped, as ``skimage.color.lab2rgb``)."""
    lab = check_batch(lab, "lab")
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)  # skimage clips negative z the same way
    f = torch.stack([fx, fy, fz], dim=1)
    xyz = torch.where(f > 0.2068966, f.pow(3), (f - 16.0 / 116.0) / 7.787)
    matrix = _RGB_FROM_XYZ * _WHITE_D65.view(1, 3)
    linear = _mix(xyz, matrix)
    rgb = torch.where(linear > 0.0031308,
                      1.055 * linear.clamp_min(0.0031308).pow(1 / 2.4) - 0.055, linear * 12.92)
    return rgb.clamp(0.0, 1.0)
