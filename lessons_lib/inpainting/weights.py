"""Lesson 3's course weights: how to build ``inpainting/<method>`` from its manifest entry
(registered with :func:`lessons_lib.course_weights.register` when the lesson is imported),
and :func:`load_course_task`."""
from __future__ import annotations

import torch

from .. import course_weights
from .. import validate as V
from ..training import Task
from .methods import METHODS, inference_network, make_task

__all__ = ["load_course_task"]


def _course_task(name: str, state: dict, info: dict) -> Task:
    config = dict(info["config"])
    task = make_task(name.split("/", 1)[1], image_size=config.pop("image_size", 32), width=config.pop("width"),
                     **config)
    course_weights.load_into(inference_network(task), state, name)
    return task


# course_weights.load("inpainting/<method>") gives the network that inpaints; load_course_task its task.
course_weights.register("inpainting/", lambda name, state, info: inference_network(_course_task(name, state, info)))


def load_course_task(method: str, device=None) -> Task:
    """The task of ``method`` holding the course weights shipped in ``lessons_lib/weights``."""
    V.choice("inpainting method", method, METHODS)
    task = _course_task(f"inpainting/{method}", *course_weights.load_state(f"inpainting/{method}"))
    task.to(torch.device(device) if device is not None else torch.device("cpu"))
    return task.eval()
