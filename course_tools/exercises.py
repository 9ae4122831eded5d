"""Student exercise notebooks, generated from the instructor's solutions.

``python -m course_tools.exercises`` writes ``exercises/`` from ``solutions/``:

* code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub that raises
  ``NotImplementedError`` (at the indentation of the BEGIN line, so the ``def``/``class``
  lines above it stay);
* in markdown answer cells the solution region (or, without markers, the whole cell)
  becomes ``YOUR ANSWER HERE``;
* ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions are removed;
* outputs and execution counts are cleared; graded (test) and read-only cells are
  locked (nbgrader ``locked`` plus Jupyter's ``editable``/``deletable`` flags);
* the Colab badge points at the exercise instead of the solution.

The nbgrader schema-3 metadata is kept, so nbgrader can use either folder unchanged.
The output is deterministic: ``--check`` regenerates in memory and lists every file in
``exercises/`` that differs (exit status 1), which CI uses to catch hand edits.

The generator writes only the exercise notebooks it owns (one per solution notebook, same
name); any other file in the output folder is left alone (``--check`` names notebooks that
have no solution), and an output folder that is, or lies inside, the solutions folder is
refused so the answers can never be overwritten by stubs.

It replaces an exercise notebook already in the output folder only when the generator wrote
it and nobody worked in it since: each exercise records (notebook metadata ``lessons_exercise``)
a digest of what a student changes (the answer cells, every output and execution count, the
list of cells). A notebook whose content no longer matches its digest, or that has none and
differs from a fresh generation in those parts (a student's answers, outputs, a solution
notebook copied there), is named with the reason and nothing is written; ``--force``
replaces it anyway. The instructor's own edits to locked cells (and ``release --set``) do
not count as work, so regenerating ``exercises/`` after editing ``solutions/`` just works.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

from course_tools import repo_root
from lessons_lib.files import atomic_write

__all__ = [
    "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "STUB_MESSAGE",
    "nbgrader_meta", "is_test_cell", "strip_solution", "strip_hidden_tests",
    "make_exercise", "render_exercise", "generate", "check", "main",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
STUB_MESSAGE = "Write this part (see the instructions above), then delete this line."
ANSWER_STUB = "YOUR ANSWER HERE"
STAMP_KEY = "lessons_exercise"  # notebook metadata: the digest of the student-editable parts as generated


class MarkerError(ValueError):
    """Unbalanced or nested solution / hidden-test markers in a source notebook."""


def nbgrader_meta(cell) -> dict:
    """The cell's nbgrader metadata ({} when it has none)."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell) -> bool:
    """An autograded test: a graded code cell that is not a solution cell."""
    meta = nbgrader_meta(cell)
    return (cell.get("cell_type") == "code" and bool(meta.get("grade"))
            and not meta.get("solution") and isinstance(meta.get("grade_id"), str) and bool(meta["grade_id"]))


def _regions(lines: list[str], begin: str, end: str, where: str):
    """Yield (start, stop) line indexes of each begin..end region (markers included)."""
    start = None
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith(begin):
            if start is not None:
                raise MarkerError(f"{where}: '{begin}' on line {i + 1} opens a region inside another one "
                                  f"(opened on line {start + 1}); close it with '{end}' first.")
            start = i
        elif text.startswith(end):
            if start is None:
                raise MarkerError(f"{where}: '{end}' on line {i + 1} has no '{begin}' before it.")
            yield start, i
            start = None
    if start is not None:
        raise MarkerError(f"{where}: '{begin}' on line {start + 1} is never closed with '{end}'.")


