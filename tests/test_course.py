"""The course runner (`make course`) and the repository's notebook conventions."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_tools import course
from lessons_lib.runtime import REPO_URL

NO_EXTRAS = {"spread": None, "expected": "beats"}  # what a row written without them reads as

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIRS = ["notebooks", "solutions", "exercises"]
ALL_NOTEBOOKS = sorted(p for d in NOTEBOOK_DIRS for p in (REPO / d).glob("*.ipynb"))


def _write(folder: Path, name: str, *sources: str) -> None:
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}")] + [new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


def test_course_runner_writes_pages_and_goes_on_after_a_failure(tmp_path, capsys):
    src = tmp_path / "nbs"
    src.mkdir()
    _write(src, "a_good", "import os\nopen('made.txt', 'w').write('x')\nprint(os.environ['LESSONS_PROFILE'])")
    _write(src, "b_bad", "raise ValueError('broken on purpose')")
    _write(src, "c_after", "import matplotlib.pyplot as plt\nplt.plot([1, 2]);", PUBLISH_RESULTS)
    out = tmp_path / "out"
    code = course.main(["--notebooks", str(src), "--out", str(out), "--profile", "fast", "--timeout", "60",
                        "--no-site"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "[1/3] a_good.ipynb ... ok" in printed and "[2/3] b_bad.ipynb ... FAILED" in printed
    for name in ("a_good", "b_bad", "c_after"):
        assert (out / f"{name}.html").is_file() and (out / f"{name}.ipynb").is_file()
    executed = nbformat.read(out / "a_good.ipynb", as_version=4)
    assert "fast" in executed.cells[1].outputs[0]["text"]
    assert (out / "files" / "a_good" / "made.txt").is_file()  # notebooks write in their own folder
    figure = nbformat.read(out / "c_after.ipynb", as_version=4).cells[1].outputs
    assert any("image/png" in o.get("data", {}) for o in figure), "figures must be drawn into the page"
    results = json.loads((out / "results.json").read_text())
    assert [r["ok"] for r in results] == [True, False, True]
    assert "broken on purpose" in results[1]["error"]
    index = (out / "index.html").read_text()
    assert "a_good.html" in index and "FAILED" in index and "2 of 3" in index
    # the rows the notebook published, in order; the malformed ones dropped and counted
    assert results[2]["results"] == [
        {"what": "SSIM vs the target", "model": 0.8, "baseline": 0.7, "better": "higher"} | NO_EXTRAS,
        {"what": "MSE <b>", "model": 0.2, "baseline": 0.1, "better": "lower"} | NO_EXTRAS,
        {"what": "PSNR", "model": 20, "baseline": 20, "better": "higher"} | NO_EXTRAS]
    assert results[2]["malformed_results"] == 4 and results[0]["results"] == []
    assert "beats the baseline" in index and "loses to the baseline" in index and "ties" in index
    assert "MSE &lt;b&gt;" in index and "MSE <b>" not in index
    assert "4 malformed results row(s) dropped" in index


PUBLISH_RESULTS = """from IPython.display import display
MIME = "application/vnd.lessons-results+json"
display({MIME: {"results": [
    {"what": "SSIM vs the target", "model": 0.8, "baseline": 0.7, "better": "higher"},
    {"what": "MSE <b>", "model": 0.2, "baseline": 0.1, "better": "lower"},
    {"what": "no baseline", "model": 1.0, "better": "lower"},
    {"what": "nan", "model": float("nan"), "baseline": 1.0, "better": "lower"},
]}}, raw=True)
display({MIME: {"results": [{"what": "PSNR", "model": 20, "baseline": 20, "better": "higher"},
                            {"what": "x", "model": True, "baseline": 1, "better": "higher"}]}}, raw=True)
