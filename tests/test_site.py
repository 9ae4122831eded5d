"""The course site that `make course` builds (course_tools.site), checked as a student would see it.

One small course run (two tiny lessons named like the real ones 1 and 3, each with a figure, a formula
and results rows) goes through `course.main`, the code path of `make course`: the notebooks run, the
site is built and opened in headless Chromium. The tests read what that left in the run folder.
"""
import contextlib
import html
import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_tools import course
from course_tools.site import SOLUTION_MARKERS, SiteError, build_site, key_figure, load_course
from course_tools.site.check import find_chromium, link_problems
from course_tools.site.pages import mark

REPO = Path(__file__).resolve().parents[1]
LESSONS = {"01_cifar10_colorization": ("1. Colour from gray", "Grayscale in, colour out.",
                                        '"as specified": to_unit(output)'),
           "03_diffusion_inpainting": ("Diffusion from scratch, and four ways to inpaint",
                                       "RePaint fills a hole by resampling the known pixels.",
                                       '"masked input": masks.apply_mask(test_images, center')}
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.example/{})"
FORMULAS = (r"The forward process $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$, trained with"
            "\n\n" r"$$\mathcal{L} = \mathbb{E}\,\lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2$$")
PICTURE = """import matplotlib.pyplot as plt
import numpy as np
plt.figure(figsize=(2, 2))  # {marker}
plt.imshow(np.full((4, 4, 3), {colour}))
plt.show()"""
ROWS = """from lessons_lib import tables
tables.show_results([
    tables.result_row("encoder-decoder as specified", 0.09, 0.05, spread=0.004, expected="loses"),
    tables.result_row("colour only", 0.91, 0.85, "higher", spread=0.01),
])"""


