"""Taking in submissions safely: which files are graded, how they are read, and the prepared notebooks.

* Only regular files are read. Links (to files or folders), FIFOs, devices and sockets are
  refused with a reason and never opened (a FIFO would block, a device would never end);
  files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again after opening.
* A size cap applies before anything is parsed; JSON of any shape or nesting is rejected
  with a reason instead of an exception; the notebook is rebuilt from its cells' types and
  sources only, so odd metadata (a list as grade_id, a number as source) cannot get further.
* Any file name is accepted and shown escaped (non-UTF-8 bytes as ``\\xNN``).
* The prepared notebook restores every locked instructor cell by grade_id and replaces
  each test cell by its student form (no expected values, see ``testcells``).
"""
from __future__ import annotations

import copy
import json
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_tools.exercises import is_test_cell, nbgrader_meta, strip_hidden_tests
from course_tools.testcells import TestCell

__all__ = ["Submission", "Assignment", "display_name", "find_submissions", "read_notebook",
           "match_assignment", "prepare_notebook", "MAX_NOTEBOOK_MB"]

MAX_NOTEBOOK_MB = 20
MAX_DEPTH = 4            # folders inside a student's folder
MAX_ENTRIES = 20_000     # entries looked at in the whole submissions folder
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (grader sandbox)", "language": "python"}


@dataclass
class Assignment:
    name: str                                   # file name, e.g. ex1_vae_compression.ipynb
    path: Path
    nb: object                                  # the instructor's notebook (never enters a student sandbox)
    tests: dict[str, TestCell]                  # grade_id -> rewritten test cell, in notebook order
    points: dict[str, float]
    redact: tuple[str, ...] = ()                # solution and hidden-test lines no result may quote

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    @property
    def max_points(self) -> float:
        return sum(self.points.values())


@dataclass
class Submission:
    student: str                 # as shown in the results (escaped)
    path: Path
    loose: bool = False          # lying directly in the submissions folder
    problem: str = ""            # why it is not read ("" when it is a regular file)
    notes: list[str] = field(default_factory=list)


def display_name(name: str, limit: int = 120) -> str:
    """Any file name as printable text: undecodable bytes as \\xNN, control characters escaped."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    text = "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch
                   for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    return "" if stat.S_ISREG(mode) else "not a regular file"


def _is_notebook_name(name: str) -> bool:
    return name.lower().endswith(".ipynb") and not name.startswith(".")


def find_submissions(root: Path | str) -> list[Submission]:
    """One entry per notebook; folders are students, loose notebooks are students named after the file.
    Links and special files become entries with a ``problem`` (they are reported, never opened)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No submissions folder at {root}: give the folder that holds one "
                                "folder per student (or the students' notebooks).")
    subs: list[Submission] = []
    budget = [MAX_ENTRIES]

    def entries(folder: Path):
        try:
            with os.scandir(folder) as it:
                found = []
                for e in it:
                    budget[0] -= 1
                    if budget[0] < 0:
                        break
                    found.append(e)
        except OSError:
            return []
        return sorted(found, key=lambda e: os.fsencode(e.name))

    def walk(student: str, folder: Path, depth: int):
        for e in entries(folder):
            if e.name.startswith("."):
                continue
            try:
                mode = e.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                if depth < MAX_DEPTH:
                    walk(student, Path(e.path), depth + 1)
            elif _is_notebook_name(e.name):
                subs.append(Submission(student, Path(e.path), problem=_kind(mode)))

    for e in entries(root):
        if e.name.startswith("."):
            continue
        try:
            mode = e.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            walk(display_name(e.name), Path(e.path), 1)
        elif stat.S_ISLNK(mode) and not _is_notebook_name(e.name):
            subs.append(Submission(display_name(e.name), Path(e.path), problem="the student's folder is a "
                                   "symbolic link (links are not followed)"))
        elif _is_notebook_name(e.name):
            subs.append(Submission(display_name(e.name[: -len(".ipynb")]), Path(e.path), loose=True,
                                   problem=_kind(mode)))
    return subs


def _clean_cell(raw) -> object | None:
    """A fresh cell from a raw JSON cell: its type, source and nbgrader grade_id/solution only."""
    if not isinstance(raw, dict):
        return None
    kind, source = raw.get("cell_type"), raw.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    if kind not in ("code", "markdown", "raw") or not isinstance(source, str):
        return None
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell}[kind]
    cell = make(source)
    meta = nbgrader_meta(raw)
    gid = meta.get("grade_id")
    if isinstance(gid, str) and 0 < len(gid) <= 200:
        cell.metadata["nbgrader"] = {"grade_id": gid, "solution": meta.get("solution") is True}
    return cell


