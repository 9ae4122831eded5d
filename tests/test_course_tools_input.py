"""Bad input to the instructor tools, second pass: each refused at the boundary with one message."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs_bwrap, tree_state

from course_tools import grading, intake, sandbox, train_weights

NAMES = ["zoo/resnet", "zoo/unet", "zoo/unetgan", "zoo/unetvae", "zoo/unetddim", "zoo/unetddpm",
         "inpainting/unet", "style/adain"]


@pytest.mark.parametrize("only, expected", [
    (None, NAMES),
    ("zoo/unet", ["zoo/unet"]),                      # an exact name is that recipe only, not a prefix
    ("zoo/unet*", ["zoo/unet", "zoo/unetgan", "zoo/unetvae", "zoo/unetddim", "zoo/unetddpm"]),
    ("zoo/", NAMES[:6]),
    ("*/unet", ["zoo/unet", "inpainting/unet"]),
    ("zoo/unet[gv]*", ["zoo/unetgan", "zoo/unetvae"]),
])
def test_train_weights_only_selects_exactly_what_it_says(only, expected):
    assert train_weights.select(NAMES, only) == expected


@pytest.mark.parametrize("only, message", [
    ("", "is empty"), ("  ", "is empty"), ("zoo", "matches no recipe"), ("zoo/un", "matches no recipe"),
    ("zoo/nothing*", "matches no recipe"),
])
def test_train_weights_only_that_selects_nothing_says_why(only, message):
    with pytest.raises(ValueError, match=message) as err:
        train_weights.select(NAMES, only)
    assert repr(only) in str(err.value)


def test_train_weights_says_what_it_selected_before_training(monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(train_weights, "recipes", lambda: {n: (lambda n=n: trained.append(n)) for n in NAMES})
    monkeypatch.setattr(train_weights, "_check_data", lambda: pytest.fail("looked for data before refusing"))
    assert train_weights.main(["--only", ""]) == 2
    assert "--only '' is empty" in capsys.readouterr().err
    assert train_weights.main(["--only", "zoo/unet", "--list"]) == 0
    assert capsys.readouterr().out.split() == ["zoo/unet"]
    monkeypatch.setattr(train_weights, "_check_data", lambda: "data")
    from lessons_lib import course_weights
    shipped = {n: {} for n in NAMES}
    monkeypatch.setattr(course_weights, "manifest", lambda *a: {"weights": shipped})
    assert train_weights.main(["--only", "zoo/unet"]) == 0
    out = capsys.readouterr().out
    assert "--only 'zoo/unet' selects 1 recipe: zoo/unet\n" in out
    assert "zoo/unet: shipped already" in out and "zoo/unetgan" not in out and trained == []


# --------------------------------------------------------------------------- grading
REPO = Path(__file__).resolve().parents[1]
EX1 = "ex1_vae_compression.ipynb"
SOLVED, BLANK = REPO / "solutions" / EX1, REPO / "exercises" / EX1


def _put(src: Path, dst: Path, mtime: float | None = None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if mtime is not None:
        os.utime(dst, (mtime, mtime))


def _padded(n_blank: int, body: str = " \n") -> dict:
    """The solved exercise with n blank code cells before its answers."""
    nb = json.loads(SOLVED.read_text())
    blank = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [body]}
    nb["cells"] = nb["cells"][:1] + [dict(blank) for _ in range(n_blank)] + nb["cells"][1:]
    return nb


def test_nothing_in_the_submissions_is_skipped_without_a_word(tmp_path):
    subs = tmp_path / "subs"
    _put(SOLVED, subs / ".carol" / EX1)                     # a hidden folder that holds a notebook
    (subs / ".git").mkdir()
    _put(SOLVED, subs / ".amy.ipynb")                       # a hidden loose notebook
    _put(SOLVED, subs / "__MACOSX" / "._x.ipynb")
    (subs / ".DS_Store").write_text("x")                    # tool litter without notebooks: no word needed
    _put(SOLVED, subs / "ben.zip")
    (subs / "grades.txt").write_text("x")
    _put(SOLVED, subs / "eve" / "work.zip")                 # a student with only an archive
    (subs / "zed").mkdir()                                  # a student with nothing
    _put(SOLVED, subs / "bob" / EX1)
    _put(SOLVED, subs / "bob" / ".ipynb_checkpoints" / "ex1_vae_compression-checkpoint.ipynb")
    skipped: list[intake.Skipped] = []
    subs_found = intake.find_submissions(subs, skipped)
    assert [(s.student, s.path.name) for s in subs_found] == [("bob", EX1)]
    got = {(s.student, s.what): s.reason for s in skipped}
    assert "rename it without the leading '.'" in got[(None, ".carol/")] and "1 notebook" in got[(None, ".carol/")]
    assert "hidden file" in got[(None, ".amy.ipynb")] and (None, ".git/") in got
    assert "macOS" in got[(None, "__MACOSX/")] and (None, ".DS_Store") not in got
    assert "not unpacked" in got[(None, "ben.zip")] and "not a notebook" in got[(None, "grades.txt")]
    assert "not unpacked" in got[("eve", "work.zip")] and "no notebook" in got[("eve", "eve/")]
    assert "no notebook" in got[("zed", "zed/")]
    assert "checkpoint" in got[("bob", ".ipynb_checkpoints/")]
    jobs, students, notes, in_use, outside = grading._intake(subs, grading.load_sources(REPO / "solutions"))
    assert students == ["bob", "eve", "zed"] and [j.sub.student for j in jobs] == ["bob"]
    assert any(".carol/ was not graded" in line for line in outside)
    assert any("work.zip was not graded" in n for n in notes["eve"])


def test_a_blank_student_name_is_shown_and_noted(tmp_path):
    subs = tmp_path / "subs"
    _put(SOLVED, subs / "   " / EX1)
    _put(SOLVED, subs / "\u00a0.ipynb")
    jobs, students, notes, _, _ = grading._intake(subs, grading.load_sources(REPO / "solutions"))
    assert students == ["(blank name: 1 blank character)", "(blank name: 3 spaces)"]
    assert "the folder's name is blank" in notes["(blank name: 3 spaces)"][0]


def test_two_notebooks_for_one_exercise_say_which_is_graded_and_why(tmp_path):
    subs = tmp_path / "subs"
    _put(BLANK, subs / "dan" / EX1, mtime=1_700_000_000)
    _put(SOLVED, subs / "dan" / "ex1_vae_compression (2).ipynb", mtime=1_700_000_100)   # the later download
    _put(SOLVED, subs / "kim" / "ex1_vae_compression-Copy1.ipynb", mtime=1_700_000_000)
    _put(BLANK, subs / "kim" / EX1, mtime=1_700_000_000)
    jobs, _, notes, _, _ = grading._intake(subs, grading.load_sources(REPO / "solutions"))
    assert {j.sub.student: j.sub.path.name for j in jobs} == {"dan": "ex1_vae_compression (2).ipynb", "kim": EX1}
    assert notes["dan"] == [f"2 notebooks for {EX1}: graded ex1_vae_compression (2).ipynb, not {EX1}, because it "
                            "was saved last; if another is the final version, leave only that one and grade again"]
    assert "its file name is exactly the exercise's" in notes["kim"][0]


def test_blank_cells_are_dropped_and_a_cell_cap_is_said_not_applied_silently(tmp_path):
    path = tmp_path / EX1
    path.write_text(json.dumps(_padded(5000)))
    nb, why = intake.read_notebook(path)
    assert why == "" and len(nb.cells) == len(json.loads(SOLVED.read_text())["cells"])
    path.write_text(json.dumps(_padded(intake.MAX_CELLS, "pass")))
    nb, why = intake.read_notebook(path)
    assert nb is None and f"more than {intake.MAX_CELLS:,} cells that are not blank" in why
    assert "the grader runs at most" in why


def test_grading_against_the_exercises_is_refused_up_front(tmp_path, capsys):
    subs = tmp_path / "subs"
    _put(SOLVED, subs / "amy" / EX1)
    code = grading.main([str(subs), "--out", str(tmp_path / "out"), "--source", str(REPO / "exercises"),
                         "--no-sandbox"])
    err = capsys.readouterr().err
    assert code == 2 and "is a student exercise" in err and "not exercises/" in err
    assert "Fix the source" not in err and not list((tmp_path / "out").glob("*"))


def test_a_limit_the_source_hits_is_named_not_the_source():
    result = sandbox.JobResult(b"", "", False, 0, 1.0)
    limits = sandbox.Limits(max_file_mb=2)
    crashed = [{"event": "crashed", "cell": 3, "reason": "the kernel died (SIGXFSZ: the file-size limit)"}]
    assert "raise --max-file-mb" in grading._limit_failure(crashed, result, limits)
    error = [{"event": "cell", "cell": 1, "status": "error", "ename": "MemoryError", "evalue": ""}]
    assert "--memory-mb 8192 is too small" in grading._limit_failure(error, result, sandbox.Limits())
    wrong = [{"event": "cell", "cell": 1, "status": "error", "ename": "NameError", "evalue": "x"}]
    assert grading._limit_failure(wrong, result, limits) == ""


@needs_bwrap
def test_too_little_memory_for_the_source_is_blamed_on_memory_mb(tmp_path, capsys):
    subs = tmp_path / "subs"
    _put(SOLVED, subs / "amy" / EX1)
    code = grading.main([str(subs), "--out", str(tmp_path / "out"), "--memory-mb", "1024", "--timeout", "60"])
    err = capsys.readouterr().err
    assert code == 2 and "--memory-mb 1024 is too small" in err and "raise --memory-mb" in err
    assert "Fix the source" not in err and not list((tmp_path / "out").glob("*"))


@needs_bwrap
def test_hidden_blank_and_padded_submissions_are_graded_or_reported(tmp_path):
    """Run as on a shared machine: the grader's Python environment and the home folder are reached
    through symbolic links (the sandbox must start the interpreter by the path Python knows it by)."""
    subs = tmp_path / "subs"
    _put(SOLVED, subs / ".carol" / EX1)
    _put(SOLVED, subs / "  " / EX1)
    (subs / "fay").mkdir()
    (subs / "fay" / EX1).write_text(json.dumps(_padded(5000)))   # a correct answer after 5,000 blank cells
    before = tree_state(subs)
    out = tmp_path / "out"
    env_link, home_link = tmp_path / "linked-env", tmp_path / "linked-home"
    env_link.symlink_to(Path(sys.executable).absolute().parent.parent, target_is_directory=True)
    (tmp_path / "home").mkdir()
    home_link.symlink_to(tmp_path / "home", target_is_directory=True)
    python = env_link / "bin" / Path(sys.executable).name
    run = subprocess.run([str(python), "-m", "course_tools.grading", str(subs), "--out", str(out), "--workers", "2",
                          "--timeout", "90"], cwd=REPO, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, HOME=str(home_link), PYTHONPATH=str(REPO)))
    assert run.returncode == 0, run.stderr[-2000:]
    with open(out / "scores_wide.csv", newline="") as f:
        wide = {row["student"]: float(row["total"]) for row in csv.DictReader(f)}
    assert wide == {"(blank name: 2 spaces)": 10.0, "fay": 10.0}
    summary = (out / "summary.md").read_text()
    assert ".carol/ was not graded: a hidden folder" in summary and "put back" not in summary
    assert "the folder's name is blank" in summary
    assert tree_state(subs) == before
