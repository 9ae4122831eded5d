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
from ..images import pil_to_tensor, pils_to_batch

__all__ = ["load_judge", "judge_classes", "other_classes", "prompt_for", "distance_to_input"]


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


def distance_to_input(photos: Sequence, edited: Sequence) -> torch.Tensor:
    """Per photo, the root-mean-square pixel difference (in [0, 1] units) between edit and input
    (pictures of one size, as a batch)."""
    return (pils_to_batch(edited) - pils_to_batch(photos)).pow(2).mean(dim=(1, 2, 3)).sqrt()
