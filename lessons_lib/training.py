"""One training loop for every model in the course: supervised, GAN, VAE and diffusion.

A :class:`Task` holds the models and their optimizers and says what one training
step is; :func:`fit` runs the epochs around it: progress bars, loss history,
checkpoints, resume, and a clear stop when the loss or the weights diverge. It runs on a
Hugging Face ``accelerate.Accelerator``: the device, mixed precision (``fp16`` on CUDA,
``bf16`` on the CPU or GPU), gradient accumulation and clipping are Accelerate's, and the
same call trains on one CPU or on several GPUs or machines when the script is started with
``accelerate launch`` (or a notebook function with ``accelerate.notebook_launcher``). Usage::

    from lessons_lib import training

    task = training.SupervisedTask(model, lr=1e-3)            # MSE on (input, target)
    history = training.fit(task, train_loader, epochs=10, val_loader=val_loader,
                           ckpt_dir="outputs/unet")          # resumes if run again
    history["train_loss"], history["val_loss"]               # one value per epoch

Writing a task of your own (a GAN does both of its updates inside one step)::

    class MyGAN(training.Task):
        def __init__(self, g, d, lr=2e-4):
            super().__init__(models={"generator": g, "discriminator": d},
                             optimizers={"generator": Adam(g.parameters(), lr),
                                         "discriminator": Adam(d.parameters(), lr)})

        def training_step(self, batch):
            x, y = batch
            fake = self.models["generator"](x)
            d_loss = ...                    # uses fake.detach()
            logs = {"d_loss": self.optimize(d_loss, "discriminator")}
            g_loss = ...
            logs["g_loss"] = self.optimize(g_loss, "generator")
            return logs                     # floats, averaged over the epoch

        def validation_step(self, batch):   # optional; runs under torch.no_grad()
            ...
            return {"loss": float(...)}

:meth:`Task.optimize` zeroes the gradients, checks that the loss is finite (a NaN or
inf loss raises :class:`TrainingDiverged` naming the epoch and step, before it can
spoil the weights), back-propagates with ``accelerator.backward`` (fp16's gradient
scaler included), averages the gradients over the processes, clips them when asked
(``accelerator.clip_grad_norm_``) and steps the optimizer. Schedulers in
``task.schedulers`` are stepped once per epoch.

Several processes (``accelerate launch --num_processes 2 ...``): each batch of the
loader is split between the processes (``split_batches``: the global batch stays the
loader's ``batch_size``, so a run on two GPUs does the same maths as on one, up to
BatchNorm's per-process statistics and the random draws), every process ends each step
with the same weights, the logged losses and validation values are averaged over all the
processes, progress bars and messages appear once, and the main process alone writes
the checkpoints.

Checkpoints (``ckpt_dir/epoch_0003.pt``, see :mod:`lessons_lib.checkpoints`) hold
everything a resumed run needs to continue exactly as an uninterrupted one would. They
are written atomically, never overwritten, bounded (``keep=2``: the two most recent and
the best by validation loss), and read back on the CPU so a run resumes on any device
and on any number of processes (see :func:`fit`).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from . import validate as V
from .checkpoints import (  # re-exported: checkpoints are part of the training API
    CHECKPOINT_FORMAT,
    History,
    atomic_save,
    best_epoch,
    checkpoint_path,
    describe_keep,
    file_size,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    prune_checkpoints,
    restore,
    save_checkpoint,
    saved_processes,
)
from .files import atomic_write_text
from .tasks import (  # re-exported: the tasks are part of the training API
    CheckpointError,
    DiffusionTask,
    SupervisedTask,
    Task,
    TrainingDiverged,
    VAETask,
    ema_update,
    kl_divergence,
    vae_loss,
)

__all__ = ["Task", "SupervisedTask", "VAETask", "DiffusionTask", "fit", "History",
           "TrainingDiverged", "CheckpointError", "checkpoint_path", "list_checkpoints",
           "latest_checkpoint", "save_checkpoint", "prune_checkpoints", "best_epoch", "load_checkpoint",
           "restore", "load_weights", "kl_divergence", "vae_loss", "ema_update", "atomic_write_text",
           "atomic_save", "CHECKPOINT_FORMAT", "KEEP", "MIXED_PRECISION", "main_process", "wait_for_main"]

#: Checkpoints fit keeps by default: the two most recent (one to fall back on should the
#: latest be damaged) and the best by validation loss. A CycleGAN checkpoint is ~350 MB.
KEEP = 2

#: What ``fit(mixed_precision=...)`` takes (Accelerate's names).
MIXED_PRECISION = ("no", "fp16", "bf16")


# --------------------------------------------------------------------------- several processes
def main_process() -> bool:
    """Whether this is the process that writes results and prints: the only one, or rank 0 under
    ``accelerate launch`` / ``notebook_launcher`` (read from the launch's environment, so asking
    sets nothing up)."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_main() -> None:
    """Under a launch, every process waits here until all arrive (e.g. while the main one tests)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


# --------------------------------------------------------------------------- the loop
def _to_device(batch, device: torch.device, channels_last: bool):
    """A batch on ``device`` (validation batches, and training on a device Accelerate does not place)."""
    if torch.is_tensor(batch):
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


class _Mean:
    """Running means of the per-step logs (kept as floats: no tensors are held)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, logs: Mapping[str, float]):
        self.n += 1
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}{k}": v / self.n for k, v in self.sums.items()} if self.n else {}

    def gathered(self, accelerator) -> "_Mean":
        """The running means of every process together (each process holds the same afterwards)."""
        if accelerator.num_processes == 1:
            return self
        from accelerate.utils import gather_object

        both = _Mean()
        for sums, n in gather_object([(self.sums, self.n)]):
            both.n += n
            for k, v in sums.items():
                both.sums[k] = both.sums.get(k, 0.0) + v
        return both


