"""Grade a folder of submitted exercise notebooks in one command.

    python -m course_tools.grading SUBMISSIONS --out RESULTS [--source solutions/] [--workers N]
           [--timeout S] [--memory-mb MB] [--max-file-mb MB] [--disk-mb MB] [--force] [--no-sandbox]

``SUBMISSIONS`` holds one folder per student (named after the student) with that student's
notebooks; a notebook lying directly in it is a student named after the file. A notebook is
matched to its source notebook by file name (also ``name (2).ipynb``, ``name-Copy1.ipynb``),
or failing that by the grade_ids of its cells.

How a notebook is graded:

1. The instructor's notebooks are loaded from ``--source``; each graded test cell must check
   with ``expect(label, observed, expected)`` (``lessons_lib.expect``). Each source notebook
   in use runs once, in the sandbox, with its checks publishing their expected values; it
   must pass its own checks, or nothing is graded.
2. A submission is read only if it is a regular file under the size cap and a notebook; its
   locked instructor cells are restored by grade_id, and its test cells are replaced by
   their student form, which computes the values to check but holds no expected value.
3. It runs in a bubblewrap sandbox (``course_tools.sandbox``) under the time, memory, CPU,
   file-size, disk and process limits; the sandbox publishes the observed values.
4. This process compares them with the expected values (``course_tools.judge``): a test
   cell scores its points when every check value matches. Nothing the student's code can
   reach decides it.

Results (``course_tools.report``): ``scores_long.csv``, ``scores_wide.csv`` and ``summary.md``
in ``--out``, written together at the end, escaped; earlier results are kept unless
``--force``. Statuses: passed, failed (a wrong value), error (an exception), timeout,
crashed, invalid notebook (not graded: a link, a special file, not JSON, no cells...),
missing (no notebook for that exercise). Exit status 0 when results were written, 2 when
nothing was graded (bad arguments, no sandbox, a broken source notebook), 1 when the
results could only be saved elsewhere, 130 when interrupted (nothing is written then).
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_tools import repo_root
from course_tools.exercises import ANSWER_STUB, STUB_MESSAGE, is_test_cell, make_exercise, nbgrader_meta
from course_tools.intake import (
    Assignment,
    Skipped,
    Submission,
    display_name,
    find_submissions,
    match_assignment,
    prepare_notebook,
    read_notebook,
    reference_notebook,
)
from course_tools.judge import (
    Expected,
    ReferenceError_,
    exception_name,
    judge_test,
    parse_records,
    reference_checks,
    sanitize,
)
from course_tools.report import RESULT_FILES, STATUSES, check_out_dir, commit, render, summary
from course_tools.sandbox import INSTALL_HINT, Limits, kill_all, probe, run_job
from course_tools.testcells import parse_test_cell
from lessons_lib import validate as V

__all__ = ["STATUSES", "RESULT_FILES", "Limits", "load_sources", "grade_folder", "summary", "main"]



@dataclass
class Run:
    assignments: list[Assignment]
    students: list[str]
    rows: list[dict]
    notes: dict[str, list[str]]
    sandbox: str                   # what isolated the notebooks, in words
    sandboxed: bool
    limits: Limits
    seconds: float = 0.0
    notebooks: int = 0
    skipped: list[str] = field(default_factory=list)   # not graded and not a student's: what and why


@dataclass
class _Job:
    sub: Submission
    assignment: Assignment
    nb: object = None
    why: str = ""                  # why it cannot be graded ("" when it can)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- sources
def _redact_lines(nb, name: str, tests: dict) -> tuple[str, ...]:
    """Lines of the instructor's code that the exercise does not show (answers, hidden tests, and
    the hidden tests' rewritten form that the sandbox runs): no result may quote them."""
    def lines(sources):
        return {" ".join(line.split()) for source in sources for line in source.splitlines()}
    shown = lines(c.source for c in make_exercise(nb, name).cells)
    secret = lines(c.source for c in nb.cells if c.cell_type == "code")
    secret |= lines(t.student_source for t in tests.values())
    return tuple(sorted(line for line in secret - shown if len(line) >= 12 and not line.startswith("#")))


