"""Measuring one call on the CPU or the meta device: FLOPs, dispatched operations, saved activations."""
from __future__ import annotations

import io
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from .assumptions import MEASURE_BATCH


class OpCounter(TorchDispatchMode):
    """Counts the PyTorch operations dispatched (each one a kernel launch on a GPU)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class LivePeak(TorchDispatchMode):
    """Peak bytes of tensors alive at once (no_grad inference), tracked on any device, meta included."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, n):
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            inputs = {id(a) for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor) and id(o) not in inputs:
                    n = o.untyped_storage().nbytes()
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(o, self._free, n)
        return out


def flops_and_peak(fn: Callable[[], Any]) -> tuple[float, float]:
    """(FLOPs, peak live bytes) of a forward-only ``fn()``."""
    live = LivePeak()
    with torch.no_grad(), FlopCounterMode(display=False) as flops, live:
        fn()
    return flops.get_total_flops(), live.peak


@dataclass(frozen=True)
class Cost:
    """One measured call: FLOPs and saved bytes per image, dispatched operations per call."""
    flops: float          # per image
    ops: int              # per call (independent of the batch)
    saved: float = 0.0    # activation bytes saved for backward, per image


def measure(fn: Callable[[], Any], images: int, modules=()) -> Cost:
    """FLOPs, operations and saved activations of ``fn()``, which processes ``images`` images."""
    params = {p.untyped_storage().data_ptr() for m in modules for p in m.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and t.device.type != "meta":
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    ops = OpCounter()
    with FlopCounterMode(display=False) as flops, ops, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return Cost(flops.get_total_flops() / images, ops.count, sum(saved.values()) / images)


def measure_forward(fn: Callable[[], Any], images: int = MEASURE_BATCH) -> Cost:
    """:func:`measure` without autograd: a sampling or scoring call."""
    with torch.no_grad():
        return measure(fn, images)


def measure_sampling(fn: Callable[[int], Any], steps: int, images: int = MEASURE_BATCH) -> Cost:
    """:func:`measure_forward` of a sampler ``fn(num_inference_steps)`` over ``steps`` steps, without
    running them all under the counter: the first and last steps may differ from the others, every
    step between them repeats the same calls, so ``cost(n) = cost(2) + (n - 2) (cost(3) - cost(2))``,
    exactly (tests/test_budget.py checks it against a measured run)."""
    if steps <= 3:
        return measure_forward(lambda: fn(steps), images)
    two, three = measure_forward(lambda: fn(2), images), measure_forward(lambda: fn(3), images)
    return Cost(two.flops + (steps - 2) * (three.flops - two.flops), two.ops + (steps - 2) * (three.ops - two.ops),
                max(two.saved, three.saved))


def images(n: int, size: int, channels: int = 3, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """A batch of ``n`` random images in [low, high] (always the same: FLOPs do not depend on pixels)."""
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, channels, size, size), generator=g) * (high - low) + low


def photos(n: int, size: int, channels: int = 3) -> torch.Tensor:
    """:func:`images` in [0, 1], the range at lessons_lib's interfaces."""
    return images(n, size, channels, low=0.0, high=1.0)


# --------------------------------------------------------------------------- a task's training step
@dataclass(frozen=True)
class TaskCost:
    step: Cost
    val: Cost | None
    state_bytes: int
    checkpoint_bytes: int


def _state_bytes(task) -> int:
    """GPU bytes of a task's state: every model's weights and buffers, the gradients and Adam's
    two moments of what is trained."""
    total = sum(t.numel() * t.element_size() for m in task.models.values()
                for t in (*m.parameters(), *m.buffers()))
    trained = sum(p.numel() * p.element_size() for opt in task.optimizers.values()
                  for g in opt.param_groups for p in g["params"])
    return total + 3 * trained


def _checkpoint_bytes(task) -> int:
    buf = io.BytesIO()
    torch.save(task.state_dict(), buf)
    return buf.tell()


def measure_task(make_task: Callable, make_batch: Callable[[int], Any], validate: bool = False,
                 extra_checkpoint_bytes: Callable[[Any], int] = lambda task: 0) -> TaskCost:
    """One real ``training_step`` (and ``validation_step``) of a fresh task on one image, or on
    ``MEASURE_BATCH`` where BatchNorm needs more."""
    def fresh():
        torch.manual_seed(0)
        task = make_task()
        for opt in task.optimizers.values():   # Adam's multi-tensor path, CUDA's default (not the CPU's)
            for group in opt.param_groups:
                group["foreach"] = True
        task.train()
        return task, list(task.models.values())

    task, modules = fresh()
    n = 1
    try:   # one image where the networks allow it: half the CPU time
        step = measure(lambda: task.training_step(make_batch(n)), n, modules)
    except ValueError:   # BatchNorm in training mode on a single value per channel
        task, modules = fresh()
        n = MEASURE_BATCH
        step = measure(lambda: task.training_step(make_batch(n)), n, modules)
    val = None
    if validate:
        task.eval()
        val = measure_forward(lambda: task.validation_step(make_batch(n)), n)
    return TaskCost(step, val, _state_bytes(task), _checkpoint_bytes(task) + extra_checkpoint_bytes(task))
