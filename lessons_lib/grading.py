"""Grade a folder of submitted exercise notebooks in one command.

    python -m lessons_lib.grading SUBMISSIONS_DIR --out DIR [--source solutions/]
                                  [--timeout SECONDS] [--workers N] [--memory-mb MB] [--force]

``SUBMISSIONS_DIR`` holds one folder per student (named after the student) with that
student's notebooks inside; a notebook lying directly in ``SUBMISSIONS_DIR`` is a
student named after the file. Each notebook is matched to its source notebook by file
name (``ex1_vae_compression.ipynb``, also ``ex1_vae_compression (2).ipynb`` or
``...-Copy1.ipynb``), or failing that by the grade_ids of its cells.

Before a submission runs, every instructor cell that is locked in the source (the
graded test cells with their hidden tests, the setup and read-only cells) is restored
by ``grade_id``; test cells the student deleted are put back after the cell that
precedes them in the source. Only the student's answer cells are kept as written.

Each notebook then runs in its own worker process and its own Jupyter kernel, in a
fresh temporary working folder that holds only a copy of the notebook; the kernel is
started through ``lessons_lib.sandbox``, which confines it. What is enforced, precisely
(``enforcement_notes`` writes the same list into each summary):

* wall clock: the whole notebook (kernel start included) gets ``--timeout`` seconds;
  then the worker and the kernel's process group are killed (SIGKILL), and the kernel
  also dies with its worker (``PR_SET_PDEATHSIG``);
* on the kernel process (inherited by what it starts): ``RLIMIT_AS`` (``--memory-mb``),
  ``RLIMIT_CPU`` (4 x the time limit, a backstop: CPU time counts every thread),
  ``RLIMIT_FSIZE`` (``--max-file-mb``, also caps what it writes to its output streams)
  and ``RLIMIT_CORE`` = 0;
* file writes: with Linux Landlock (kernel 5.13+) the kernel may create, change or
  delete files only inside its working folder (plus ``/dev/null``) and may not open
  TCP connections (Landlock ABI 4+); without Landlock this is NOT enforced, and the
  summary says so. In both cases HOME, TMPDIR, IPython's, Jupyter's and matplotlib's
  folders point inside the working folder;
* not enforced: a process-count limit, UDP/Unix-socket network access, reading files.
  The grader protects the grading from mistakes and careless code, not from a student
  who attacks the grading machine on purpose.

A test cell scores its points when it runs without error (the kernel's execute reply
says ``ok``) and 0 otherwise, with a status and a reason: ``passed``, ``failed`` (an
assertion failed), ``error`` (another exception), ``timeout``, ``invalid notebook``
(not JSON, no cells, unreadable), ``crashed`` (the kernel died) or ``missing`` (no
notebook for that exercise). Test cells that finished before a time-out or a crash keep
their result; the ones after it score 0 with that reason. Results: ``scores_long.csv``, ``scores_wide.csv`` and
``summary.md`` in ``--out``, each written atomically; an existing result is never
replaced unless ``--force`` is given.
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from lessons_lib.exercises import is_test_cell, nbgrader_meta
from lessons_lib.files import atomic_write
from lessons_lib.sandbox import SANDBOX_ENV, landlock_abi, probe_landlock

__all__ = [
    "STATUSES", "RESULT_FILES", "Limits", "Assignment", "Submission", "load_sources", "probe_landlock",
    "find_submissions", "match_assignment", "read_notebook", "prepare_notebook", "grade_one",
    "grade_folder", "write_results", "landlock_abi", "enforcement_notes", "main",
]

STATUSES = ("passed", "failed", "error", "timeout", "invalid notebook", "crashed", "missing")
RESULT_FILES = ("scores_long.csv", "scores_wide.csv", "summary.md")
LONG_COLUMNS = ["student", "notebook", "grade_id", "points", "max_points", "status", "reason"]
KERNEL_NAME = "lessons-grader"
REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_NOTEBOOK_BYTES = 50 * 2**20
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Limits:
    timeout: float = 120.0        # wall-clock seconds per notebook, kernel start included
    memory_mb: int = 8192         # RLIMIT_AS of the kernel (importing torch maps ~3 GB)
    max_file_mb: int = 64         # RLIMIT_FSIZE of the kernel
    cpu_factor: float = 4.0       # RLIMIT_CPU = cpu_factor x timeout

    def __post_init__(self):
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout}.")
        if self.memory_mb < 512:
            raise ValueError(f"memory_mb={self.memory_mb} is too small to start a Python kernel; use 1024 or more.")


@dataclass
class Question:
    grade_id: str
    points: float


@dataclass
class Assignment:
    name: str                      # file name, e.g. ex1_vae_compression.ipynb
    path: Path
    nb: object
    questions: list[Question]

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions)


@dataclass
class Submission:
    student: str
    path: Path
    loose: bool = False            # lying directly in SUBMISSIONS_DIR


@dataclass
class Outcome:
    """The result of grading one submitted notebook."""
    student: str
    notebook: str
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- sources
def load_sources(source_dir: Path | str) -> dict[str, Assignment]:
    """The instructor notebooks (with hidden tests) that submissions are graded against."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"No source folder at {source_dir}: pass --source with the folder of "
                                "solution notebooks (the ones with the hidden tests).")
    assignments, owners = {}, {}
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        questions = []
        for cell in nb.cells:
            if is_test_cell(cell):
                meta = nbgrader_meta(cell)
                gid = meta["grade_id"]
                if gid in owners:
                    raise ValueError(f"grade_id {gid!r} appears twice ({owners[gid]} and {path.name}); "
                                     "grade_ids must be unique across the source notebooks.")
                owners[gid] = path.name
                questions.append(Question(gid, float(meta.get("points", 0) or 0)))
        if questions:
            assignments[path.name] = Assignment(path.name, path, nb, questions)
    if not assignments:
        raise FileNotFoundError(f"{source_dir} holds no notebook with graded test cells "
                                "(nbgrader metadata grade: true).")
    return assignments