def _check_finite(logs: Mapping[str, float], epoch: int, step: int, what: str):
    for k, v in logs.items():
        if not math.isfinite(float(v)):
            raise TrainingDiverged(
                f"The {what} value '{k}' became {float(v)} at epoch {epoch}, step {step}: training "
                f"diverged and stopped. Lower the learning rate (or check the data for NaNs), then "
                f"run again; with a checkpoint folder it resumes from the last good checkpoint.")


def _asked_device(device) -> torch.device | None:
    """The device fit was asked for (None: Accelerate's choice), refused when this machine lacks it."""
    from .runtime import DeviceUnavailable

    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"fit's device must be 'cpu', 'cuda', 'cuda:0' or 'mps' (or left out to pick "
                         f"the best available), got {device!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"fit was asked to train on '{device}', but no CUDA GPU is usable here (no GPU or no "
            f"driver). Train on the CPU (device='cpu', or leave device out to pick the best "
            f"available) with LESSONS_PROFILE=fast for runs sized for a CPU; in Colab choose "
            f"Runtime > Change runtime type > T4 GPU and run the notebook again.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"fit was asked to train on '{device}', but this machine has "
                                f"{torch.cuda.device_count()} GPU(s): use 'cuda' (the first one).")
    return device


def _device_kind(asked: torch.device | None, task: Task) -> str:
    """The kind of device the run trains on: the one asked for, where the models already are, or the best."""
    from .runtime import get_device

    if asked is not None:
        return asked.type
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):  # accelerate launch --cpu
        return "cpu"
    params = [p for m in task.models.values() for p in m.parameters()]
    return params[0].device.type if params and params[0].device.type != "cpu" else get_device().type


