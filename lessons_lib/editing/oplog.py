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

from .. import validate
from ..files import append_line, write_unique

__all__ = ["safe_filename", "save_image", "save_result", "OperationLog", "check_destination"]

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}


def safe_filename(text: str, max_length: int = 60, default: str = "edit") -> str:
    """A file-name stem from free text: ASCII letters, digits and '-', at most ``max_length``.

    "make it look like / a *painting*" -> "make-it-look-like-a-painting". No path
    separators, no leading dots, never empty, never a reserved Windows device name.
    """
    if not isinstance(text, str):
        raise TypeError(f"Expected text for a file name, got {type(text).__name__}.")
    max_length = validate.count("max_length", max_length, 8, hint="It counts the characters of the file name; "
                                "60 is the default.")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    stem = stem[:max_length].rstrip("-") or default
    return f"{stem}-file" if stem in _RESERVED else stem


def save_image(image: Image.Image, folder: str | Path, name: str, max_length: int = 60) -> Path:
    """Save ``image`` as PNG under a safe name made from ``name`` (a prompt or instruction);
    an existing file is never overwritten: "-2", "-3" ... are added instead."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"save_image saves a PIL image, got {type(image).__name__}; for an edit pass "
                        "result.image, or use save_result(result, folder).")
    stem = safe_filename(name, max_length)
    folder = validate.output_dir(folder, "folder to save the image in")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    with validate.writing(folder / f"{stem}.png", kept="the images saved before it"):  # read-only or full disk
        return write_unique(folder, stem, ".png", buf.getvalue())


def save_result(result, folder: str | Path, name: str | None = None, log: OperationLog | None = None) -> Path:
    """Save an edit's image (named after ``name`` or its prompt) and log it if a log is given."""
    if not hasattr(result, "image") or not hasattr(result, "record"):
        raise TypeError(f"save_result saves an EditResult (what the editing helpers return), got "
                        f"{type(result).__name__}; for a plain image use save_image(image, folder, name).")
    check_destination(folder, log)
    path = save_image(result.image, folder, name or result.label)
    result.output_file = str(path)
    if log is not None:
        log.add(result)
    return path


def check_destination(out_dir, log) -> None:
    """Before any edit runs: ``out_dir`` (None, or a folder that can be written) and ``log``
    (None or an :class:`OperationLog`), so a long batch never fails at its first save."""
    if out_dir is not None:
        validate.output_dir(out_dir, "out_dir")
    if log is not None and not isinstance(log, OperationLog):
        raise TypeError(f"log must be an OperationLog, e.g. log=OperationLog('edits.jsonl'), got "
                        f"{log!r} ({type(log).__name__}).")


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
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise TypeError(f"OperationLog needs the path of its file, e.g. OperationLog('edits.jsonl'), "
                            f"got {path!r}.")
        self.path = Path(path)

    def record(self, operation: str, parameters: dict, seed: int | None, output_file=None, **extra) -> dict:
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "operation": operation, "parameters": _jsonable(parameters), "seed": seed,
                 "output_file": None if output_file is None else str(output_file), **_jsonable(extra)}
        append_line(self.path, json.dumps(entry, ensure_ascii=False))
        return entry

    def add(self, result) -> dict:
        """Log an :class:`EditResult`."""
        if not all(hasattr(result, a) for a in ("operation", "params", "seed", "output_file", "steps_run")):
            raise TypeError(f"OperationLog.add logs an EditResult (what the editing helpers return), got "
                            f"{type(result).__name__}; log anything else with log.record(operation, parameters, "
                            "seed).")
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
