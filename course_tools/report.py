"""The grading results on disk: scores_long.csv, scores_wide.csv and summary.md, written safely.

* Every text cell that a spreadsheet would read as a formula (starting with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe.
* Markdown table cells escape pipes, backslashes and HTML, and never break a line.
* The three files are written into a staging folder beside them and then moved into place
  with SIGINT/SIGTERM held back, so an interrupted run leaves either the earlier set or the
  new one, never a mix or a half-written file, and no staging folder.
* Before any grading starts, the output folder is checked by really creating (and removing)
  a file there, so an unwritable folder is reported in the first second, not after the run.
* ``summary.md``: the students' totals, the questions, the problems with their reasons, what
  was not graded and why, the notes per student, and what the grader enforced.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from lessons_lib.files import atomic_write
from lessons_lib.tables import markdown_table

__all__ = ["RESULT_FILES", "LONG_COLUMNS", "STATUSES", "csv_cell", "md_cell", "check_out_dir", "render", "commit",
           "summary", "enforcement_notes"]

RESULT_FILES = ("scores_long.csv", "scores_wide.csv", "summary.md")
LONG_COLUMNS = ["student", "notebook", "grade_id", "points", "max_points", "status", "reason"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
STATUSES = ("passed", "failed", "error", "timeout", "crashed", "invalid notebook", "missing")


def csv_cell(value) -> str:
    text = value if isinstance(value, str) else _num(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def md_cell(value) -> str:
    text = str(value)
    for old, new in (("\\", "\\\\"), ("|", "\\|"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"),
                     ("`", "\\`"), ("*", "\\*"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(old, new)
    return " ".join(text.split())


def _num(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse earlier results (unless force) and a folder that cannot be written, before any grading."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file, not a folder; nothing was graded. Give a folder.")
    existing = [name for name in RESULT_FILES if (out_dir / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out_dir} already holds grading results ({', '.join(existing)}); nothing was "
                              "graded. Choose another --out folder, or pass --force to replace them.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".grading-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"--out {out_dir} cannot be written ({exc.strerror or exc}); nothing was "
                              f"graded. "
                              "Choose a folder you can write to.") from None


def render(rows: list[dict], students: list[str], questions: list[tuple[str, str, float]],
           summary_lines: list[str]) -> dict[str, str]:
    """The three files' text. questions: (notebook, grade_id, points) in order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LONG_COLUMNS)
    for r in rows:
        writer.writerow([csv_cell(r[c]) for c in LONG_COLUMNS])
    long_text = buf.getvalue()
    points = {(r["student"], r["grade_id"]): r["points"] for r in rows}
    max_total = sum(p for _, _, p in questions)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student"] + [csv_cell(g) for _, g, _ in questions] + ["total", "max_total"])
    for s in students:
        values = [points.get((s, g), 0.0) for _, g, _ in questions]
        writer.writerow([csv_cell(s)] + [_num(v) for v in values] + [_num(sum(values)), _num(max_total)])
    return {"scores_long.csv": long_text, "scores_wide.csv": buf.getvalue(),
            "summary.md": "\n".join(summary_lines) + "\n"}


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM back while the files are moved into place (a few renames)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def commit(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write every file to a staging folder in out_dir, then move them all into place at once."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".grading-staging-", dir=out_dir))
    try:
        for name, text in files.items():
            atomic_write(staging / name, text)
        with _signals_held():
            for name in files:
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in files]


# --------------------------------------------------------------------------- summary
def enforcement_notes(run) -> list[str]:
    lim = run.limits
    lines = [f"wall clock: {lim.timeout:g} s per notebook, kernel start included; then everything in its "
             "sandbox is killed",
             f"limits per process: address space {lim.memory_mb} MB, CPU time {lim.cpu_seconds} s, file size "
             f"{lim.max_file_mb} MB, {lim.max_processes} processes/threads, no core dumps"]
    if run.sandboxed:
        lines += [f"isolation: {run.sandbox}: own PID, network, IPC and UTS namespaces; the Python "
                  f"environment "
                  f"read-only; a private {lim.disk_mb} MB home and /tmp; nothing else of the machine (no "
                  "solutions, no other submission, no results, no home folder); a minimal environment",
                  "expected values never entered a student's sandbox; each check was compared in the grader"]
    else:
        lines += ["isolation: NONE. --no-sandbox was given: each notebook ran with the grader's rights and "
                  "could read and change the grader's files; expected values were still compared in the "
                  "grader"]
    return lines