def _lesson(folder: Path, name: str) -> None:
    title, text, marker = LESSONS[name]
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {title}\n\n{BADGE.format(name)}\n\n**What you will learn**\n\n- {text}"),
        new_markdown_cell(f"## The idea\n\n{FORMULAS}"),
        new_code_cell(PICTURE.format(marker="another figure", colour="(0.1, 0.2, 0.9)")),  # blue
        new_code_cell(PICTURE.format(marker=marker, colour="(0.9, 0.6, 0.1)")),  # orange: the key figure
        new_markdown_cell("## Results"), new_code_cell(ROWS), new_markdown_cell("## Summary\n\nDone.")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small `make course` run: (its folder, exit status, what it printed)."""
    src = tmp_path_factory.mktemp("notebooks")
    for name in LESSONS:
        _lesson(src, name)
    parent = tmp_path_factory.mktemp("course")
    printed = io.StringIO()
    here = os.getcwd()
    os.chdir(parent)  # a relative --out, as make course's
    try:
        with contextlib.redirect_stdout(printed):
            code = course.main(["--notebooks", str(src), "--out", "run", "--profile", "fast", "--timeout", "120"])
    finally:
        os.chdir(here)
    return parent / "run", code, printed.getvalue()


@pytest.fixture(scope="module")
def report(run):
    out, code, printed = run
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run and scripts/setup_env.sh do)")
    assert "Opening it in headless Chromium ... ok" in printed, printed
    return json.loads((out / "site-check" / "report.json").read_text())


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_make_course_builds_the_site_into_the_run_folder(run):
    out, code, printed = run
    assert code == 0, printed
    assert "Building the course site ..." in printed and (out / "site" / "index.html").is_file()
    facts = json.loads((out / "run.json").read_text())
    from lessons_lib import COURSE_RELEASE

    assert facts["profile"] == "fast" and facts["release"] == COURSE_RELEASE and facts["commit"] != "unknown"
    assert "site/index.html" in _text(out / "index.html")  # the run report links the site


def test_the_site_in_chromium_links_resolve_and_nothing_leaves_the_machine(run, report):
    out = run[0]
    assert report["problems"] == [] and report["off_machine"] == [] and report["failed_loads"] == []
    assert report["pages"] >= 2 + 6 + 2 and report["links_checked"] > 100 and report["requests"] > 20
    for name in LESSONS:  # MathJax (the site's own copy) typeset the inline and the display formula
        formulas = report["formulas"][f"lessons/{name}.html"]
        assert formulas["loaded"] and formulas["typeset"] >= 2 and formulas["errors"] == 0
    cards = report["cards"]
    assert [c["id"] for c in cards] == ["lesson-1", "lesson-3"] and all(c["thumb_ok"] for c in cards)
    assert any(h["href"].split("?")[0].endswith("/lessons/03_diffusion_inpainting.html")
               for h in report["search_hits"]), report["search_hits"]
    for shot in ("home", "lesson", "exercise"):
        png = (out / "site-check" / f"{shot}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_home_page_tells_a_student_what_the_course_is_and_how_each_lesson_did(run):
    page = html.unescape(_text(run[0] / "site" / "index.html"))
    course_text = load_course()
    assert course_text["title"] in page and "Who it is for." in page
    assert "These pages were produced by the fast profile" in page and "What it does not show:" in page
    facts = json.loads((run[0] / "run.json").read_text())
    assert facts["release"] in page and facts["commit"].split()[0] in page and facts["date"] in page
    objectives = {e["notebook"]: e["objective"] for e in course_text["lessons"]}
    cards = re.findall(r"<div class='lesson-card' id='lesson-(\d)'>(.*?)</table>", page, flags=re.S)
    assert [n for n, _ in cards] == ["1", "3"]
    for (_, card), name in zip(cards, LESSONS):
        assert objectives[name] in card
        assert f"href='lessons/{name}.html'" in card and f"src='assets/thumbs/{name}.png'" in card
        assert f"https://colab.research.google.com/github/image-transformation-course/lessons/blob/main/notebooks/" \
               f"{name}.ipynb" in card and "assets/colab-badge.svg" in card
        loss, win = re.findall(r"<tr class='(\w+)'>(.*?)</tr>", card, flags=re.S)
        assert loss[0] == "expected" and "0.090 ± 0.004" in loss[1] and "loses, as the lesson expects" in loss[1]
        assert "beats" not in loss[1] and "-0.040" in loss[1]  # the margin, in the better direction
        assert win[0] == "beats" and "0.910 ± 0.010" in win[1] and "+0.060" in win[1]
    assert "No graded exercise goes with this lesson" in cards[0][1]
    assert "exercises/ex3_ddim_steps.html" in cards[1][1] and "exercises/ex4_inpainting_masks.html" in cards[1][1]
    assert "href=\"instructors.html\"" in page


def test_lesson_and_exercise_pages(run):
    site = run[0] / "site"
    lesson = _text(site / "lessons" / "03_diffusion_inpainting.html")
    assert "md-search__input" in lesson and "Table of contents" in lesson and "The idea" in lesson
    assert "md-footer__link--prev" in lesson and "md-footer__link--next" in lesson  # previous / next
    assert "data:image/png;base64" in lesson and "highlight-ipynb" in lesson  # figures, highlighted code
    assert "Exercises for this lesson" in lesson and "../exercises/ex4_inpainting_masks.html" in lesson
    assert "<3 results rows>" not in html.unescape(lesson)  # the raw payload is not shown, its table is
    exercise = _text(site / "exercises" / "ex4_inpainting_masks.html")
    assert "NotImplementedError" in exercise and "../lessons/03_diffusion_inpainting.html" in exercise
    instructors = _plain(_text(site / "instructors.html"))
    for command in ("python -m course_tools.exercises", "python -m course_tools.grading", "make weights"):
        assert command in instructors


def _plain(text: str) -> str:
    """A page's or a search index's text as a reader sees it: tags dropped, entities and JSON escapes decoded."""
    text = re.sub(r"<[^>]+>", "", text)
    text = html.unescape(html.unescape(text))
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = text.replace('\\"', '"').replace("\\n", " ").replace("\\\\", "\\")
    return re.sub(r"\s+", " ", text)


def _instructor_lines() -> set[str]:
    """Every line of the solutions' answers and hidden tests that the student versions do not hold."""
    student = " ".join(re.sub(r"\s+", " ", c.source) for p in (REPO / "exercises").glob("*.ipynb")
                       for c in nbformat.read(p, as_version=4).cells)
    probes = set()
    for path in (REPO / "solutions").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if line.strip().startswith(("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")):
                    inside = True
                elif line.strip().startswith(("### END SOLUTION", "### END HIDDEN TESTS")):
                    inside = False
                elif inside:
                    probe = re.sub(r"\s+", " ", line.strip())
                    if len(probe) >= 12 and probe not in student:
                        probes.add(probe)
    return probes


