"""Taking in submissions safely: which files are graded, how they are read, and the prepared notebooks.

* Only regular files are read. Links (to files or folders), FIFOs, devices and sockets are
  refused with a reason and never opened (a FIFO would block, a device would never end);
  files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again after opening.
* A size cap applies before anything is parsed; JSON of any shape or nesting is rejected
  with a reason instead of an exception; the notebook is rebuilt from its cells' types and
  sources only, so odd metadata (a list as grade_id, a number as source) cannot get further.
* Any file name is accepted and shown escaped (non-UTF-8 bytes as ``\\xNN``); a blank student
  name (a folder named with spaces only) is shown as ``(blank name: 3 spaces)`` and noted.
* Nothing is skipped without a word: hidden entries (a name starting with '.', taken for a
  tool's folder such as .git or .ipynb_checkpoints), archives (never unpacked: a hostile zip
  is not worth the risk, and ``unzip`` is one command), files that are not notebooks at the
  top, folders nested too deep and entries past the count cap are listed as not graded,
  with the reason; a student folder without a notebook is still a student (all missing).
* Blank cells (whitespace only) that carry no grade_id are dropped: they cannot change a
  result. A notebook with more than ``MAX_CELLS`` cells left is not graded at all (the reason
  says so), rather than cut short and misgraded.
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

__all__ = ["Submission", "Assignment", "Skipped", "display_name", "student_name", "find_submissions",
           "read_notebook", "match_assignment", "prepare_notebook", "MAX_NOTEBOOK_MB", "MAX_CELLS"]

MAX_NOTEBOOK_MB = 20
MAX_DEPTH = 4            # folders inside a student's folder
MAX_ENTRIES = 20_000     # entries looked at in the whole submissions folder
# Cells left after blank ones are dropped. An exercise has a few dozen; each cell costs a kernel
# round trip and two report lines, and the 20 MB cap alone would allow some 200,000 cells.
MAX_CELLS = 10_000
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z", ".rar", ".gz")
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
    mtime: float = 0.0           # last modified (st_mtime, links not followed)
    depth: int = 0               # folders between the student's folder and the notebook


@dataclass
class Skipped:
    """Something in the submissions folder that is not graded, and why (shown in the notes)."""
    student: str | None          # None: not a student's (e.g. a hidden folder at the top)
    what: str                    # the name, escaped, relative to the student's folder
    reason: str


def display_name(name: str, limit: int = 120) -> str:
    """Any file name as printable text: undecodable bytes as \\xNN, control characters escaped."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    text = "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch
                   for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def student_name(name: str) -> str:
    """The student's name as shown: escaped, and visibly marked when it is blank (spaces only)."""
    shown = display_name(name)
    if shown.strip():
        return shown
    what = "space" if set(shown) == {" "} else "blank character"
    return f"(blank name: {len(shown)} {what}{'s' if len(shown) != 1 else ''})"


def _hidden_reason(name: str, notebooks: int, folder: bool) -> str:
    what = ("Jupyter's autosaved checkpoint copies" if name == ".ipynb_checkpoints" else
            "macOS archive metadata" if name == "__MACOSX" else
            f"a hidden {'folder' if folder else 'file'} (the name starts with '.', like .git or "
            ".ipynb_checkpoints, so it is taken for a tool's, not a student's)")
    held = f"; it holds {notebooks} notebook{'s' if notebooks != 1 else ''}" if folder else ""
    todo = "; rename it without the leading '.' to grade it" if notebooks and name != "__MACOSX" else ""
    return what + held + todo


def _archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVES)


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


