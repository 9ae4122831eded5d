"""What only the editing helpers check: their knobs' ranges, prompts, boxes, images, masks, pipelines.

Each helper checks all its arguments at its top (like diffusers' ``check_inputs``), with
:mod:`lessons_lib.validate` for everything generic (counts, numbers in a range, seeds, lists
of numbers, on/off flags, text) and, built on it, these: ``strength``, the guidance scales and
the step count with their limits and advice (:func:`check_strength`, :func:`check_scale`,
:func:`check_steps`, :func:`default_steps` by pipeline), prompts (one text, or a list of them),
the kind of pipeline a helper needs, boxes, the image (any source
:func:`lessons_lib.photos.open_photo` reads; sides a multiple of 8, at least what the
pipeline's UNet can work on and at most :data:`MAX_EDIT_SIDE` pixels) and the mask (the
Stable Diffusion form, white = repaint; a torch keep-mask of :mod:`lessons_lib.masks` is
converted explicitly).

**Boxes are pixel coordinates** (left, top, right, bottom), right and bottom exclusive
(PIL's order), rounded to whole pixels; never fractions of the image. A box whose four
coordinates all lie in [0, 1] on an image larger than a few pixels is refused: it is
almost surely fractions, and the message shows the pixel box they would mean.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .. import masks as M
from .. import validate
from ..images import resize_to_multiple
from ..photos import open_photo
from ..runtime import pick
from .specs import SCHEDULER_CONFIGS, TASKS, task_spec

__all__ = ["MAX_EDIT_SIDE", "MAX_STEPS", "MAX_SCALE", "check_strength", "check_steps", "check_scale",
           "check_prompt", "check_negative_prompt", "check_prompts", "check_box", "check_size", "min_image_side",
           "prepare_image", "prepare_mask", "require_pipeline", "require_any_pipeline", "default_steps"]

# The largest image side the editing helpers take. SD 1.5 was trained at 512 px and a T4
# holds about 1024 x 1024 at most; beyond that an edit fails after minutes of work.
MAX_EDIT_SIDE = 1024


def check_strength(strength) -> float:
    """img2img / inpainting ``strength``: how much of the input is repainted, in [0, 1]."""
    return validate.number("strength", strength, 0.0, 1.0, hint="0 keeps the input as it is, 1 repaints it "
                           "entirely (0.3-0.8 is the useful range).")


# Every course scheduler was trained on a 1000-step schedule (SCHEDULER_CONFIGS); diffusers'
# schedulers refuse more inference steps than that, deep inside the pipeline call.
MAX_STEPS = min(c["num_train_timesteps"] for c in SCHEDULER_CONFIGS.values())


def check_steps(steps, name: str = "num_inference_steps") -> int:
    """A number of denoising steps, 1 to :data:`MAX_STEPS`."""
    return validate.count(name, steps, 1, MAX_STEPS, counts="denoising steps", hint=(
        f"The models were trained on a {MAX_STEPS}-step schedule. Try {pick(fast=4, full=50)} "
        "(more steps: slower, finer detail)."))


def default_steps(steps, fast: int, full: int) -> int:
    """``steps``, or the pipeline's default in this profile (``fast`` / ``full``) when it is None."""
    return check_steps(pick(fast=fast, full=full) if steps is None else steps)


# Guidance multiplies the difference of two noise predictions; far beyond the 1-20 of every
# published example it drives the latents to saturated noise, and in fp16 to inf/NaN: a
# black picture returned as a result.
MAX_SCALE = 100.0


def check_scale(name: str, value) -> float:
    """A guidance scale (``guidance_scale``, ``image_guidance_scale``), 0 to :data:`MAX_SCALE`."""
    return validate.number(name, value, 0.0, MAX_SCALE, hint="1 switches that guidance off; larger values "
                           "follow it more strongly; 1 to 20 is the useful range.")


# --------------------------------------------------------------------------- prompts
def check_prompt(prompt, name: str = "prompt", example: str = "'a cat in the snow'", empty_ok: bool = True) -> str:
    """One text ('' is allowed where ``empty_ok``: no prompt; the caller refuses it otherwise)."""
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        raise TypeError(f"{name} is None: give the text to follow, e.g. {example}"
                        + (" ('' for none)." if empty_ok else "."))
    if isinstance(prompt, (list, tuple)):
        raise TypeError(f"{name} must be one text, e.g. {example}, got a {type(prompt).__name__} of "
                        f"{len(prompt)}: call the helper once per {name}.")
    return validate.text(name, prompt, f"text, e.g. {example}", empty_ok=True)