def _precision(mixed_precision: str | None, amp: bool | None, kind: str) -> str:
    if mixed_precision is None and amp is not None:
        mixed_precision = ("fp16" if kind == "cuda" else "bf16" if kind == "cpu" else "no") if amp else "no"
    if mixed_precision is None:  # accelerate launch --mixed_precision ... / accelerate config, else fp16 on CUDA
        mixed_precision = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("fp16" if kind == "cuda" else "no")
    V.choice("mixed_precision", mixed_precision, MIXED_PRECISION)
    if mixed_precision == "fp16" and kind != "cuda":
        raise ValueError(f"mixed_precision='fp16' needs a CUDA GPU (its gradient scaler is CUDA's); this run "
                         f"trains on '{kind}'. Use mixed_precision='bf16' (amp=True) on the CPU, or 'no'.")
    return mixed_precision


def _accelerator(asked: torch.device | None, task: Task, mixed_precision, amp, accumulation: int):
    """(Accelerator, whether fit set up Accelerate's process state and should clear it afterwards).

    Accelerate keeps one state per process. Under ``accelerate launch`` (or ``notebook_launcher``)
    it is the launch's; in a plain process fit sets it up for the run and clears it at the end,
    so the next run may change device or precision and a notebook may still call
    ``notebook_launcher`` afterwards (which refuses a process whose state is set)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DataLoaderConfiguration

    kind = _device_kind(asked, task)
    precision = _precision(mixed_precision, amp, kind)
    placed = kind in ("cpu", "cuda", "mps")  # elsewhere ('meta', ...) fit places the models itself
    cpu = kind == "cpu" or not placed
    fresh = not PartialState._shared_state
    single = PartialState._shared_state.get("num_processes", 1) == 1
    if AcceleratorState._shared_state:
        state = AcceleratorState()
        if state.mixed_precision != precision or (single and state.device.type != ("cpu" if cpu else kind)):
            # Another run's settings in this process: Accelerate's own tests clear the state so. The
            # process group of a launch (PartialState) stays; a single process may change its device.
            AcceleratorState._reset_state(reset_partial_state=single)
    accelerator = Accelerator(cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=accumulation,
                              dataloader_config=DataLoaderConfiguration(split_batches=True),
                              step_scheduler_with_optimizer=False)
    return accelerator, fresh and accelerator.num_processes == 1


def _release(task: Task, accelerator, fresh: bool) -> None:
    from accelerate.state import AcceleratorState, GradientState

    task.optimizers = {k: getattr(o, "optimizer", o) for k, o in task.optimizers.items()}
    task.accelerator = None
    if fresh:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def _on_main(accelerator, work: Callable):
    """``work()`` on the main process only (files); the others learn whether it succeeded and stop with it."""
    if accelerator.num_processes == 1:
        return work()
    from accelerate.utils import broadcast_object_list

    result, failure = None, None
    if accelerator.is_main_process:
        try:
            result = work()
        except BaseException as err:  # noqa: B036 - re-raised below, after telling the others
            failure = err
    said = broadcast_object_list([None if failure is None else f"{type(failure).__name__}: {failure}"])[0]
    if failure is not None:
        raise failure
    if said is not None:
        raise RuntimeError(f"The main process stopped the run while writing the checkpoint or history: {said}")
    return result


def _average_buffers(task: Task, accelerator) -> None:
    """BatchNorm's running statistics averaged over the processes: one model everywhere, as saved."""
    if accelerator.num_processes == 1:
        return
    buffers = [b for m in task.models.values() for b in m.buffers() if b.is_floating_point()]
    if buffers:
        flat = accelerator.reduce(torch.cat([b.detach().reshape(-1).float() for b in buffers]), "mean")
        for b, v in zip(buffers, flat.split([b.numel() for b in buffers])):
            b.copy_(v.view_as(b))


