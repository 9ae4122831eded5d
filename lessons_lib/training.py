"""One training loop for every model in the course: supervised, GAN, VAE and diffusion.

A :class:`Task` holds the models and their optimizers and says what one training
step is; :func:`fit` runs the epochs around it: progress bars, loss history,
checkpoints, resume, mixed precision and channels_last on CUDA, and a clear stop when
the loss diverges. Usage::

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

Checkpoints (``ckpt_dir/epoch_0003.pt``) hold every model, optimizer, scheduler and
the gradient scaler, the epoch, the history and the RNG state (Python, NumPy, torch,
CUDA and the DataLoader's shuffling generator), so a resumed run continues exactly
as an uninterrupted one would. They are written to a temporary file and renamed into
place, so a crash never leaves half a checkpoint, and an existing checkpoint is never
overwritten.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from . import validate as V
from .files import atomic_write, atomic_write_text
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
           "latest_checkpoint", "save_checkpoint", "load_checkpoint", "restore", "load_weights",
           "kl_divergence", "vae_loss", "ema_update", "atomic_write_text", "atomic_save"]

CHECKPOINT_FORMAT = "lessons_lib.training/1"
_CKPT_RE = re.compile(r"^epoch_(\d+)\.pt$")


# --------------------------------------------------------------------------- files
def atomic_save(obj: Any, path: str | Path, overwrite: bool = False) -> Path:
    """``torch.save`` through a temporary file; refuses to replace an existing file."""
    return atomic_write(path, lambda fh: torch.save(obj, fh), overwrite)


def checkpoint_path(ckpt_dir: str | Path, epoch: int) -> Path:
    return Path(ckpt_dir) / f"epoch_{epoch:04d}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> dict[int, Path]:
    """{epoch: path} of the checkpoints in ``ckpt_dir`` (empty when there are none)."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    found = list_checkpoints(ckpt_dir)
    return found[max(found)] if found else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Reads a checkpoint written by :func:`fit`, with a clear message when it is damaged."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint '{path}' does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"Checkpoint '{path}' cannot be read: it is damaged or truncated, or not a checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Delete it "
            f"to fall back to the previous epoch's checkpoint, or train again.") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"'{path}' is not a lessons_lib training checkpoint (no '{CHECKPOINT_FORMAT}' marker). "
            f"Point at a folder written by lessons_lib.training.fit.")
    return state


def load_weights(task: Task, ckpt_dir: str | Path, epoch: int | None = None,
                 map_location: str | torch.device = "cpu") -> int:
    """Loads the weights saved after ``epoch`` (default: the latest) into ``task``; returns the epoch."""
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise CheckpointError(f"No checkpoints in '{ckpt_dir}'. Train first (--mode train), or "
                              f"point at the folder that holds the epoch_XXXX.pt files.")
    if epoch is None:
        epoch = max(found)
    if epoch not in found:
        raise CheckpointError(
            f"No checkpoint for epoch {epoch} in '{ckpt_dir}'; saved epochs: "
            f"{', '.join(map(str, found))}. Pick one of those.")
    state = load_checkpoint(found[epoch], map_location)
    task.load_state_dict(state["task_state"], weights_only=True)
    return epoch