def _refuse_exercise(nb, path: Path, source_dir: Path) -> None:
    """A student exercise (answers replaced by the generator's stubs) cannot give expected values."""
    answers = [c for c in nb.cells if nbgrader_meta(c).get("solution")]
    if any(STUB_MESSAGE in c.source or c.source.strip() == ANSWER_STUB for c in answers):
        raise ValueError(f"--source {source_dir}: {path.name} is a student exercise (its answers are the "
                         "stubs that raise NotImplementedError), not the instructor's notebook, so it cannot "
                         "give the expected values. Nothing was graded; pass --source with the folder of "
                         "solution notebooks (e.g. solutions/, not exercises/).")


def load_sources(source_dir: Path | str) -> dict[str, Assignment]:
    """The instructor notebooks (with hidden tests) that submissions are graded against."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"No source folder at {source_dir}: pass --source with the folder of "
                                "solution notebooks (the ones with the hidden tests).")
    assignments, owners = {}, {}
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        _refuse_exercise(nb, path, source_dir)
        tests, points = {}, {}
        for index, cell in enumerate(nb.cells):
            if not is_test_cell(cell):
                continue
            gid = nbgrader_meta(cell)["grade_id"]
            if gid in owners:
                raise ValueError(f"grade_id {gid!r} appears twice ({owners[gid]} and {path.name}); "
                                 "grade_ids must be unique across the source notebooks.")
            owners[gid] = path.name
            tests[gid] = parse_test_cell(cell.source, gid, f"{path.name}, cell {index + 1} ({gid})")
            value = nbgrader_meta(cell).get("points", 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
                raise ValueError(f"{path.name}, {gid}: points must be a number >= 0, got {value!r}.")
            points[gid] = float(value)
        if tests:
            redact = _redact_lines(nb, path.name, tests)
            assignments[path.name] = Assignment(path.name, path, nb, tests, points, redact)
    if not assignments:
        raise FileNotFoundError(f"{source_dir} holds no notebook with graded test cells "
                                "(nbgrader metadata grade: true).")
    return assignments


# --------------------------------------------------------------------------- running
class _Slots:
    """Parallel slots: each running sandbox gets its own slot (and so its own sandbox uid)."""

    def __init__(self, n: int):
        self.free: queue.Queue = queue.Queue()
        for i in range(n):
            self.free.put(i)

    def run(self, text: str, limits: Limits, sandboxed: bool):
        slot = self.free.get()
        try:
            return run_job(text, limits, sandboxed=sandboxed, slot=slot)
        finally:
            self.free.put(slot)


def _by_cell(records: list[dict]) -> dict[int, dict]:
    return {r["cell"]: r for r in records if r["event"] == "cell" and type(r.get("cell")) is int}


# Signs, in a crash reason or an exception, that a grading limit stopped the notebook: (signs, advice).
_LIMIT_SIGNS = (
    (("MemoryError", "cannot allocate memory", "failed to map segment", "bad_alloc", "out of memory",
      "SIGKILL", "could not start"),
     "--memory-mb {memory_mb} is too small for it (the address space of each process: importing torch "
     "alone maps about 3 GB); raise --memory-mb (the default is 8192)"),
    (("SIGXFSZ", "File too large"), "it writes a file larger than --max-file-mb {max_file_mb}; raise --max-file-mb"),
    (("No space left",), "it fills the private --disk-mb {disk_mb} MB home or /tmp; raise --disk-mb"),
    (("SIGXCPU",), "it used more CPU time than the limit ({cpu_seconds} s, 4 x --timeout); raise --timeout"),
    (("Resource temporarily unavailable", "can't start new thread"),
     "it starts more processes or threads than the limit ({max_processes})"),
)


def _limit_failure(records: list[dict], result, limits: Limits) -> str:
    """What went wrong when the instructor's notebook hit a grading limit ("" when it did not)."""
    if result.timed_out:
        return (f"did not finish within --timeout {limits.timeout:g} s; raise --timeout (the kernel's start "
                "and the imports count too)")
    texts = [str(r.get("reason", "")) for r in records if r["event"] == "crashed"]
    texts += [f"{r.get('ename', '')}: {r.get('evalue', '')}" for r in records
              if r["event"] == "cell" and r.get("status") == "error"]
    for signs, advice in _LIMIT_SIGNS:
        hit = next((t for t in texts if any(k.lower() in t.lower() for k in signs)), "")
        if hit:
            values = {"memory_mb": limits.memory_mb, "max_file_mb": limits.max_file_mb, "disk_mb": limits.disk_mb,
                      "cpu_seconds": limits.cpu_seconds, "max_processes": limits.max_processes}
            return f"stopped on a grading limit ({sanitize(hit, limit=120)}): {advice.format(**values)}"
    return ""


