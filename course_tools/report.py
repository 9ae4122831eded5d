"""The grading results on disk: scores_long.csv, scores_wide.csv and summary.md, written safely.

* Every text cell that a spreadsheet would read as a formula (starting with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe.
* Markdown table cells escape pipes, backslashes and HTML, and never break a line.
* The three files are written into a staging folder beside them and then moved into place
  with SIGINT/SIGTERM held back, so an interrupted run leaves either the earlier set or the
  new one, never a mix or a half-written file, and no staging folder.
* Before any grading starts, the output folder is checked by really creating (and removing)
  a file there, so an unwritable folder is reported in the first second, not after the run.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import tempfile
from pathlib import Path

from lessons_lib.files import atomic_write

__all__ = ["RESULT_FILES", "LONG_COLUMNS", "csv_cell", "md_cell", "check_out_dir", "render", "commit"]

RESULT_FILES = ("scores_long.csv", "scores_wide.csv", "summary.md")
LONG_COLUMNS = ["student", "notebook", "grade_id", "points", "max_points", "status", "reason"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    text = value if isinstance(value, str) else _num(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def md_cell(value) -> str:
    text = str(value)
    for old, new in (("\\", "\\\\"), ("|", "\\|"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"),
                     ("`", "\\`"), ("*", "\\*"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(old, new)
    return " ".join(text.split())


def _num(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse earlier results (unless force) and a folder that cannot be written, before any grading."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file, not a folder; nothing was graded. Give a folder.")
    existing = [name for name in RESULT_FILES if (out_dir / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out_dir} already holds grading results ({', '.join(existing)}); nothing was "
                              "graded. Choose another --out folder, or pass --force to replace them.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".grading-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"--out {out_dir} cannot be written ({exc.strerror or exc}); nothing was "
                              f"graded. "
                              "Choose a folder you can write to.") from None


def render(rows: list[dict], students: list[str], questions: list[tuple[str, str, float]],
           summary_lines: list[str]) -> dict[str, str]:
    """The three files' text. questions: (notebook, grade_id, points) in order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LONG_COLUMNS)
    for r in rows:
        writer.writerow([csv_cell(r[c]) for c in LONG_COLUMNS])
    long_text = buf.getvalue()
    points = {(r["student"], r["grade_id"]): r["points"] for r in rows}
    max_total = sum(p for _, _, p in questions)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student"] + [csv_cell(g) for _, g, _ in questions] + ["total", "max_total"])
    for s in students:
        values = [points.get((s, g), 0.0) for _, g, _ in questions]
        writer.writerow([csv_cell(s)] + [_num(v) for v in values] + [_num(sum(values)), _num(max_total)])
    return {"scores_long.csv": long_text, "scores_wide.csv": buf.getvalue(),
            "summary.md": "\n".join(summary_lines) + "\n"}


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM back while the files are moved into place (a few renames)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def commit(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write every file to a staging folder in out_dir, then move them all into place at once."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".grading-staging-", dir=out_dir))
    try:
        for name, text in files.items():
            atomic_write(staging / name, text)
        with _signals_held():
            for name in files:
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in files]
