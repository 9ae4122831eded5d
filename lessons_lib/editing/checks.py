"""Input checks at the boundary of every editing helper: one clear message each, before any work.

Numbers (strength, steps, scales, seeds), prompts, the kind of pipeline a helper needs,
the image (any source :func:`lessons_lib.photos.open_photo` reads; sides a multiple of 8;
at most :data:`MAX_EDIT_SIDE` pixels) and the mask (the Stable Diffusion form, white =
repaint; a torch keep-mask of :mod:`lessons_lib.masks` is converted explicitly).
"""
from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .. import masks as M
from ..images import resize_to_multiple
from ..photos import open_photo
from ..runtime import pick
from .specs import TASKS, task_spec

__all__ = ["MAX_EDIT_SIDE", "check_strength", "check_count", "check_steps", "check_scale", "check_seed",
           "check_prompts", "prepare_image", "prepare_mask", "require_pipeline", "default_steps"]

# The largest image side the editing helpers take. SD 1.5 was trained at 512 px and a T4
# holds about 1024 x 1024 at most; beyond that an edit fails after minutes of work.
MAX_EDIT_SIDE = 1024


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
        and math.isfinite(value)


def check_strength(strength) -> float:
    if not _is_number(strength) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number between 0 and 1, got {strength!r}: 0 keeps the "
                         "input as it is, 1 repaints it entirely (0.3-0.8 is the useful range).")
    return float(strength)


def check_count(value, name: str, what: str, suggestion) -> int:
    """A positive whole number ``name`` (``what`` it counts, and a value to try)."""
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number of {what}, got {value!r}. "
                         f"Try {suggestion}.")
    return int(value)


def check_steps(steps, name: str = "num_inference_steps") -> int:
    return check_count(steps, name, "denoising steps",
                       f"{pick(fast=4, full=50)} (more steps: slower, finer detail)")


def default_steps(steps, fast: int, full: int) -> int:
    return check_steps(pick(fast=fast, full=full) if steps is None else steps)


def check_scale(value, name: str) -> float:
    if not _is_number(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r} "
                         "(1 switches that guidance off; larger values follow it more strongly).")
    return float(value)


def check_seed(seed) -> int:
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}.")
    return int(seed)


def check_prompts(prompts, what: str = "prompt") -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError(f"The list of {what}s is empty: give at least one {what}.")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"{what} {i + 1} is a {type(p).__name__}, not text.")
    return prompts


# --------------------------------------------------------------------------- the pipeline
def _task_of(pipe) -> str | None:
    names = {cls.__name__ for cls in type(pipe).__mro__}
    return next((t.name for t in TASKS.values() if t.pipeline_class in names), None)


def require_pipeline(pipe, task: str, helper: str) -> None:
    """Refuse a pipeline of the wrong kind: it would silently ignore ``strength`` or the mask
    (diffusers pipelines swallow unknown arguments) or fail deep inside the UNet."""
    spec = task_spec(task)
    kind = _task_of(pipe)
    if kind == task:
        return
    if kind is None:  # not one of diffusers' four classes: accept what takes the same arguments
        try:
            params = inspect.signature(pipe.__call__).parameters
        except (TypeError, ValueError):
            params = {}
        unet = getattr(pipe, "unet", None)
        channels = getattr(getattr(unet, "config", None), "in_channels", spec.unet_in_channels)
        if all(a in params for a in spec.call_args) and channels == spec.unet_in_channels:
            return
    got = type(pipe).__name__ + (f" (the '{kind}' task)" if kind else "")
    args = " and ".join(f"`{a}`" for a in spec.call_args if a != "image")
    raise TypeError(
        f"{helper} needs a {spec.pipeline_class}, from load_pipeline('{task}'), but this pipeline is a "
        f"{got}: it takes no {args} (it would ignore them, or fail deep inside the UNet). Load the "
        f"right one: pipe = load_pipeline('{task}')"
        + (f"; this pipeline belongs to the '{kind}' helpers." if kind else "."))


