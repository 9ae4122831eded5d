"""Saving edits under safe, never-overwriting names, and the JSON-lines operation log."""
from __future__ import annotations

import io
import json
import re
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import append_line, write_unique

__all__ = ["safe_filename", "save_image", "save_result", "OperationLog"]

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}


def safe_filename(text: str, max_length: int = 60, default: str = "edit") -> str:
    """A file-name stem from free text: ASCII letters, digits and '-', at most ``max_length``.

    "make it look like / a *painting*" -> "make-it-look-like-a-painting". No path
    separators, no leading dots, never empty, never a reserved Windows device name.
    """
    if not isinstance(text, str):
        raise TypeError(f"Expected text for a file name, got {type(text).__name__}.")
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8, got {max_length}.")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    stem = stem[:max_length].rstrip("-") or default
    return f"{stem}-file" if stem in _RESERVED else stem


def save_image(image: Image.Image, folder: str | Path, name: str, max_length: int = 60) -> Path:
    """Save ``image`` as PNG under a safe name made from ``name`` (a prompt or instruction);
    an existing file is never overwritten: "-2", "-3" ... are added instead."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return write_unique(folder, safe_filename(name, max_length), ".png", buf.getvalue())


def save_result(result, folder: str | Path, name: str | None = None, log: OperationLog | None = None) -> Path:
    """Save an edit's image (named after ``name`` or its prompt) and log it if a log is given."""
    path = save_image(result.image, folder, name or result.label)
    result.output_file = str(path)
    if log is not None:
        log.add(result)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


class OperationLog:
    """A JSON-lines file with one entry per edit: operation, parameters, seed, output file.

    Each entry is appended as one line (:func:`lessons_lib.files.append_line`): earlier
    entries are never rewritten, and a crash can at worst cut off the line being written.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def record(self, operation: str, parameters: dict, seed: int | None, output_file=None, **extra) -> dict:
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "operation": operation, "parameters": _jsonable(parameters), "seed": seed,
                 "output_file": None if output_file is None else str(output_file), **_jsonable(extra)}
        append_line(self.path, json.dumps(entry, ensure_ascii=False))
        return entry

    def add(self, result) -> dict:
        """Log an :class:`EditResult`."""
        return self.record(result.operation, result.params, result.seed, result.output_file,
                           steps_run=result.steps_run)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"Line {number} of the operation log {self.path} is not valid JSON "
                                     f"({err.msg}); fix or remove that line.") from None
        return entries

    def __len__(self) -> int:
        return len(self.read())
