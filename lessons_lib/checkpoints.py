"""Checkpoints of :func:`lessons_lib.training.fit`: writing, pruning, reading and resuming.

A checkpoint (``ckpt_dir/epoch_0003.pt``) holds every model, optimizer, scheduler and
the gradient scaler, the epoch, the history and the RNG state (Python, NumPy, torch,
CUDA and the DataLoader's shuffling generator) of every process of the run, so a resumed
run continues exactly as an uninterrupted one would. Only the main process writes it, to
a temporary file renamed into place, so a crash never leaves half a checkpoint, and an
existing checkpoint is never overwritten.

Checkpoints are bounded: ``keep=2`` keeps the two most recent and the one with the
best (lowest) validation loss, deleting older ones only once the new one is written
whole; ``keep=None`` keeps every one. Resuming always starts from the most recent.

Everything is read on the CPU and then put where it belongs: the weights and the
optimizer state into the task's models (on the training device), the RNG states into
the CPU generators that need CPU tensors, whatever device the run trains on.
:mod:`lessons_lib.training` re-exports all of this.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from . import validate as V
from .files import atomic_write, atomic_write_text
from .tasks import CheckpointError, Task

__all__ = ["History", "CheckpointError", "checkpoint_path", "list_checkpoints", "latest_checkpoint",
           "save_checkpoint", "prune_checkpoints", "load_checkpoint", "restore", "load_weights",
           "atomic_save", "best_epoch", "describe_keep", "file_size", "saved_processes"]

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


def file_size(n_bytes: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""  # unreachable


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
        # Pruning deletes older epochs as training goes on: say so rather than leave a
        # student looking for the file.
        pruned = (f" Training keeps only the most recent checkpoints and the one with the best "
                  f"validation loss, deleting older ones as it goes, so epoch {epoch} is no longer there."
                  if epoch < max(found) else "")
        raise CheckpointError(
            f"No checkpoint for epoch {epoch} in '{ckpt_dir}'; saved epochs: "
            f"{', '.join(map(str, found))}.{pruned} Pick one of those.")
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
    # Every RNG state is a CPU ByteTensor, even CUDA's: .cpu() in case the checkpoint
    # was read onto the training device (torch.load(map_location="cuda")).
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different number of GPUs now
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    for g, s in zip(_generators(loader), state.get("loader", [])):
        g.set_state(s.cpu())


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


# --------------------------------------------------------------------------- keeping a few
def _val_metric(rows: list[Mapping]) -> str | None:
    """The validation value that ranks epochs: val_loss, else the first val_* logged."""
    keys = [k for r in rows for k in r if k.startswith("val_")]
    return "val_loss" if "val_loss" in keys else (keys[0] if keys else None)


def best_epoch(rows: Iterable[Mapping], among: Iterable[int] | None = None) -> int | None:
    """The epoch (of ``among``, default any) with the lowest validation loss; None without validation.

    Every validation value the course's tasks log is a loss (lower is better).
    """
    rows = list(rows)
    metric = _val_metric(rows)
    allowed = None if among is None else set(among)
    scored = [(float(r[metric]), int(r["epoch"])) for r in rows
              if metric in r and math.isfinite(float(r[metric]))
              and (allowed is None or int(r["epoch"]) in allowed)]
    return min(scored)[1] if scored else None


def describe_keep(keep: int | None, rows: list[Mapping]) -> str:
    """What pruning keeps, in words, for the progress line."""
    if keep is None:
        return "every checkpoint is kept (keep=None)"
    metric = _val_metric(rows)
    last = "the last one" if keep == 1 else f"the last {keep}"
    best = f" and the best by {metric}" if metric else ""
    return f"{last}{best} are kept, older ones deleted"


def prune_checkpoints(ckpt_dir: str | Path, keep: int, rows: Iterable[Mapping] = ()) -> list[int]:
    """Deletes all but the ``keep`` most recent checkpoints and the best one; returns the deleted epochs."""
    keep = V.count("keep", keep, hint="It is how many of the most recent checkpoints are kept.")
    found = list_checkpoints(ckpt_dir)
    kept = set(sorted(found)[-keep:])
    best = best_epoch(rows, among=found)
    if best is not None:
        kept.add(best)
    deleted = []
    for epoch, path in found.items():
        if epoch not in kept:
            with contextlib.suppress(FileNotFoundError):  # already gone: nothing to free
                path.unlink()
            deleted.append(epoch)
    return deleted


# --------------------------------------------------------------------------- save / restore
def save_checkpoint(task: Task, ckpt_dir: str | Path, epoch: int, history: History | None = None,
                    loader=None, keep: int | None = None, rng: list[dict] | None = None,
                    accelerate: dict | None = None) -> Path:
    """Writes ``ckpt_dir/epoch_XXXX.pt`` atomically; never replaces an existing one.

    With ``keep`` (a count) the older checkpoints beyond the ``keep`` most recent and
    the best are deleted, only after the new one is written whole. ``rng``: the RNG
    states of every process of a run on several (default: this process's);
    ``accelerate``: the run's process count and settings, checked on resume.
    """
    if keep is not None:
        keep = V.count("keep", keep, hint="It is how many of the most recent checkpoints are kept "
                                          "(None keeps all).")
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "task_state": task.state_dict(),
        "history": list(history.rows) if history is not None else [],
    }
    rng = rng or [_rng_state(loader)]
    state["rng"] = rng[0]  # the main process's, where a single-process run looks
    if len(rng) > 1:
        state["rng_processes"] = list(rng)
    state["accelerate"] = dict(accelerate or {}, processes=len(rng))
    path = checkpoint_path(ckpt_dir, epoch)
    earlier = [e for e in list_checkpoints(ckpt_dir) if e != epoch]
    kept = (f"the earlier checkpoints (up to {checkpoint_path(ckpt_dir, max(earlier)).name})" if earlier
            else "")
    with V.writing(path, kept):
        atomic_save(state, path)
    if keep is not None:
        prune_checkpoints(ckpt_dir, keep, state["history"])
    return path


def _base_lrs(task: Task) -> list[list[float]]:
    """Each optimizer group's learning rate as constructed (before any schedule)."""
    return [[g.get("initial_lr", g["lr"]) for g in o.param_groups] for o in task.optimizers.values()]


def saved_processes(state: dict) -> int:
    """How many processes trained the run a checkpoint comes from (1 for checkpoints before Accelerate)."""
    return len(state.get("rng_processes") or [state["rng"]])


def restore(task: Task, state: dict, loader=None, process: int = 0) -> History:
    """Puts a checkpoint's models, optimizers and RNG state back; returns its history.

    ``process``: this process's index in a run on several. It gets its own saved RNG
    state; a process the checkpoint's run did not have gets the main process's (and
    :func:`lessons_lib.training.fit` then reseeds it). The data order is the main
    process's whatever the process count.

    The state may be read on the CPU (what :func:`fit` does): the weights and the optimizer
    state land on the device of the task's models, the RNG states stay on the CPU.

    A learning rate changed since the checkpoint (e.g. lowered after a divergence) is
    kept, with one line saying so: the optimizer state alone would bring back the old one.
    """
    asked = _base_lrs(task)
    task.load_state_dict(state["task_state"])
    _keep_new_learning_rates(task, asked)
    states = state.get("rng_processes") or [state["rng"]]
    own = dict(states[process] if process < len(states) else states[0])
    own["loader"] = states[0].get("loader", [])
    _set_rng_state(own, loader)
    return History(state.get("history", []))


def _keep_new_learning_rates(task: Task, asked: list[list[float]]) -> None:
    saved = _base_lrs(task)
    for (name, opt), new_lrs, old_lrs in zip(task.optimizers.items(), asked, saved):
        if len(new_lrs) != len(old_lrs) or all(math.isclose(a, b) for a, b in zip(new_lrs, old_lrs)):
            continue
        for i, (group, new, old) in enumerate(zip(opt.param_groups, new_lrs, old_lrs)):
            group["lr"] = group["lr"] * new / old if old else new  # keeps the schedule's factor
            if "initial_lr" in group:
                group["initial_lr"] = new
            for s in task.schedulers.values():
                if getattr(s, "optimizer", None) is opt and i < len(getattr(s, "base_lrs", [])):
                    s.base_lrs[i] = new
                    if i < len(getattr(s, "_last_lr", [])):
                        s._last_lr[i] = group["lr"]
        print(f"Note: optimizer '{name}' resumes with learning rate {', '.join(f'{v:g}' for v in new_lrs)} "
              f"as asked (the checkpoint trained with {', '.join(f'{v:g}' for v in old_lrs)}).")