def _expected_values(assignment: Assignment, slots: _Slots, limits: Limits, sandboxed: bool) -> dict:
    nb, index = reference_notebook(assignment)
    result = slots.run(nbformat.writes(nb), limits, sandboxed)
    records = parse_records(result.records)
    limit = _limit_failure(records, result, limits)
    if limit:  # not the source's fault: the limits given are too tight for it
        raise ReferenceError_(f"the instructor's notebook {assignment.name} {limit}. Nothing was graded.")
    cells = _by_cell(records)
    expected = {}
    for i, gid in index.items():
        where = f"{assignment.name}: test {gid}"
        try:
            expected[gid] = reference_checks(cells.get(i), where)
        except ReferenceError_ as exc:
            raise ReferenceError_(f"{exc}. Fix the source notebook (or its test); nothing was graded.") from None
        hidden = assignment.tests[gid].hidden_sites
        labels = {" ".join(e.label.split()) for e in expected[gid] if e.site in hidden}
        assignment.redact = tuple(sorted(set(assignment.redact) | {x for x in labels if len(x) >= 8}))
    return expected


def _rows(job: _Job, verdicts: dict, default: tuple[str, str]) -> list[dict]:
    a = job.assignment
    rows = []
    for gid, pts in a.points.items():
        status, reason = verdicts.get(gid, default)
        rows.append({"student": job.sub.student, "notebook": a.name, "grade_id": gid,
                     "points": pts if status == "passed" else 0.0, "max_points": pts,
                     "status": status, "reason": reason})
    return rows


def _grade(job: _Job, expected: dict[str, list[Expected]], slots: _Slots, limits: Limits,
           sandboxed: bool) -> list[dict]:
    a = job.assignment
    nb, index, notes = prepare_notebook(job.nb, a)
    job.notes += notes
    result = slots.run(nbformat.writes(nb), limits, sandboxed)
    records = parse_records(result.records)
    cells = _by_cell(records)
    verdicts, first_error = {}, None
    for i in sorted(cells):
        record = cells[i]
        if i in index:
            verdict = judge_test(expected[index[i]], record, a.tests[index[i]].hidden_sites, a.redact)
            if verdict is not None:
                if verdict[0] == "error" and first_error and not verdict[1].startswith(first_error[1] + ":"):
                    verdict = (verdict[0], f"{verdict[1]} (after {first_error[0]})")  # the likely cause
                verdicts[index[i]] = verdict
        elif record.get("status") == "error":
            name = exception_name(record.get("ename"))
            text = f"cell {i + 1} raised {name}"
            first_error = first_error or (text, name)
            job.notes.append(f"{text}: {sanitize(record.get('evalue', ''), redact=a.redact)}")
    running = [r for r in records if r["event"] == "running" and type(r.get("cell")) is int]
    crashed = next((r for r in records if r["event"] == "crashed"), None)
    if result.timed_out:
        where = f" while running cell {running[-1]['cell'] + 1}" if running else ""
        default = ("timeout", f"the notebook did not finish within {limits.timeout:g} s{where}")
    elif crashed is not None:
        cell = crashed.get("cell")
        where = f" in cell {cell + 1}" if type(cell) is int else ""
        default = ("crashed", f"{sanitize(crashed.get('reason'), redact=a.redact)}{where}")
    elif not any(r["event"] == "done" for r in records):
        default = ("crashed", f"the sandbox stopped before the notebook finished (exit status "
                              f"{result.returncode})")
    else:
        default = ("error", "the test cell was not run")
    return _rows(job, verdicts, default)


