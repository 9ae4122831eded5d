"""x4 super-resolution with StableDiffusionUpscalePipeline, tiled above 128 px inputs."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .. import validate
from .checks import (
    check_negative_prompt,
    check_prompt,
    check_scale,
    default_steps,
    prepare_image,
    require_pipeline,
)
from .running import EditResult, StepCounter, generator, memory_advice, model_name

__all__ = ["UPSCALE_MAX_INPUT", "upscale"]

UPSCALE_MAX_INPUT = 128  # the x4 upscaler was trained on 128 px crops -> 512 px outputs


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
    with linear fades. Inputs too small for the UNet (8 px a side for the real upscaler,
    whose UNet halves the low-res image 3 times) are refused: see
    :func:`.checks.min_image_side`. In fp16 the pipeline decodes with its VAE upcast to
    fp32 (``vae.config.force_upcast``; the upscaler's VAE overflows in fp16).
    """
    require_pipeline(pipe, "upscale", "upscale")
    prompt = check_prompt(prompt)
    negative_prompt = check_negative_prompt(negative_prompt)
    tile = validate.flag("tile", tile)
    max_input = validate.count("max_input", max_input, counts="pixels: the longest input side upscaled in one "
                               "pass", hint=f"Try {UPSCALE_MAX_INPUT}.")
    tile_size = max_input if tile_size is None else validate.count("tile_size", tile_size, counts="pixels",
                                                                   hint=f"Try {max_input}.")
    overlap = validate.count("overlap", overlap, 0, counts="pixels", hint="A multiple of 8, e.g. 16.")
    n = default_steps(num_inference_steps, 4, 50)
    guidance_scale = check_scale("guidance_scale", guidance_scale)
    seed = validate.seed("seed", seed)
    batch_size = validate.count("batch_size", batch_size, counts="tiles upscaled per pipeline call",
                                hint="Try 1 to 4 (lower it when the GPU runs out of memory).")
    max_level = int(pipe.config.get("max_noise_level", 350))
    noise_level = validate.count("noise_level", noise_level, 0, max_level, hint="It is how much noise is added "
                                 "to the low-res input; 20 is the default.")
    img = prepare_image(image, pipe=pipe)
    w, h = img.size
    params = {"prompt": prompt, "num_inference_steps": n, "guidance_scale": guidance_scale,
              "noise_level": int(noise_level), "negative_prompt": negative_prompt,
              "size": [w, h], "tile": bool(tile), "model": model_name(pipe)}
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
        counter = StepCounter()
        with memory_advice("x4 upscaling"):
            out = pipe(prompt=[prompt] * len(chunk), image=[img.crop(b) for b in chunk],
                       num_inference_steps=n, guidance_scale=guidance_scale, noise_level=int(noise_level),
                       negative_prompt=None if negative_prompt is None else [negative_prompt] * len(chunk),
                       generator=[generator(seed) for _ in chunk], callback=counter.legacy, callback_steps=1)
        tiles += out.images
        steps = counter.steps
    if len(boxes) == 1:
        return EditResult(tiles[0], "upscale", params, seed, steps)
    # Blend overlapping tiles at 4x: weighted average with linear fades in the overlaps.
    acc = np.zeros((4 * h, 4 * w, 3), dtype=np.float64)
    weight = np.zeros((4 * h, 4 * w, 1), dtype=np.float64)
    fade = 4 * overlap
    for (x0, y0, x1, y1), t in zip(boxes, tiles, strict=True):
        wx = _ramp(4 * (x1 - x0), fade, x0 > 0, x1 < w)
        wy = _ramp(4 * (y1 - y0), fade, y0 > 0, y1 < h)
        wt = (wy[:, None] * wx[None, :])[..., None]
        acc[4 * y0:4 * y1, 4 * x0:4 * x1] += wt * np.asarray(t, dtype=np.float64)
        weight[4 * y0:4 * y1, 4 * x0:4 * x1] += wt
    merged = np.clip(np.round(acc / weight), 0, 255).astype(np.uint8)
    params["tiles"] = len(boxes)
    return EditResult(Image.fromarray(merged), "upscale", params, seed, steps)