# --------------------------------------------------------------------------- images and masks
def prepare_image(image, max_side: int | None = None, multiple: int = 8) -> Image.Image:
    """Any image (path, URL, bytes, array or PIL, any mode) as RGB with sides a multiple of 8.

    ``max_side`` scales the longer side to that size first. Without it, an image larger
    than ``MAX_EDIT_SIDE`` is refused with advice, and a size that is not a multiple of 8
    (the VAE works on 8x8 pixel cells) is resized down to the nearest one with a warning,
    so the output size is never a surprise.
    """
    img = open_photo(image)
    if max_side is not None:
        max_side = check_count(max_side, "max_side", "pixels", 512)
        if max_side > MAX_EDIT_SIDE:
            raise ValueError(f"max_side={max_side} is above the editing helpers' maximum of "
                             f"{MAX_EDIT_SIDE} px; use 512 for SD 1.5.")
        return resize_to_multiple(img, multiple, max_side)
    w, h = img.size
    if max(w, h) > MAX_EDIT_SIDE:
        raise ValueError(
            f"The image is {w}x{h} pixels; the editing helpers take at most {MAX_EDIT_SIDE} px on a side "
            f"(SD 1.5 works at 512 px, and larger images run out of GPU memory after minutes of work). "
            f"Downscale it first: pass max_side=512 to the helper, or "
            f"image = lessons_lib.photos.load_photo(image, max_side=512).")
    if w % multiple or h % multiple:
        fixed = resize_to_multiple(img, multiple, None)
        warnings.warn(f"The image is {w}x{h} pixels; Stable Diffusion needs sides that are "
                      f"multiples of {multiple}, so it was resized to {fixed.width}x{fixed.height}. "
                      f"Resize or crop it yourself to choose how.", UserWarning, stacklevel=3)
        return fixed
    return img


def _mask_image(mask) -> Image.Image:
    """Any accepted mask as a PIL image in the Stable Diffusion form (white = repaint)."""
    if isinstance(mask, (str, Path)):
        path = Path(mask)
        if not path.is_file():
            raise FileNotFoundError(
                f"No mask file at '{path}'" + (" (it is a folder)" if path.is_dir() else "")
                + f". Check the path (relative to '{Path.cwd()}'), or make the mask in code, "
                "e.g. mask_from_bbox(image.size, (left, top, right, bottom)).")
        try:
            with Image.open(path) as opened:
                opened.load()
                return opened.copy()
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"'{path}' is not a readable image ({err}); save the mask as a PNG "
                             "(white = repaint, black = keep).") from None
    if torch.is_tensor(mask):  # the course's keep-mask (1 = keep): converted explicitly
        return M.to_sd_mask(mask.detach().float().cpu())
    if isinstance(mask, np.ndarray):
        arr = mask
        if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
            arr = arr[..., 0] if arr.shape[2] == 1 else np.asarray(Image.fromarray(
                arr.astype(np.uint8)).convert("L"))
        if arr.ndim != 2:
            raise ValueError(f"A mask array must be (height, width) (or with 1, 3 or 4 channels), got shape "
                             f"{mask.shape}: {mask.shape[-1] if mask.ndim == 3 else mask.ndim} is not a "
                             "channel count a mask can have. Pass one gray channel: white/1/True = repaint.")
        arr = arr.astype(np.float32)
        scale = 255.0 if arr.max(initial=0) <= 1 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    if isinstance(mask, Image.Image):
        return mask
    raise TypeError(f"The mask must be a PIL image, a file path, a numpy array (white/1/True = repaint) "
                    f"or a lessons_lib.masks keep-mask tensor, got {type(mask).__name__}.")


def prepare_mask(mask, image_size: tuple[int, int], target_size: tuple[int, int]) -> Image.Image:
    """An L-mode mask (white = repaint) of the image's size, resized with the image."""
    mask = _mask_image(mask)
    if mask.size != tuple(image_size):
        raise ValueError(
            f"The mask is {mask.width}x{mask.height} pixels but the image is "
            f"{image_size[0]}x{image_size[1]}. Make the mask from the same image, e.g. "
            f"mask_from_bbox(image.size, box), or resize it: mask.resize(image.size, Image.NEAREST).")
    mask = mask.convert("L") if mask.mode != "L" else mask
    if mask.getextrema()[1] < 128:
        raise ValueError("The mask has no white pixels, so there is nothing to repaint "
                         "(white = repaint, black = keep). Draw the region to change in white.")
    if mask.size != tuple(target_size):
        mask = mask.resize(target_size, Image.BILINEAR)
    return mask