# --------------------------------------------------------------------------- a folder
def _preference(job: _Job) -> tuple:
    """Which of a student's notebooks for one exercise is graded (the smallest tuple): a readable one,
    then the one saved last (the student's latest work: a browser's 'name (2).ipynb' is the newer
    download, Jupyter's 'name-Copy1.ipynb' an older copy), then the exercise's exact name."""
    exact = job.sub.path.name.lower() == job.assignment.name.lower()
    copy = os.fsencode(job.sub.path.name).decode("utf-8", "replace").lower().startswith(job.assignment.stem.lower())
    return (bool(job.why), -job.sub.mtime, not exact, not copy, job.sub.depth, os.fsencode(str(job.sub.path)))


def _why_chosen(best: _Job, other: _Job) -> str:
    mine, theirs = _preference(best), _preference(other)
    if other.why:
        return f"the other cannot be graded ({other.why})"
    if mine[1] != theirs[1]:
        return "it was saved last"
    if mine[2] != theirs[2]:
        return "both were saved at the same time and its file name is exactly the exercise's"
    if mine[3] != theirs[3]:
        return ("both were saved at the same time and its file name starts with the exercise's (the other "
                "matched only by its cells)")
    return "both were saved at the same time and it comes first by path"


def _dedupe(jobs: list[_Job], notes: dict[str, list[str]]) -> list[_Job]:
    """One notebook per student and exercise; the notes say which one was graded and why."""
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        groups.setdefault((job.sub.student, job.assignment.name), []).append(job)
    unique = []
    for (student, name), group in groups.items():
        group.sort(key=_preference)
        best = group[0]
        unique.append(best)
        for other in group[1:]:
            notes.setdefault(student, []).append(
                f"{len(group)} notebooks for {name}: graded {_rel(best)}, not {_rel(other)}, because "
                f"{_why_chosen(best, other)}; if another is the final version, leave only that one and grade "
                "again")
    return unique


def _rel(job: _Job) -> str:
    parts = job.sub.path.parts[-(job.sub.depth + 1):]
    return "/".join(display_name(p) for p in parts)


def _intake(submissions_dir: Path, assignments: dict[str, Assignment]):
    skipped: list[Skipped] = []
    subs = find_submissions(submissions_dir, skipped)
    if not subs:
        listed = "".join(f"; {s.what} was not graded: {s.reason}" for s in skipped[:5])
        raise FileNotFoundError(f"{submissions_dir} holds no .ipynb notebooks to grade{listed}.")
    jobs, notes, orphans = [], {}, []
    for sub in subs:
        nb, why = (None, sub.problem) if sub.problem else read_notebook(sub.path)
        assignment = match_assignment(sub, nb, assignments)
        if assignment is None:
            orphans.append((sub, why))
        else:
            jobs.append(_Job(sub, assignment, nb, why))
    in_use = {j.assignment.name: j.assignment for j in jobs}
    for sub, why in orphans:  # one exercise in use: that is the one a broken file was meant for
        if len(in_use) == 1 and why:
            jobs.append(_Job(sub, next(iter(in_use.values())), None, why))
        else:
            reason = why or "its name and cells match no source notebook"
            notes.setdefault(sub.student, []).append(f"{display_name(sub.path.name)} was not graded: "
                                                     f"{reason}")
    students = {s.student for s in subs} | {s.student for s in skipped if s.student is not None}
    for student in sorted(students):
        if student.startswith("(blank name: "):
            notes.setdefault(student, []).insert(0, "the folder's name is blank (spaces only), so the work is "
                                                    f"listed as {student}; rename the folder to the student's name")
    for s in skipped:
        if s.student is not None:
            notes.setdefault(s.student, []).append(f"{s.what} was not graded: {s.reason}")
    unique = _dedupe(jobs, notes)
    outside = [f"{s.what} was not graded: {s.reason}" for s in skipped if s.student is None]
    return unique, sorted(students), notes, {j.assignment.name: j.assignment for j in unique}, outside


