"""Instructor and maintainer tools of the course (not part of the student install).

    python -m course_tools.exercises   generate exercises/ from solutions/ (or --check it)
    python -m course_tools.grading     grade a folder of submitted notebooks in a bubblewrap sandbox
    python -m course_tools.course      run every lesson notebook and write an HTML index and the course site
    python -m course_tools.site        (re)build a run's course site, --check opens it in headless Chromium

They live in the repository beside ``lessons_lib`` and are run from a checkout; their
folders default to the checkout that holds the current directory (or, failing that, the
one these files are in) and every folder can be given as a flag.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["repo_root"]

_HERE = Path(__file__).resolve().parents[1]


def repo_root(start: Path | str | None = None) -> Path:
    """The course checkout: the nearest folder at or above ``start`` (default: the current
    directory) that holds ``solutions/`` and ``lessons_lib/``; else the checkout of this package."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "lessons_lib").is_dir():
            return folder
    return _HERE
