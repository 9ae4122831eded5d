"""img2img, the strength sweep, inpainting, outpainting and the practical region edit.

Every helper takes a pipeline from :func:`load_pipeline` (refusing one of the wrong
kind), validates its input once, calls the pipeline with diffusers' own argument names
(``strength``, ``guidance_scale``, ``num_inference_steps``, ``mask_image``) and returns
an :class:`EditResult`: the image plus what is needed to reproduce it.

With ``strength`` s and n steps, img2img and inpainting start from the input noised to
step int(n * s) and run only those int(n * s) steps. Masks are in the Stable Diffusion
form here (white = repaint); :mod:`lessons_lib.masks` converts the course's keep-masks.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .. import masks as M
from .. import validate
from ..photos import open_photo
from .checks import (
    check_box,
    check_negative_prompt,
    check_prompt,
    check_prompts,
    check_scale,
    check_size,
    check_steps,
    check_strength,
    default_steps,
    prepare_image,
    prepare_mask,
    require_pipeline,
)
from .oplog import OperationLog, check_destination, save_result
from .running import EditResult, StepCounter, generator, memory_advice, model_name

__all__ = ["STRENGTHS", "SUGGESTED_STRENGTH", "steps_that_run", "img2img", "img2img_many", "strength_sweep",
           "inpaint", "outpaint", "mask_from_bbox", "feather_mask", "suggest_strength", "edit_region"]

STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)

# Starting points for img2img / inpainting strength by kind of edit (tune per image).
SUGGESTED_STRENGTH = {
    "colour": 0.3,        # recolour or relight, keep every shape and edge
    "texture": 0.45,      # change a material or surface, keep the outline
    "style": 0.6,         # repaint in another style, keep the composition
    "replace": 0.8,       # put a different object in the same place
    "new content": 1.0,   # fill from scratch (object removal, outpainting)
}


def steps_that_run(num_inference_steps: int, strength: float) -> int:
    """How many denoising steps img2img / inpainting really run: int(n * strength).

    The input is noised to the step int(n * s) steps before the end of the schedule
    and denoised from there; the earlier steps are skipped. Same formula as
    diffusers' ``get_timesteps``.
    """
    n = check_steps(num_inference_steps)
    return min(int(n * check_strength(strength)), n)


def _unchanged_if_no_steps(image: Image.Image, operation: str, params: dict, seed: int, n: int,
                           strength: float) -> EditResult | None:
    """int(n x strength) = 0 steps would run: say so and return the input as the result."""
    if steps_that_run(n, strength) > 0:
        return None
    warnings.warn(f"strength={strength} with {n} steps runs int({n} x {strength}) = 0 denoising steps, "
                  "so the image is returned unchanged. Raise strength or num_inference_steps.",
                  UserWarning, stacklevel=3)
    return EditResult(image.copy(), operation, params, seed, 0)


def _sd_arguments(prompt, strength, num_inference_steps, guidance_scale, seed, negative_prompt=None):
    """The arguments img2img and inpainting share, checked:
    (prompt, strength, steps, scale, seed, negative prompt)."""
    return (check_prompt(prompt), check_strength(strength), default_steps(num_inference_steps, 10, 50),
            check_scale("guidance_scale", guidance_scale), validate.seed("seed", seed),
            check_negative_prompt(negative_prompt))


def _check_feather(feather) -> float:
    return validate.number("feather", feather, 0, hint="It is the width of the soft seam in pixels "
                           "(0: a hard edge; 4 is a good start).")


# --------------------------------------------------------------------------- img2img
def img2img(pipe, image, prompt: str, strength: float = 0.6, num_inference_steps: int | None = None,
            guidance_scale: float = 7.5, negative_prompt: str | None = None, seed: int = 0,
            max_side: int | None = None) -> EditResult:
    """Edit ``image`` towards ``prompt``; ``strength`` is how much of it is repainted."""
    require_pipeline(pipe, "img2img", "img2img")
    prompt, strength, n, guidance_scale, seed, negative_prompt = _sd_arguments(
        prompt, strength, num_inference_steps, guidance_scale, seed, negative_prompt)
    img = prepare_image(image, max_side, pipe=pipe)
    params = {"prompt": prompt, "strength": strength, "num_inference_steps": n,
              "guidance_scale": guidance_scale, "negative_prompt": negative_prompt,
              "size": list(img.size), "model": model_name(pipe)}
    unchanged = _unchanged_if_no_steps(img, "img2img", params, seed, n, strength)
    if unchanged is not None:
        return unchanged
    counter = StepCounter()
    with memory_advice("img2img"):
        out = pipe(prompt=prompt, image=img, strength=strength, num_inference_steps=n,
                   guidance_scale=guidance_scale, negative_prompt=negative_prompt,
                   generator=generator(seed), callback_on_step_end=counter)
    return EditResult(out.images[0], "img2img", params, seed, counter.steps)


def img2img_many(pipe, images: Sequence, prompts: Sequence[str], strength: float = 0.6,
                 num_inference_steps: int | None = None, guidance_scale: float = 7.5, seed: int = 0,
                 batch_size: int = 4, max_side: int | None = None) -> list[EditResult]:
    """img2img of each image towards its own prompt, ``batch_size`` images per pipeline call;
    every image gets the same seed's noise, as one :func:`img2img` call each would give it."""
    from tqdm.auto import tqdm

    require_pipeline(pipe, "img2img", "img2img_many")
    prompts = check_prompts(prompts, "prompt")
    if len(prompts) != len(images):
        raise ValueError(f"img2img_many needs one prompt per image: got {len(images)} images and "
                         f"{len(prompts)} prompts.")
    _, strength, n, guidance_scale, seed, _ = _sd_arguments(prompts[0], strength, num_inference_steps,
                                                            guidance_scale, seed)
    batch_size = validate.count("batch_size", batch_size, counts="images edited per pipeline call",
                                hint="Try 1 to 4 on a GPU (lower it when the GPU runs out of memory).")
    prepared = [prepare_image(image, max_side, pipe=pipe) for image in images]
    results = []
    for start in tqdm(range(0, len(prepared), batch_size), desc=f"img2img at strength {strength}", leave=False):
        chunk, texts = prepared[start:start + batch_size], prompts[start:start + batch_size]
        params = [{"prompt": text, "strength": strength, "num_inference_steps": n, "guidance_scale": guidance_scale,
                   "negative_prompt": None, "size": list(img.size), "model": model_name(pipe)}
                  for img, text in zip(chunk, texts)]
        unchanged = [_unchanged_if_no_steps(img, "img2img", p, seed, n, strength) for img, p in zip(chunk, params)]
        if unchanged[0] is not None:
            results += unchanged
            continue
        counter = StepCounter()
        with memory_advice("img2img"):
            out = pipe(prompt=list(texts), image=chunk, strength=strength, num_inference_steps=n,
                       guidance_scale=guidance_scale, generator=[generator(seed) for _ in chunk],
                       callback_on_step_end=counter)
        results += [EditResult(edited, "img2img", p, seed, counter.steps) for edited, p in zip(out.images, params)]
    return results


