"""Diffusion image editing with Stable Diffusion: the helpers of notebooks 4 and 5.

Every helper takes a pipeline from :func:`load_pipeline` (the diffusers object
itself), validates its input once with a clear message, calls the pipeline with
diffusers' own argument names (``strength``, ``guidance_scale``,
``image_guidance_scale``, ``num_inference_steps``) and returns an :class:`EditResult`:
the image plus what is needed to reproduce it (operation, parameters, seed, the
number of denoising steps that actually ran).

* img2img and a strength sweep: with ``strength`` s and n steps the pipeline starts
  from the input noised to step int(n * s) and runs only those int(n * s) steps.
* InstructPix2Pix: ``IMAGE_STABILITY`` (``image_guidance_scale``) and ``TEXT_STRENGTH``
  (``guidance_scale``), many instructions batched through one loaded pipeline, a 2-D
  guidance grid and an ipywidgets panel.
* inpainting (white = repaint), outpainting, x4 upscaling (tiled above 128 px).
* a small practical pipeline: bounding-box masks, feathering, a suggested strength per
  edit type, safe never-overwriting file names and a JSON-lines operation log.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import unicodedata
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter

from .files import write_unique
from .images import load_image, resize_to_multiple
from .pipelines import TASKS, clear_pipeline_cache, load_pipeline
from .runtime import pick

__all__ = [
    "load_pipeline", "clear_pipeline_cache", "TASKS",
    "IMAGE_STABILITY", "TEXT_STRENGTH", "PIX2PIX_STEPS", "STRENGTHS", "SUGGESTED_STRENGTH",
    "UPSCALE_MAX_INPUT", "EditResult", "demo_image", "prepare_image", "check_strength",
    "steps_that_run", "img2img", "strength_sweep", "instruct_edit", "instruct_edits",
    "guidance_grid", "inpaint", "outpaint", "upscale", "mask_from_bbox", "feather_mask",
    "suggest_strength", "edit_region", "OperationLog", "safe_filename", "save_image",
    "save_result", "show_edit", "sweep_figure", "grid_figure", "InstructPanel",
]

# The two InstructPix2Pix knobs, named for what they do.
IMAGE_STABILITY = 2.0   # image_guidance_scale: how closely the edit sticks to the input image
TEXT_STRENGTH = 10.0    # guidance_scale: how strongly the instruction is followed
PIX2PIX_STEPS = 40
STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)
UPSCALE_MAX_INPUT = 128  # the x4 upscaler was trained on 128 px crops -> 512 px outputs

# Starting points for img2img / inpainting strength by kind of edit (tune per image).
SUGGESTED_STRENGTH = {
    "colour": 0.3,        # recolour or relight, keep every shape and edge
    "texture": 0.45,      # change a material or surface, keep the outline
    "style": 0.6,         # repaint in another style, keep the composition
    "replace": 0.8,       # put a different object in the same place
    "new content": 1.0,   # fill from scratch (object removal, outpainting)
}


@dataclass
class EditResult:
    """One edit: the picture and what is needed to make it again."""
    image: Image.Image
    operation: str
    params: dict
    seed: int
    steps_run: int
    output_file: str | None = None
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        """The operation-log entry for this edit."""
        return {"operation": self.operation, "parameters": self.params, "seed": self.seed,
                "steps_run": self.steps_run, "output_file": self.output_file}


# --------------------------------------------------------------------------- inputs
def demo_image(name: str = "astronaut", size: int = 512) -> Image.Image:
    """A centred square crop of one of scikit-image's bundled photos (offline), resized.

    ``name``: "astronaut", "chelsea" (a cat) or "coffee".
    """
    from skimage import data as skdata

    loaders = {"astronaut": skdata.astronaut, "chelsea": skdata.chelsea, "coffee": skdata.coffee}
    if name not in loaders:
        raise ValueError(f"Unknown demo image {name!r}; choose one of {', '.join(loaders)}.")
    arr = loaders[name]()[..., :3]
    h, w = arr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(np.ascontiguousarray(arr[top:top + side, left:left + side]))
    return crop.resize((size, size), Image.LANCZOS)


def prepare_image(image, max_side: int | None = None, multiple: int = 8) -> Image.Image:
    """Any image (path or PIL, any mode) as RGB with sides that are multiples of 8.

    RGBA / palette / 16-bit / CMYK are converted (:func:`lessons_lib.images.load_image`).
    ``max_side`` scales the longer side to that size first. A size that is not a
    multiple of 8 (the VAE works on 8x8 pixel cells) is resized down to the nearest
    one with a warning, so the output size is never a surprise.
    """
    img = load_image(image)
    if max_side is not None:
        return resize_to_multiple(img, multiple, max_side)
    w, h = img.size
    if w % multiple or h % multiple:
        fixed = resize_to_multiple(img, multiple, None)
        warnings.warn(f"The image is {w}x{h} pixels; Stable Diffusion needs sides that are "
                      f"multiples of {multiple}, so it was resized to {fixed.width}x{fixed.height}. "
                      f"Resize or crop it yourself to choose how.", UserWarning, stacklevel=3)
        return fixed
    return img


def _prepare_mask(mask, image_size: tuple[int, int], target_size: tuple[int, int]) -> Image.Image:
    """An L-mode mask (white = repaint) of the image's size, resized with the image."""
    if isinstance(mask, (str, Path)):
        mask = Image.open(mask)
    if isinstance(mask, np.ndarray):
        arr = mask.astype(np.float32)
        mask = Image.fromarray(np.clip(arr * (255.0 if arr.max(initial=0) <= 1 else 1.0), 0, 255)
                               .astype(np.uint8))
    if not isinstance(mask, Image.Image):
        raise TypeError(f"The mask must be a PIL image, a file path or a numpy array, "
                        f"got {type(mask).__name__}.")
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


