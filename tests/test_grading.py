"""The grading round trip: solutions score full marks, blank exercises zero, and a folder of
broken, hanging, cheating and escaping submissions is graded in one run with the right
score or zero and a reason for each."""
from __future__ import annotations

import copy
import csv
import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from lessons_lib import grading
from lessons_lib.exercises import nbgrader_meta

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
EX1 = "ex1_vae_compression.ipynb"
TIMEOUT = 60.0


def _ex1():
    return nbformat.read(str(SOLUTIONS / EX1), as_version=4)


def _cell(nb, suffix):
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id", "").endswith(suffix))


def _edit_solution(nb, old, new):
    cell = _cell(nb, "_solution")
    assert old in cell.source, old
    cell.source = cell.source.replace(old, new)
    return nb


def _save(nb, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _build_submissions(root: Path, outside: Path) -> int:
    shutil.copytree(SOLUTIONS, root / "solutions")            # 6 correct notebooks: full marks
    shutil.copytree(EXERCISES, root / "blank")                # 6 notebooks, untouched: zero
    nb = _ex1()                                               # half correct: wrong MB, no validation
    _edit_solution(nb, "return n_values * self.bytes_per_value / 1e6", "return n_values * 8 / 1e6")
    _edit_solution(nb, "if height % self.downsample or width % self.downsample:", "if False:")
    _save(nb, root / "bob" / EX1)
    nb = _ex1()                                               # raises on import
    _edit_solution(nb, "from lessons_lib.tables import format_table",
                   "import lessons_lib.no_such_module\nfrom lessons_lib.tables import format_table")
    _save(nb, root / "carol" / EX1)
    nb = _ex1()                                               # loops forever
    _edit_solution(nb, "from lessons_lib.tables import format_table",
                   "while True:\n    pass\nfrom lessons_lib.tables import format_table")
    _save(nb, root / "dave" / EX1)
    nb = _ex1()                                               # wrong ratio, edits one test, deletes another
    _edit_solution(nb, "return self.pixel_values(height, width) / self.latent_values(height, width)",
                   "return 50.0")
    _cell(nb, "_test_ratio").source = "# 3 points\nassert True"
    nb.cells.remove(_cell(nb, "_test_validation"))
    _save(nb, root / "erin" / EX1)
    (root / "frank").mkdir()                                  # not JSON
    (root / "frank" / EX1).write_text("{ this is not a notebook", encoding="utf-8")
    nb = _ex1()                                               # correct, but writes outside its folder
    index = nb.cells.index(_cell(nb, "_solution")) + 1
    nb.cells.insert(index, nbformat.v4.new_code_cell(
        f"open({str(outside / 'escaped.txt')!r}, 'w').write('escaped')\n"))
    nb.cells.insert(index, nbformat.v4.new_code_cell(  # over the address-space limit (never touched)
        "import numpy as np\nhuge = np.empty(2**31)"))
    nb.cells.insert(index, nbformat.v4.new_code_cell(  # over the file-size limit, inside its folder
        "open('big.bin', 'wb').write(b'0' * (9 * 2**20))"))
    _save(nb, root / "grace" / EX1)
    nb = _ex1()                                               # the kernel dies
    nb.cells.insert(index, nbformat.v4.new_code_cell("import os\nos._exit(3)"))
    _save(nb, root / "henry" / EX1)
    (root / "ivan").mkdir()                                   # valid JSON, no cells
    (root / "ivan" / EX1).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                 "nbformat_minor": 5}), encoding="utf-8")
    return len(list(root.rglob("*.ipynb")))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    subs, out, outside = root / "submissions", root / "results", root / "outside"
    outside.mkdir()
    n = _build_submissions(subs, outside)
    lines = []
    start = time.monotonic()
    code = grading.main([str(subs), "--out", str(out), "--timeout", str(TIMEOUT), "--workers", "2",
                         "--memory-mb", "6000", "--max-file-mb", "8"])
    elapsed = time.monotonic() - start
    assert code == 0
    with open(out / "scores_long.csv", newline="") as f:
        long_rows = list(csv.DictReader(f))
    with open(out / "scores_wide.csv", newline="") as f:
        wide = {row["student"]: row for row in csv.DictReader(f)}
    return {"root": root, "subs": subs, "out": out, "outside": outside, "n": n, "elapsed": elapsed,
            "long": long_rows, "wide": wide, "summary": (out / "summary.md").read_text()}