def summary(run, source_name: str) -> list[str]:
    """summary.md's lines for a grading run (``grading.Run``)."""
    rows, a_list = run.rows, run.assignments
    questions = [(a.name, gid, p) for a in a_list for gid, p in a.points.items()]
    max_total = sum(p for _, _, p in questions)
    totals = {s: sum(r["points"] for r in rows if r["student"] == s) for s in run.students}
    md = ["# Grading summary", ""]
    if not run.sandboxed:
        md += ["**WARNING: this run was NOT sandboxed (--no-sandbox).** Submissions ran with the grader's "
               "rights; scores from an untrusted submission may not be honest.", ""]
    md += [f"- graded: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {len(run.students)} "
           f"students, {run.notebooks} notebooks, {run.seconds:.0f} s",
           f"- source notebooks: {md_cell(source_name)}/ ({', '.join(a.stem for a in a_list)})",
           "- a test cell scores its points when every value it checks equals the expected one; statuses: "
           + ", ".join(STATUSES), "",
           "## Students", ""]
    # Cells are escaped here by md_cell (HTML and Markdown too: a student names their own folder).
    table = [[md_cell(s), *(f"{_num(sum(r['points'] for r in rows if r['student'] == s and r['notebook'] == a.name))}"
                            f"/{_num(a.max_points)}" for a in a_list), f"{_num(totals[s])}/{_num(max_total)}"]
             for s in run.students]
    md.append(markdown_table(["student", *(md_cell(a.stem) for a in a_list), "total"], table, escape=False))
    table = []
    for _, gid, p in questions:
        q = [r for r in rows if r["grade_id"] == gid]
        mean = sum(r["points"] for r in q) / len(q) if q else 0.0
        table.append([md_cell(gid), _num(p), f"{sum(r['status'] == 'passed' for r in q)}/{len(q)}", f"{mean:.2f}"])
    md += ["", "## Questions", "", markdown_table(["question", "points", "passed", "mean"], table, escape=False)]
    md += ["", "## Problems", ""]
    groups: dict[tuple, list[str]] = {}
    for r in rows:
        if r["status"] not in ("passed", "missing"):
            key = (r["student"], r["notebook"], r["status"], r["reason"])
            groups.setdefault(key, []).append(r["grade_id"])
    if groups:
        count = {a.name: len(a.points) for a in a_list}
        table = []
        for (student, notebook, status, reason), ids in groups.items():
            stem = Path(notebook).stem + "_"
            which = (f"all {len(ids)}" if len(ids) == count[notebook]
                     else ", ".join(i[len(stem):] if i.startswith(stem) else i for i in ids))
            table.append([md_cell(student), md_cell(Path(notebook).stem), md_cell(which), status, md_cell(reason)])
        md.append(markdown_table(["student", "notebook", "questions", "status", "reason"], table, align="lllll",
                                 escape=False))
    else:
        md.append("None: every test cell that ran passed.")
    missing: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] == "missing":
            missing.setdefault(r["student"], [])
            if Path(r["notebook"]).stem not in missing[r["student"]]:
                missing[r["student"]].append(Path(r["notebook"]).stem)
    if missing:
        md += ["", "Missing notebooks (zero points):", ""]
        md += [f"- {md_cell(s)}: {', '.join(names)}" for s, names in missing.items()]
    if getattr(run, "skipped", None):
        md += ["", "## Not graded", "", "In the submissions folder, not a student's (each with the reason):", ""]
        md += [f"- {md_cell(line)}" for line in run.skipped]
    md += ["", "## Notes", ""]
    md += [f"- {md_cell(s)}: {md_cell(n)}" for s in sorted(run.notes) for n in run.notes[s]] or ["None."]
    md += ["", "## What the grader enforced", ""] + [f"- {n}" for n in enforcement_notes(run)]
    return md