def check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) \
            or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number between 0 and 1, got {strength!r}: 0 keeps the "
                         "input as it is, 1 repaints it entirely (0.3-0.8 is the useful range).")
    return float(strength)


def _check_steps(steps, name: str = "num_inference_steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"{name} must be a positive whole number of denoising steps, got "
                         f"{steps!r}. Try {pick(fast=4, full=50)} (more steps: slower, finer detail).")
    return int(steps)


def _check_scale(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r} "
                         "(1 switches that guidance off; larger values follow it more strongly).")
    return float(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}.")
    return int(seed)


def _check_prompts(prompts, what: str = "prompt") -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError(f"The list of {what}s is empty: give at least one {what}.")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"{what} {i + 1} is a {type(p).__name__}, not text.")
    return prompts


def steps_that_run(num_inference_steps: int, strength: float) -> int:
    """How many denoising steps img2img / inpainting really run: int(n * strength).

    The input is noised to the step int(n * s) steps before the end of the schedule
    and denoised from there; the earlier steps are skipped. Same formula as
    diffusers' ``get_timesteps``.
    """
    n = _check_steps(num_inference_steps)
    return min(int(n * check_strength(strength)), n)


def _default_steps(steps, fast: int, full: int) -> int:
    return _check_steps(pick(fast=fast, full=full) if steps is None else steps)


def _generator(seed: int) -> torch.Generator:
    # A CPU generator gives the same noise on every device (diffusers moves it over).
    return torch.Generator("cpu").manual_seed(seed)


class _StepCounter:
    """callback_on_step_end that counts the denoising steps that actually ran."""

    def __init__(self):
        self.steps = 0

    def __call__(self, pipe, step, timestep, callback_kwargs):
        self.steps += 1
        return callback_kwargs

    def legacy(self, step, timestep, latents):  # the upscaler's older ``callback`` API
        self.steps += 1