# --------------------------------------------------------------------------- submissions
def find_submissions(submissions_dir: Path | str) -> list[Submission]:
    """One entry per notebook: folders are students; loose notebooks are students named after the file."""
    root = Path(submissions_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"No submissions folder at {root}: give the folder that holds one "
                                "folder per student (or the students' notebooks).")
    subs = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for nb in sorted(entry.rglob("*.ipynb")):
                if not any(part.startswith(".") for part in nb.relative_to(entry).parts):
                    subs.append(Submission(entry.name, nb))
        elif entry.suffix == ".ipynb":
            subs.append(Submission(entry.stem, entry, loose=True))
    return subs


def read_notebook(path: Path) -> tuple[object | None, str]:
    """(notebook, "") or (None, why it cannot be graded)."""
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            return None, f"the file is {size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit"
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read the file ({type(exc).__name__}: {exc})"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "not a notebook: the JSON has no list of cells"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for damaged notebooks
        return None, f"not a readable notebook ({type(exc).__name__}: {exc})"
    if not any(c.get("cell_type") == "code" for c in nb.cells):
        return None, "the notebook has no code cells"
    return nb, ""


def _grade_ids(nb) -> set[str]:
    return {nbgrader_meta(c).get("grade_id") for c in getattr(nb, "cells", [])} - {None}


def match_assignment(sub: Submission, nb, assignments: dict[str, Assignment]) -> Assignment | None:
    """By file name, then by shared grade_ids."""
    name = sub.path.name.lower()
    for a in assignments.values():
        if a.name.lower() == name:
            return a
    candidates = [a for a in assignments.values() if name.startswith(a.stem.lower())]
    if candidates:
        return max(candidates, key=lambda a: len(a.stem))
    if nb is not None:
        ids = _grade_ids(nb)
        best = max(assignments.values(), key=lambda a: len(ids & _grade_ids(a.nb)))
        if ids & _grade_ids(best.nb):
            return best
    return None


