"""What every edit shares: the result record, the step counter, seeds and the OOM message."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from PIL import Image

__all__ = ["EditResult", "StepCounter", "generator", "memory_advice", "model_name"]


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

    @property
    def label(self) -> str:
        """The text the edit is named after: its instruction or prompt, else the operation."""
        return self.params.get("instruction") or self.params.get("prompt") or self.operation

    def record(self) -> dict:
        """The operation-log entry for this edit."""
        return {"operation": self.operation, "parameters": self.params, "seed": self.seed,
                "steps_run": self.steps_run, "output_file": self.output_file}


class StepCounter:
    """callback_on_step_end that counts the denoising steps that actually ran."""

    def __init__(self):
        self.steps = 0

    def __call__(self, pipe, step, timestep, callback_kwargs):
        self.steps += 1
        return callback_kwargs

    def legacy(self, step, timestep, latents):  # the upscaler's older ``callback`` API
        self.steps += 1


def generator(seed: int) -> torch.Generator:
    # A CPU generator gives the same noise on every device (diffusers moves it over).
    return torch.Generator("cpu").manual_seed(seed)


def model_name(pipe) -> str | None:
    return getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path")


@contextmanager
def memory_advice(what: str):
    """Turn a CUDA out-of-memory error deep inside diffusers into one message that names
    the options that help."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise RuntimeError(
            f"The GPU ran out of memory during {what}. What to do: use a smaller image (max_side=512 "
            "for SD 1.5, inputs up to 128 px for the upscaler, or tile=True), a smaller batch_size, "
            "or load the pipeline with load_pipeline(task, cpu_offload=True) (model CPU offload: "
            "slower, much less GPU memory); VAE slicing and tiling are already on. In Colab, "
            "restart the runtime to free memory held by earlier cells.") from err