@contextmanager
def _memory_advice(what: str):
    """Turn a CUDA out-of-memory error deep inside diffusers into one message that says what to do."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise RuntimeError(
            f"The GPU ran out of memory during {what}. What to do: use a smaller image (512 px for "
            "SD 1.5, 128 px inputs for the upscaler), a smaller batch_size, or load the pipeline "
            "with load_pipeline(task, cpu_offload=True); in Colab, restart the runtime to free "
            "memory held by earlier cells.") from err


def _model_name(pipe) -> str | None:
    return getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path")


def _unchanged_if_no_steps(image: Image.Image, operation: str, params: dict, seed: int, n: int,
                           strength: float) -> EditResult | None:
    """int(n x strength) = 0 steps would run: say so and return the input as the result."""
    if steps_that_run(n, strength) > 0:
        return None
    warnings.warn(f"strength={strength} with {n} steps runs int({n} x {strength}) = 0 denoising steps, "
                  "so the image is returned unchanged. Raise strength or num_inference_steps.",
                  UserWarning, stacklevel=3)
    return EditResult(image.copy(), operation, params, seed, 0)


# --------------------------------------------------------------------------- img2img
def img2img(pipe, image, prompt: str, strength: float = 0.6, num_inference_steps: int | None = None,
            guidance_scale: float = 7.5, negative_prompt: str | None = None, seed: int = 0,
            max_side: int | None = None) -> EditResult:
    """Edit ``image`` towards ``prompt``; ``strength`` is how much of it is repainted."""
    prompt = _check_prompts(prompt)[0]
    strength = check_strength(strength)
    n = _default_steps(num_inference_steps, 10, 50)
    guidance_scale = _check_scale(guidance_scale, "guidance_scale")
    seed = _check_seed(seed)
    img = prepare_image(image, max_side)
    params = {"prompt": prompt, "strength": strength, "num_inference_steps": n,
              "guidance_scale": guidance_scale, "negative_prompt": negative_prompt,
              "size": list(img.size), "model": _model_name(pipe)}
    unchanged = _unchanged_if_no_steps(img, "img2img", params, seed, n, strength)
    if unchanged is not None:
        return unchanged
    counter = _StepCounter()
    with _memory_advice("img2img"):
        out = pipe(prompt=prompt, image=img, strength=strength, num_inference_steps=n,
                   guidance_scale=guidance_scale, negative_prompt=negative_prompt,
                   generator=_generator(seed), callback_on_step_end=counter)
    return EditResult(out.images[0], "img2img", params, seed, counter.steps)


def strength_sweep(pipe, image, prompt: str, strengths: Sequence[float] = STRENGTHS,
                   num_inference_steps: int | None = None, guidance_scale: float = 7.5,
                   seed: int = 0, max_side: int | None = None) -> list[EditResult]:
    """img2img at each strength (same seed), to see how much of the input survives."""
    from tqdm.auto import tqdm

    strengths = [check_strength(s) for s in strengths]
    if not strengths:
        raise ValueError("The list of strengths is empty: give at least one, e.g. STRENGTHS.")
    img = prepare_image(image, max_side)
    return [img2img(pipe, img, prompt, s, num_inference_steps, guidance_scale, seed=seed)
            for s in tqdm(strengths, desc="strength sweep")]


# --------------------------------------------------------------------------- InstructPix2Pix
def instruct_edits(pipe, image, instructions: Sequence[str], image_guidance_scale: float = IMAGE_STABILITY,
                   guidance_scale: float = TEXT_STRENGTH, num_inference_steps: int | None = None,
                   seed: int = 0, batch_size: int = 4, max_side: int | None = None,
                   out_dir: str | Path | None = None, log: "OperationLog | None" = None) -> list[EditResult]:
    """Apply each instruction to ``image`` with one loaded pipeline, ``batch_size`` at a time.

    Every instruction gets the same seed, so the instructions are the only difference
    between the results. With ``out_dir`` each result is saved under a file name made
    from its instruction (never overwriting) and, with ``log``, recorded there.
    """
    from tqdm.auto import tqdm

    instructions = _check_prompts(instructions, "instruction")
    for i, text in enumerate(instructions):
        if not text.strip():
            raise ValueError(f"Instruction {i + 1} is empty; write what to change, e.g. "
                             "'make it a watercolor painting'.")
    image_guidance_scale = _check_scale(image_guidance_scale, "image_guidance_scale")
    guidance_scale = _check_scale(guidance_scale, "guidance_scale")
    n = _default_steps(num_inference_steps, 8, PIX2PIX_STEPS)
    seed = _check_seed(seed)
    batch_size = _check_steps(batch_size, "batch_size")
    img = prepare_image(image, max_side)
    results: list[EditResult] = []
    batches = range(0, len(instructions), batch_size)
    for start in tqdm(batches, desc="instructions", disable=len(batches) < 2):
        chunk = instructions[start:start + batch_size]
        counter = _StepCounter()
        with _memory_advice("the InstructPix2Pix edit"):
            out = pipe(prompt=chunk, image=[img] * len(chunk), num_inference_steps=n,
                       image_guidance_scale=image_guidance_scale, guidance_scale=guidance_scale,
                       generator=[_generator(seed) for _ in chunk], callback_on_step_end=counter)
        for text, edited in zip(chunk, out.images):
            params = {"instruction": text, "image_guidance_scale": image_guidance_scale,
                      "guidance_scale": guidance_scale, "num_inference_steps": n,
                      "size": list(img.size), "model": _model_name(pipe)}
            result = EditResult(edited, "instruct-pix2pix", params, seed, counter.steps)
            if out_dir is not None:
                save_result(result, out_dir, text, log=log)
            results.append(result)
    return results


def instruct_edit(pipe, image, instruction: str, image_guidance_scale: float = IMAGE_STABILITY,
                  guidance_scale: float = TEXT_STRENGTH, num_inference_steps: int | None = None,
                  seed: int = 0, max_side: int | None = None) -> EditResult:
    """One InstructPix2Pix edit ("make it snowy"): see :func:`instruct_edits`."""
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be text, got {type(instruction).__name__}; "
                        "use instruct_edits for a list.")
    return instruct_edits(pipe, image, [instruction], image_guidance_scale, guidance_scale,
                          num_inference_steps, seed, 1, max_side)[0]


def guidance_grid(pipe, image, instruction: str, image_guidance_scales: Sequence[float] = (1.0, 1.5, 2.0),
                  guidance_scales: Sequence[float] = (5.0, 7.5, 10.0), num_inference_steps: int | None = None,
                  seed: int = 0, max_side: int | None = None) -> list[list[EditResult]]:
    """grid[i][j]: the edit at image_guidance_scales[i] and guidance_scales[j] (same seed)."""
    from tqdm.auto import tqdm

    rows = [_check_scale(s, "image_guidance_scale") for s in image_guidance_scales]
    cols = [_check_scale(s, "guidance_scale") for s in guidance_scales]
    if not rows or not cols:
        raise ValueError("guidance_grid needs at least one image_guidance_scale and one guidance_scale.")
    img = prepare_image(image, max_side)
    cells = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    grid = [[None] * len(cols) for _ in rows]
    # The scales are scalars of the pipeline call, so each cell is its own call.
    for i, j in tqdm(cells, desc="guidance grid"):
        grid[i][j] = instruct_edit(pipe, img, instruction, rows[i], cols[j], num_inference_steps, seed)
    return grid


# --------------------------------------------------------------------------- masks
def mask_from_bbox(size: tuple[int, int], bbox: Sequence[int]) -> Image.Image:
    """A mask of ``size`` (width, height), white inside bbox = (left, top, right, bottom)."""
    width, height = (int(v) for v in size)
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (left, top, right, bottom), got {bbox!r}.")
    left, top, right, bottom = (int(round(v)) for v in bbox)
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"bbox {tuple(bbox)} is not a box inside the {width}x{height} image: it needs "
                         f"0 <= left < right <= {width} and 0 <= top < bottom <= {height}.")
    arr = np.zeros((height, width), dtype=np.uint8)
    arr[top:bottom, left:right] = 255
    return Image.fromarray(arr, mode="L")


def feather_mask(mask: Image.Image, radius: float) -> Image.Image:
    """Soften a mask's edge with a Gaussian blur of ``radius`` pixels (0: unchanged)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius < 0:
        raise ValueError(f"The feather radius must be a non-negative number of pixels, got {radius!r}.")
    mask = mask.convert("L")
    return mask.copy() if radius == 0 else mask.filter(ImageFilter.GaussianBlur(radius))