def check_negative_prompt(negative_prompt) -> str | None:
    """None (no negative prompt) or one text."""
    if negative_prompt is None:
        return None
    return check_prompt(negative_prompt, "negative_prompt", "'blurry, low quality'")


def check_prompts(prompts, what: str = "prompt") -> list[str]:
    """One text or a list of them, as a list."""
    if isinstance(prompts, str):
        prompts = [prompts]
    example = "['make it snowy', 'turn it into a sketch']" if what == "instruction" else "['a cat', 'a dog']"
    if prompts is None or isinstance(prompts, (bytes, dict)) or not hasattr(prompts, "__iter__"):
        raise TypeError(f"The {what}s must be a text or a list of texts, e.g. {example}, got {prompts!r}.")
    prompts = list(prompts)
    if not prompts:
        raise ValueError(f"The list of {what}s is empty: give at least one {what}.")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"{what} {i + 1} is {p!r} ({type(p).__name__}), not text; every {what} must be "
                            f"text, e.g. {example}.")
    return prompts


# --------------------------------------------------------------------------- boxes
def check_size(size, name: str = "size") -> tuple[int, int]:
    """An image size (width, height) in pixels, as PIL's ``image.size`` gives it."""
    if isinstance(size, Image.Image):
        return size.size
    try:
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise ValueError
        width, height = (validate.count(name, v) for v in size)
    except ValueError:
        raise TypeError(f"{name} must be the image size (width, height) in pixels, e.g. image.size, "
                        f"got {size!r}.") from None
    return width, height


def check_box(bbox, size, name: str = "bbox") -> tuple[int, int, int, int]:
    """A box in pixels inside an image of ``size`` (width, height): see the module docstring."""
    width, height = check_size(size)
    if torch.is_tensor(bbox) or isinstance(bbox, np.ndarray):
        bbox = bbox.tolist()
    example = f"(0, 0, {width // 2}, {height // 2}) for the top-left quarter"
    if isinstance(bbox, (str, bytes)) or not isinstance(bbox, (tuple, list)) or len(bbox) != 4:
        raise (ValueError if isinstance(bbox, (tuple, list)) else TypeError)(
            f"{name} must be (left, top, right, bottom) in pixels, e.g. {example}, got {bbox!r}.")
    left, top, right, bottom = (validate.number(f"Each coordinate of {name} {tuple(bbox)!r}", v, hint=(
        f"Boxes are (left, top, right, bottom) in pixels, e.g. {example}.")) for v in bbox)
    if max(left, top, right, bottom) <= 1 and min(left, top, right, bottom) >= 0 and min(width, height) > 4:
        pixels = (round(left * width), round(top * height), round(right * width), round(bottom * height))
        raise ValueError(
            f"{name} {tuple(bbox)} looks like fractions of the image, but boxes are pixel coordinates "
            f"(left, top, right, bottom). On this {width}x{height} image those fractions are the box "
            f"{pixels}: pass that instead.")
    box = tuple(int(round(v)) for v in (left, top, right, bottom))
    if not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
        raise ValueError(f"{name} {tuple(bbox)} is not a box inside the {width}x{height} image: it needs "
                         f"0 <= left < right <= {width} and 0 <= top < bottom <= {height} (pixels; right "
                         f"and bottom are exclusive).")
    return box


# --------------------------------------------------------------------------- the pipeline
def _task_of(pipe) -> str | None:
    names = {cls.__name__ for cls in type(pipe).__mro__}
    return next((t.name for t in TASKS.values() if t.pipeline_class in names), None)


def require_any_pipeline(pipe, helper: str) -> None:
    """For helpers that take any of the four pipelines (memory options)."""
    if not all(hasattr(pipe, part) for part in ("unet", "vae")):
        raise TypeError(f"{helper} needs a pipeline from load_pipeline(task), e.g. load_pipeline('img2img'), "
                        f"got {type(pipe).__name__}.")