display({MIME: {"rows": []}}, raw=True)
"""


@pytest.mark.parametrize("row, ok", [
    ({"what": "a", "model": 1, "baseline": 2.5, "better": "lower"}, True),
    ({"what": "a", "model": 1, "baseline": 2.5, "better": "smaller"}, False),
    ({"what": "", "model": 1, "baseline": 2, "better": "lower"}, False),
    ({"what": "a", "model": float("inf"), "baseline": 2, "better": "lower"}, False),
    ({"what": "a", "model": "1", "baseline": 2, "better": "lower"}, False),
    ({"what": "a", "model": 1, "baseline": 2, "better": "lower", "extra": 1}, False),
    (["a", 1, 2, "lower"], False),
])
def test_results_rows_are_validated_strictly(row, ok):
    assert course.valid_row(row) is ok


def test_verdict_of_a_row():
    assert course.verdict({"model": 0.1, "baseline": 0.2, "better": "lower"}) == "beats"
    assert course.verdict({"model": 0.1, "baseline": 0.2, "better": "higher"}) == "loses"
    assert course.verdict({"model": 3, "baseline": 3, "better": "higher"}) == "ties"


def test_results_table_shows_the_digits_that_tell_model_and_baseline_apart():
    from lessons_lib.tables import result_row, results_markdown

    text = results_markdown([result_row("pix2pix", 0.2106, 0.2141), result_row("sr", 21.815, 21.228, "higher"),
                             result_row("tie", 0.5, 0.5), result_row("near", 1.0, 1.0 + 1e-9)])
    lines = text.splitlines()[2:]
    assert "| 0.211 | 0.214 |" in lines[0] and "beats" in lines[0]  # not "0.21 | 0.21"
    assert "| 21.82 | 21.23 |" in lines[1]  # two decimals where they suffice
    assert "| 0.50 | 0.50 |" in lines[2] and "loses" in lines[2]
    assert "| 1.000000 | 1.000000 |" in lines[3]  # at most six decimals


def test_course_runner_never_overwrites_silently(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("earlier run")
    assert course.main(["--notebooks", str(REPO / "notebooks"), "--out", str(out)]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "index.html").read_text() == "earlier run"


def test_course_runner_bad_folder(tmp_path, capsys):
    assert course.main(["--notebooks", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert course.main(["--notebooks", str(REPO / "notebooks"), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert course.main(["--notebooks", str(REPO / "notebooks"), "--out", str(REPO / "notebooks"),
                        "--overwrite"]) == 2
    assert "is the notebook folder" in capsys.readouterr().err
    for bad in ("0", "-5", "1.5", "soon"):
        with pytest.raises(SystemExit):
            course.main(["--timeout", bad])
        assert "--timeout must be" in capsys.readouterr().err


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: a code cell has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name}: execution counts must be cleared"


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_lesson_notebooks_follow_the_course_conventions(path):
    nb = nbformat.read(path, as_version=4)
    first_md, first_code = nb.cells[0], next(c for c in nb.cells if c.cell_type == "code")
    assert first_md.cell_type == "markdown" and first_md.source.startswith("# ")
    badge = ("colab.research.google.com/github/image-transformation-course/lessons/blob/main/notebooks/"
             + path.name)
    assert badge in first_md.source, "Open-in-Colab badge must link to this notebook"
    assert "What you will learn" in first_md.source
    assert 'if "google.colab" in sys.modules:' in first_code.source
    from lessons_lib import COURSE_RELEASE

    assert f'%pip install -q "lessons_lib @ git+{REPO_URL}@{COURSE_RELEASE}"' in first_code.source
    assert "setup_notebook(" in first_code.source
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Try this" in text and "## Summary" in text


def test_readme_links_every_notebook():
    readme = (REPO / "README.md").read_text()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{path.name}" in readme, f"README lacks a Colab link to {path.name}"


CONFLICTED = """{
 "cells": [
<<<<<<< HEAD
  {"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": ["x = 1"]}
=======
  {"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": ["x = 2"]}
>>>>>>> other
 ],
 "metadata": {}, "nbformat": 4, "nbformat_minor": 5
}
"""


def test_a_broken_notebook_is_named_up_front_reported_and_the_others_run(tmp_path, capsys):
    src = tmp_path / "nbs"
    src.mkdir()
    _write(src, "a_first", "print('first ran')")
    (src / "b_conflict.ipynb").write_text(CONFLICTED)
    (src / "c_list.ipynb").write_text("[1, 2]")
    _write(src, "d_after", "print('after ran')")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    code = course.main(["--notebooks", str(src), "--out", str(out), "--profile", "fast", "--timeout", "60",
                        "--no-site"])
    printed = capsys.readouterr().out
    assert code == 1
    head = printed.split("[1/4]")[0]  # said before anything ran
    assert "b_conflict.ipynb cannot run" in head and "merge-conflict marker on line 3" in head
    assert "c_list.ipynb cannot run" in head and "not a notebook" in head
    assert "[2/4] b_conflict.ipynb ... FAILED" in printed and "[4/4] d_after.ipynb ... ok" in printed
    results = json.loads((out / "results.json").read_text())
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert "merge-conflict marker" in results[1]["error"] and "resolve the conflict" in results[1]["error"]
    assert "after ran" in nbformat.read(out / "d_after.ipynb", as_version=4).cells[1].outputs[0]["text"]
    assert "merge-conflict marker" in (out / "b_conflict.html").read_text()
    assert not (out / "b_conflict.ipynb").exists() and "b_conflict.ipynb'" not in (out / "index.html").read_text()
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_the_runner_refuses_an_empty_only_and_a_bad_profile_before_running(tmp_path, capsys, monkeypatch):
    src = tmp_path / "nbs"
    src.mkdir()
    _write(src, "a_first", "open('ran.txt', 'w')")
    out = tmp_path / "out"
    for only in ("", "  "):
        assert course.main(["--notebooks", str(src), "--out", str(out), "--only", only]) == 2
        err = capsys.readouterr().err
        assert "--only" in err and "is empty" in err and "leave --only out" in err
    monkeypatch.setenv("LESSONS_PROFILE", "fastest")
    assert course.main(["--notebooks", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'fastest' is not a profile" in err and "--profile fast" in err and "Traceback" not in err
    assert not out.exists()


def test_rows_carry_their_spread_and_an_expected_loss_says_so():
    from lessons_lib.tables import result_row, results_markdown

    meant = result_row("encoder-decoder as specified", 9.0, 7.0, spread=0.25, expected="loses")
    assert course.valid_row(meant) and meant["spread"] == 0.25
    text = results_markdown([meant, result_row("unet", 5.0, 7.0, spread=0.1)])
    assert "9.00 ± 0.25" in text and "loses, as the lesson expects" in text
    assert "5.00 ± 0.10" in text and "**beats the baseline**" in text
    assert course._mark(meant) == course.MARKS["expected"]
    for bad in ({**meant, "spread": -1.0}, {**meant, "spread": float("nan")}, {**meant, "expected": "wins"},
                {**meant, "extra": 1}):
        assert not course.valid_row(bad)
    with pytest.raises(ValueError, match=r"Unknown outcome \(expected=\) 'maybe'. Choose one of: beats, loses"):
        result_row("x", 1, 2, expected="maybe")


def test_a_win_inside_the_spread_is_not_marked_as_a_win():
    from course_tools.site import pages

    narrow = {"what": "x", "model": 9.9, "baseline": 10.0, "better": "lower", "spread": 0.3, "expected": "beats"}
    clear = {**narrow, "spread": 0.05}
    assert course._mark(narrow) == course.MARKS["within"] and course._css(narrow) == "within"
    assert pages.mark(narrow) == ("within", course.MARKS["within"])
    assert course._mark(clear) == course.MARKS["beats"] and pages.mark(clear)[0] == "beats"