def prepare_notebook(student_nb, assignment: Assignment) -> tuple[object, list[str]]:
    """The student's notebook with every locked instructor cell restored by grade_id."""
    source_cells = assignment.nb.cells
    order = [nbgrader_meta(c).get("grade_id") for c in source_cells]
    locked = {nbgrader_meta(c)["grade_id"]: c for c in source_cells
              if nbgrader_meta(c).get("grade_id")
              and (is_test_cell(c) or (nbgrader_meta(c).get("locked") and not nbgrader_meta(c).get("solution")))}
    tests = {q.grade_id for q in assignment.questions}
    cells, seen, edited = [], set(), []
    for cell in student_nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in locked and gid not in seen:
            if gid in tests and cell.get("source") != locked[gid].source and _visible(locked[gid].source) != cell.get("source"):
                edited.append(gid)
            cells.append(copy.deepcopy(locked[gid]))
            seen.add(gid)
        else:
            c = copy.deepcopy(cell)
            if gid is not None and (gid in locked or gid in tests):
                # a copy of an instructor cell: keep the code, but it is not graded
                c.metadata.pop("nbgrader", None)
            cells.append(c)
    deleted = []
    for i, gid in enumerate(order):
        if gid is None or gid not in locked or gid in seen:
            continue
        position = 0
        for prev in reversed(order[:i]):
            idx = next((k for k, c in enumerate(cells) if nbgrader_meta(c).get("grade_id") == prev), None)
            if prev is not None and idx is not None:
                position = idx + 1
                break
        cells.insert(position, copy.deepcopy(locked[gid]))
        seen.add(gid)
        if gid in tests:
            deleted.append(gid)
    for c in cells:
        if c.get("cell_type") == "code":
            c["outputs"] = []
            c["execution_count"] = None
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": KERNEL_NAME, "display_name": "Python 3 (grader)", "language": "python"},
        "language_info": {"name": "python"}})
    notes = []
    if edited:
        notes.append(f"test cells edited by the student were restored: {', '.join(edited)}")
    if deleted:
        notes.append(f"test cells deleted by the student were put back: {', '.join(deleted)}")
    return nb, notes


def _visible(source: str) -> str:
    """A test cell as the exercise shows it (hidden tests removed)."""
    from lessons_lib.exercises import strip_hidden_tests
    try:
        return strip_hidden_tests(source)
    except ValueError:
        return source


# --------------------------------------------------------------------------- worker
def _error_text(content: dict) -> str:
    ename, evalue = content.get("ename", "Error"), str(content.get("evalue", "")).strip()
    text = f"{ename}: {evalue}" if evalue else ename
    if not evalue:
        arrows = [m.group(1).strip() for line in content.get("traceback", [])
                  for m in re.finditer(r"-+>\s*\d+\s+(.*)", _ANSI.sub("", line))]
        if arrows:
            text += f" at `{arrows[-1][:120]}`"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def _death(client) -> str:
    """Why the kernel died, as far as its exit status tells."""
    code = None
    try:
        code = client.km.provisioner.process.poll()
    except AttributeError:
        pass
    if code is None:
        return "the kernel died"
    if code < 0:
        name = signal.Signals(-code).name
        why = {"SIGXCPU": "the CPU-time limit", "SIGXFSZ": "the file-size limit",
               "SIGKILL": "killed, e.g. out of memory", "SIGSEGV": "a segmentation fault"}.get(name)
        return f"the kernel died ({name}{': ' + why if why else ''})"
    return f"the kernel exited with status {code}"


