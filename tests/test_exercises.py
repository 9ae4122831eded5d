"""Exercise generation (solutions/ -> exercises/), the nbgrader metadata of the solution
notebooks, and the exercises' from-scratch pieces against library references."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_tools import exercises
from course_tools.exercises import MarkerError, nbgrader_meta
from course_tools.testcells import TestCellError, parse_test_cell
from lessons_lib.tables import format_table

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
NAMES = ["ex1_vae_compression", "ex2_cfg_scale", "ex3_ddim_steps", "ex4_inpainting_masks",
         "ex5_style_weights", "ex6_strength_calibrator"]


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _namespace(name):
    """The classes a solution notebook defines (its answer cell, run here)."""
    nb = _read(SOLUTIONS / f"{name}.ipynb")
    ns = {}
    for cell in nb.cells:
        if nbgrader_meta(cell).get("solution"):
            exec(compile(cell.source, f"{name}.ipynb", "exec"), ns)
    return ns


# --------------------------------------------------------------------------- generation
def test_committed_exercises_match_a_fresh_generation():
    assert exercises.check(SOLUTIONS, EXERCISES) == [], \
        "exercises/ is stale: run `python -m course_tools.exercises` and commit the result"
    assert sorted(p.stem for p in EXERCISES.glob("*.ipynb")) == NAMES


def test_generation_is_deterministic(tmp_path):
    exercises.generate(SOLUTIONS, tmp_path / "a")
    exercises.generate(SOLUTIONS, tmp_path / "b")
    for name in NAMES:
        a = (tmp_path / "a" / f"{name}.ipynb").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.ipynb").read_bytes()
        assert a == (EXERCISES / f"{name}.ipynb").read_bytes()


def test_check_mode_lists_what_differs(tmp_path):
    out = tmp_path / "ex"
    shutil.copytree(EXERCISES, out)
    ex2 = out / "ex2_cfg_scale.ipynb"
    ex2.write_text(ex2.read_text().replace("guide", "guid"))
    (out / "ex3_ddim_steps.ipynb").unlink()
    (out / "stray.ipynb").write_text("{}")
    cmd = [sys.executable, "-m", "course_tools.exercises", "--source", str(SOLUTIONS), "--out", str(out)]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 1
    assert "ex2_cfg_scale.ipynb: differs" in res.stderr and "ex3_ddim_steps.ipynb: missing" in res.stderr
    assert "stray.ipynb" in res.stderr and "ex1_vae" not in res.stderr
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    # the hand edit reached an answer cell, which is where a student's work would be: kept unless --force
    assert res.returncode == 2 and "ex2_cfg_scale.ipynb: its answer cells were edited" in res.stderr
    assert not (out / "ex3_ddim_steps.ipynb").exists()
    res = subprocess.run(cmd + ["--force"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0 and "stray.ipynb has no solution notebook; it was left as it is" in res.stdout
    assert (out / "stray.ipynb").read_text() == "{}"  # not the generator's file: never deleted
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 1 and "stray.ipynb: has no solution notebook" in res.stderr
    assert "differs" not in res.stderr and "missing" not in res.stderr


def test_generator_keeps_other_notebooks_and_refuses_the_solutions_folder(tmp_path, capsys):
    src = tmp_path / "solutions"
    shutil.copytree(SOLUTIONS, src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    for out in (src, src / "sub"):  # the solutions folder itself, or a folder inside it
        assert exercises.main(["--source", str(src), "--out", str(out)]) == 2
        assert "would replace the answers" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before and not (src / "sub").exists()
    out = tmp_path / "ex"
    out.mkdir()
    (out / "my_notes.ipynb").write_text("my own work")
    (out / "readme.txt").write_text("keep")
    assert exercises.main(["--source", str(src), "--out", str(out)]) == 0
    assert (out / "my_notes.ipynb").read_text() == "my own work"
    assert (out / "readme.txt").read_text() == "keep"
    assert "my_notes.ipynb has no solution notebook" in capsys.readouterr().out
    (tmp_path / "afile").write_text("x")
    assert exercises.main(["--source", str(src), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_generated_files_are_readable_by_others(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        for path in exercises.generate(SOLUTIONS, tmp_path / "ex"):
            assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", NAMES)
def test_exercise_is_the_solution_without_answers(name):
    sol, ex = _read(SOLUTIONS / f"{name}.ipynb"), _read(EXERCISES / f"{name}.ipynb")
    assert len(sol.cells) == len(ex.cells)
    for s, e in zip(sol.cells, ex.cells, strict=False):
        meta = nbgrader_meta(e)
        assert meta["grade_id"] == nbgrader_meta(s)["grade_id"] and meta["schema_version"] == 3
        assert "### BEGIN" not in e.source and "### END" not in e.source
        if e.cell_type == "code":
            assert e.outputs == [] and e.execution_count is None
        if meta["solution"]:
            assert not meta["locked"] and "editable" not in e.metadata
            stubs = e.source.count("raise NotImplementedError(")
            assert stubs == s.source.count(exercises.BEGIN_SOLUTION) >= 3
            # every def line of the solution is still there, in order
            defs = [li for li in s.source.splitlines() if li.strip().startswith(("def ", "class "))]
            assert defs == [li for li in e.source.splitlines() if li.strip().startswith(("def ", "class "))]
        else:
            assert meta["locked"] and e.metadata["editable"] is False and e.metadata["deletable"] is False
            if meta["grade"]:
                visible = s.source.split(exercises.BEGIN_HIDDEN)[0].rstrip("\n")
                assert e.source == visible and visible.strip()
            else:
                assert e.source == s.source.replace("/blob/main/solutions/", "/blob/main/exercises/")
    assert "/blob/main/exercises/" in ex.cells[0].source


def test_strip_solution_keeps_signatures_and_handles_markdown():
    code = ("class A:\n    def f(self, x):\n        \"\"\"Doc.\"\"\"\n        ### BEGIN SOLUTION\n"
            "        return x + 1\n        ### END SOLUTION\n\n    def g(self):\n        return 2")
    out = exercises.strip_solution(code)
    assert "return x + 1" not in out and "def g(self):\n        return 2" in out
    assert '        # YOUR CODE HERE\n        raise NotImplementedError(' in out
    md = "Explain:\n### BEGIN SOLUTION\nBecause 48.\n### END SOLUTION\nDone."
    assert exercises.strip_solution(md, "markdown") == "Explain:\nYOUR ANSWER HERE\nDone."
    hidden = "assert 1\n### BEGIN HIDDEN TESTS\nassert 2\n### END HIDDEN TESTS\nassert 3"
    assert exercises.strip_hidden_tests(hidden) == "assert 1\nassert 3"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("My answer")])
    nb.cells[0].metadata["nbgrader"] = {"solution": True, "grade": True, "grade_id": "q", "points": 1,
                                        "locked": False, "schema_version": 3, "task": False}
    assert exercises.make_exercise(nb).cells[0].source == "YOUR ANSWER HERE"


@pytest.mark.parametrize("source, match", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "has no"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_are_refused(source, match):
    with pytest.raises(MarkerError, match=match):
        exercises.strip_solution(source, where="ex.ipynb, cell 3")


def test_generator_says_what_to_do_without_sources(tmp_path, capsys):
    assert exercises.main(["--source", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "--source" in capsys.readouterr().err


# --------------------------------------------------------------------------- solution notebooks
@pytest.mark.parametrize("name", NAMES)
def test_solution_metadata_is_nbgrader_schema_3(name):
    nb = _read(SOLUTIONS / f"{name}.ipynb")
    ids, points = [], 0
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        assert set(meta) >= {"grade", "solution", "locked", "grade_id", "schema_version", "task"}
        assert meta["schema_version"] == 3 and meta["task"] is False
        ids.append(meta["grade_id"])
        if meta["grade"]:
            assert cell.cell_type == "code" and not meta["solution"] and meta["locked"]
            assert exercises.BEGIN_HIDDEN in cell.source and meta["points"] > 0
            assert cell.source.startswith(f"# {meta['points']} point")
            points += meta["points"]
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert len(ids) == len(set(ids)) and points == 10
    assert "setup_notebook(gpu=False)" in nb.cells[1].source
    assert "from lessons_lib.expect import expect, raises" in nb.cells[1].source


@pytest.mark.parametrize("name", NAMES)
def test_test_cells_are_judged_outside_the_kernel(name):
    """Every test cell checks through expect(); the student form carries no expected value."""
    nb = _read(SOLUTIONS / f"{name}.ipynb")
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta["grade"]:
            continue
        test = parse_test_cell(cell.source, meta["grade_id"], name)
        assert "expect(" not in test.student_source and "### " not in test.student_source
        assert test.hidden_sites and len(test.hidden_sites) < test.n_sites  # visible and hidden checks
        assert test.student_source.count("observe(") == test.n_sites
        assert test.reference_source.count("observe(") == test.n_sites


@pytest.mark.parametrize("source, match", [
    ("x = 1\nassert x == 1", "assert statement"),
    ("x = 1", "without any expect"),
    ("expect('a', 1)", "exactly"),
    ("f = expect\nf('a', 1, 1)", "other than by calling"),
    ("%time expect('a', 1, 1)", "plain Python"),
])
def test_test_cells_that_cannot_be_judged_are_refused(source, match):
    with pytest.raises(TestCellError, match=match):
        parse_test_cell(source, "q", "ex.ipynb, cell 3")


# --------------------------------------------------------------------------- references
def test_ddim_matches_diffusers_scheduler():
    from diffusers import DDIMScheduler

    est = _namespace("ex3_ddim_steps")["DDIMStepEstimator"]()
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                          clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing",
                          steps_offset=0, prediction_type="epsilon")
    assert torch.allclose(est.alphas_cumprod.float(), sched.alphas_cumprod, rtol=1e-5)
    for n in (5, 10, 20, 40, 50, 100, 1000):
        sched.set_timesteps(n)
        assert [int(t) for t in sched.timesteps] == est.timesteps(n)
    sched.set_timesteps(20)
    g = torch.Generator().manual_seed(0)
    x_ours = x_ref = torch.randn(256, generator=g, dtype=torch.float64)
    levels = est.timesteps(20) + [-1]
    for i, t in enumerate(levels[:-1]):
        x_ref = sched.step(est.oracle(x_ref, t), t, x_ref).prev_sample
        x_ours = est.ddim_step(x_ours, est.oracle(x_ours, t), est.alpha(t), est.alpha(levels[i + 1]))
    assert torch.allclose(x_ours, x_ref.to(torch.float64), rtol=1e-4, atol=1e-5)


def test_mask_boundary_matches_scipy_erosion():
    from scipy import ndimage

    ns = _namespace("ex4_inpainting_masks")
    an = ns["MaskAnalyzer"]()
    rng = np.random.default_rng(0)
    masks = list(ns["example_masks"]().values()) + [rng.random((40, 50)) > 0.5]
    cross = ndimage.generate_binary_structure(2, 1)
    for m in masks:
        ref = m & ~ndimage.binary_erosion(m, structure=cross, border_value=0)
        assert np.array_equal(an.boundary(m), ref)


def test_gram_matches_einsum():
    ex = _namespace("ex5_style_weights")["StyleWeightExplorer"]()
    f = ex.style
    ref = torch.einsum("bchw,bdhw->bcd", f, f) / f[0].numel()
    assert torch.allclose(ex.gram(f), ref)


def test_strength_zero_and_one():
    cal = _namespace("ex6_strength_calibrator")["StrengthCalibrator"]()
    assert torch.equal(cal.edit(0.0), cal.original)
    with pytest.raises(ValueError, match="between 0 and 1"):
        cal.edit(1.2)
    x, t = cal.noised(1.0)
    assert t == 1000 and abs(float(cal.alphas_cumprod[999]) - 4.0358e-05) < 1e-8


# --------------------------------------------------------------------------- tables
def test_format_table():
    text = format_table([{"a": 1, "b": 0.5, "c": True, "d": None},
                         {"a": 10, "b": 2.0, "c": False, "d": (1, 2)}],
                        formats={"b": ".2f"})
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "c", "d"] and lines[2].split() == ["1", "0.50", "yes", "-"]
    assert lines[3].split() == ["10", "2.00", "no", "(1,", "2)"]
    assert len({len(li) for li in lines}) == 1
    with pytest.raises(ValueError, match="no rows"):
        format_table([])
    with pytest.raises(KeyError, match="missing"):
        format_table([{"a": 1}], columns=["a", "z"])


def _bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_generator_refuses_to_overwrite_work_in_out(tmp_path, capsys):
    out = tmp_path / "ex"
    shutil.copytree(EXERCISES, out)
    done = _read(EXERCISES / "ex1_vae_compression.ipynb")      # a student's completed exercise
    for cell in done.cells:
        if nbgrader_meta(cell).get("solution") and cell.cell_type == "code":
            cell.source = cell.source.replace(f'raise NotImplementedError("{exercises.STUB_MESSAGE}")',
                                              "return 48")
    nbformat.write(done, str(out / "ex1_vae_compression.ipynb"))
    shutil.copy(SOLUTIONS / "ex2_cfg_scale.ipynb", out / "ex2_cfg_scale.ipynb")   # answers and markers
    ran = _read(EXERCISES / "ex3_ddim_steps.ipynb")               # run, with outputs
    ran.cells[1].outputs = [nbformat.v4.new_output("stream", text="ok\n")]
    ran.cells[1].execution_count = 1
    nbformat.write(ran, str(out / "ex3_ddim_steps.ipynb"))
    (out / "ex4_inpainting_masks.ipynb").write_text("<<<<<<< HEAD\n{}")
    before = _bytes(out)
    assert exercises.main(["--source", str(SOLUTIONS), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ex1_vae_compression.ipynb: its answer cells were edited" in err
    assert "ex2_cfg_scale.ipynb: it holds solution or hidden-test markers" in err
    assert "ex3_ddim_steps.ipynb: it holds outputs" in err
    assert "ex4_inpainting_masks.ipynb: it is not a notebook the generator wrote" in err
    assert "ex5" not in err and "Nothing was written" in err and "--force" in err
    assert _bytes(out) == before
    assert exercises.main(["--source", str(SOLUTIONS), "--out", str(out), "--force"]) == 0
    assert _bytes(out) == _bytes(EXERCISES)


def test_regenerating_after_editing_the_solutions_needs_no_force(tmp_path):
    src, out = tmp_path / "solutions", tmp_path / "ex"
    shutil.copytree(SOLUTIONS, src)
    exercises.generate(src, out)
    path = src / "ex1_vae_compression.ipynb"
    nb = _read(path)
    answer = next(c for c in nb.cells if nbgrader_meta(c).get("solution") and c.cell_type == "code")
    answer.source = "# a new comment in the template\n" + answer.source           # the answer cell's template
    nb.cells[0].source += "\n\nOne more line of instructions."                    # a locked cell
    nbformat.write(nb, str(path))
    for stale in out.glob("*.ipynb"):  # what release --set does: the install line, text-level
        stale.write_text(stale.read_text().replace("lessons@", "lessons@x"))
    written = exercises.generate(src, out)
    assert len(written) == 6 and exercises.check(src, out) == []
    assert "a new comment in the template" in (out / "ex1_vae_compression.ipynb").read_text()
