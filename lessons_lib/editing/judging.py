"""What img2img did, measured on held-out photos: how far the output moved from the input, and
whether a classifier the course trained sees the prompt's class in it.

The judge is ``editing/classifier`` (course weights: a small CNN trained on the CIFAR-10
subset, its held-out accuracy in the manifest). It names one of CIFAR-10's ten classes for
any picture (resized to 32 px), so "the prompt wins" can be counted: the share of photos
the judge assigns the prompt's class, before and after the edit.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .. import course_weights
from ..data import CIFAR10_CLASSES
from ..images import pil_to_tensor
from .edits import img2img

__all__ = ["load_judge", "judge_classes", "other_classes", "prompt_for", "edit_all", "distance_to_input"]


def load_judge(device: str | torch.device | None = None):
    """The course's photo classifier (eval mode) and its held-out accuracy."""
    net, info = course_weights.load("editing/classifier", device)
    return net, float(info["metrics"]["model"])


@torch.no_grad()
def judge_classes(judge, pictures: Sequence) -> torch.Tensor:
    """The class index the judge names for each picture (PIL images or (3, H, W) tensors in [0, 1])."""
    device = next(judge.parameters()).device
    tensors = [p if torch.is_tensor(p) else pil_to_tensor(p) for p in pictures]
    # The judge sees 32 px (it resizes any size itself); pictures of several sizes are brought there first.
    batch = torch.cat([judge.to_judged_size(t[None]) for t in tensors]).to(device)
    return judge(batch).argmax(1).cpu()


def other_classes(labels: Sequence[int], shift: int = 5) -> list[int]:
    """A target class for each photo that is not its own: ``shift`` classes further along
    (5 pairs airplane with dog, cat with ship, frog with automobile ...: far apart in looks)."""
    return [(int(c) + shift) % len(CIFAR10_CLASSES) for c in labels]


def prompt_for(cls: int) -> str:
    """The caption the tiny pipeline was trained on, for class index ``cls``."""
    return f"a photo of a {CIFAR10_CLASSES[cls]}"


def edit_all(pipe, photos: Sequence, prompts: Sequence[str], strength: float, num_inference_steps: int,
             seed: int = 0, guidance_scale: float = 7.5) -> list:
    """img2img of every photo with its prompt at one strength (the same seed for each)."""
    from tqdm.auto import tqdm

    # One bar for the whole set: the pipeline's own bar (one per photo) is silenced meanwhile.
    before = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(**{**before, "disable": True})
    try:
        return [img2img(pipe, photo, prompt, strength, num_inference_steps, guidance_scale, seed=seed).image
                for photo, prompt in tqdm(list(zip(photos, prompts)), desc=f"img2img at strength {strength}",
                                          leave=False)]
    finally:
        pipe._progress_bar_config = before


def distance_to_input(photos: Sequence, edited: Sequence) -> torch.Tensor:
    """Per photo, the root-mean-square pixel difference (in [0, 1] units) between edit and input."""
    return torch.stack([(pil_to_tensor(e) - pil_to_tensor(p)).pow(2).mean().sqrt()
                        for p, e in zip(photos, edited)])