def _worker_main() -> None:
    """Run one prepared notebook cell by cell; report each cell to the results file as it ends."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    job = json.loads(Path(sys.argv[1]).read_text())
    results = open(job["results"], "a", encoding="utf-8")

    def emit(**record):
        results.write(json.dumps(record) + "\n")
        results.flush()

    class Client(NotebookClient):
        replies: dict = {}

        async def _check_raise_for_error(self, cell, cell_index, exec_reply):
            if exec_reply is not None:
                self.replies[cell_index] = exec_reply["content"]
            return await super()._check_raise_for_error(cell, cell_index, exec_reply)

    nb = nbformat.read(job["notebook"], as_version=4)
    client = Client(nb, kernel_name=KERNEL_NAME, allow_errors=True, timeout=None,
                    startup_timeout=int(job["timeout"]) + 5, record_timing=False,
                    shutdown_kernel="immediate",
                    resources={"metadata": {"path": job["workdir"]}})
    emit(event="starting")
    try:
        with client.setup_kernel():
            emit(event="started")
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                gid = nbgrader_meta(cell).get("grade_id") if is_test_cell(cell) else None
                emit(event="running", cell=index + 1, grade_id=gid)
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    emit(event="crashed", cell=index + 1, reason=_death(client))
                    return
                content = client.replies.get(index, {"status": "ok"})
                if content.get("status") == "ok":
                    status, reason = "passed", ""
                else:
                    status = "failed" if content.get("ename") == "AssertionError" else "error"
                    reason = _error_text(content)
                if gid is not None:
                    emit(event="test", cell=index + 1, grade_id=gid, status=status, reason=reason)
                elif status != "passed":
                    emit(event="cell_error", cell=index + 1, reason=reason)
    except DeadKernelError:
        emit(event="crashed", cell=None, reason=_death(client))
        return
    except RuntimeError as exc:  # kernel failed to start (e.g. the memory limit is too low)
        emit(event="crashed", cell=None, reason=f"the kernel could not run: {exc}")
        return
    emit(event="done")


# --------------------------------------------------------------------------- one notebook
def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _environment(workdir: Path, private: Path, limits: Limits, landlock: bool) -> dict:
    env = dict(os.environ)
    home = workdir
    dirs = {
        "HOME": home, "TMPDIR": home / "tmp", "TMP": home / "tmp", "TEMP": home / "tmp",
        "IPYTHONDIR": home / ".ipython", "MPLCONFIGDIR": home / ".config" / "matplotlib",
        "XDG_CACHE_HOME": home / ".cache", "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local" / "share", "LESSONS_CACHE_DIR": home / ".cache" / "lessons_lib",
        "JUPYTER_CONFIG_DIR": home / ".jupyter", "JUPYTER_DATA_DIR": home / ".local" / "share" / "jupyter",
        "JUPYTER_RUNTIME_DIR": home / ".local" / "share" / "jupyter" / "runtime",
    }
    for key, path in dirs.items():
        Path(path).mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    env["JUPYTER_PATH"] = str(private / "jupyter")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("LESSONS_PROFILE", "fast")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")  # fair sharing between parallel workers
    env["CUDA_VISIBLE_DEVICES"] = ""  # the exercises run on the CPU; CUDA would not start under RLIMIT_AS
    env[SANDBOX_ENV] = json.dumps({
        "workdir": str(workdir), "pidfile": str(private / "kernel.pid"), "memory_mb": limits.memory_mb,
        "max_file_mb": limits.max_file_mb, "cpu_seconds": int(limits.cpu_factor * limits.timeout) + 1,
        "landlock": landlock})
    return env


def _write_kernelspec(private: Path) -> None:
    spec_dir = private / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "lessons_lib.sandbox", "{connection_file}"],
            "display_name": "Python 3 (grader sandbox)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def _rows(student, assignment, status_by_id, default_status, default_reason):
    rows = []
    for q in assignment.questions:
        status, reason = status_by_id.get(q.grade_id, (default_status, default_reason))
        rows.append({"student": student, "notebook": assignment.name, "grade_id": q.grade_id,
                     "points": q.points if status == "passed" else 0.0, "max_points": q.points,
                     "status": status, "reason": reason})
    return rows


def grade_one(sub: Submission, assignment: Assignment, nb, limits: Limits, landlock: bool) -> Outcome:
    """Run one student's notebook against one assignment and score its test cells."""
    start = time.monotonic()
    prepared, notes = prepare_notebook(nb, assignment)
    private = Path(tempfile.mkdtemp(prefix="lessons-grade-"))
    try:
        workdir = private / "work"
        workdir.mkdir()
        nb_path = workdir / assignment.name
        nbformat.write(prepared, str(nb_path))
        _write_kernelspec(private)
        results = private / "results.jsonl"
        results.touch()
        job = private / "job.json"
        job.write_text(json.dumps({"notebook": str(nb_path), "results": str(results),
                                   "workdir": str(workdir), "timeout": limits.timeout}))
        env = _environment(workdir, private, limits, landlock)
        log_path = private / "worker.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from lessons_lib.grading import _worker_main; _worker_main()", str(job)],
                cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=max(0.0, limits.timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                pid_file = private / "kernel.pid"
                if pid_file.exists():
                    try:
                        _kill_group(int(pid_file.read_text().strip()))
                    except ValueError:
                        pass
                _kill_group(proc.pid)
                proc.wait()
        records = _read_records(results)
        status_by_id, running, crashed = {}, None, None
        for r in records:
            if r["event"] == "test":
                status_by_id[r["grade_id"]] = (r["status"], r["reason"])
            elif r["event"] == "running":
                running = r
            elif r["event"] == "crashed":
                crashed = r
            elif r["event"] == "cell_error":
                notes.append(f"cell {r['cell']} raised {r['reason']}")
        first_error = next((r for r in records if r["event"] == "cell_error"), None)
        if first_error:  # explain test errors that follow a broken answer cell
            for gid, (status, reason) in list(status_by_id.items()):
                if status == "error" and reason != first_error["reason"]:
                    status_by_id[gid] = (status, f"{reason} (after cell {first_error['cell']} raised "
                                                 f"{first_error['reason']})")
        done = any(r["event"] == "done" for r in records)
        if timed_out:
            where = ""
            if running is not None:
                where = f" while running cell {running['cell']}"
            elif not any(r["event"] == "started" for r in records):
                where = " before the kernel had started"
            default = ("timeout", f"the notebook did not finish within {limits.timeout:g} s{where}")
        elif crashed is not None:
            where = f" in cell {crashed['cell']}" if crashed.get("cell") else ""
            default = ("crashed", f"{crashed['reason']}{where}")
        elif not done:
            tail = _tail(log_path)
            default = ("crashed", f"the grading worker stopped (exit status {proc.returncode}){': ' + tail if tail else ''}")
        else:
            default = ("error", "the test cell was not run")
        rows = _rows(sub.student, assignment, status_by_id, *default)
        return Outcome(sub.student, assignment.name, rows, notes, time.monotonic() - start)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _read_records(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short when the worker was killed
            pass
    return records


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    text = [l for l in text if "without encryption" not in l]
    return " | ".join(text[-lines:])[:300]


# --------------------------------------------------------------------------- a folder
def grade_folder(submissions_dir: Path | str, source_dir: Path | str = REPO_ROOT / "solutions",
                 limits: Limits = Limits(), workers: int = 1, progress=print):
    """Grade every submission; returns (assignments in use, students, outcomes, notes, sandbox status)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    assignments = load_sources(source_dir)
    subs = find_submissions(submissions_dir)
    if not subs:
        raise FileNotFoundError(f"{submissions_dir} holds no .ipynb notebooks to grade.")
    landlock, _ = probe_landlock()
    notes: dict[str, list[str]] = {}
    jobs, invalid, unmatched = [], [], []
    for sub in subs:
        nb, why = read_notebook(sub.path)
        assignment = match_assignment(sub, nb, assignments)
        if assignment is None:
            unmatched.append((sub, nb, why))
        elif nb is None:
            invalid.append((sub, assignment, why))
        else:
            jobs.append((sub, assignment, nb))
    in_use = {a.name: a for _, a, *_ in jobs + invalid}
    for sub, nb, why in unmatched:  # one exercise in use: that is the one they meant
        if len(in_use) == 1 and nb is None:
            invalid.append((sub, next(iter(in_use.values())), why))
        else:
            reason = why or "its name and cells match no source notebook"
            notes.setdefault(sub.student, []).append(f"{sub.path.name} was not graded: {reason}")
    students = sorted({s.student for s in subs})
    outcomes: list[Outcome] = []
    chosen = set()
    total = len(jobs) + len(invalid)
    lock = threading.Lock()

    def report(outcome: Outcome):
        with lock:
            outcomes.append(outcome)
            got = sum(r["points"] for r in outcome.rows)
            top = sum(r["max_points"] for r in outcome.rows)
            bad = sorted({r["status"] for r in outcome.rows if r["status"] != "passed"})
            progress(f"[{len(outcomes)}/{total}] {outcome.student}/{outcome.notebook}: "
                     f"{_num(got)}/{_num(top)} points{' (' + ', '.join(bad) + ')' if bad else ''} "
                     f"in {outcome.seconds:.1f} s")

    for sub, assignment, why in invalid:
        key = (sub.student, assignment.name)
        if key in chosen:
            notes.setdefault(sub.student, []).append(f"{sub.path.name}: another notebook for {assignment.name} was graded")
            continue
        chosen.add(key)
        report(Outcome(sub.student, assignment.name,
                       _rows(sub.student, assignment, {}, "invalid notebook", f"{sub.path.name}: {why}")))
    runnable = []
    for sub, assignment, nb in jobs:
        key = (sub.student, assignment.name)
        if key in chosen:
            notes.setdefault(sub.student, []).append(
                f"{sub.path.name}: a second notebook for {assignment.name}; only the first was graded")
            continue
        chosen.add(key)
        runnable.append((sub, assignment, nb))

    def run(job):
        sub, assignment, nb = job
        try:
            outcome = grade_one(sub, assignment, nb, limits, landlock)
        except Exception as exc:  # the run goes on: this notebook gets zeroes and the reason
            outcome = Outcome(sub.student, assignment.name,
                              _rows(sub.student, assignment, {}, "crashed", f"grading failed: {type(exc).__name__}: {exc}"))
        report(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, runnable))
    graded = {(o.student, o.notebook) for o in outcomes}
    for student in students:
        for name, assignment in in_use.items():
            if (student, name) not in graded:
                outcomes.append(Outcome(student, name, _rows(student, assignment, {}, "missing",
                                                             f"no notebook for {name} in the submission")))
    order = {name: i for i, name in enumerate(sorted(in_use))}
    outcomes.sort(key=lambda o: (o.student, order[o.notebook]))
    for outcome in outcomes:
        if outcome.notes:
            notes.setdefault(outcome.student, []).extend(f"{outcome.notebook}: {n}" for n in outcome.notes)
    return [in_use[n] for n in sorted(in_use)], students, outcomes, notes, landlock


# --------------------------------------------------------------------------- results
def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse to replace earlier results unless force is set."""
    existing = [name for name in RESULT_FILES if (out_dir / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out_dir} already holds grading results ({', '.join(existing)}); nothing was "
                              "graded. Choose another --out folder, or pass --force to replace them.")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file, not a folder.")


def enforcement_notes(limits: Limits, landlock: bool) -> list[str]:
    """What the grader enforced in a run, in words (the end of summary.md)."""
    return [
        f"wall clock: {limits.timeout:g} s per notebook, kernel start included; then the worker and the "
        "kernel's process group are killed",
        f"kernel limits (setrlimit): address space {limits.memory_mb} MB, CPU time "
        f"{int(limits.cpu_factor * limits.timeout) + 1} s, file size {limits.max_file_mb} MB, no core dumps",
        f"file writes outside the working folder: blocked ({probe_landlock()[1]}, checked at the start "
        "of the run)" if landlock else
        f"file writes outside the working folder: NOT enforced ({probe_landlock()[1]}); HOME and "
        "TMPDIR point inside the working folder",
        "each notebook runs in a fresh temporary folder holding only a copy of it, in its own worker "
        "process and kernel; instructor cells are restored by grade_id before it runs",
        "not enforced: process count, UDP/Unix-socket network, reading files",
    ]


def write_results(out_dir: Path | str, assignments: list[Assignment], students: list[str],
                  outcomes: list[Outcome], notes: dict[str, list[str]], limits: Limits,
                  landlock: bool, force: bool = False, source_dir: Path | str = "", seconds: float = 0.0) -> list[Path]:
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for o in outcomes for r in o.rows]
    questions = [(a, q) for a in assignments for q in a.questions]

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LONG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(dict(r, points=_num(r["points"]), max_points=_num(r["max_points"])))
    long_text = buf.getvalue()

    points = {(r["student"], r["grade_id"]): r["points"] for r in rows}
    max_total = sum(q.points for _, q in questions)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student"] + [q.grade_id for _, q in questions] + ["total", "max_total"])
    totals = {}
    for s in students:
        values = [points.get((s, q.grade_id), 0.0) for _, q in questions]
        totals[s] = sum(values)
        writer.writerow([s] + [_num(v) for v in values] + [_num(totals[s]), _num(max_total)])
    wide_text = buf.getvalue()

    md = ["# Grading summary", "",
          f"- graded: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
          f"{len(students)} students, {sum(1 for o in outcomes if o.rows and o.rows[0]['status'] != 'missing')} "
          f"notebooks, {seconds:.0f} s",
          f"- source notebooks: {source_dir}",
          "- a test cell scores its points when it runs without an error; statuses: " + ", ".join(STATUSES), ""]
    md += ["## Students", "", "| student | " + " | ".join(a.stem for a in assignments) + " | total |",
           "|---|" + "---:|" * (len(assignments) + 1)]
    for s in students:
        cells = []
        for a in assignments:
            got = sum(r["points"] for r in rows if r["student"] == s and r["notebook"] == a.name)
            cells.append(f"{_num(got)}/{_num(a.max_points)}")
        md.append(f"| {s} | " + " | ".join(cells) + f" | {_num(totals[s])}/{_num(max_total)} |")
    md += ["", "## Questions", "", "| question | points | passed | mean |", "|---|---:|---:|---:|"]
    for a, q in questions:
        qrows = [r for r in rows if r["grade_id"] == q.grade_id]
        passed = sum(r["status"] == "passed" for r in qrows)
        mean = sum(r["points"] for r in qrows) / len(qrows) if qrows else 0.0
        md.append(f"| {q.grade_id} | {_num(q.points)} | {passed}/{len(qrows)} | {mean:.2f} |")
    md += ["", "## Problems", ""]
    groups: dict[tuple, list[str]] = {}
    for r in rows:
        if r["status"] not in ("passed", "missing"):
            groups.setdefault((r["student"], r["notebook"], r["status"], r["reason"]), []).append(r["grade_id"])
    if groups:
        md += ["| student | notebook | questions | status | reason |", "|---|---|---|---|---|"]
        n_questions = {a.name: len(a.questions) for a in assignments}
        for (student, notebook, status, reason), ids in groups.items():
            stem = Path(notebook).stem + "_"
            which = (f"all {len(ids)}" if len(ids) == n_questions[notebook]
                     else ", ".join(i[len(stem):] if i.startswith(stem) else i for i in ids))
            md.append(f"| {student} | {Path(notebook).stem} | {which} | {status} | {reason.replace('|', '/')} |")
    else:
        md.append("None: every test cell that ran passed.")
    missing: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] == "missing" and Path(r["notebook"]).stem not in missing.get(r["student"], []):
            missing.setdefault(r["student"], []).append(Path(r["notebook"]).stem)
    if missing:
        md += ["", "Missing notebooks (zero points):", ""]
        md += [f"- {s}: {', '.join(names)}" for s, names in missing.items()]
    md += ["", "## Notes", ""]
    md += [f"- {s}: {n}" for s in sorted(notes) for n in notes[s]] or ["None."]
    md += ["", "## What the grader enforced", ""] + [f"- {n}" for n in enforcement_notes(limits, landlock)]
    files = {"scores_long.csv": long_text, "scores_wide.csv": wide_text, "summary.md": "\n".join(md) + "\n"}
    written = []
    for name, text in files.items():
        atomic_write(out_dir / name, text)
        written.append(out_dir / name)
    return written


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lessons_lib.grading",
        description="Grade a folder of submitted exercise notebooks (one folder per student).")
    parser.add_argument("submissions", type=Path, help="folder with one folder per student")
    parser.add_argument("--out", type=Path, required=True, help="folder for scores_long.csv, scores_wide.csv, summary.md")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "solutions",
                        help="instructor notebooks with the hidden tests (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per notebook (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="notebooks graded in parallel (default: %(default)s)")
    parser.add_argument("--memory-mb", type=int, default=8192, help="address-space limit per kernel (default: %(default)s)")
    parser.add_argument("--max-file-mb", type=int, default=64, help="largest file a kernel may write (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace results already in --out")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        limits = Limits(timeout=args.timeout, memory_mb=args.memory_mb, max_file_mb=args.max_file_mb)
        check_out_dir(args.out, args.force)
        assignments, students, outcomes, notes, landlock = grade_folder(
            args.submissions, args.source, limits, args.workers,
            progress=lambda line: print(line, flush=True))
        written = write_results(args.out, assignments, students, outcomes, notes, limits, landlock,
                                force=args.force, source_dir=args.source, seconds=time.monotonic() - start)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"graded {len(students)} students in {time.monotonic() - start:.0f} s; wrote "
          + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
