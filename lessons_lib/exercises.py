"""Student exercise notebooks, generated from the instructor's solutions.

``python -m lessons_lib.exercises`` writes ``exercises/`` from ``solutions/``:

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
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

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
STUB_MESSAGE = "Write this part of the exercise (see the instructions above), then delete this line."
ANSWER_STUB = "YOUR ANSWER HERE"
REPO_ROOT = Path(__file__).resolve().parents[1]


class MarkerError(ValueError):
    """Unbalanced or nested solution / hidden-test markers in a source notebook."""


def nbgrader_meta(cell) -> dict:
    """The cell's nbgrader metadata ({} when it has none)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell) -> bool:
    """An autograded test: a graded code cell that is not a solution cell."""
    meta = nbgrader_meta(cell)
    return (cell.get("cell_type") == "code" and bool(meta.get("grade"))
            and not meta.get("solution") and bool(meta.get("grade_id")))


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
    return nb


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


def generate(source_dir: Path | str = REPO_ROOT / "solutions",
             out_dir: Path | str = REPO_ROOT / "exercises") -> list[Path]:
    """Write one exercise per solution notebook; stale exercise notebooks are removed."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    written = []
    rendered = {p.name: render_exercise(p) for p in _sources(source_dir)}  # all or nothing
    for name, text in rendered.items():
        target = out_dir / name
        atomic_write(target, text)
        written.append(target)
    for stale in sorted(out_dir.glob("*.ipynb")):
        if stale.name not in rendered:
            stale.unlink()
    return written


def check(source_dir: Path | str = REPO_ROOT / "solutions",
          out_dir: Path | str = REPO_ROOT / "exercises") -> list[str]:
    """Problems with the committed exercises (empty when they match a fresh generation)."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
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
    parser = argparse.ArgumentParser(
        prog="python -m lessons_lib.exercises",
        description="Generate the student exercise notebooks from the solution notebooks.")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "solutions",
                        help="folder of solution notebooks (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "exercises",
                        help="folder to write the exercises to (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that differ from a fresh generation")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check(args.source, args.out)
            if problems:
                print("exercises/ is out of date with solutions/:", file=sys.stderr)
                for p in problems:
                    print(f"  {p}", file=sys.stderr)
                print("Run `python -m lessons_lib.exercises` and commit the result.", file=sys.stderr)
                return 1
            print(f"{args.out}: up to date with {args.source}")
            return 0
        for path in generate(args.source, args.out):
            print(f"wrote {path}")
        return 0
    except (FileNotFoundError, MarkerError, nbformat.reader.NotJSONError, nbformat.ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