def _same_start(task: Task, accelerator) -> None:
    """A fresh run starts every process from the main process's weights (what DDP does)."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import broadcast

    tensors = [t for m in task.models.values() for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    if tensors:
        with torch.no_grad():
            flat = broadcast(torch.cat([t.detach().reshape(-1).float() for t in tensors]), from_process=0)
            for t, v in zip(tensors, flat.split([t.numel() for t in tensors])):
                t.copy_(v.view_as(t))


def _own_random_stream(process: int) -> None:
    """Process ``process`` > 0 draws other dropout masks and noise than the main process: its
    generators are seeded from the main process's state and its index (reproducibly)."""
    digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes() + process.to_bytes(4, "little")).digest()
    seed = int.from_bytes(digest[:8], "little") % 2**63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _check_weights(task: Task, epoch: int, step: int, ckpt_dir) -> None:
    """Refuses to save (or return) weights that hold NaN/inf though the loss was finite."""
    for name, model in task.models.items():
        tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            last = latest_checkpoint(ckpt_dir) if ckpt_dir is not None else None
            kept = (f"The checkpoints already written are kept (the last is {last.name}); run again "
                    f"with the same folder and it resumes from there with the new rate."
                    if last is not None else "Run again with the new rate.")
            raise TrainingDiverged(
                f"The weights of '{name}' became NaN or infinite at epoch {epoch}, step {step}: training "
                f"diverged and stopped, and epoch {epoch} is not saved. Lower the learning rate (a tenth, "
                f"say) or check the data for NaNs. {kept}")


def fit(task: Task, loader, epochs: int, *, val_loader=None, ckpt_dir: str | Path | None = None,
        resume: bool = True, every: int = 1, keep: int | None = KEEP,
        device: torch.device | str | None = None, amp: bool | None = None,
        channels_last: bool | None = None, steps_per_epoch: int | None = None,
        progress: bool = True, desc: str | None = None,
        on_step: Callable[[int, int, dict], None] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None,
        mixed_precision: str | None = None, gradient_accumulation_steps: int = 1,
        max_grad_norm: float | None = None) -> History:
    """Trains ``task`` for ``epochs`` epochs (in total, counting resumed ones); returns the history.

    * ``ckpt_dir``: where ``epoch_XXXX.pt`` checkpoints (every ``every`` epochs and at
      the end) and ``history.csv`` / ``history.json`` go. With ``resume`` (default) a
      run continues after the latest checkpoint there; ``resume=False`` on a folder
      that already has checkpoints is an error (nothing is overwritten). A folder that
      already holds ``epochs`` epochs loads them and trains nothing.
    * ``keep``: how many of the most recent checkpoints stay (default 2), plus the one
      with the best validation loss; older ones are deleted once a newer one is written
      whole. ``keep=None`` keeps every one.
    * ``device``: default Accelerate's (under ``accelerate launch``: each process's GPU),
      or where the task's models already are, else the best available.
    * ``mixed_precision``: ``"no"``, ``"fp16"`` (CUDA) or ``"bf16"``; default ``accelerate
      launch --mixed_precision``'s, else fp16 on CUDA and none elsewhere. ``amp=True``
      is the older spelling (fp16 on CUDA, bf16 on the CPU). ``channels_last`` defaults
      to on for CUDA.
    * ``gradient_accumulation_steps``: optimizer steps every that many batches (the
      gradients of the batches between are summed, scaled by Accelerate); ``max_grad_norm``
      clips the gradients' norm before each step (``accelerator.clip_grad_norm_``).
    * ``steps_per_epoch`` caps the batches per epoch (quick runs).
    * ``on_step(epoch, step, logs)`` / ``on_epoch(epoch, row)``: callbacks (logging,
      early stopping by raising); they run in every process.
    * A NaN/inf loss, or weights that became NaN/inf, raise :class:`TrainingDiverged`;
      the checkpoints already written stay as they are. An interruption (Ctrl-C) also
      leaves them intact.
    * Several processes: the loader's batch is the global batch, split between them (its
      ``batch_size`` must be a multiple of the process count). A checkpoint holds every
      process's random state; a run resumes on another number of processes too (the
      weights, optimizers and data order continue exactly; processes the checkpoint did
      not have draw a fresh stream seeded from the main one), but not with another
      ``gradient_accumulation_steps``, which would change the effective batch.
    """
    epochs = V.count("epochs", epochs, hint="It is how many passes over the data the run trains in all.")
    every = V.count("every (epochs between checkpoints)", every)
    V.optional_count("steps_per_epoch", steps_per_epoch,
                     hint="An epoch must train at least one batch; leave it out (None) to use every batch.")
    V.optional_count("keep", keep, hint="It is how many of the most recent checkpoints are kept (besides "
                                        "the best); keep=None keeps every one.")
    V.count("gradient_accumulation_steps", gradient_accumulation_steps,
            hint="It is how many batches add their gradients before each optimizer step; 1 steps every batch.")
    if max_grad_norm is not None:
        V.number("max_grad_norm", max_grad_norm, 0.0, low_open=True, hint="For example 1.0, or None for no clipping.")
    if ckpt_dir is not None:
        V.output_dir(ckpt_dir, "checkpoint folder")
    if len(loader) == 0:
        n, size = len(getattr(loader, "dataset", ())), getattr(loader, "batch_size", None)
        raise ValueError(f"The training loader yields no batches: it holds {n} image{'s' if n != 1 else ''}"
                         + (f", fewer than one batch of {size} (an incomplete last batch is dropped). Use a "
                            f"batch size of at most {n}, or more images." if n and size else
                            ". Give it some images."))
    n_steps = len(loader) if steps_per_epoch is None else min(steps_per_epoch, len(loader))
    if n_steps < len(loader) and n_steps % gradient_accumulation_steps:
        raise ValueError(f"steps_per_epoch {n_steps} is not a multiple of gradient_accumulation_steps "
                         f"{gradient_accumulation_steps}: the epoch would end inside an accumulation window. "
                         f"Use a multiple of {gradient_accumulation_steps}.")
    asked = _asked_device(device)
    accelerator, fresh = _accelerator(asked, task, mixed_precision, amp, gradient_accumulation_steps)
    try:
        return _fit(task, loader, epochs, accelerator, asked, n_steps, val_loader=val_loader, ckpt_dir=ckpt_dir,
                    resume=resume, every=every, keep=keep, channels_last=channels_last, progress=progress,
                    desc=desc, on_step=on_step, on_epoch=on_epoch, max_grad_norm=max_grad_norm)
    finally:
        _release(task, accelerator, fresh)