def grade_folder(submissions_dir: Path | str, source_dir: Path | str, limits: Limits | None = None,
                 workers: int = 1, sandboxed: bool = True, progress=print) -> Run:
    """Grade every submission in the folder; raises before any grading when something is wrong."""
    start = time.monotonic()
    limits = limits or Limits()
    if sandboxed:
        ok, what = probe()
        if not ok:
            raise RuntimeError(f"cannot sandbox the submissions: {what}. Nothing was graded; {INSTALL_HINT}.")
        sandbox_note = f"bubblewrap sandbox ({what})"
    else:
        sandbox_note = "NOT SANDBOXED (--no-sandbox): submissions ran with the grader's rights"
    assignments = load_sources(source_dir)
    jobs, students, notes, in_use, outside = _intake(Path(submissions_dir), assignments)
    for line in outside:
        progress(f"note: {line}")
    slots = _Slots(workers)
    rows: list[dict] = []
    lock = threading.Lock()
    runnable = [j for j in jobs if not j.why]
    done = [0]

    def report(job: _Job, job_rows: list[dict], seconds: float):
        with lock:
            rows.extend(job_rows)
            done[0] += 1
            got, top = sum(r["points"] for r in job_rows), sum(r["max_points"] for r in job_rows)
            bad = sorted({r["status"] for r in job_rows if r["status"] != "passed"})
            progress(f"[{done[0]}/{len(jobs)}] {job.sub.student}/{job.assignment.name}: {got:g}/{top:g} "
                     f"points"
                     f"{' (' + ', '.join(bad) + ')' if bad else ''} in {seconds:.1f} s")

    for job in jobs:
        if job.why:
            report(job, _rows(job, {}, ("invalid notebook", f"{display_name(job.sub.path.name)}: "
                                                            f"{job.why}")), 0.0)

    def grade(job: _Job):
        t0 = time.monotonic()
        try:
            job_rows = _grade(job, expected[job.assignment.name], slots, limits, sandboxed)
        except Exception as exc:  # this notebook gets zeroes; the run goes on
            job_rows = _rows(job, {}, ("crashed", f"grading failed: {exception_name(type(exc).__name__)}"))
        report(job, job_rows, time.monotonic() - t0)

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        progress(f"running the {len(in_use)} source notebooks in use to get the expected values ...")
        refs = {name: pool.submit(_expected_values, a, slots, limits, sandboxed)
                for name, a in in_use.items()}
        expected = {name: future.result() for name, future in refs.items()}  # ReferenceError_ stops all
        list(pool.map(grade, runnable))
    except BaseException:
        kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    graded = {(r["student"], r["notebook"]) for r in rows}
    for student in students:
        for name, a in in_use.items():
            if (student, name) not in graded:
                rows.extend(_rows(_Job(Submission(student, Path(name)), a), {},
                                  ("missing", f"no notebook for {name} in the submission")))
    for job in jobs:
        if job.notes:
            notes.setdefault(job.sub.student, []).extend(f"{job.assignment.name}: {n}" for n in job.notes)
    order = {name: i for i, name in enumerate(sorted(in_use))}
    qorder = {gid: i for a in in_use.values() for i, gid in enumerate(a.points)}
    rows.sort(key=lambda r: (r["student"], order[r["notebook"]], qorder[r["grade_id"]]))
    return Run([in_use[n] for n in sorted(in_use)], students, rows, notes, sandbox_note, sandboxed, limits,
               time.monotonic() - start, len(jobs), outside)


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    root = repo_root()
    p = argparse.ArgumentParser(prog="python -m course_tools.grading",
                                description="Grade a folder of submitted exercise notebooks (one folder per "
                                            "student).")
    p.add_argument("submissions", type=Path, help="folder with one folder per student")
    p.add_argument("--out", type=Path, required=True, help="folder for scores_long.csv, scores_wide.csv, "
                                                           "summary.md")
    p.add_argument("--source", type=Path, default=root / "solutions",
                   help="instructor notebooks with the hidden tests (default: %(default)s)")
    p.add_argument("--timeout", type=V.float_arg(1, 86400, example="120"), default=120.0,
                   help="seconds per notebook, kernel start included (default: %(default)s)")
    p.add_argument("--workers", type=V.int_arg(1, 2, maximum=64), default=1,
                   help="notebooks graded in parallel (default: %(default)s)")
    p.add_argument("--memory-mb", type=V.int_arg(1024, 8192, maximum=2**22),
                   default=8192, help="address-space limit per process in MB (default: %(default)s)")
    p.add_argument("--max-file-mb", type=V.int_arg(1, 64, maximum=2**20),
                   default=64, help="largest file a notebook may write, in MB (default: %(default)s)")
    p.add_argument("--disk-mb", type=V.int_arg(16, 256, maximum=2**20),
                   default=256, help="size of the private home and of /tmp, in MB (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace results already in --out")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run without bubblewrap, accepting that submissions then run with your rights "
                        "(the summary says so)")
    return p


