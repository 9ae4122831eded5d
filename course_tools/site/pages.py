"""The site's own pages, written as Markdown with HTML blocks: the home page and the instructor page.

Every number on the home page comes from the run's ``results.json``; the words about the course come
from ``course.toml`` beside this file; the instructor page is the README's instructor sections, so the
site and the README never disagree.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from course_tools.course import MARKS, verdict
from lessons_lib.tables import significant

_esc = html.escape
ANSI = r"\x1b\[[0-9;]*m"  # terminal colours in a traceback's text


def mark(row: dict) -> tuple[str, str]:
    """(css class, verdict text in HTML) for one results row; an expected loss is never a win."""
    v = verdict(row)
    if row.get("expected") == "loses":
        if v == "loses":
            return "expected", MARKS["expected"]
        if v == "beats":
            return "beats", "&#10003; beats the baseline (the lesson expected a loss)"
    if v == "beats" and not significant(row):
        return "within", MARKS["within"]
    return v, MARKS[v]


def _digits(model: float, baseline: float, digits: int = 3) -> int:
    """Decimals that tell model and baseline apart (at most 6), as lessons_lib.tables shows them."""
    while f"{model:.{digits}f}" == f"{baseline:.{digits}f}" and model != baseline and digits < 6:
        digits += 1
    return digits


def _number(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.4g}"


def margin(row: dict) -> float:
    """How much better the model is than its baseline, in the row's direction (negative when worse)."""
    gain = row["baseline"] - row["model"] if row["better"] == "lower" else row["model"] - row["baseline"]
    return gain