def suggest_strength(edit_type: str) -> float:
    """A starting strength for a kind of edit (see ``SUGGESTED_STRENGTH``)."""
    key = str(edit_type).strip().lower()
    if key not in SUGGESTED_STRENGTH:
        raise ValueError(f"Unknown edit type {edit_type!r}; choose one of: "
                         + ", ".join(f"{k} ({v})" for k, v in SUGGESTED_STRENGTH.items()) + ".")
    return SUGGESTED_STRENGTH[key]


def _paste_back(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Generated pixels where the mask is white, the original elsewhere (soft masks blend).

    The VAE cannot reproduce a photo exactly, so without this even the untouched
    region would drift; diffusers' ``image_processor.apply_overlay`` does the same.
    """
    if generated.size != original.size:
        generated = generated.resize(original.size, Image.LANCZOS)
    return Image.composite(generated, original, mask)


# --------------------------------------------------------------------------- inpainting
def inpaint(pipe, image, mask, prompt: str, strength: float = 1.0, num_inference_steps: int | None = None,
            guidance_scale: float = 7.5, negative_prompt: str | None = None, seed: int = 0,
            feather: float = 0, paste_back: bool = True, max_side: int | None = None) -> EditResult:
    """Repaint the white part of ``mask`` following ``prompt``; keep the rest.

    ``feather`` softens the seam (pixels); ``paste_back`` puts the original pixels back
    outside the mask (on by default: the VAE round trip alone would blur them).
    """
    prompt = _check_prompts(prompt)[0]
    strength = check_strength(strength)
    n = _default_steps(num_inference_steps, 10, 50)
    guidance_scale = _check_scale(guidance_scale, "guidance_scale")
    seed = _check_seed(seed)
    original = load_image(image)
    img = prepare_image(original, max_side)
    mask = _prepare_mask(mask, original.size, img.size)
    soft = feather_mask(mask, feather)
    params = {"prompt": prompt, "strength": strength, "num_inference_steps": n,
              "guidance_scale": guidance_scale, "negative_prompt": negative_prompt, "feather": feather,
              "paste_back": paste_back, "size": list(img.size),
              "mask_bbox": list(mask.point(lambda v: 255 if v >= 128 else 0).getbbox() or ()),
              "model": _model_name(pipe)}
    unchanged = _unchanged_if_no_steps(img, "inpaint", params, seed, n, strength)
    if unchanged is not None:
        return unchanged
    counter = _StepCounter()
    with _memory_advice("inpainting"):
        out = pipe(prompt=prompt, image=img, mask_image=mask, height=img.height, width=img.width,
                   strength=strength, num_inference_steps=n, guidance_scale=guidance_scale,
                   negative_prompt=negative_prompt, generator=_generator(seed), callback_on_step_end=counter)
    edited = _paste_back(out.images[0], img, soft) if paste_back else out.images[0]
    return EditResult(edited, "inpaint", params, seed, counter.steps, extra={"mask": mask, "soft_mask": soft})


def outpaint(pipe, image, prompt: str, border: int | Sequence[int] = 64, overlap: int = 0,
             num_inference_steps: int | None = None, guidance_scale: float = 7.5,
             negative_prompt: str | None = None, seed: int = 0, feather: float = 0) -> EditResult:
    """Extend the canvas by ``border`` pixels (one int, or (left, top, right, bottom)) and
    let the inpainting model paint the new margin; ``overlap`` pixels of the original
    next to the margin are repainted too, to hide the seam."""
    img = prepare_image(image)
    borders = [border] * 4 if isinstance(border, (int, np.integer)) else list(border)
    if len(borders) != 4 or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0 for b in borders):
        raise ValueError(f"border must be a non-negative whole number of pixels or four of them "
                         f"(left, top, right, bottom), got {border!r}.")
    if any(b % 8 for b in borders) or not any(borders):
        raise ValueError(f"Each border must be a multiple of 8 pixels (the VAE works on 8x8 cells) and at "
                         f"least one must be > 0; got {tuple(borders)}. Try 64 (full) or 16 (fast).")
    left, top, right, bottom = (int(b) for b in borders)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0 \
            or 2 * overlap >= min(img.size):
        raise ValueError(f"overlap must be a whole number of pixels, at least 0 and less than half the "
                         f"image side ({min(img.size) // 2}), got {overlap!r}.")
    arr = np.asarray(img)
    # Edge-replicated fill: a neutral start that continues the image's border colours.
    canvas = np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode="edge")
    mask = np.full(canvas.shape[:2], 255, dtype=np.uint8)
    h, w = arr.shape[:2]
    mask[top + (overlap if top else 0):top + h - (overlap if bottom else 0),
         left + (overlap if left else 0):left + w - (overlap if right else 0)] = 0
    result = inpaint(pipe, Image.fromarray(canvas), Image.fromarray(mask, mode="L"), prompt,
                     strength=1.0, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                     negative_prompt=negative_prompt, seed=seed, feather=feather)
    result.operation = "outpaint"
    result.params.update(border=[left, top, right, bottom], overlap=overlap, input_size=[w, h])
    return result


# --------------------------------------------------------------------------- x4 upscaling
def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(length: int, fade: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Blend weights along one side of a tile: linear fades where a neighbour overlaps."""
    w = np.ones(length, dtype=np.float64)
    if fade > 0:
        ramp = (np.arange(fade) + 0.5) / fade
        if at_start:
            w[:fade] = ramp
        if at_end:
            w[-fade:] = ramp[::-1]
    return w


def upscale(pipe, image, prompt: str = "", num_inference_steps: int | None = None,
            guidance_scale: float = 9.0, noise_level: int = 20, negative_prompt: str | None = None,
            seed: int = 0, tile: bool = False, tile_size: int | None = None, overlap: int = 16,
            batch_size: int = 4, max_input: int = UPSCALE_MAX_INPUT) -> EditResult:
    """4x super-resolution with the x4 upscaler (output 4x the input's width and height).

    Inputs larger than ``max_input`` pixels (128: the upscaler's training crops, and
    512 px outputs fit a T4) are refused unless ``tile=True``, which upscales
    overlapping ``tile_size`` tiles (default ``max_input``; batched) and blends them
    with linear fades.
    """
    prompt = _check_prompts(prompt)[0]
    n = _default_steps(num_inference_steps, 4, 50)
    guidance_scale = _check_scale(guidance_scale, "guidance_scale")
    seed = _check_seed(seed)
    batch_size = _check_steps(batch_size, "batch_size")
    max_level = int(pipe.config.get("max_noise_level", 350))
    if isinstance(noise_level, bool) or not isinstance(noise_level, (int, np.integer)) \
            or not 0 <= noise_level <= max_level:
        raise ValueError(f"noise_level must be a whole number from 0 to {max_level}, got {noise_level!r} "
                         "(it is how much noise is added to the low-res input; 20 is the default).")
    tile_size = max_input if tile_size is None else tile_size
    img = prepare_image(image)
    w, h = img.size
    params = {"prompt": prompt, "num_inference_steps": n, "guidance_scale": guidance_scale,
              "noise_level": int(noise_level), "negative_prompt": negative_prompt,
              "size": [w, h], "tile": bool(tile), "model": _model_name(pipe)}
    if max(w, h) > max_input and not tile:
        raise ValueError(
            f"The image is {w}x{h} pixels; the x4 upscaler is meant for inputs up to {max_input} px "
            f"(its output is 4x larger: {4 * w}x{4 * h} here, too much memory for one pass). Downscale "
            f"it first, e.g. image.resize(({max_input}, {max_input * h // w // 8 * 8})), or pass tile=True "
            f"to upscale it in overlapping {tile_size}-px tiles (slower; seams can show).")
    if tile_size % 8 or overlap % 8 or not 0 <= overlap < tile_size or tile_size > max_input:
        raise ValueError(f"tile_size must be a multiple of 8 up to {max_input} and overlap a multiple "
                         f"of 8 smaller than it; got tile_size={tile_size}, overlap={overlap}.")
    xs, ys = _tile_starts(w, tile_size, overlap), _tile_starts(h, tile_size, overlap)
    tw, th = min(w, tile_size), min(h, tile_size)
    boxes = [(x, y, x + tw, y + th) for y in ys for x in xs]
    tiles: list[Image.Image] = []
    steps = 0
    from tqdm.auto import tqdm

    batches = range(0, len(boxes), batch_size)
    for start in tqdm(batches, desc="upscaling tiles", disable=len(batches) < 2):
        chunk = boxes[start:start + batch_size]
        counter = _StepCounter()
        with _memory_advice("x4 upscaling"):
            out = pipe(prompt=[prompt] * len(chunk), image=[img.crop(b) for b in chunk],
                       num_inference_steps=n, guidance_scale=guidance_scale, noise_level=int(noise_level),
                       negative_prompt=None if negative_prompt is None else [negative_prompt] * len(chunk),
                       generator=[_generator(seed) for _ in chunk], callback=counter.legacy, callback_steps=1)
        tiles += out.images
        steps = counter.steps
    if len(boxes) == 1:
        return EditResult(tiles[0], "upscale", params, seed, steps)
    # Blend overlapping tiles at 4x: weighted average with linear fades in the overlaps.
    acc = np.zeros((4 * h, 4 * w, 3), dtype=np.float64)
    weight = np.zeros((4 * h, 4 * w, 1), dtype=np.float64)
    fade = 4 * overlap
    for (x0, y0, x1, y1), t in zip(boxes, tiles):
        wx = _ramp(4 * (x1 - x0), fade, x0 > 0, x1 < w)
        wy = _ramp(4 * (y1 - y0), fade, y0 > 0, y1 < h)
        wt = (wy[:, None] * wx[None, :])[..., None]
        acc[4 * y0:4 * y1, 4 * x0:4 * x1] += wt * np.asarray(t, dtype=np.float64)
        weight[4 * y0:4 * y1, 4 * x0:4 * x1] += wt
    merged = np.clip(np.round(acc / weight), 0, 255).astype(np.uint8)
    params["tiles"] = len(boxes)
    return EditResult(Image.fromarray(merged), "upscale", params, seed, steps)


# --------------------------------------------------------------------------- practical pipeline
def edit_region(pipe, image, bbox: Sequence[int], prompt: str, edit_type: str = "replace",
                feather: float = 4, num_inference_steps: int | None = None, guidance_scale: float = 7.5,
                seed: int = 0, out_dir: str | Path | None = None,
                log: "OperationLog | None" = None) -> EditResult:
    """The practical editing pipeline in one call: box -> mask -> feathered seam ->
    suggested strength for the kind of edit -> inpaint -> saved file + log entry."""
    img = prepare_image(image)
    mask = mask_from_bbox(img.size, bbox)
    strength = suggest_strength(edit_type)
    result = inpaint(pipe, img, mask, prompt, strength=strength, num_inference_steps=num_inference_steps,
                     guidance_scale=guidance_scale, seed=seed, feather=feather)
    result.operation = "edit_region"
    result.params.update(bbox=[int(v) for v in bbox], edit_type=edit_type)
    if out_dir is not None:
        save_result(result, out_dir, prompt, log=log)
    elif log is not None:
        log.add(result)
    return result


# --------------------------------------------------------------------------- files and log
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def safe_filename(text: str, max_length: int = 60, default: str = "edit") -> str:
    """A file-name stem from free text: ASCII letters, digits and '-', at most ``max_length``.

    "make it look like / a *painting*" -> "make-it-look-like-a-painting". No path
    separators, no leading dots, never empty, never a reserved Windows device name.
    """
    if not isinstance(text, str):
        raise TypeError(f"Expected text for a file name, got {type(text).__name__}.")
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8, got {max_length}.")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    stem = stem[:max_length].rstrip("-") or default
    return f"{stem}-file" if stem in _RESERVED else stem


def save_image(image: Image.Image, folder: str | Path, name: str, max_length: int = 60) -> Path:
    """Save ``image`` as PNG under a safe name made from ``name`` (a prompt or instruction);
    an existing file is never overwritten: "-2", "-3" ... are added instead."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return write_unique(folder, safe_filename(name, max_length), ".png", buf.getvalue())


def save_result(result: EditResult, folder: str | Path, name: str | None = None,
                log: "OperationLog | None" = None) -> Path:
    """Save an edit's image (named after ``name`` or its prompt) and log it if a log is given."""
    name = name or result.params.get("instruction") or result.params.get("prompt") or result.operation
    path = save_image(result.image, folder, name)
    result.output_file = str(path)
    if log is not None:
        log.add(result)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


class OperationLog:
    """A JSON-lines file with one entry per edit: operation, parameters, seed, output file.

    Each append rewrites the file through a temporary file and ``os.replace``, so the
    log is always whole: a crash leaves the old version, never a torn line.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def record(self, operation: str, parameters: dict, seed: int | None, output_file=None, **extra) -> dict:
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "operation": operation, "parameters": _jsonable(parameters), "seed": seed,
                 "output_file": None if output_file is None else str(output_file), **_jsonable(extra)}
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self.path.read_bytes() if self.path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(old + line)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return entry

    def add(self, result: EditResult) -> dict:
        return self.record(result.operation, result.params, result.seed, result.output_file,
                           steps_run=result.steps_run)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"Line {number} of the operation log {self.path} is not valid JSON "
                                     f"({err.msg}); fix or remove that line.") from None
        return entries

    def __len__(self) -> int:
        return len(self.read())


# --------------------------------------------------------------------------- figures
def show_edit(original: Image.Image, *results: EditResult | Image.Image, titles: Sequence[str] | None = None,
              title: str | None = None):
    """Original and edits side by side (titles default to each edit's prompt)."""
    from .figures import side_by_side

    images = [original] + [r.image if isinstance(r, EditResult) else r for r in results]
    if titles is None:
        titles = ["original"] + [_short_title(r) for r in results]
    return side_by_side(images, titles, title=title)


def _short_title(result) -> str:
    if not isinstance(result, EditResult):
        return "edited"
    text = result.params.get("instruction") or result.params.get("prompt") or result.operation
    return text if len(text) <= 28 else text[:26] + "..."


def sweep_figure(original: Image.Image, results: Sequence[EditResult]):
    """The strength sweep: input, then one panel per strength with the steps that ran."""
    from .figures import side_by_side

    titles = ["input"] + [f"strength {r.params['strength']:.1f}\n{r.steps_run} of "
                          f"{r.params['num_inference_steps']} steps" for r in results]
    return side_by_side([original] + [r.image for r in results], titles, cell=2.6)


def grid_figure(grid: Sequence[Sequence[EditResult]], cell: float = 2.2):
    """The InstructPix2Pix guidance grid: rows image_guidance_scale, columns guidance_scale."""
    import matplotlib.pyplot as plt

    rows, cols = len(grid), len(grid[0])
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + 1, cell * rows), squeeze=False)
    for i, row in enumerate(grid):
        for j, res in enumerate(row):
            ax = axes[i][j]
            ax.imshow(np.asarray(res.image))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"guidance_scale {res.params['guidance_scale']:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"image_guidance\n{res.params['image_guidance_scale']:g}", fontsize=9)
    fig.suptitle(f"“{grid[0][0].params['instruction']}”: text strength →, image stability ↓")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- widget panel