def require_pipeline(pipe, task: str, helper: str) -> None:
    """Refuse a pipeline of the wrong kind: it would silently ignore ``strength`` or the mask
    (diffusers pipelines swallow unknown arguments) or fail deep inside the UNet."""
    spec = task_spec(task)
    if pipe is None or not callable(pipe):
        raise TypeError(f"{helper} needs a {spec.pipeline_class}, from load_pipeline('{task}'), but got "
                        f"{pipe!r}. Load it first: pipe = load_pipeline('{task}'), then pass pipe.")
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
def min_image_side(pipe=None) -> tuple[int, str]:
    """The shortest image side ``pipe`` can work on, and why (8 without a pipeline).

    The UNet halves its input once per down block after the first; SD's VAE first
    shrinks the image 8x (the x4 upscaler's UNet takes the low-res image itself). A side
    shorter than that product leaves the UNet's deepest level without a single cell.
    Never below 8: image sides are rounded down to multiples of 8 (the VAE's cells).
    """
    unet = getattr(pipe, "unet", None)
    blocks = getattr(getattr(unet, "config", None), "down_block_types", None)
    task = _task_of(pipe) if pipe is not None else None
    if not blocks or task is None:
        return 8, "Stable Diffusion works on 8x8-pixel cells (sides are rounded down to multiples of 8)."
    halvings = len(blocks) - 1
    vae = 1 if task == "upscale" else int(getattr(pipe, "vae_scale_factor", 8))
    factor = vae * 2 ** halvings
    if factor < 8:
        return 8, "Stable Diffusion works on 8x8-pixel cells (sides are rounded down to multiples of 8)."
    times = f"{halvings} time{'s' if halvings != 1 else ''}"
    how = (f"its UNet halves the low-res image {times}" if task == "upscale"
           else f"its VAE shrinks the image {vae}x and its UNet halves that {times} more")
    made_for = " (it was trained on 128 px inputs)" if task == "upscale" else ""
    return factor, (f"{type(pipe).__name__} needs it{made_for}: {how}, so a shorter side leaves the UNet's "
                    "deepest level without a single cell.")


def prepare_image(image, max_side: int | None = None, multiple: int = 8, pipe=None) -> Image.Image:
    """Any image (path, URL, bytes, array or PIL, any mode) as RGB with sides a multiple of 8.

    ``max_side`` scales the longer side to that size first. Without it, an image larger
    than ``MAX_EDIT_SIDE`` is refused with advice, and a size that is not a multiple of 8
    (the VAE works on 8x8 pixel cells) is resized down to the nearest one with a warning,
    so the output size is never a surprise. Either way a side shorter than
    :func:`min_image_side` of ``pipe`` is refused, saying why.
    """
    if max_side is not None:
        max_side = validate.count("max_side", max_side, 1, MAX_EDIT_SIDE, counts="pixels on the longer side",
                                  hint=f"{MAX_EDIT_SIDE} px is the editing helpers' maximum; use 512 for SD 1.5.")
    img = open_photo(image)
    minimum, why = min_image_side(pipe)
    w, h = img.size
    if max_side is not None:  # the size resize_to_multiple scales to, before rounding
        scale = max_side / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        validate.image_side("image scaled to max_side", sh, sw, minimum=minimum,
                            hint_small=f"{why} Raise max_side or use a less elongated image.")
        return resize_to_multiple(img, multiple, max_side)
    validate.image_side("image", h, w, minimum=minimum,
                        hint_small=f"{why} Use a larger image, or enlarge it first: "
                                   f"image.resize(({max(minimum, w)}, {max(minimum, h)})).")
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
        _finite_mask(mask.detach().float().cpu().numpy())
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
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"A mask array must hold numbers (white/1/True = repaint), got dtype {arr.dtype}.")
        arr = arr.astype(np.float32)
        _finite_mask(arr)
        scale = 255.0 if arr.max(initial=0) <= 1 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    if isinstance(mask, Image.Image):
        return mask
    raise TypeError(f"The mask must be a PIL image, a file path, a numpy array (white/1/True = repaint) "
                    f"or a lessons_lib.masks keep-mask tensor, got {type(mask).__name__}.")


def _finite_mask(arr: np.ndarray) -> None:
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"The mask holds NaN or infinite values ({int((~np.isfinite(arr)).sum())} of "
                         f"{arr.size}); a mask holds 0 to 1 (or 0 to 255) per pixel. Replace them, e.g. "
                         "np.nan_to_num(mask), or make the mask with mask_from_bbox(image.size, box).")


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
