"""A notebook's work as items (a training run, a batch of sampling calls) and its row of the table."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .assumptions import (
    CUDA_CONTEXT_BYTES,
    DOWNLOAD_BYTES_PER_S,
    INSTALL_MINUTES,
    OP_SECONDS,
    PIPELINE_LOAD_MINUTES,
    RATES,
)
from .measure import Cost, TaskCost


@dataclass
class Item:
    """One piece of a notebook's work."""
    what: str
    flops: float
    ops: int
    rate: str
    memory: float = 0.0             # peak GPU bytes while it runs
    checkpoints_kept: float = 0.0   # bytes left on disk after it
    checkpoint_writing: float = 0.0  # one more checkpoint while the next is written

    @property
    def seconds(self) -> float:
        return self.flops / RATES[self.rate] + self.ops * OP_SECONDS


def training(what: str, cost: TaskCost, batch: int, steps: int, epochs: int, rate: str = "amp",
             checkpoints: bool = False, val_images: int = 0, val_batch: int = 1,
             frozen_bytes: int = 0) -> list[Item]:
    """A training run of ``steps`` steps at ``batch`` (plus validation each epoch), as items."""
    from lessons_lib.training import KEEP

    memory = cost.state_bytes + frozen_bytes + cost.step.saved * batch + CUDA_CONTEXT_BYTES
    kept = 0.0
    if checkpoints:   # fit keeps its last KEEP, and the best by validation loss when there is one
        kept = min(epochs, KEEP + (1 if val_images else 0)) * cost.checkpoint_bytes
    items = [Item(what, cost.step.flops * batch * steps, cost.step.ops * steps, rate, memory,
                  kept, cost.checkpoint_bytes if checkpoints and epochs > KEEP else 0.0)]
    if val_images:
        items.append(Item(f"{what}: validation", cost.val.flops * val_images * epochs,
                          cost.val.ops * math.ceil(val_images / val_batch) * epochs, rate))
    return items


def inference(what: str, cost: Cost, images: int, calls: int, rate: str = "fp32", memory: float = 0.0) -> Item:
    """``calls`` forward calls covering ``images`` images in all."""
    return Item(what, cost.flops * images, cost.ops * calls, rate, memory)


def batches(n: int, batch: int, drop_last: bool = False) -> int:
    """Steps of a loader over ``n`` images."""
    return n // batch if drop_last else math.ceil(n / batch)


@dataclass
class Row:
    notebook: str
    items: list[Item]
    overhead_minutes: float
    checkpoint_gb: float
    memory_gb: float

    @property
    def minutes(self) -> float:
        return sum(i.seconds for i in self.items) / 60 + self.overhead_minutes


def row(key: str, items: list[Item], download: float = 0.0, pipelines: int = 0, weights: float = 0.0) -> Row:
    """A notebook's row: its items, plus the install cell, ``download`` bytes and ``pipelines``
    pipelines loaded, whose ``weights`` stay on the GPU beside the largest item."""
    overhead = INSTALL_MINUTES + download / DOWNLOAD_BYTES_PER_S / 60 + PIPELINE_LOAD_MINUTES * pipelines
    kept = sum(i.checkpoints_kept for i in items)
    writing = max((i.checkpoint_writing for i in items), default=0.0)
    memory = max(i.memory for i in items) + weights
    return Row(key, items, overhead, (kept + writing) / 1e9, memory / 1e9)