# --------------------------------------------------------------------------- RNG state
def _generators(loader) -> list[torch.Generator]:
    """The torch generators that decide a DataLoader's shuffling (without duplicates)."""
    gens = []
    for owner in (loader, getattr(loader, "sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in gens):
            gens.append(g)
    return gens


def _rng_state(loader) -> dict:
    np_state = np.random.get_state()
    state = {
        "python": _py_state_to_lists(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "loader": [g.get_state() for g in _generators(loader)],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state_to_lists(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _set_rng_state(state: dict, loader) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different number of GPUs now
            torch.cuda.set_rng_state_all(state["cuda"])
    for g, s in zip(_generators(loader), state.get("loader", [])):
        g.set_state(s)


# --------------------------------------------------------------------------- history
class History(dict):
    """Per-epoch averages: ``history["train_loss"][i]`` is epoch ``history.epochs[i]``."""

    def __init__(self, rows: Iterable[Mapping[str, float]] = ()):
        super().__init__()
        self.rows: list[dict] = []
        for row in rows:
            self.append(row)

    @property
    def epochs(self) -> list[int]:
        return [int(r["epoch"]) for r in self.rows]

    def append(self, row: Mapping[str, float]) -> None:
        row = dict(row)
        self.rows.append(row)
        for k, v in row.items():
            if k not in ("epoch", "seconds"):
                self.setdefault(k, []).append(v)

    def to_csv(self) -> str:
        columns = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row)
        return buf.getvalue()

    def save(self, folder: str | Path) -> None:
        """Writes ``history.csv`` and ``history.json`` into ``folder`` (atomically)."""
        with V.writing(Path(folder) / "history.csv", "the earlier history files"):
            atomic_write_text(Path(folder) / "history.csv", self.to_csv())
            atomic_write_text(Path(folder) / "history.json", json.dumps(self.rows, indent=1))


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(task: Task, ckpt_dir: str | Path, epoch: int, history: History | None = None,
                    loader=None) -> Path:
    """Writes ``ckpt_dir/epoch_XXXX.pt`` atomically; never replaces an existing one."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "task_state": task.state_dict(),
        "history": list(history.rows) if history is not None else [],
        "rng": _rng_state(loader),
    }
    path = checkpoint_path(ckpt_dir, epoch)
    earlier = [e for e in list_checkpoints(ckpt_dir) if e != epoch]
    kept = (f"the earlier checkpoints (up to {checkpoint_path(ckpt_dir, max(earlier)).name})" if earlier
            else "")
    with V.writing(path, kept):
        return atomic_save(state, path)


def restore(task: Task, state: dict, loader=None) -> History:
    """Puts a checkpoint's models, optimizers and RNG state back; returns its history."""
    task.load_state_dict(state["task_state"])
    _set_rng_state(state["rng"], loader)
    return History(state.get("history", []))


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


def fit(task: Task, loader, epochs: int, *, val_loader=None, ckpt_dir: str | Path | None = None,
        resume: bool = True, every: int = 1, device: torch.device | str | None = None,
        amp: bool | None = None, channels_last: bool | None = None, steps_per_epoch: int | None = None,
        progress: bool = True, desc: str | None = None,
        on_step: Callable[[int, int, dict], None] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None) -> History:
    """Trains ``task`` for ``epochs`` epochs (in total, counting resumed ones); returns the history.

    * ``ckpt_dir``: where ``epoch_XXXX.pt`` checkpoints (every ``every`` epochs and at
      the end) and ``history.csv`` / ``history.json`` go. With ``resume`` (default) a
      run continues after the latest checkpoint there; ``resume=False`` on a folder
      that already has checkpoints is an error (nothing is overwritten).
    * ``device``: default the device of the task's first model's parameters.
      ``amp`` (autocast + gradient scaling) and ``channels_last`` default to on for CUDA.
    * ``steps_per_epoch`` caps the batches per epoch (quick runs).
    * ``on_step(epoch, step, logs)`` / ``on_epoch(epoch, row)``: callbacks (logging,
      early stopping by raising).
    * A NaN/inf loss raises :class:`TrainingDiverged`; the checkpoints already written
      stay as they are. An interruption (Ctrl-C) also leaves them intact.
    """
    from tqdm.auto import tqdm

    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}.")
    V.optional_count("steps_per_epoch", steps_per_epoch,
                     hint="An epoch must train at least one batch; leave it out (None) to use every batch.")
    if ckpt_dir is not None:
        V.output_dir(ckpt_dir, "checkpoint folder")
    if len(loader) == 0:
        raise ValueError("The training loader yields no batches: the dataset is empty or smaller "
                         "than one batch with drop_last=True.")
    if device is None:
        # Models already placed on an accelerator stay there; otherwise the best device
        # available (a notebook that forgets device= still trains on Colab's GPU).
        from .runtime import get_device

        params = [p for m in task.models.values() for p in m.parameters()]
        device = params[0].device if params and params[0].device.type != "cpu" else get_device()
    device = torch.device(device)
    cuda = device.type == "cuda"
    amp = cuda if amp is None else bool(amp and cuda)
    channels_last = cuda if channels_last is None else bool(channels_last)
    task.to(device, channels_last=channels_last)
    task.scaler = torch.amp.GradScaler("cuda", enabled=amp) if cuda else None
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp else contextlib.nullcontext

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
            state = load_checkpoint(latest, map_location=device)
            history = restore(task, state, loader)
            start = state["epoch"] + 1
            if progress:
                print(f"Resuming from {latest} (epoch {state['epoch']}).")
            if state["epoch"] > epochs:
                print(f"Note: '{ckpt_dir}' already holds {state['epoch']} epochs, more than epochs={epochs}; "
                      f"nothing is trained and the epoch-{state['epoch']} weights are kept. Ask for more "
                      f"epochs to train further, or use another folder for a shorter run.")
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    n_steps = len(loader) if steps_per_epoch is None else min(steps_per_epoch, len(loader))
    label = desc or type(task).__name__
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
                task.position = (epoch, step)
                batch = _move(batch, device, channels_last)
                with autocast():
                    logs = task.training_step(batch)
                if task.scaler is not None:
                    task.scaler.update()
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
                save_checkpoint(task, ckpt_dir, epoch, history, loader)
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