def _student(graded, name, notebook=EX1):
    return {r["grade_id"].split("_test_")[1]: r for r in graded["long"]
            if r["student"] == name and r["notebook"] == notebook}


def _total(graded, name):
    return float(graded["wide"][name]["total"])


def test_solutions_full_marks_exercises_zero(graded):
    sources = grading.load_sources(SOLUTIONS)
    assert len(sources) == 6
    assert _total(graded, "solutions") == 60 == float(graded["wide"]["solutions"]["max_total"])
    assert all(r["status"] == "passed" for r in graded["long"] if r["student"] == "solutions")
    assert _total(graded, "blank") == 0
    blank = [r for r in graded["long"] if r["student"] == "blank"]
    assert len(blank) == sum(len(a.questions) for a in sources.values())
    assert all(r["status"] == "error" and "NotImplementedError" in r["reason"] for r in blank)


def test_each_submission_scores_right(graded):
    assert {k: r["status"] for k, r in _student(graded, "solutions").items()} == dict.fromkeys(
        ["counts", "ratio", "megabytes", "validation"], "passed")
    bob = _student(graded, "bob")
    assert _total(graded, "bob") == 5
    assert bob["megabytes"]["status"] == "failed" and bob["validation"]["status"] == "failed"
    assert bob["counts"]["status"] == bob["ratio"]["status"] == "passed"
    assert _total(graded, "carol") == 0
    assert all("ModuleNotFoundError" in r["reason"] for r in _student(graded, "carol").values())
    # the edited test is restored (and fails), the deleted one is put back (and passes)
    erin = _student(graded, "erin")
    assert erin["ratio"]["status"] == "failed" and erin["validation"]["status"] == "passed"
    assert _total(graded, "erin") == 7
    assert "restored: ex1_vae_compression_test_ratio" in graded["summary"]
    assert "put back: ex1_vae_compression_test_validation" in graded["summary"]


def test_broken_notebooks_get_zero_with_a_reason(graded):
    dave = _student(graded, "dave")
    assert _total(graded, "dave") == 0
    assert all(r["status"] == "timeout" and f"within {TIMEOUT:g} s" in r["reason"] for r in dave.values())
    frank = _student(graded, "frank")
    assert all(r["status"] == "invalid notebook" and "not valid JSON" in r["reason"] for r in frank.values())
    ivan = _student(graded, "ivan")
    assert all(r["status"] == "invalid notebook" and "no code cells" in r["reason"] for r in ivan.values())
    henry = _student(graded, "henry")
    assert _total(graded, "henry") == 0
    assert all(r["status"] == "crashed" and "kernel exited with status 3 in cell" in r["reason"]
               for r in henry.values())
    for name in ("dave", "frank", "ivan", "henry"):
        assert float(graded["wide"][name]["max_total"]) == 60  # they still appear with zeroes
    # students who only handed in exercise 1 get "missing" for the others
    assert {r["status"] for r in graded["long"] if r["student"] == "bob" and r["notebook"] != EX1} == {"missing"}
    assert "- bob: ex2_cfg_scale, ex3_ddim_steps" in graded["summary"]


def test_writes_outside_the_working_folder(graded):
    grace = _student(graded, "grace")
    assert _total(graded, "grace") == 10  # the attempt does not cost the tests their points...
    if grading.probe_landlock()[0]:
        assert not (graded["outside"] / "escaped.txt").exists()  # ...and it did not get through
        assert "PermissionError" in graded["summary"] and "blocked (Landlock" in graded["summary"]
    else:
        assert "NOT enforced" in graded["summary"]
    assert all(r["status"] == "passed" for r in grace.values())
    assert "MemoryError" in graded["summary"] and "File too large" in graded["summary"]  # resource limits


def test_the_run_is_bounded_and_complete(graded):
    assert graded["elapsed"] < graded["n"] * TIMEOUT
    students = {r["student"] for r in graded["long"]}
    assert students == {"solutions", "blank", "bob", "carol", "dave", "erin", "frank",
                        "grace", "henry", "ivan"}
    assert set(graded["long"][0]) == set(grading.LONG_COLUMNS)
    assert {r["status"] for r in graded["long"]} <= set(grading.STATUSES)
    header = list(graded["wide"]["bob"].keys())
    assert header[0] == "student" and header[-2:] == ["total", "max_total"]
    assert len(header) == 1 + 23 + 2
    assert "## What the grader enforced" in graded["summary"]