def results_table(rows: list[dict]) -> str:
    if not rows:
        return "<p class='no-results'>No results rows in this run.</p>"
    body = []
    for row in rows:
        css, text = mark(row)
        d = _digits(row["model"], row["baseline"])
        model = _number(row["model"], d)
        if row.get("spread") is not None:
            model += f" &plusmn; {_number(row['spread'], d)}"
        gain = margin(row)
        rel = f" ({100 * gain / abs(row['baseline']):+.1f} %)" if row["baseline"] else ""
        body.append(f"<tr class='{css}'><td>{_esc(row['what'])}</td><td class='num'>{model}</td>"
                    f"<td class='num'>{_number(row['baseline'], d)}</td>"
                    f"<td class='num'>{gain:+.{d}f}{rel}</td><td>{row['better']}</td>"
                    f"<td class='verdict'>{text}</td></tr>")
    return ("<table class='results'><thead><tr><th>result</th><th>model</th><th>baseline</th>"
            "<th>margin</th><th>better</th><th>verdict</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def lesson_card(lesson: dict) -> str:
    """One lesson on the home page: thumbnail, title, objective, results rows, links."""
    page = lesson.get("page")  # site-relative, or None when the notebook did not leave a page
    thumb = (f"<img src='{lesson['thumb']}' alt='Key figure of lesson {lesson['number']}, from this run'>"
             if lesson.get("thumb") else "<div class='none'>no figure in this run</div>")
    if page:
        thumb = f"<a href='{page}'>{thumb}</a>"
    title = _esc(lesson["title"])
    heading = f"<a href='{page}'>{title}</a>" if page else title
    status = ("" if lesson["ok"] else f"<p class='bad'><b>This notebook failed in this run:</b> "
                                      f"{_esc(re.sub(ANSI, '', lesson['error']))}</p>")
    exercises = ", ".join(f"<a href='{e['page']}'>{_esc(e['title'])}</a>" for e in lesson["exercises"])
    links = []
    if page:
        links.append(f"<a href='{page}'>Read the lesson</a>")
    links.append(f"<a href='{_esc(lesson['colab'])}' title='Open this lesson in Google Colab'>"
                 f"<img src='assets/colab-badge.svg' alt='Open in Colab' width='117' height='20'></a>")
    links.append(f"Exercises: {exercises}" if exercises else "No graded exercise goes with this lesson.")
    return (f"<div class='lesson-card{'' if lesson['ok'] else ' failed'}' id='lesson-{lesson['number']}'>\n"
            f"<div class='head'><div class='thumb'>{thumb}</div>\n<div class='body'>\n<h3>{heading}</h3>\n"
            f"<p class='objective'>{_esc(lesson['objective'])}</p>\n{status}"
            f"<p class='links'>{' &middot; '.join(links)}</p>\n</div></div>\n"
            f"{results_table(lesson['results'])}\n</div>\n")


def home_page(course: dict, run: dict, lessons: list[dict], exercises: list[dict], total_lessons: int) -> str:
    profile = run["profile"]
    words = course["profiles"].get(profile, {})
    on_cpu = " on a CPU" if profile == "fast" else ""
    banner = (f'!!! info "These pages were produced by the {profile} profile{on_cpu}"\n'
              f"    **What it shows:** {_esc(words.get('shows', ''))}.\n\n"
              f"    **What it does not show:** {_esc(words.get('does_not_show', ''))}.\n") if words else (
              '!!! warning "The profile that produced these pages is not recorded"\n'
              "    Run `make course` again to record it.\n")
    partial = (f"\n*This run holds {len(lessons)} of the course's {total_lessons} lessons.*\n"
               if len(lessons) < total_lessons else "")
    cards = "\n".join(lesson_card(lesson) for lesson in lessons)
    ex_items = "\n".join(
        f"- [{_esc(e['title'])}](exercises/{e['notebook']}.ipynb)"
        + (f": goes with {', '.join(f'lesson {n}' for n in e['lessons'])}" if e["lessons"] else "")
        for e in exercises)
    return f"""---
title: Home
hide: [toc]
---
# {_esc(course['title'])}

{_esc(course['about'])}

**Who it is for.** {_esc(course['audience'])}

{banner}
<p class="run-facts">Release <b>{_esc(run['release'])}</b> &middot; commit <code>{_esc(run['commit'])}</code>
&middot; run on {_esc(run['date'])} &middot; profile <b>{_esc(profile)}</b></p>

## Lessons
{partial}
Each lesson below shows its key figure and its results rows from this run: the trained model against its
trivial baseline on held-out photos, the margin in the better direction, and the verdict. A row the lesson
means to lose (a model shown failing on purpose) says so and is not counted as a win.

{cards}

## Graded exercises

The student versions; [instructors](instructors.md) generate them from the solutions and grade them.

{ex_items}

## For instructors

Generating the exercises, grading a folder of submissions, retraining the course weights and releasing:
see [the instructor section](instructors.md).
"""


def _section(text: str, heading: str) -> str:
    """The README section under ``## heading`` (up to the next ``## ``), or '' when absent."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    return match.group(1).strip() if match else ""


_ITEM = re.compile(r"\s*(?:[-*]|\d+\.) ")


def _python_markdown_indents(text: str) -> str:
    """GitHub nests a list or a code fence under an item at 2 spaces and starts a list right under a
    paragraph; Python-Markdown needs 4 spaces and a blank line before the list."""
    out = []
    for line in text.splitlines():
        if _ITEM.match(line) and out and out[-1].strip() and not _ITEM.match(out[-1]):
            out.append("")
        out.append(" " * (2 * (len(line) - len(line.lstrip(" ")))) + line.lstrip(" ") if line.strip() else line)
    return "\n".join(out)


def instructors_page(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    text = _python_markdown_indents(text)
    parts = ["# For instructors", ""]
    body = _section(text, "For instructors")
    if body:
        parts += [body, ""]
    weights = re.search(r"^\*\*Course weights\*\*.*?```bash\n.*?```", text, flags=re.S | re.M)
    if weights:
        parts += ["## Retraining the course weights", "", weights.group(0), ""]
    release = _section(text, "Releasing: the version students install")
    if release:
        parts += ["## Releasing: the version students install", "", release, ""]
    if len(parts) == 2:
        parts.append("The instructor tools are described in the repository's README.")
    return "\n".join(parts) + "\n"
