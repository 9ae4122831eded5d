"""The course site: the executed lessons of one `make course` run as a static site, offline.

    python -m course_tools.site RUN_DIR          (re)build RUN_DIR/site/ from a run folder
    python -m course_tools.site RUN_DIR --check  ... and open it in headless Chromium

`make course` (course_tools.course) calls :func:`build_site` on its run folder when the notebooks
have run, then :func:`course_tools.site.check.check_site` when Chromium is installed.

Generator: MkDocs with the Material theme and mkdocs-jupyter (nbconvert's own HTML of each executed
notebook inside the theme): pip packages only, a build of seconds, client-side search, and Material's
``offline`` plugin for a site that works from ``file://`` (a zip on a student's disk) as well as from
a web server. Nothing is fetched when the site is built or viewed: Material's web fonts are off (system
fonts), the Open-in-Colab badge is a local SVG, and formulas are typeset by MathJax 2 from the Jupyter
project's own copy (the ``jupyter-server-mathjax`` package), copied into the site.

What goes in, from the run folder: each executed ``<lesson>.ipynb`` (figures and all), ``results.json``
(the results rows), ``run.json`` (profile, release, commit, date); from the checkout: the student
versions of the exercises in ``exercises/`` (never ``solutions/``: a notebook holding a solution or
hidden-test marker is refused) and the README's instructor sections; from ``course.toml``: each lesson's
objective, key figure and exercises.
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from course_tools import repo_root

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (requirements-dev.txt)
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
COURSE_TOML = HERE / "course.toml"
RESULTS_MIME = "application/vnd.lessons-results+json"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
THUMB_WIDTH = 480
THUMB_ASPECT = 1.6  # widest thumbnail kept, width / height
# MathJax 2 (what nbconvert's templates configure), typeset with the STIX web fonts it ships.
MATHJAX_URL = "../assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,course"
MATHJAX_CONFIG = """MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  menuSettings: {zoom: "None"}
});
MathJax.Ajax.loadComplete("[MathJax]/config/course.js");
"""


class SiteError(RuntimeError):
    """The site could not be built; the message says why and what to do."""


@dataclass
class SiteBuild:
    site: Path
    seconds: float
    pages: int
    megabytes: float
    lessons: list
    exercises: list


def load_course(path: Path = COURSE_TOML) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" (with uncommitted changes)" if dirty else "")) if commit else "unknown"


def run_facts(repo: Path, profile: str, when: str) -> dict:
    """What the banner states about a run: the profile, the release students install, commit, date."""
    from lessons_lib import COURSE_RELEASE

    return {"profile": profile, "release": COURSE_RELEASE, "commit": _git_commit(repo), "date": when}


def _printed_profile(run_dir: Path) -> str | None:
    """The profile the executed notebooks' setup cells printed ("profile : fast"), if they agree."""
    found = set()
    for path in run_dir.glob("*.ipynb"):
        text = path.read_text(encoding="utf-8", errors="replace")
        found |= set(re.findall(r"profile\s*:\s*(fast|full)\b", text))
    return found.pop() if len(found) == 1 else None


def notebook_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _number(stem: str) -> int | None:
    match = re.match(r"(?:ex)?(\d+)", stem)
    return int(match.group(1)) if match else None