def _resume(task, loader, ckpt_dir: Path, epochs, resume, accelerator, say) -> tuple[History, int]:
    """(history, first epoch to train) after the latest checkpoint in ``ckpt_dir``, if any."""
    history, start = History(), 1
    latest = latest_checkpoint(ckpt_dir)
    if latest is not None and not resume:
        raise FileExistsError(
            f"'{ckpt_dir}' already holds checkpoints (up to {latest.name}). Pass resume=True to "
            f"continue that run, or choose an empty folder: earlier results are not overwritten.")
    if latest is None:
        return history, start
    # Read on the CPU: restore() puts the weights and optimizer state on the models'
    # device and keeps the RNG states on the CPU, where torch and NumPy need them.
    state = load_checkpoint(latest, map_location="cpu")
    saved = state.get("accelerate", {})
    accumulation = saved.get("gradient_accumulation_steps", 1)
    if accumulation != accelerator.gradient_accumulation_steps:
        raise CheckpointError(
            f"'{latest}' was trained with gradient_accumulation_steps={accumulation}; this run asks for "
            f"{accelerator.gradient_accumulation_steps}, which would change the effective batch mid-run. Pass "
            f"gradient_accumulation_steps={accumulation} to resume it, or use another folder for a new run.")
    history = restore(task, state, loader, process=accelerator.process_index)
    n_saved = saved_processes(state)
    if accelerator.process_index >= n_saved:
        _own_random_stream(accelerator.process_index)
    done = state["epoch"]
    start = done + 1
    if not accelerator.is_main_process:
        return history, start
    if done == epochs:  # a notebook cell run again: one line, whatever progress says
        print(f"Note: '{ckpt_dir}' already holds the {done} epochs asked for; nothing is trained and "
              f"the epoch-{done} weights are loaded. Ask for more epochs to train further.")
    elif done > epochs:
        print(f"Note: '{ckpt_dir}' already holds {done} epochs, more than epochs={epochs}; nothing is "
              f"trained and the epoch-{done} weights are kept. Ask for more epochs to train further, "
              f"or use another folder for a shorter run.")
    elif say:
        print(f"Resuming from {latest} (epoch {done}).")
    if n_saved != accelerator.num_processes and done < epochs:
        print(f"Note: {latest.name} was written by a run on {n_saved} process{'es' if n_saved > 1 else ''}, this "
              f"one has {accelerator.num_processes}: the weights, optimizers and data order continue exactly "
              f"(the batch of {getattr(loader, 'batch_size', '?')} is now split {accelerator.num_processes} ways), "
              f"the dropout and noise draws of the processes differ from a run that kept its process count.")
    return history, start