def strength_sweep(pipe, image, prompt: str, strengths: Sequence[float] = STRENGTHS,
                   num_inference_steps: int | None = None, guidance_scale: float = 7.5,
                   seed: int = 0, max_side: int | None = None) -> list[EditResult]:
    """img2img at each strength (same seed), to see how much of the input survives."""
    from tqdm.auto import tqdm

    require_pipeline(pipe, "img2img", "strength_sweep")
    strengths = validate.number_list("strengths", strengths, check_strength,
                                     "STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)", "For one strength call img2img.")
    prompt, _, n, guidance_scale, seed, _ = _sd_arguments(prompt, strengths[0], num_inference_steps,
                                                          guidance_scale, seed)
    img = prepare_image(image, max_side, pipe=pipe)
    return [img2img(pipe, img, prompt, s, n, guidance_scale, seed=seed)
            for s in tqdm(strengths, desc="strength sweep")]


# --------------------------------------------------------------------------- masks (SD form)
def mask_from_bbox(size: tuple[int, int], bbox: Sequence[int]) -> Image.Image:
    """A Stable Diffusion mask of ``size`` (width, height, e.g. ``image.size``), white inside
    bbox = (left, top, right, bottom) in pixels, right/bottom exclusive (never fractions
    of the image: see :func:`.checks.check_box`): :func:`lessons_lib.masks.box_mask`, converted."""
    width, height = check_size(size)
    return M.to_sd_mask(M.box_mask((height, width), check_box(bbox, (width, height))))