def key_figure(nb, marker: str | None) -> bytes | None:
    """The PNG of the first picture the cell holding ``marker`` drew; else the notebook's last picture."""
    pictures = [(cell, out["data"]["image/png"]) for cell in nb.cells if cell.cell_type == "code"
                for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    chosen = next((png for cell, png in pictures if marker and marker in cell.source), None)
    if chosen is None and pictures:
        chosen = pictures[-1][1]
    if chosen is None:
        return None
    return base64.b64decode(chosen if isinstance(chosen, str) else "".join(chosen))


def thumbnail(png: bytes, dest: Path) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > THUMB_ASPECT * image.height:  # a long strip of small pictures: its first ones, legible
        image = image.crop((0, 0, round(THUMB_ASPECT * image.height), image.height))
    if image.width > THUMB_WIDTH:
        image = image.resize((THUMB_WIDTH, round(image.height * THUMB_WIDTH / image.width)), Image.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    image.save(dest, optimize=True)


def _local_badges(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and COLAB_BADGE in cell.source:
            cell.source = cell.source.replace(COLAB_BADGE, "../assets/colab-badge.svg")


def _lesson_copy(nb, exercises: list[dict]):
    """The executed notebook as the site shows it: local badge, no embedded widget state (its renderer
    would come from a CDN), no raw results payload (the table above it shows the rows), and the
    exercises that go with it at the end."""
    from nbformat.v4 import new_markdown_cell

    nb.metadata.pop("widgets", None)
    _local_badges(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if RESULTS_MIME not in o.get("data", {})]
    if exercises:
        items = "\n".join(f"- [{e['title']}](../exercises/{e['notebook']}.html)" for e in exercises)
        nb.cells.append(new_markdown_cell(f"## Exercises for this lesson\n\n{items}\n"))
    return nb


def _exercise_copy(nb, path: Path, lessons: list[dict]):
    from nbformat.v4 import new_markdown_cell

    text = json.dumps(nb)
    for marker in SOLUTION_MARKERS:
        if marker in text:
            raise SiteError(f"{path} holds '{marker}': it is not a student version, and the site never "
                            "shows solutions. Regenerate exercises/ with python -m course_tools.exercises.")
    nb.metadata.pop("widgets", None)
    _local_badges(nb)
    if lessons:
        links = ", ".join(f"[{lesson['title']}](../lessons/{lesson['notebook']}.html)" if lesson.get("page")
                          else lesson["title"] for lesson in lessons)
        nb.cells.insert(1, new_markdown_cell(f"*This exercise goes with {links}.*"))
    return nb


def _copy_mathjax(dest: Path) -> None:
    import importlib.util

    # Only its files are used: found without importing it (its server extension needs jupyter_server,
    # which the setup leaves out: see scripts/setup_env.sh).
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    src = Path(next(iter(spec.submodule_search_locations))) / "static" if spec else None
    if src is None or not (src / "MathJax.js").is_file():
        raise SiteError("MathJax for the site comes from the jupyter-server-mathjax package, which is not "
                        "installed: run make setup (or pip install --no-deps jupyter-server-mathjax).")
    for part in ("MathJax.js", "config", "jax/input", "jax/element", "jax/output/HTML-CSS", "extensions",
                 "fonts/HTML-CSS/STIX-Web/woff"):
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part, ignore=shutil.ignore_patterns("a11y", "*.py"))
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dest / part)
    (dest / "config" / "course.js").write_text(MATHJAX_CONFIG)


def _copy_lab_css(dest: Path) -> None:
    """mkdocs-jupyter's JupyterLab stylesheet, linked once by every notebook page (see hooks.py)."""
    import mkdocs_jupyter

    dest.mkdir(parents=True)
    shutil.copy2(Path(mkdocs_jupyter.__file__).parent / "templates" / "mkdocs_html" / "assets" / "index.css",
                 dest / "index.css")


def _mkdocs_config(course: dict, docs: Path, site: Path, lessons: list[dict], exercises: list[dict]) -> dict:
    return {
        "site_name": course["title"],
        "site_description": course["about"].split(". ")[0],
        "docs_dir": str(docs),
        "site_dir": str(site),
        "use_directory_urls": False,
        "theme": {"name": "material", "font": False, "language": "en",
                  "palette": {"primary": "indigo", "accent": "indigo"},
                  "features": ["navigation.footer", "navigation.sections", "navigation.top", "toc.follow",
                               "search.highlight", "search.suggest", "content.code.copy"]},
        "extra_css": ["assets/jupyter/index.css", "assets/course.css"],
        "hooks": [str(HERE / "hooks.py")],
        # Material's offline plugin would load this shim (search from file://) from a CDN: ours is local.
        "extra": {"polyfills": ["assets/iframe-worker/shim.js"], "generator": False},
        "markdown_extensions": ["admonition", "attr_list", "md_in_html", "tables", {"toc": {"permalink": True}},
                                "pymdownx.highlight", "pymdownx.superfences"],
        "plugins": ["search", "offline",
                    {"mkdocs-jupyter": {"execute": False, "include_source": False, "ignore_h1_titles": True,
                                        "toc_depth": 3, "custom_mathjax_url": MATHJAX_URL,
                                        "include_requirejs": False}}],
        "nav": [{"Home": "index.md"},
                {"Lessons": [{lesson["nav"]: f"lessons/{lesson['notebook']}.ipynb"}
                             for lesson in lessons if lesson.get("page")]},
                {"Exercises": [{e["title"]: f"exercises/{e['notebook']}.ipynb"} for e in exercises]},
                {"For instructors": "instructors.md"}],
    }


def build_site(run_dir: Path, *, repo: Path | None = None, exercises_dir: Path | None = None,
               run: dict | None = None) -> SiteBuild:
    """Build ``run_dir/site/`` from a course run folder (replacing an earlier site there).

    ``run``: the run's facts (profile, release, commit, date); read from ``run_dir/run.json`` when not
    given. Raises SiteError with what to do when it cannot build."""
    import nbformat
    import yaml

    from course_tools.site.pages import home_page, instructors_page

    start = time.perf_counter()
    run_dir = Path(run_dir).resolve()  # mkdocs reads a relative site_dir from its config file's folder
    repo = Path(repo) if repo else repo_root()
    exercises_dir = Path(exercises_dir) if exercises_dir else repo / "exercises"
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError) as err:
        raise SiteError(f"'{run_dir}' is not a course run folder: its results.json cannot be read ({err}).") from None
    if run is None:
        try:
            run = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):  # a run from before run.json: the notebooks printed their profile
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime((run_dir / "results.json").stat().st_mtime))
            run = run_facts(repo, _printed_profile(run_dir) or "unknown", when)
    course = load_course()
    by_name = {entry["notebook"]: entry for entry in course["lessons"]}
    site = run_dir / "site"

    with tempfile.TemporaryDirectory(prefix="course-site-") as tmp:
        docs = Path(tmp) / "docs"
        (docs / "lessons").mkdir(parents=True)
        (docs / "exercises").mkdir()
        assets = docs / "assets"
        shutil.copytree(HERE / "assets", assets)
        _copy_mathjax(assets / "mathjax")
        _copy_lab_css(assets / "jupyter")

        ex_nbs = {p.stem: nbformat.read(p, as_version=4) for p in sorted(exercises_dir.glob("*.ipynb"))}
        exercises = [{"notebook": stem, "title": notebook_title(nb) or stem, "page": f"exercises/{stem}.html",
                      "lessons": [_number(entry["notebook"]) for entry in course["lessons"]
                                  if stem in entry.get("exercises", [])]} for stem, nb in ex_nbs.items()]
        ex_by_name = {e["notebook"]: e for e in exercises}

        lessons = []
        for r in results:
            entry = by_name.get(r["name"], {})
            executed = run_dir / f"{r['name']}.ipynb"
            nb = nbformat.read(executed, as_version=4) if executed.is_file() else None
            number = _number(r["name"])
            title = (notebook_title(nb) if nb is not None else "") or r["name"]
            plain = re.sub(r"^\d+\.\s*", "", title)
            lesson = {"notebook": r["name"], "number": number if number is not None else len(lessons) + 1,
                      "title": f"{number}. {plain}" if number is not None else plain, "ok": r["ok"],
                      "error": r.get("error", ""), "results": r.get("results", []),
                      "objective": entry.get("objective", ""), "colab": _colab(f"notebooks/{r['name']}.ipynb"),
                      "exercises": [ex_by_name[e] for e in entry.get("exercises", []) if e in ex_by_name],
                      "page": f"lessons/{r['name']}.html" if nb is not None else None, "thumb": None}
            lesson["nav"] = lesson["title"]
            lesson["search_word"] = entry.get("search_word") or max(re.findall(r"[A-Za-z]{4,}", plain) or [""], key=len)
            if nb is not None:
                png = key_figure(nb, entry.get("key_figure"))
                if png:
                    thumbnail(png, assets / "thumbs" / f"{r['name']}.png")
                    lesson["thumb"] = f"assets/thumbs/{r['name']}.png"
                nbformat.write(_lesson_copy(nb, lesson["exercises"]), docs / "lessons" / f"{r['name']}.ipynb")
            lessons.append(lesson)
        lesson_of = {lesson["number"]: lesson for lesson in lessons}
        for e in exercises:  # its lessons: linked when this run has their page
            goes_with = [lesson_of.get(n) or {"title": f"lesson {n}"} for n in e["lessons"]]
            nbformat.write(_exercise_copy(ex_nbs[e["notebook"]], exercises_dir / f"{e['notebook']}.ipynb",
                                          goes_with), docs / "exercises" / f"{e['notebook']}.ipynb")

        (docs / "index.md").write_text(home_page(course, run, lessons, exercises, len(course["lessons"])))
        (docs / "instructors.md").write_text(instructors_page(repo / "README.md"))
        config = Path(tmp) / "mkdocs.yml"
        config.write_text(yaml.safe_dump(_mkdocs_config(course, docs, site, lessons, exercises), sort_keys=False))
        if site.exists():
            shutil.rmtree(site)
        done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--config-file", str(config)],
                              capture_output=True, text=True, cwd=tmp, timeout=900,
                              env=_quiet_env())
        if done.returncode != 0 or not (site / "index.html").is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise SiteError(f"mkdocs could not build the site (exit {done.returncode}):\n{tail}")
    (site / "404.html").unlink(missing_ok=True)  # a web server's page, with absolute links: not offline
    pages = sum(1 for _ in site.rglob("*.html"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
    return SiteBuild(site, time.perf_counter() - start, pages, size, lessons, exercises)


def search_target(built: SiteBuild) -> dict:
    """What the browser check searches for and must find: lesson 3's word (course.toml) and its page, else
    the first lesson's; as keyword arguments of check_site."""
    lessons = [lesson for lesson in built.lessons if lesson.get("page") and lesson.get("search_word")]
    lesson = next((x for x in lessons if x["number"] == 3), lessons[0] if lessons else None)
    return {"search_word": lesson["search_word"], "search_page": lesson["page"]} if lesson else {}


def _quiet_env() -> dict:
    import os

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's notice about MkDocs 2.0: the site pins MkDocs 1.x
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _colab(path: str) -> str:
    from lessons_lib.runtime import REPO_URL

    return REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/") + f"/blob/main/{path}"