def _fit(task: Task, loader, epochs: int, accelerator, asked, n_steps: int, *, val_loader, ckpt_dir, resume,
         every, keep, channels_last, progress, desc, on_step, on_epoch, max_grad_norm) -> History:
    from tqdm.auto import tqdm

    main, n_proc = accelerator.is_main_process, accelerator.num_processes
    say = progress and main
    place = asked is None or (asked.type == accelerator.device.type
                              and asked.index in (None, accelerator.device.index or 0))
    if not place and n_proc > 1:
        raise ValueError(f"fit's device={str(asked)!r} clashes with this process's '{accelerator.device}' under "
                         f"accelerate launch: leave device out, Accelerate gives each process its own.")
    device = accelerator.device if place else asked
    batch_size = getattr(loader, "batch_size", None)
    if n_proc > 1 and batch_size and batch_size % n_proc:
        raise ValueError(f"The batch of {batch_size} cannot be split evenly between {n_proc} processes (each takes "
                         f"an equal share of every batch, so that the run does the same maths on any number of "
                         f"processes). Use a batch size that is a multiple of {n_proc}, e.g. "
                         f"{batch_size + n_proc - batch_size % n_proc}.")
    sharded = isinstance(loader, torch.utils.data.DataLoader)
    if not sharded and n_proc > 1:
        raise ValueError(f"Training on {n_proc} processes splits the batches of a torch DataLoader; the loader "
                         f"given is a {type(loader).__name__}. Wrap the data in a DataLoader "
                         f"(lessons_lib.data.make_loader does).")
    channels_last = device.type == "cuda" if channels_last is None else bool(channels_last)
    task.to(device, channels_last=channels_last)
    task.scaler = accelerator.scaler
    task.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)

    history, start = History(), 1
    if ckpt_dir is not None:
        ckpt_dir = Path(ckpt_dir)
        history, start = _resume(task, loader, ckpt_dir, epochs, resume, accelerator, say)
        if main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
    if start == 1 and n_proc > 1:
        _same_start(task, accelerator)
        if accelerator.process_index > 0:
            _own_random_stream(accelerator.process_index)
    task.optimizers = {k: accelerator.prepare_optimizer(o, device_placement=place) for k, o in task.optimizers.items()}
    task.accelerator = accelerator
    # Accelerate's loader: this process's share of each batch, on its device; any other iterable is used as it is.
    train = accelerator.prepare_data_loader(loader, device_placement=place) if sharded else loader
    moved = place and sharded

    label = desc or type(task).__name__
    size_said = False
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        task.train()
        running = _Mean()
        accelerator.step = 0  # accumulation windows start with the epoch (see steps_per_epoch's check)
        bar = tqdm(total=n_steps, desc=f"{label} epoch {epoch}/{epochs}", leave=False, disable=not say)
        try:
            for step, batch in enumerate(train, start=1):
                if step > n_steps:
                    break
                if step == 1:
                    task.check_batch(batch)
                task.position = (epoch, step)
                if not moved or channels_last:
                    batch = _to_device(batch, device, channels_last)
                with accelerator.accumulate(), accelerator.autocast():
                    logs = task.training_step(batch)
                if n_proc == 1:
                    _check_finite(logs, epoch, step, "training")
                running.add(logs)
                if on_step is not None:
                    on_step(epoch, step, logs)
                bar.update(1)
                if step % 10 == 0 or step == n_steps:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
        except KeyboardInterrupt:
            bar.close()
            kept = latest_checkpoint(ckpt_dir) if ckpt_dir is not None else None
            if main:
                print(f"Training interrupted at epoch {epoch}, step {task.position[1]}. "
                      + (f"The last complete checkpoint is {kept}; run again to resume from it."
                         if kept else "No checkpoint was written yet."))
            raise
        bar.close()
        if running.n == 0:  # an empty loader: never checkpoint an epoch that trained nothing
            raise ValueError(f"Epoch {epoch} trained no batch (the loader yielded nothing), so no checkpoint "
                             f"was written. Check that the dataset is not empty and yields batches.")
        means = running.gathered(accelerator).means("train_")
        if n_proc > 1:
            _check_finite(means, epoch, running.n, "training")
        _check_weights(task, epoch, running.n, ckpt_dir)
        _average_buffers(task, accelerator)
        row = {"epoch": epoch, **means}
        if val_loader is not None:
            row.update(_validate(task, val_loader, accelerator, device, channels_last, epoch))
        for s in task.schedulers.values():
            s.step()
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        if say:
            print(f"{label} epoch {epoch}/{epochs}: "
                  + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds")))
        if ckpt_dir is not None:
            path = None
            if epoch % every == 0 or epoch == epochs:
                rng = _gathered_rng(loader, accelerator)
                settings = {"gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
                            "mixed_precision": accelerator.mixed_precision}
                path = _on_main(accelerator, functools.partial(save_checkpoint, task, ckpt_dir, epoch, history,
                                                               loader, keep=keep, rng=rng, accelerate=settings))
            _on_main(accelerator, lambda: history.save(ckpt_dir))
            if path is not None and say and not size_said:  # once per run: the size decides the disk needed
                size_said = True
                print(f"Checkpoint {path.name}: {file_size(path.stat().st_size)} "
                      f"({describe_keep(keep, history.rows)}).")
        if on_epoch is not None:
            on_epoch(epoch, row)
    return history


def _gathered_rng(loader, accelerator) -> list[dict]:
    """Every process's RNG state, in process order (the main process writes them all)."""
    from .checkpoints import _rng_state

    if accelerator.num_processes == 1:
        return [_rng_state(loader)]
    from accelerate.utils import gather_object

    return gather_object([_rng_state(loader)])


@torch.no_grad()
def _validate(task: Task, loader, accelerator, device, channels_last, epoch: int) -> dict:
    """Validation values averaged over the batches; with several processes each takes every n-th
    whole batch, so the average is the one a single process computes."""
    task.eval()
    # Validation must not move the training RNG (noise draws in diffusion/VAE tasks),
    # or a run with validation would differ from one without.
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    running, quiet = _Mean(), False
    n, rank = accelerator.num_processes, accelerator.process_index
    try:
        for step, batch in enumerate(itertools.islice(loader, rank, None, n), start=1):
            if step == 1:
                task.check_batch(batch, "validation loader")
            with accelerator.autocast():
                logs = task.validation_step(_to_device(batch, device, channels_last))
            if logs is None:
                quiet = True
                break
            if n == 1:
                _check_finite(logs, epoch, step, "validation")
            running.add(logs)
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        task.train()
    if n > 1:
        from accelerate.utils import gather_object

        quiet = any(gather_object([quiet]))
    if quiet:
        return {}
    means = running.gathered(accelerator).means("val_")
    if n > 1:
        _check_finite(means, epoch, running.n, "validation")
    return means