def find_submissions(root: Path | str, skipped: list[Skipped] | None = None) -> list[Submission]:
    """One entry per notebook; folders are students, loose notebooks are students named after the file.
    Links and special files become entries with a ``problem`` (they are reported, never opened).
    What is not graded is appended to ``skipped`` with the reason."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No submissions folder at {root}: give the folder that holds one "
                                "folder per student (or the students' notebooks).")
    subs: list[Submission] = []
    skipped = skipped if skipped is not None else []
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

    def mode_of(e):
        try:
            return e.stat(follow_symlinks=False)
        except OSError:
            return None

    def count_notebooks(folder: Path, depth: int) -> int:
        n = 0
        for e in entries(folder):
            st = mode_of(e)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                n += count_notebooks(Path(e.path), depth + 1)
            elif e.name.lower().endswith(".ipynb"):
                n += 1
        return n

    def walk(student: str, folder: Path, depth: int, prefix: str) -> int:
        found = 0
        for e in entries(folder):
            st = mode_of(e)
            if st is None:
                continue
            where = prefix + display_name(e.name)
            is_dir = stat.S_ISDIR(st.st_mode)
            if e.name.startswith(".") or e.name == "__MACOSX":
                n = count_notebooks(Path(e.path), depth + 1) if is_dir else int(e.name.lower().endswith(".ipynb"))
                if n:  # editor and tool files without notebooks (.DS_Store, .git) are not worth a note
                    skipped.append(Skipped(student, where + ("/" if is_dir else ""), _hidden_reason(e.name, n,
                                                                                                  is_dir)))
            elif is_dir:
                if depth < MAX_DEPTH:
                    found += walk(student, Path(e.path), depth + 1, where + "/")
                else:
                    skipped.append(Skipped(student, where + "/", f"folders deeper than {MAX_DEPTH} levels "
                                                                 "are not looked into"))
            elif _is_notebook_name(e.name):
                subs.append(Submission(student, Path(e.path), problem=_kind(st.st_mode), mtime=st.st_mtime,
                                       depth=depth - 1))
                found += 1
            elif _archive(e.name):
                skipped.append(Skipped(student, where, "an archive; archives are not unpacked: unpack it into "
                                                       "the student's folder and grade again"))
        return found

    for e in entries(root):
        st = mode_of(e)
        if st is None:
            continue
        name = display_name(e.name)
        if e.name.startswith(".") or e.name == "__MACOSX":
            if stat.S_ISDIR(st.st_mode):
                skipped.append(Skipped(None, name + "/", _hidden_reason(e.name, count_notebooks(Path(e.path), 1),
                                                                        True)))
            elif e.name.lower().endswith(".ipynb"):
                skipped.append(Skipped(None, name, _hidden_reason(e.name, 1, False)))
        elif stat.S_ISDIR(st.st_mode):
            student = student_name(e.name)
            if walk(student, Path(e.path), 1, "") == 0:
                skipped.append(Skipped(student, name + "/", "the folder holds no notebook (.ipynb)"))
        elif stat.S_ISLNK(st.st_mode) and not _is_notebook_name(e.name):
            subs.append(Submission(student_name(e.name), Path(e.path), problem="the student's folder is a "
                                   "symbolic link (links are not followed)"))
        elif _is_notebook_name(e.name):
            subs.append(Submission(student_name(e.name[: -len(".ipynb")]), Path(e.path), loose=True,
                                   problem=_kind(st.st_mode), mtime=st.st_mtime))
        elif _archive(e.name):
            skipped.append(Skipped(None, name, "an archive; archives are not unpacked: unpack it into a folder "
                                               "named after the student and grade again"))
        elif stat.S_ISREG(st.st_mode):
            skipped.append(Skipped(None, name, "not a notebook (.ipynb) and not a student's folder"))
    if budget[0] < 0:
        skipped.append(Skipped(None, "(the rest of the folder)", f"only the first {MAX_ENTRIES} files and "
                                     "folders are looked at; split the submissions into smaller folders"))
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
    cells = []
    for raw_cell in raw["cells"]:
        cell = _clean_cell(raw_cell)
        if cell is None or (not cell.source.strip() and "nbgrader" not in cell.metadata):
            continue  # a blank cell cannot change a result
        if len(cells) == MAX_CELLS:
            return None, (f"the notebook has more than {MAX_CELLS:,} cells that are not blank (it has "
                          f"{len(raw['cells']):,} in all); the grader runs at most {MAX_CELLS:,}: merge or "
                          "delete cells and submit again")
        cells.append(cell)
    if not any(c.cell_type == "code" for c in cells):
        return None, "the notebook has no code cells (none that are not blank)"
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