class InstructPanel:
    """An ipywidgets panel for InstructPix2Pix: instruction, both scales, steps, seed.

    ``display(panel.widget)`` shows it; the Edit button calls :meth:`run`, which can
    also be called directly (that is how it is tested without a browser).
    """

    def __init__(self, pipe, image, instruction: str = "make it look like a watercolor painting",
                 image_guidance_scale: float = IMAGE_STABILITY, guidance_scale: float = TEXT_STRENGTH,
                 num_inference_steps: int | None = None, seed: int = 0, display_size: int = 256):
        import ipywidgets as w

        self.pipe = pipe
        self.image = prepare_image(image)
        steps = _default_steps(num_inference_steps, 8, PIX2PIX_STEPS)
        style = {"description_width": "160px"}
        layout = w.Layout(width="480px")
        self.instruction = w.Text(value=instruction, description="instruction", style=style, layout=layout)
        self.image_guidance_scale = w.FloatSlider(value=image_guidance_scale, min=1.0, max=5.0, step=0.1,
                                                  description="IMAGE_STABILITY", style=style, layout=layout)
        self.guidance_scale = w.FloatSlider(value=guidance_scale, min=1.0, max=20.0, step=0.5,
                                            description="TEXT_STRENGTH", style=style, layout=layout)
        self.steps = w.IntSlider(value=steps, min=1, max=100, description="num_inference_steps",
                                 style=style, layout=layout)
        self.seed = w.IntText(value=seed, description="seed", style=style)
        self.button = w.Button(description="Edit", button_style="primary")
        self.status = w.Label(value="Press Edit to run.")
        self.original = w.Image(value=self._png(self.image, display_size), format="png",
                                width=display_size, height=display_size)
        self.output = w.Image(format="png", width=display_size, height=display_size)
        self.display_size = display_size
        self.result: EditResult | None = None
        self.button.on_click(self.run)
        self.widget = w.VBox([self.instruction, self.image_guidance_scale, self.guidance_scale,
                              self.steps, self.seed, w.HBox([self.button, self.status]),
                              w.HBox([self.original, self.output])])

    @staticmethod
    def _png(image: Image.Image, size: int) -> bytes:
        buf = io.BytesIO()
        image.resize((size, size * image.height // image.width), Image.NEAREST).save(buf, format="PNG")
        return buf.getvalue()

    def run(self, _button=None) -> EditResult | None:
        """Edit with the current widget values; show the result (or the error) in the panel."""
        self.status.value = "editing..."
        try:
            self.result = instruct_edit(self.pipe, self.image, self.instruction.value,
                                        self.image_guidance_scale.value, self.guidance_scale.value,
                                        self.steps.value, self.seed.value)
        except (ValueError, TypeError) as err:
            self.status.value = f"Not run: {err}"
            return None
        self.output.value = self._png(self.result.image, self.display_size)
        self.status.value = (f"done: {self.result.steps_run} steps, image_guidance_scale "
                             f"{self.image_guidance_scale.value:g}, guidance_scale {self.guidance_scale.value:g}")
        return self.result

    def _ipython_display_(self):  # lets a bare `panel` in a cell show the widget
        from IPython.display import display

        display(self.widget)
