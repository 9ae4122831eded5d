"""InstructPix2Pix: many instructions through one loaded pipeline, and the guidance grid.

The two knobs are named for what they do: ``IMAGE_STABILITY`` is diffusers'
``image_guidance_scale`` (how closely the edit sticks to the input image) and
``TEXT_STRENGTH`` its ``guidance_scale`` (how strongly the instruction is followed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import validate
from .checks import (
    check_prompt,
    check_prompts,
    check_scale,
    default_steps,
    prepare_image,
    require_pipeline,
)
from .oplog import OperationLog, check_destination, save_result
from .running import EditResult, StepCounter, generator, memory_advice, model_name

__all__ = ["IMAGE_STABILITY", "TEXT_STRENGTH", "PIX2PIX_STEPS", "instruct_edits", "instruct_edit",
           "guidance_grid"]

IMAGE_STABILITY = 2.0   # image_guidance_scale: how closely the edit sticks to the input image
TEXT_STRENGTH = 10.0    # guidance_scale: how strongly the instruction is followed
PIX2PIX_STEPS = 40


def instruct_edits(pipe, image, instructions: Sequence[str], image_guidance_scale: float = IMAGE_STABILITY,
                   guidance_scale: float = TEXT_STRENGTH, num_inference_steps: int | None = None,
                   seed: int = 0, batch_size: int = 4, max_side: int | None = None,
                   out_dir: str | Path | None = None, log: OperationLog | None = None) -> list[EditResult]:
    """Apply each instruction to ``image`` with one loaded pipeline, ``batch_size`` at a time.

    Every instruction gets the same seed, so the instructions are the only difference
    between the results. With ``out_dir`` each result is saved under a file name made
    from its instruction (never overwriting) and, with ``log``, recorded there.
    """
    from tqdm.auto import tqdm

    require_pipeline(pipe, "instruct-pix2pix", "instruct_edits")
    instructions = check_prompts(instructions, "instruction")
    for i, text in enumerate(instructions):
        if not text.strip():
            raise ValueError(f"Instruction {i + 1} is empty; write what to change, e.g. "
                             "'make it a watercolor painting'.")
    image_guidance_scale = check_scale("image_guidance_scale", image_guidance_scale)
    guidance_scale = check_scale("guidance_scale", guidance_scale)
    n = default_steps(num_inference_steps, 8, PIX2PIX_STEPS)
    seed = validate.seed("seed", seed)
    batch_size = validate.count("batch_size", batch_size, counts="images edited per pipeline call",
                                hint="Try 1 to 4 (lower it when the GPU runs out of memory).")
    check_destination(out_dir, log)
    img = prepare_image(image, max_side, pipe=pipe)
    results: list[EditResult] = []
    batches = range(0, len(instructions), batch_size)
    for start in tqdm(batches, desc="instructions", disable=len(batches) < 2):
        chunk = instructions[start:start + batch_size]
        counter = StepCounter()
        with memory_advice("the InstructPix2Pix edit"):
            out = pipe(prompt=chunk, image=[img] * len(chunk), num_inference_steps=n,
                       image_guidance_scale=image_guidance_scale, guidance_scale=guidance_scale,
                       generator=[generator(seed) for _ in chunk], callback_on_step_end=counter)
        for text, edited in zip(chunk, out.images, strict=True):
            params = {"instruction": text, "image_guidance_scale": image_guidance_scale,
                      "guidance_scale": guidance_scale, "num_inference_steps": n,
                      "size": list(img.size), "model": model_name(pipe)}
            result = EditResult(edited, "instruct-pix2pix", params, seed, counter.steps)
            if out_dir is not None:
                save_result(result, out_dir, text, log=log)
            elif log is not None:
                log.add(result)
            results.append(result)
    return results


def instruct_edit(pipe, image, instruction: str, image_guidance_scale: float = IMAGE_STABILITY,
                  guidance_scale: float = TEXT_STRENGTH, num_inference_steps: int | None = None,
                  seed: int = 0, max_side: int | None = None) -> EditResult:
    """One InstructPix2Pix edit ("make it snowy"): see :func:`instruct_edits`."""
    if isinstance(instruction, (list, tuple)):
        raise TypeError(f"instruction must be one text, got a {type(instruction).__name__} of "
                        f"{len(instruction)}; use instruct_edits(pipe, image, instructions) for a list.")
    check_prompt(instruction, "instruction", "'make it snowy'", empty_ok=False)
    return instruct_edits(pipe, image, [instruction], image_guidance_scale, guidance_scale,
                          num_inference_steps, seed, 1, max_side)[0]


def guidance_grid(pipe, image, instruction: str, image_guidance_scales: Sequence[float] = (1.0, 1.5, 2.0),
                  guidance_scales: Sequence[float] = (5.0, 7.5, 10.0), num_inference_steps: int | None = None,
                  seed: int = 0, max_side: int | None = None) -> list[list[EditResult]]:
    """grid[i][j]: the edit at image_guidance_scales[i] and guidance_scales[j] (same seed)."""
    from tqdm.auto import tqdm

    require_pipeline(pipe, "instruct-pix2pix", "guidance_grid")
    rows = validate.number_list("image_guidance_scales", image_guidance_scales,
                                lambda v: check_scale("image_guidance_scale", v), "(1.0, 1.5, 2.0)",
                                "For one value call instruct_edit.")
    cols = validate.number_list("guidance_scales", guidance_scales, lambda v: check_scale("guidance_scale", v),
                                "(5.0, 7.5, 10.0)", "For one value call instruct_edit.")
    check_prompt(instruction, "instruction", "'make it snowy'", empty_ok=False)
    if not instruction.strip():
        raise ValueError("The instruction is empty; write what to change, e.g. 'make it a watercolor painting'.")
    default_steps(num_inference_steps, 8, PIX2PIX_STEPS)
    validate.seed("seed", seed)
    img = prepare_image(image, max_side, pipe=pipe)
    cells = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    grid = [[None] * len(cols) for _ in rows]
    # The scales are scalars of the pipeline call, so each cell is its own call.
    for i, j in tqdm(cells, desc="guidance grid"):
        grid[i][j] = instruct_edit(pipe, img, instruction, rows[i], cols[j], num_inference_steps, seed)
    return grid