def _check_folders(args) -> None:
    subs, out, src = args.submissions.resolve(), args.out.resolve(), args.source.resolve()
    if not subs.is_dir():
        raise FileNotFoundError(f"No submissions folder at {args.submissions}: give the folder that holds "
                                f"one "
                                "folder per student (or the students' notebooks).")
    if not src.is_dir():
        raise FileNotFoundError(f"No source folder at {args.source}: pass --source with the folder of "
                                f"solution "
                                "notebooks (the ones with the hidden tests).")
    for folder, name in ((subs, "the submissions folder"), (src, "the --source folder")):
        if out == folder or folder in out.parents:
            raise ValueError(f"--out {args.out} is {name} or inside it; results there would be read as "
                             "submissions or mix with the sources. Choose a folder outside it.")


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: sandboxes killed, temporary folders removed


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.monotonic()
    limits = Limits(timeout=args.timeout, memory_mb=args.memory_mb, max_file_mb=args.max_file_mb,
                    disk_mb=args.disk_mb)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    try:
        _check_folders(args)
        check_out_dir(args.out, args.force)
        run = grade_folder(args.submissions, args.source, limits, args.workers, not args.no_sandbox,
                           progress=lambda line: print(line, flush=True))
    except (FileNotFoundError, FileExistsError, PermissionError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every sandbox was stopped; no results were written.", file=sys.stderr)
        return 130
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    questions = [(a.name, gid, p) for a in run.assignments for gid, p in a.points.items()]
    files = render(run.rows, run.students, questions, summary(run, args.source.name))
    try:
        written = commit(args.out, files)
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="grading-results-"))
        commit(fallback, files)
        print(f"error: could not write the results to {args.out} ({exc.strerror or exc}); they were saved in "
              f"{fallback} instead.", file=sys.stderr)
        return 1
    print(f"graded {len(run.students)} students in {time.monotonic() - start:.0f} s"
          f"{' WITHOUT A SANDBOX' if not run.sandboxed else ''}; wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