def strip_solution(source: str, cell_type: str = "code", where: str = "cell") -> str:
    """Replace each solution region with a stub (code) or YOUR ANSWER HERE (markdown)."""
    lines = source.split("\n")
    out, pos = [], 0
    for start, stop in _regions(lines, BEGIN_SOLUTION, END_SOLUTION, where):
        out += lines[pos:start]
        if cell_type == "code":
            indent = re.match(r"\s*", lines[start]).group(0)
            out += [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("{STUB_MESSAGE}")']
        else:
            out.append(ANSWER_STUB)
        pos = stop + 1
    out += lines[pos:]
    return "\n".join(out)


def strip_hidden_tests(source: str, where: str = "cell") -> str:
    """Remove every hidden-test region, markers included."""
    lines = source.split("\n")
    out, pos = [], 0
    for start, stop in _regions(lines, BEGIN_HIDDEN, END_HIDDEN, where):
        out += lines[pos:start]
        pos = stop + 1
    out += lines[pos:]
    return "\n".join(out).rstrip("\n")


def make_exercise(nb, name: str = "notebook"):
    """The student version of one solution notebook (a new notebook; the input is untouched)."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index + 1}"
        meta = nbgrader_meta(cell)
        source = cell.source
        if meta.get("solution"):
            if cell.cell_type == "markdown" and BEGIN_SOLUTION not in source:
                source = ANSWER_STUB
            else:
                source = strip_solution(source, cell.cell_type, where)
        elif BEGIN_SOLUTION in source:
            raise MarkerError(f"{where}: solution markers in a cell that is not marked as a solution "
                              "cell (nbgrader metadata solution: true).")
        source = strip_hidden_tests(source, where)
        if index == 0 and cell.cell_type == "markdown":
            source = source.replace("/blob/main/solutions/", "/blob/main/exercises/")
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if meta:
            locked = not meta.get("solution")  # tests and read-only cells; answers stay editable
            meta["locked"] = locked
            if locked:
                cell.metadata["editable"] = False
                cell.metadata["deletable"] = False
            else:
                cell.metadata.pop("editable", None)
                cell.metadata.pop("deletable", None)
    nb.metadata.pop("widgets", None)
    nb.metadata[STAMP_KEY] = {"generated_by": "python -m course_tools.exercises", "sha256": work_digest(nb)}
    return nb


def work_digest(nb) -> str:
    """sha256 of the parts of an exercise a student changes: the cells (type, grade_id), the sources
    of the answer cells and of cells without nbgrader metadata, every output and execution count."""
    parts = []
    for cell in nb.get("cells", []):
        meta = nbgrader_meta(cell)
        editable = not meta or bool(meta.get("solution"))
        parts.append([cell.get("cell_type"), meta.get("grade_id"), cell.get("source") if editable else None,
                      cell.get("outputs"), cell.get("execution_count"), cell.get("attachments")])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _not_replaceable(path: Path, fresh) -> str:
    """Why the notebook at ``path`` must not be replaced by ``fresh`` ("" when it may)."""
    try:
        old = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        digest = work_digest(old)
        stamp = old.metadata.get(STAMP_KEY)
    except Exception:  # noqa: BLE001 - any damage means it is not a file this generator wrote
        return "it is not a notebook the generator wrote (it cannot be read as one)"
    if digest == work_digest(fresh) or (isinstance(stamp, dict) and stamp.get("sha256") == digest):
        return ""  # untouched since generated, or the same answers as now
    text = "\n".join(c.get("source", "") for c in old.cells if isinstance(c.get("source"), str))
    if BEGIN_SOLUTION in text or BEGIN_HIDDEN in text:
        return "it holds solution or hidden-test markers (a solution notebook?)"
    if any(c.get("outputs") or c.get("execution_count") for c in old.cells):
        return "it holds outputs: someone ran it and may have answered it"
    return "its answer cells were edited since it was generated (a student's work?)"


def render_exercise(path: Path) -> str:
    """The exact text of the exercise generated from one solution notebook."""
    nb = nbformat.read(str(path), as_version=4)
    exercise = make_exercise(nb, path.name)
    nbformat.validate(exercise)
    return nbformat.writes(exercise) + "\n"


def _sources(source_dir: Path) -> list[Path]:
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"No solutions folder at {source_dir}: pass --source with the folder "
                                "that holds the instructor notebooks.")
    paths = sorted(p for p in source_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"{source_dir} holds no .ipynb notebooks to turn into exercises.")
    return paths


def check_folders(source_dir: Path, out_dir: Path) -> None:
    """Refuse an output folder that would overwrite the solutions, or that is not a folder."""
    src, out = Path(source_dir).resolve(), Path(out_dir).resolve()
    if out == src or src in out.parents:
        raise ValueError(f"--out {out_dir} is the solutions folder (or inside it): writing there would "
                         "replace the answers and hidden tests with stubs. Nothing was written. Give "
                         "another --out folder (the default is exercises/ beside solutions/).")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder. Nothing was written; give a folder.")


def generate(source_dir: Path | str | None = None, out_dir: Path | str | None = None,
             force: bool = False) -> list[Path]:
    """Write one exercise per solution notebook (same file name); nothing else is touched.

    Refuses, before writing anything, a target that holds work (see the module's docstring)
    unless ``force``."""
    root = repo_root()
    source_dir = Path(source_dir) if source_dir is not None else root / "solutions"
    out_dir = Path(out_dir) if out_dir is not None else root / "exercises"
    check_folders(source_dir, out_dir)
    written = []
    rendered = {p.name: render_exercise(p) for p in _sources(source_dir)}  # all or nothing
    kept = []
    for name, text in rendered.items():
        target = out_dir / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ValueError(f"{target} is a link or not a regular file; it is left alone and nothing "
                             "more was written. Remove it, then generate again.")
        if target.exists() and not force:
            why = _not_replaceable(target, nbformat.reads(text, as_version=4))
            if why:
                kept.append(f"{target}: {why}")
    if kept:
        raise ValueError("these exercise notebooks would be replaced by the stubs, and "
                         + ("it is" if len(kept) == 1 else "they are") + " not what the generator wrote:\n  "
                         + "\n  ".join(kept) + "\nNothing was written. Move them away or choose another "
                         "--out; pass --force to replace them anyway.")
    for name, text in rendered.items():
        written.append(atomic_write(out_dir / name, text))
    return written


def extra_notebooks(source_dir: Path | str, out_dir: Path | str) -> list[Path]:
    """Notebooks in the output folder that no solution notebook generates (left in place)."""
    names = {p.name for p in _sources(Path(source_dir))}
    out_dir = Path(out_dir)
    return sorted(p for p in out_dir.glob("*.ipynb") if p.name not in names) if out_dir.is_dir() else []


def check(source_dir: Path | str | None = None, out_dir: Path | str | None = None) -> list[str]:
    """Problems with the committed exercises (empty when they match a fresh generation)."""
    root = repo_root()
    source_dir = Path(source_dir) if source_dir is not None else root / "solutions"
    out_dir = Path(out_dir) if out_dir is not None else root / "exercises"
    problems = []
    expected = {p.name: render_exercise(p) for p in _sources(source_dir)}
    for name, text in expected.items():
        path = out_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what solutions/{name} generates")
    if out_dir.is_dir():
        for path in sorted(out_dir.glob("*.ipynb")):
            if path.name not in expected:
                problems.append(f"{path}: has no solution notebook of that name")
    return problems


def main(argv: list[str] | None = None) -> int:
    root = repo_root()
    parser = argparse.ArgumentParser(
        prog="python -m course_tools.exercises",
        description="Generate the student exercise notebooks from the solution notebooks.")
    parser.add_argument("--source", type=Path, default=root / "solutions",
                        help="folder of solution notebooks (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=root / "exercises",
                        help="folder to write the exercises to (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that differ from a fresh generation")
    parser.add_argument("--force", action="store_true",
                        help="replace exercise notebooks in --out even when they hold work (answers, outputs)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check(args.source, args.out)
            if problems:
                print("exercises/ is out of date with solutions/:", file=sys.stderr)
                for p in problems:
                    print(f"  {p}", file=sys.stderr)
                print("Run `python -m course_tools.exercises` and commit the result.", file=sys.stderr)
                return 1
            print(f"{args.out}: up to date with {args.source}")
            return 0
        for path in generate(args.source, args.out, force=args.force):
            print(f"wrote {path}")
        for path in extra_notebooks(args.source, args.out):
            print(f"note: {path} has no solution notebook; it was left as it is (delete it if it is stale)")
        return 0
    except (FileNotFoundError, ValueError, OSError, nbformat.reader.NotJSONError,
            nbformat.ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