def read_notebook(path: Path, max_mb: int = MAX_NOTEBOOK_MB) -> tuple[object | None, str]:
    """(a clean notebook, "") or (None, why it cannot be graded). Never blocks, never follows links."""
    cap = max_mb * 2**20
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a symbolic link
            return None, "a symbolic link (links are not followed)"
        return None, f"cannot open the file ({exc.strerror or type(exc).__name__})"
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)
        if kind:
            return None, kind
        if info.st_size > cap:
            return None, f"the file is {info.st_size / 2**20:.0f} MB, over the {max_mb} MB limit"
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            return None, f"the file grew over the {max_mb} MB limit while it was read"
    except OSError as exc:
        return None, f"cannot read the file ({exc.strerror or type(exc).__name__})"
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        raw = json.loads(text)
    except RecursionError:
        return None, "not a notebook: the JSON is nested too deeply"
    except ValueError as exc:
        return None, f"not valid JSON ({str(exc)[:80]})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "not a notebook: the JSON has no list of cells"
    cells = [c for c in (_clean_cell(raw_cell) for raw_cell in raw["cells"][:5000]) if c is not None]
    if not any(c.cell_type == "code" for c in cells):
        return None, "the notebook has no code cells"
    return nbformat.v4.new_notebook(cells=cells), ""


def _grade_ids(nb) -> set[str]:
    ids = (nbgrader_meta(c).get("grade_id") for c in getattr(nb, "cells", []))
    return {g for g in ids if isinstance(g, str)}


def match_assignment(sub: Submission, nb, assignments: dict[str, Assignment]) -> Assignment | None:
    """By file name (also 'name (2).ipynb', 'name-Copy1.ipynb'), then by shared grade_ids."""
    name = os.fsencode(sub.path.name).decode("utf-8", "replace").lower()
    for a in assignments.values():
        if a.name.lower() == name:
            return a
    candidates = [a for a in assignments.values() if name.startswith(a.stem.lower())]
    if candidates:
        return max(candidates, key=lambda a: len(a.stem))
    if nb is not None:
        ids = _grade_ids(nb)
        best = max(assignments.values(), key=lambda a: len(ids & _grade_ids(a.nb)))
        if ids & _grade_ids(best.nb):
            return best
    return None


def _test_cell(test: TestCell, source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": test.grade_id, "grade": True}
    return cell


def _locked(assignment: Assignment) -> dict:
    def read_only(c):
        meta = nbgrader_meta(c)
        return is_test_cell(c) or (meta.get("locked") and not meta.get("solution"))
    return {nbgrader_meta(c)["grade_id"]: c for c in assignment.nb.cells
            if isinstance(nbgrader_meta(c).get("grade_id"), str) and read_only(c)}


def prepare_notebook(student_nb, assignment: Assignment) -> tuple[object, dict[int, str], list[str]]:
    """(the notebook a student's sandbox runs, {cell index: grade_id of a test}, notes)."""
    order = [nbgrader_meta(c).get("grade_id") for c in assignment.nb.cells]
    locked = _locked(assignment)
    tests = assignment.tests

    def restored(gid):
        if gid in tests:
            return _test_cell(tests[gid], tests[gid].student_source)
        return copy.deepcopy(locked[gid])

    cells, placed, edited = [], [], []
    for cell in student_nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in locked and gid not in placed:
            if gid in tests and cell.source not in (locked[gid].source, _visible(locked[gid].source)):
                edited.append(gid)
            cells.append(restored(gid))
            placed.append(gid)
        else:
            c = copy.deepcopy(cell)
            c.metadata.pop("nbgrader", None)  # a student's cell is never graded, whatever it claims
            cells.append(c)
    deleted = []
    for i, gid in enumerate(order):
        if gid is None or gid not in locked or gid in placed:
            continue
        position = 0
        for prev in reversed(order[:i]):
            idx = next((k for k, c in enumerate(cells) if nbgrader_meta(c).get("grade_id") == prev), None)
            if prev is not None and idx is not None:
                position = idx + 1
                break
        cells.insert(position, restored(gid))
        placed.append(gid)
        if gid in tests:
            deleted.append(gid)
    for c in cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC),
                                                         "language_info": {"name": "python"}})
    index = {i: nbgrader_meta(c)["grade_id"] for i, c in enumerate(cells)
             if nbgrader_meta(c).get("grade") is True and nbgrader_meta(c).get("grade_id") in tests}
    notes = []
    if edited:
        notes.append(f"test cells edited by the student were restored: {', '.join(edited)}")
    if deleted:
        notes.append(f"test cells deleted by the student were put back: {', '.join(deleted)}")
    return nb, index, notes


def reference_notebook(assignment: Assignment) -> tuple[object, dict[int, str]]:
    """The instructor's notebook with each test cell in its reference form (expected values published)."""
    cells, index = [], {}
    for i, cell in enumerate(assignment.nb.cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in assignment.tests and is_test_cell(cell):
            cells.append(_test_cell(assignment.tests[gid], assignment.tests[gid].reference_source))
            index[i] = gid
        else:
            c = copy.deepcopy(cell)
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
            cells.append(c)
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC)})
    return nb, index


def _visible(source: str) -> str:
    try:
        return strip_hidden_tests(source)
    except ValueError:
        return source