def test_no_solution_or_hidden_test_text_anywhere_in_the_site(run):
    probes = _instructor_lines()
    assert len(probes) > 50  # a probe of the real answers and hidden checks, not of a few brackets
    site = run[0] / "site"
    texts = {p: _plain(_text(p)) for p in site.rglob("*") if p.suffix in (".html", ".js", ".json", ".xml", ".md")}
    everything = "\n".join(texts.values())
    found = sorted(p for p in probes if p in everything)
    assert found == [], f"instructor text in the site: {found[:5]}"
    notebooks = "\n".join(t for p, t in texts.items() if p.parent.name in ("lessons", "exercises"))
    assert not any(marker in notebooks for marker in SOLUTION_MARKERS)  # (the instructor page names them)
    # the probe can see code on the pages: the student versions' own lines are found
    stub = "raise NotImplementedError"
    assert stub in everything and "def " in texts[site / "exercises" / "ex1_vae_compression.html"]


def test_the_key_figure_is_the_picture_course_toml_names_else_the_last_one(run):
    nb = nbformat.read(run[0] / "03_diffusion_inpainting.ipynb", as_version=4)
    from PIL import Image

    def colour(png):
        return Image.open(io.BytesIO(png)).convert("RGB").resize((1, 1), Image.BOX).getpixel((0, 0))

    marker = LESSONS["03_diffusion_inpainting"][2]
    chosen, fallback = key_figure(nb, marker), key_figure(nb, "no cell holds this")
    assert colour(chosen)[0] > colour(chosen)[2] and chosen == fallback  # orange, and the last one
    nb.cells[3], nb.cells[2] = nb.cells[2], nb.cells[3]
    assert key_figure(nb, marker) == chosen and key_figure(nb, None) != chosen  # blue is last now
    thumb = (run[0] / "site" / "assets" / "thumbs" / "03_diffusion_inpainting.png").read_bytes()
    assert Image.open(io.BytesIO(thumb)).width <= 480 and colour(thumb)[0] > colour(thumb)[2]  # orange


def test_course_toml_maps_every_exercise_to_a_lesson_that_exists():
    data = load_course()
    lessons = [entry["notebook"] for entry in data["lessons"]]
    assert lessons == sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    exercises = {p.stem for p in (REPO / "exercises").glob("*.ipynb")}
    mapped = {e for entry in data["lessons"] for e in entry["exercises"]}
    assert mapped <= exercises and exercises <= mapped, "every exercise goes with a lesson, and exists"
    assert all(entry["objective"].endswith(".") and entry["objective"].count(". ") == 0 for entry in data["lessons"])


def test_the_site_refuses_an_exercise_that_holds_a_solution(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text("[]")
    (tmp_path / "ex").mkdir()
    solution = next((REPO / "solutions").glob("*.ipynb"))
    (tmp_path / "ex" / solution.name).write_bytes(solution.read_bytes())
    with pytest.raises(SiteError, match="not a student version"):
        build_site(tmp_path / "run", exercises_dir=tmp_path / "ex")
    assert not (tmp_path / "run" / "site").exists()


def test_the_link_check_finds_broken_links_and_off_site_resources(tmp_path):
    (tmp_path / "a.html").write_text("<a href='b.html#top'>b</a> <a href='gone.html'>x</a> <a href='b.html#nope'>y</a>"
                                     "<img src='https://cdn.example/x.png'> <a href='https://example.org'>ok</a>")
    (tmp_path / "b.html").write_text("<h1 id='top'>b</h1><script src='missing.js'></script>")
    problems, checked = link_problems(tmp_path)
    assert checked == 4 and len(problems) == 4
    assert any("gone.html does not exist" in p for p in problems) and any("no #nope" in p for p in problems)
    assert any("https://cdn.example/x.png from off the machine" in p for p in problems)
    assert any("b.html: missing.js does not exist" in p for p in problems)


@pytest.mark.parametrize("model, expected, css, text", [
    (0.2, "beats", "beats", "beats the baseline"), (0.4, "beats", "loses", "loses to the baseline"),
    (0.4, "loses", "expected", "loses, as the lesson expects"),
    (0.2, "loses", "beats", "the lesson expected a loss")])
def test_an_expected_loss_is_never_shown_as_a_win(model, expected, css, text):
    got = mark({"what": "x", "model": model, "baseline": 0.3, "better": "lower", "expected": expected})
    assert got[0] == css and text in got[1]