def feather_mask(mask: Image.Image, radius: float) -> Image.Image:
    """Soften a Stable Diffusion mask's edge by a Gaussian of ``radius`` pixels (0: unchanged):
    :func:`lessons_lib.masks.feather` on the converted keep-mask."""
    if not isinstance(mask, Image.Image):
        raise TypeError(f"feather_mask softens a PIL mask image (white = repaint), got {type(mask).__name__}; "
                        "make one with mask_from_bbox(image.size, box).")
    return M.to_sd_mask(M.feather(M.from_sd_mask(mask), radius))


def suggest_strength(edit_type: str) -> float:
    """A starting strength for a kind of edit (see ``SUGGESTED_STRENGTH``)."""
    key = edit_type.strip().lower() if isinstance(edit_type, str) else edit_type
    validate.choice("edit type", key, SUGGESTED_STRENGTH)
    return SUGGESTED_STRENGTH[key]


def _paste_back(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Generated pixels where the mask is white, the original elsewhere (soft masks blend).

    The VAE cannot reproduce a photo exactly, so without this even the untouched region
    would drift; diffusers' ``image_processor.apply_overlay`` does the same.
    """
    if generated.size != original.size:
        generated = generated.resize(original.size, Image.LANCZOS)
    return Image.composite(generated, original, mask)


# --------------------------------------------------------------------------- inpainting
def inpaint(pipe, image, mask, prompt: str, strength: float = 1.0, num_inference_steps: int | None = None,
            guidance_scale: float = 7.5, negative_prompt: str | None = None, seed: int = 0,
            feather: float = 0, paste_back: bool = True, max_side: int | None = None) -> EditResult:
    """Repaint the white part of ``mask`` following ``prompt``; keep the rest.

    ``mask``: a PIL image or file (white = repaint), a NumPy array (1/True/255 = repaint)
    or a :mod:`lessons_lib.masks` keep-mask tensor (1 = keep). ``feather`` softens the
    seam (pixels); ``paste_back`` puts the original pixels back outside the mask (on by
    default: the VAE round trip alone would blur them).
    """
    require_pipeline(pipe, "inpaint", "inpaint")
    prompt, strength, n, guidance_scale, seed, negative_prompt = _sd_arguments(
        prompt, strength, num_inference_steps, guidance_scale, seed, negative_prompt)
    feather, paste_back = _check_feather(feather), validate.flag("paste_back", paste_back)
    original = open_photo(image)
    img = prepare_image(original, max_side, pipe=pipe)
    mask = prepare_mask(mask, original.size, img.size)
    soft = feather_mask(mask, feather)
    params = {"prompt": prompt, "strength": strength, "num_inference_steps": n,
              "guidance_scale": guidance_scale, "negative_prompt": negative_prompt, "feather": feather,
              "paste_back": paste_back, "size": list(img.size),
              "mask_bbox": list(mask.point(lambda v: 255 if v >= 128 else 0).getbbox() or ()),
              "model": model_name(pipe)}
    unchanged = _unchanged_if_no_steps(img, "inpaint", params, seed, n, strength)
    if unchanged is not None:
        return unchanged
    counter = StepCounter()
    with memory_advice("inpainting"):
        out = pipe(prompt=prompt, image=img, mask_image=mask, height=img.height, width=img.width,
                   strength=strength, num_inference_steps=n, guidance_scale=guidance_scale,
                   negative_prompt=negative_prompt, generator=generator(seed), callback_on_step_end=counter)
    edited = _paste_back(out.images[0], img, soft) if paste_back else out.images[0]
    return EditResult(edited, "inpaint", params, seed, counter.steps, extra={"mask": mask, "soft_mask": soft})


def outpaint(pipe, image, prompt: str, border: int | Sequence[int] = 64, overlap: int = 0,
             num_inference_steps: int | None = None, guidance_scale: float = 7.5,
             negative_prompt: str | None = None, seed: int = 0, feather: float = 0) -> EditResult:
    """Extend the canvas by ``border`` pixels (one int, or (left, top, right, bottom)) and
    let the inpainting model paint the new margin; ``overlap`` pixels of the original
    next to the margin are repainted too, to hide the seam."""
    require_pipeline(pipe, "inpaint", "outpaint")
    _sd_arguments(prompt, 1.0, num_inference_steps, guidance_scale, seed, negative_prompt)
    _check_feather(feather)
    borders = list(border) if isinstance(border, (list, tuple, np.ndarray)) else [border] * 4
    sides = "one for all four sides, or four of them (left, top, right, bottom)"
    if len(borders) != 4:
        raise ValueError(f"border must be a whole number of pixels: {sides}; got {border!r}.")
    borders = [validate.count("border", b, 0, counts="pixels", hint=f"Give {sides}.") for b in borders]
    if any(b % 8 for b in borders) or not any(borders):
        raise ValueError(f"Each border must be a multiple of 8 pixels (the VAE works on 8x8 cells) and at "
                         f"least one must be > 0; got {tuple(borders)}. Try 64 (full) or 16 (fast).")
    left, top, right, bottom = borders
    img = prepare_image(image, pipe=pipe)
    overlap = validate.count("overlap", overlap, 0, (min(img.size) - 1) // 2, counts="pixels", hint=(
        f"It must stay below half the image's shorter side ({min(img.size)} px)."))
    arr = np.asarray(img)
    # Edge-replicated fill: a neutral start that continues the image's border colours.
    canvas = np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode="edge")
    h, w = arr.shape[:2]
    kept_box = (left + (overlap if left else 0), top + (overlap if top else 0),
                left + w - (overlap if right else 0), top + h - (overlap if bottom else 0))
    keep = M.box_mask(canvas.shape[:2], kept_box)
    # box_mask marks the box as the hole; here the box is what is kept, so flip it.
    result = inpaint(pipe, Image.fromarray(canvas), M.to_sd_mask(1 - keep), prompt,
                     strength=1.0, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                     negative_prompt=negative_prompt, seed=seed, feather=feather)
    result.operation = "outpaint"
    result.params.update(border=[left, top, right, bottom], overlap=overlap, input_size=[w, h])
    return result


# --------------------------------------------------------------------------- practical pipeline
def edit_region(pipe, image, bbox: Sequence[int], prompt: str, edit_type: str = "replace",
                feather: float = 4, num_inference_steps: int | None = None, guidance_scale: float = 7.5,
                seed: int = 0, out_dir: str | Path | None = None,
                log: OperationLog | None = None) -> EditResult:
    """The practical editing pipeline in one call: box -> mask -> feathered seam ->
    suggested strength for the kind of edit -> inpaint -> saved file + log entry.

    ``bbox`` = (left, top, right, bottom) in pixels of ``image`` (right/bottom exclusive),
    never fractions: a box of fractions is refused with the pixel box it would mean.
    """
    require_pipeline(pipe, "inpaint", "edit_region")
    strength = suggest_strength(edit_type)
    _sd_arguments(prompt, strength, num_inference_steps, guidance_scale, seed)
    _check_feather(feather)
    check_destination(out_dir, log)
    img = prepare_image(image, pipe=pipe)
    box = check_box(bbox, img.size)
    mask = mask_from_bbox(img.size, box)
    result = inpaint(pipe, img, mask, prompt, strength=strength, num_inference_steps=num_inference_steps,
                     guidance_scale=guidance_scale, seed=seed, feather=feather)
    result.operation = "edit_region"
    result.params.update(bbox=list(box), edit_type=edit_type)
    if out_dir is not None:
        save_result(result, out_dir, prompt, log=log)
    elif log is not None:
        log.add(result)
    return result
