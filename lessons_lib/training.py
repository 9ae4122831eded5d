"""One training loop for every model in the course: supervised, GAN, VAE and diffusion.

A :class:`Task` holds the models and their optimizers and says what one training
step is; :func:`fit` runs the epochs around it: progress bars, loss history,
checkpoints, resume, mixed precision and channels_last on CUDA (bfloat16 on the CPU when
asked), and a clear stop when the loss or the weights diverge. Usage::

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
spoil the weights), back-propagates through the AMP gradient scaler and steps the
optimizer. Schedulers in ``task.schedulers`` are stepped once per epoch.

Checkpoints (``ckpt_dir/epoch_0003.pt``, see :mod:`lessons_lib.checkpoints`) hold
everything a resumed run needs to continue exactly as an uninterrupted one would. They
are written atomically, never overwritten, bounded (``keep=2``: the two most recent and
the best by validation loss), and read back on the CPU so a run resumes on any device.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable, Mapping

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
           "atomic_save", "CHECKPOINT_FORMAT", "KEEP"]

#: Checkpoints fit keeps by default: the two most recent (one to fall back on should the
#: latest be damaged) and the best by validation loss. A CycleGAN checkpoint is ~350 MB.
KEEP = 2


# --------------------------------------------------------------------------- the loop
def _move(batch, device: torch.device, channels_last: bool):
    if torch.is_tensor(batch):
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: _move(v, device, channels_last) for k, v in batch.items()}
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


def _check_finite(logs: Mapping[str, float], epoch: int, step: int, what: str):
    for k, v in logs.items():
        if not math.isfinite(float(v)):
            raise TrainingDiverged(
                f"The {what} value '{k}' became {float(v)} at epoch {epoch}, step {step}: training "
                f"diverged and stopped. Lower the learning rate (or check the data for NaNs), then "
                f"run again; with a checkpoint folder it resumes from the last good checkpoint.")


def _training_device(device, task: Task) -> torch.device:
    """The device to train on, refused with one message when this machine does not have it."""
    from .runtime import DeviceUnavailable, get_device

    if device is None:
        # Models already placed on an accelerator stay there; otherwise the best device
        # available (a notebook that forgets device= still trains on Colab's GPU).
        params = [p for m in task.models.values() for p in m.parameters()]
        return params[0].device if params and params[0].device.type != "cpu" else get_device()
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


def _mixed_precision(device: torch.device, amp: bool):
    """(autocast factory, gradient scaler): float16 + scaling on CUDA, bfloat16 on the CPU."""
    if not amp or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext, None
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    try:
        # bfloat16 needs no scaling, but the CPU scaler runs the same code path as
        # CUDA's (scale, unscale, skip on inf, checkpointed state), so it is tested.
        scaler = torch.amp.GradScaler(device.type)
    except (AttributeError, RuntimeError, TypeError):  # a torch without the CPU scaler
        scaler = None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def _scaler_stepped(scaler) -> bool:
    """Whether an optimizer stepped through ``scaler`` since its last update: update() after
    none fails ("No inf checks were recorded"), e.g. in a GAN step that skips one update."""
    states = getattr(scaler, "_per_optimizer_states", None)
    return True if states is None else any(s.get("found_inf_per_device") for s in states.values())


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
        on_epoch: Callable[[int, dict], None] | None = None) -> History:
    """Trains ``task`` for ``epochs`` epochs (in total, counting resumed ones); returns the history.

    * ``ckpt_dir``: where ``epoch_XXXX.pt`` checkpoints (every ``every`` epochs and at
      the end) and ``history.csv`` / ``history.json`` go. With ``resume`` (default) a
      run continues after the latest checkpoint there; ``resume=False`` on a folder
      that already has checkpoints is an error (nothing is overwritten). A folder that
      already holds ``epochs`` epochs loads them and trains nothing.
    * ``keep``: how many of the most recent checkpoints stay (default 2), plus the one
      with the best validation loss; older ones are deleted once a newer one is written
      whole. ``keep=None`` keeps every one.
    * ``device``: default the device of the task's first model's parameters.
      ``amp`` (autocast + gradient scaling) and ``channels_last`` default to on for CUDA;
      ``amp=True`` on the CPU trains in bfloat16.
    * ``steps_per_epoch`` caps the batches per epoch (quick runs).
    * ``on_step(epoch, step, logs)`` / ``on_epoch(epoch, row)``: callbacks (logging,
      early stopping by raising).
    * A NaN/inf loss, or weights that became NaN/inf, raise :class:`TrainingDiverged`;
      the checkpoints already written stay as they are. An interruption (Ctrl-C) also
      leaves them intact.
    """
    from tqdm.auto import tqdm

    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}.")
    V.optional_count("steps_per_epoch", steps_per_epoch,
                     hint="An epoch must train at least one batch; leave it out (None) to use every batch.")
    V.optional_count("keep", keep, hint="It is how many of the most recent checkpoints are kept (besides "
                                        "the best); keep=None keeps every one.")
    if ckpt_dir is not None:
        V.output_dir(ckpt_dir, "checkpoint folder")
    if len(loader) == 0:
        n, size = len(getattr(loader, "dataset", ())), getattr(loader, "batch_size", None)
        raise ValueError(f"The training loader yields no batches: it holds {n} image{'s' if n != 1 else ''}"
                         + (f", fewer than one batch of {size} (an incomplete last batch is dropped). Use a "
                            f"batch size of at most {n}, or more images." if n and size else
                            ". Give it some images."))
    device = _training_device(device, task)
    cuda = device.type == "cuda"
    amp = cuda if amp is None else bool(amp)
    channels_last = cuda if channels_last is None else bool(channels_last)
    task.to(device, channels_last=channels_last)
    autocast, task.scaler = _mixed_precision(device, amp)

    history = History()
    start = 1
    if ckpt_dir is not None:
        ckpt_dir = Path(ckpt_dir)
        latest = latest_checkpoint(ckpt_dir)
        if latest is not None and not resume:
            raise FileExistsError(
                f"'{ckpt_dir}' already holds checkpoints (up to {latest.name}). Pass resume=True to "
                f"continue that run, or choose an empty folder: earlier results are not overwritten.")
        if latest is not None:
            # Read on the CPU: restore() puts the weights and optimizer state on the models'
            # device and keeps the RNG states on the CPU, where torch and NumPy need them.
            state = load_checkpoint(latest, map_location="cpu")
            history = restore(task, state, loader)
            done = state["epoch"]
            start = done + 1
            if done == epochs:  # a notebook cell run again: one line, whatever progress says
                print(f"Note: '{ckpt_dir}' already holds the {done} epochs asked for; nothing is trained and "
                      f"the epoch-{done} weights are loaded. Ask for more epochs to train further.")
            elif done > epochs:
                print(f"Note: '{ckpt_dir}' already holds {done} epochs, more than epochs={epochs}; nothing is "
                      f"trained and the epoch-{done} weights are kept. Ask for more epochs to train further, "
                      f"or use another folder for a shorter run.")
            elif progress:
                print(f"Resuming from {latest} (epoch {done}).")
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    n_steps = len(loader) if steps_per_epoch is None else min(steps_per_epoch, len(loader))
    label = desc or type(task).__name__
    size_said = False
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        task.train()
        running = _Mean()
        bar = tqdm(total=n_steps, desc=f"{label} epoch {epoch}/{epochs}", leave=False,
                   disable=not progress)
        try:
            for step, batch in enumerate(loader, start=1):
                if step > n_steps:
                    break
                if step == 1:
                    task.check_batch(batch)
                task.position = (epoch, step)
                batch = _move(batch, device, channels_last)
                with autocast():
                    logs = task.training_step(batch)
                if task.scaler is not None and _scaler_stepped(task.scaler):
                    task.scaler.update()  # once per step, after every optimizer stepped
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
            print(f"Training interrupted at epoch {epoch}, step {task.position[1]}. "
                  + (f"The last complete checkpoint is {kept}; run again to resume from it."
                     if kept else "No checkpoint was written yet."))
            raise
        bar.close()
        if running.n == 0:  # an empty loader: never checkpoint an epoch that trained nothing
            raise ValueError(f"Epoch {epoch} trained no batch (the loader yielded nothing), so no checkpoint "
                             f"was written. Check that the dataset is not empty and yields batches.")
        _check_weights(task, epoch, running.n, ckpt_dir)
        row = {"epoch": epoch, **running.means("train_")}
        if val_loader is not None:
            row.update(_validate(task, val_loader, device, channels_last, autocast, epoch))
        for s in task.schedulers.values():
            s.step()
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        if progress:
            print(f"{label} epoch {epoch}/{epochs}: "
                  + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds")))
        if ckpt_dir is not None:
            if epoch % every == 0 or epoch == epochs:
                path = save_checkpoint(task, ckpt_dir, epoch, history, loader, keep=keep)
                if progress and not size_said:  # once per run: the size decides the disk needed
                    size_said = True
                    print(f"Checkpoint {path.name}: {file_size(path.stat().st_size)} "
                          f"({describe_keep(keep, history.rows)}).")
            history.save(ckpt_dir)
        if on_epoch is not None:
            on_epoch(epoch, row)
    return history


@torch.no_grad()
def _validate(task: Task, loader, device, channels_last, autocast, epoch: int) -> dict:
    task.eval()
    # Validation must not move the training RNG (noise draws in diffusion/VAE tasks),
    # or a run with validation would differ from one without.
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    running = _Mean()
    try:
        for step, batch in enumerate(loader, start=1):
            if step == 1:
                task.check_batch(batch, "validation loader")
            with autocast():
                logs = task.validation_step(_move(batch, device, channels_last))
            if logs is None:
                return {}
            _check_finite(logs, epoch, step, "validation")
            running.add(logs)
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        task.train()
    return running.means("val_")