def test_results_are_never_overwritten_silently(graded, tmp_path, capsys):
    out = graded["out"]
    before = (out / "scores_long.csv").read_bytes()
    subs = tmp_path / "subs"
    (subs / "zoe").mkdir(parents=True)
    (subs / "zoe" / EX1).write_text("not json", encoding="utf-8")
    assert grading.main([str(subs), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "scores_long.csv").read_bytes() == before
    copy_out = tmp_path / "out"
    shutil.copytree(out, copy_out)
    assert grading.main([str(subs), "--out", str(copy_out), "--force"]) == 0  # no kernel needed
    rows = list(csv.DictReader(open(copy_out / "scores_long.csv", newline="")))
    assert {r["student"] for r in rows} == {"zoe"} and {r["status"] for r in rows} == {"invalid notebook"}
    assert not list(copy_out.glob(".*.tmp"))


def test_submission_layout_and_matching(tmp_path):
    sources = grading.load_sources(SOLUTIONS)
    (tmp_path / "amy").mkdir()
    shutil.copy(SOLUTIONS / EX1, tmp_path / "amy" / "ex1_vae_compression (2).ipynb")
    (tmp_path / "amy" / ".ipynb_checkpoints").mkdir()
    shutil.copy(SOLUTIONS / EX1, tmp_path / "amy" / ".ipynb_checkpoints" / EX1)
    shutil.copy(SOLUTIONS / "ex2_cfg_scale.ipynb", tmp_path / "bo.ipynb")  # loose: student "bo"
    subs = grading.find_submissions(tmp_path)
    assert [(s.student, s.path.name) for s in subs] == [("amy", "ex1_vae_compression (2).ipynb"),
                                                        ("bo", "bo.ipynb")]
    for sub, expected in zip(subs, [EX1, "ex2_cfg_scale.ipynb"]):
        nb, why = grading.read_notebook(sub.path)
        assert why == "" and grading.match_assignment(sub, nb, sources).name == expected


def test_prepare_restores_instructor_cells():
    assignment = grading.load_sources(SOLUTIONS)[EX1]
    student = nbformat.read(str(EXERCISES / EX1), as_version=4)  # what students receive
    test = _cell(student, "_test_ratio")
    assert "HIDDEN" not in test.source and "broken = " not in test.source
    student.cells.remove(_cell(student, "_test_counts"))
    _cell(student, "_setup").source = "print('edited setup')"
    prepared, notes = grading.prepare_notebook(student, assignment)
    ids = [nbgrader_meta(c).get("grade_id") for c in prepared.cells]
    assert ids == [nbgrader_meta(c).get("grade_id") for c in assignment.nb.cells]
    assert "broken = " in _cell(prepared, "_test_ratio").source  # hidden tests are back
    assert _cell(prepared, "_setup").source == _cell(assignment.nb, "_setup").source
    assert "raise NotImplementedError" in _cell(prepared, "_solution").source  # the answer is the student's
    assert notes == ["test cells deleted by the student were put back: ex1_vae_compression_test_counts"]


def test_bad_arguments_say_what_to_do(tmp_path, capsys):
    assert grading.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "No submissions folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive number of seconds"):
        grading.Limits(timeout=0)
    with pytest.raises(FileNotFoundError, match="--source"):
        grading.load_sources(tmp_path / "missing")


def test_enforcement_is_reported_honestly(monkeypatch):
    limits = grading.Limits(timeout=12)
    notes = "\n".join(grading.enforcement_notes(limits, landlock=True))
    assert "12 s per notebook" in notes and "CPU time 49 s" in notes
    if grading.probe_landlock()[0]:
        assert "blocked (Landlock ABI" in notes
    monkeypatch.setattr(grading, "probe_landlock", lambda: (False, "Landlock is not available on this system"))
    notes = "\n".join(grading.enforcement_notes(limits, landlock=False))
    assert "NOT enforced (Landlock is not available on this system)" in notes
