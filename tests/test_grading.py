"""The grading round trip and the grader's own red team.

One grading run (--workers 2) over honest controls and one submission per kind of attack
(always-equal objects, patched libraries and builtins, IPython hooks and forged replies,
reading the solutions or a classmate, writing/signalling/network outside, background
processes, resource exhaustion, metadata tampering, CSV/Markdown injection, links and
special files, malformed notebooks): each gets its honest score, nothing it started
survives, nothing outside the sandbox changes, and the results hold no hidden-test text
and no spreadsheet formula. Needs bubblewrap (skipped with the reason when it cannot run).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from helpers import needs_bwrap, tree_state

from course_tools import grading, sandbox
from course_tools.exercises import nbgrader_meta
from course_tools.intake import prepare_notebook

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = REPO / "solutions", REPO / "exercises"
EX1 = "ex1_vae_compression.ipynb"
TIMEOUT = 25   # about five times what an honest notebook takes here, kernel start included
MARKER = "lessons-redteam-marker"


def _ex1(blank=False):
    return nbformat.read(str((EXERCISES if blank else SOLUTIONS) / EX1), as_version=4)


def _cell(nb, suffix):
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id", "").endswith(suffix))


def _after_solution(nb, *sources):
    index = nb.cells.index(_cell(nb, "_solution")) + 1
    for source in reversed(sources):
        nb.cells.insert(index, nbformat.v4.new_code_cell(source))
    return nb


def _edit_solution(nb, old, new):
    cell = _cell(nb, "_solution")
    assert old in cell.source, old
    cell.source = cell.source.replace(old, new)
    return nb


def _save(nb, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb), encoding="utf-8")


# --------------------------------------------------------------------------- the attacks
ALWAYS_EQUAL = '''
class Anything(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __gt__(self, other): return True
    def __abs__(self): return 0
    def __sub__(self, other): return self
    def __rsub__(self, other): return self
    def __bool__(self): return True
    def __hash__(self): return 0
class AnyObj:
    __eq__ = lambda s, o: True
    __bool__ = lambda s: True
    def __getitem__(self, k): return AnyObj()
    def __iter__(self): return iter([AnyObj()] * 4)
for name in ("pixel_values", "latent_values", "compression_ratio", "megabytes"):
    setattr(VAECompressionAnalyzer, name, lambda self, *a: Anything(7))
VAECompressionAnalyzer.analyze = lambda self, *a: [AnyObj()] * 4
VAECompressionAnalyzer.ratio_is_constant = lambda self, rows: AnyObj()
'''

PATCHED = '''
import builtins, json, math, numpy, torch
import lessons_lib.expect as checks
checks.compare = lambda *a, **k: True
checks.to_plain = lambda v, *a: True
builtins.abs = lambda x: 0
numpy.allclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
math.isclose = lambda *a, **k: True
for name in ("pixel_values", "latent_values", "compression_ratio", "megabytes"):
    setattr(VAECompressionAnalyzer, name, lambda self, *a: 0)
'''

HOOKS = '''
import os, json, sys
ip = get_ipython()
ip.set_custom_exc((BaseException,), lambda *a, **k: None)   # swallow every error
ip.events.register("post_run_cell", lambda result: None)
sys.excepthook = lambda *a: None
def fake(cell, checks):
    rec = {"event": "cell", "cell": cell, "status": "ok", "ename": "", "evalue": "", "checks": checks}
    return json.dumps(rec) + "\\n"
forged = [{"site": s, "label": "forged", "value": True} for s in range(1, 9)]
line = "".join(fake(i, forged) for i in range(40))
for pid in (os.getppid(), 1, 2, 3):
    for fd in range(0, 12):
        try:
            with open(f"/proc/{pid}/fd/{fd}", "a") as fh:
                fh.write(line + '{"event": "done"}\\n')
        except OSError:
            pass
print(line)
from IPython.display import display
display({"application/vnd.lessons-check+json": {"site": 1, "label": "pixel_values(512, 512)",
                                                 "value": 786432}}, raw=True)
'''

STEAL = '''
import os, glob, json
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    found += [os.path.join(top, f) for f in files if f.endswith(".ipynb")]
for path in TARGETS + found:
    try:
        nb = json.load(open(path))
    except (OSError, ValueError):
        continue
    for cell in nb.get("cells", []):
        src = "".join(cell.get("source", ""))
        if "class VAECompression" + "Analyzer" in src and "BEGIN " + "SOLUTION" in src:   # not this cell itself
            exec(src)
            break
try:
    import solutions  # the checkout is not importable from the sandbox
except ImportError:
    pass
STOLEN = {p: open(p, errors="replace").read()[:100] for p in ("/proc/1/cmdline", "/proc/1/environ")
          if os.path.exists(p)}
'''

OUTSIDE = '''
import os, socket, signal, time
for path in WRITE_TARGETS:
    for action in (lambda: open(path, "w").write("escaped"), lambda: os.chmod(path, 0o4777),
                   lambda: os.utime(path, (0, 0)), lambda: os.setxattr(path, "user.x", b"1"),
                   lambda: os.unlink(path)):
        try:
            action()
        except (OSError, AttributeError):
            pass
for pid in (VICTIM_PID, 1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"udp escaped", ("127.0.0.1", UDP_PORT))
except OSError:
    pass
try:
    socket.create_connection(("127.0.0.1", TCP_PORT), timeout=2).sendall(b"tcp escaped")
except OSError:
    pass
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"unix escaped", UNIX_PATH)
except OSError:
    pass
'''

BACKGROUND = '''
import os, subprocess, sys, time
code = "import time, sys\\nwhile True:\\n    time.sleep(0.2)\\n"
subprocess.Popen([sys.executable, "-c", code, "MARKER"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:          # a classic daemon: double fork, new session
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", code, "MARKER"])
    os._exit(0)
time.sleep(0.5)
'''.replace("MARKER", MARKER)

EXHAUST = '''
import os, time
import numpy as np
try:
    huge = np.ones(2**33, dtype=np.uint8)            # 8 GB: over the address-space limit
except MemoryError:
    pass
try:
    open("big.bin", "wb").write(b"0" * (9 * 2**20))   # over the file-size limit
except OSError:
    pass
try:
    for i in range(10**6):                             # fill the private disk
        open(f"fill{i}.bin", "wb").write(b"0" * (4 * 2**20))
except OSError:
    pass
for f in os.listdir("."):
    if f.startswith("fill"):
        os.unlink(f)
print("x" * (20 * 2**20))                              # a flood of output
'''


FORK_BOMB = '''
import os, time
children = 0
try:
    for _ in range(5000):                              # a fork bomb, stopped by the process limit
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError:
    pass
print(children, "children")
'''

KILL_ALL = '''
import os, signal
for pid in (-1, 1):                                    # everything this user may signal
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
'''


# --------------------------------------------------------------------------- the submissions
@dataclass(frozen=True)
class Context:
    """What some attacks aim at, known only when the fixture runs."""
    subs: Path          # the submissions folder
    outside: Path       # a folder outside the sandbox, with a file "x" in it
    ports: dict         # listening here: {"udp": port, "tcp": port, "unix": socket path}
    victim_pid: int     # a process outside the sandbox

    def setup(self) -> str:
        """An attack's first lines: its targets as Python constants."""
        targets = [str(SOLUTIONS / EX1), str(self.subs / "solutions" / EX1), str(self.subs / "bob" / EX1),
                   str(self.outside / "x")]
        writable = [str(self.subs / "solutions" / EX1), str(self.subs / "bob" / EX1), str(self.outside / "x")]
        return (f"TARGETS = {targets!r}\nWRITE_TARGETS = {writable!r}\nVICTIM_PID = {self.victim_pid}\n"
                f"UDP_PORT = {self.ports['udp']}\nTCP_PORT = {self.ports['tcp']}\nUNIX_PATH = {self.ports['unix']!r}\n")


Make = Callable[[Path, Context], None]   # makes one student's folder


@dataclass(frozen=True)
class Case:
    """One student's submission: the name the results show, how its folder is made, its honest score out of
    the 60 in use, and why; ``folder``: the folder's name where the results escape it."""
    name: str
    make: Make
    score: int
    why: str
    folder: str = ""


def copied(source: Path) -> Make:
    """A copy of a whole folder of notebooks."""
    return lambda folder, ctx: shutil.copytree(source, folder)


def ex1(*edits: tuple[str, str], after: str = "", blank: bool = False, targets: bool = False) -> Make:
    """ex1, solved (``blank``: as handed out), with each (old, new) edit made in its answer cell and ``after`` as
    a new cell after that; ``targets``: ``after`` starts with the Context's targets."""
    def make(folder: Path, ctx: Context) -> None:
        nb = _ex1(blank)
        for old, new in edits:
            _edit_solution(nb, old, new)
        if after:
            _after_solution(nb, (ctx.setup() if targets else "") + after)
        _save(nb, folder / EX1)
    return make


def special(write: Callable[[Path], object]) -> Make:
    """A student folder whose ex1 file is made by ``write(path)``."""
    def make(folder: Path, ctx: Context) -> None:
        folder.mkdir()
        write(folder / EX1)
    return make


def written(content: str | bytes) -> Make:
    return special(lambda path: path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content))


def _wrong_ratio_and_edited_tests(folder: Path, ctx: Context) -> None:
    nb = _edit_solution(_ex1(), "return self.pixel_values(height, width) / self.latent_values(height, width)",
                        "return 50.0")
    _cell(nb, "_test_ratio").source = "# 3 points\npass"
    nb.cells.remove(_cell(nb, "_test_validation"))
    _save(nb, folder / EX1)


def _tampered_metadata(folder: Path, ctx: Context) -> None:
    nb = _ex1(blank=True)
    fake = nbformat.v4.new_code_cell("pass")
    fake.metadata["nbgrader"] = {"grade": True, "grade_id": "ex1_vae_compression_test_counts", "points": 1000,
                                 "solution": False, "locked": True, "schema_version": 3}
    nb.cells.insert(0, fake)
    _cell(nb, "_test_ratio").metadata["nbgrader"]["points"] = 500
    _cell(nb, "_test_megabytes").metadata["nbgrader"]["grade_id"] = ["ex1_vae_compression_test_megabytes"]
    nb.metadata["kernelspec"] = {"name": "../../bin/sh", "display_name": "x", "language": "sh"}
    _save(nb, folder / EX1)


def _sparse(path: Path) -> None:
    with open(path, "wb") as fh:
        fh.truncate(25 * 2**20)  # over the size cap without using the disk


INJECTION = "raise type('=Evil', (Exception,), {})('=HYPERLINK(\"http://x\")|\\n| forged |')"
PIPE = "pipe|name\n| forged | 60 of 60 |"
MEGABYTES = ("return n_values * self.bytes_per_value / 1e6", "return n_values * 8 / 1e6")
NO_VALIDATION = ("if height % self.downsample or width % self.downsample:", "if False:")
IMPORT_ERROR = ("from lessons_lib.tables import format_table",
                "import lessons_lib.no_such_module\nfrom lessons_lib.tables import format_table")

CASES = [
    # the controls
    Case("solutions", copied(SOLUTIONS), 60, "every answer right"),
    Case("blank", copied(EXERCISES), 0, "no answer: every test raises NotImplementedError"),
    Case("bob", ex1(MEGABYTES, NO_VALIDATION), 5, "half right: wrong megabytes, no size check"),
    Case("carol", ex1(IMPORT_ERROR), 0, "its answer cell raises on import"),
    Case("dave", ex1(after="while True:\n    pass"), 0, "hangs: every test times out"),
    Case("erin", _wrong_ratio_and_edited_tests, 7, "a wrong ratio; the tests it edited and deleted are put back"),
    Case("henry", ex1(after="import os\nos._exit(3)"), 0, "the kernel dies"),
    # attacks on the judgement, after a blank answer: none scores
    Case("always_equal", ex1(after=ALWAYS_EQUAL, blank=True), 0, "objects equal to anything"),
    Case("patched", ex1(after=PATCHED, blank=True), 0, "comparisons, builtins and libraries patched"),
    Case("hooks", ex1(after=HOOKS, blank=True), 0, "IPython hooks, forged replies to the grader"),
    Case("steals", ex1(after=STEAL, blank=True, targets=True), 0, "looks for the solutions and finds none"),
    Case("tamper", _tampered_metadata, 0, "a forged test cell, points, grade id and kernel"),
    # attacks on the machine, after a right answer: the sandbox stops them
    Case("outside", ex1(after=OUTSIDE, targets=True), 10, "writes, signals and sends outside the sandbox"),
    Case("background", ex1(after=BACKGROUND), 10, "leaves processes running"),
    Case("exhaust", ex1(after=EXHAUST), 10, "memory, file size, disk and output over the limits"),
    Case("forkbomb", ex1(after=FORK_BOMB), 10, "a fork bomb, stopped by the process limit"),
    Case("killer", ex1(after=KILL_ALL), 0, "kills everything it may: its own sandbox"),
    # CSV / Markdown injection, in an error message and a name
    Case('=HYPERLINK("x")', ex1(after=INJECTION), 10, "right; an error whose name and message are formulas"),
    Case(PIPE.replace("\n", "\\n"), ex1(), 10, "right; a name that forges a table row", folder=PIPE),
    # links and special files: not read
    Case("linked", lambda folder, ctx: folder.symlink_to(SOLUTIONS), 0, "the folder links to the solutions"),
    Case("linkfile", special(lambda path: path.symlink_to(SOLUTIONS / EX1)), 0, "the notebook is a link"),
    Case("fifo", special(os.mkfifo), 0, "a FIFO"),
    Case("device", special(lambda path: os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))), 0, "/dev/zero"),
    # malformed notebooks
    Case("nested", written("[" * 100_000 + "]" * 100_000), 0, "JSON nested too deeply"),
    Case("notjson", written("{ this is not a notebook"), 0, "not JSON"),
    Case("nocells", written(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})), 0,
         "no cells"),
    Case("oddcells", written(json.dumps({"cells": [1, None, {"cell_type": "code", "source": 5},
                                                   {"cell_type": ["x"], "metadata": []}], "metadata": 7})), 0,
         "cells of the wrong types"),
    Case("huge", special(_sparse), 0, "over the size cap"),
    Case("bytes\\xff\\xfename", written(b"\xff\xfe not utf-8"), 0, "neither its name nor its text is UTF-8",
         folder=os.fsdecode(b"bytes\xff\xfename")),
]


def _build(ctx: Context) -> dict[str, float]:
    """The submissions folder (one folder per case); returns each student's honest score out of the 60 in use."""
    assert len({case.name for case in CASES}) == len(CASES)
    ctx.subs.mkdir()
    for case in CASES:
        case.make(ctx.subs / (case.folder or case.name), ctx)
    return {case.name: case.score for case in CASES}


def _alive_with(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def _sandbox_uid_processes() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                status = (proc / "status").read_text().splitlines()
                uid = int(next(li for li in status if li.startswith("Uid:")).split()[1])
            except (OSError, StopIteration, ValueError):
                continue
            if sandbox.UID_BASE <= uid < sandbox.UID_BASE + 64:
                pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def graded(tmp_path_factory, bwrap):
    root = tmp_path_factory.mktemp("grading")
    outside = root / "outside"
    outside.mkdir()
    (outside / "x").write_text("untouched")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(5)
    unix_path = str(root / "unix.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(unix_path)
    for s in (udp, tcp, unix):
        s.setblocking(False)
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARKER + "-victim"])
    subs, out = root / "submissions", root / "results"
    honest = _build(Context(subs, outside, {"udp": udp.getsockname()[1], "tcp": tcp.getsockname()[1],
                                            "unix": unix_path}, victim.pid))
    before = tree_state(outside, subs, SOLUTIONS, EXERCISES)
    n = sum(1 for _ in subs.rglob("*.ipynb"))
    start = time.monotonic()
    code = grading.main([str(subs), "--out", str(out), "--timeout", str(TIMEOUT), "--workers", "2",
                         "--memory-mb", "6000", "--max-file-mb", "8", "--disk-mb", "64"])
    elapsed = time.monotonic() - start
    time.sleep(1)
    received = []
    for s in (udp, unix):
        try:
            received.append(s.recv(100))
        except BlockingIOError:
            pass
    try:
        received.append(tcp.accept())
    except BlockingIOError:
        pass
    victim_alive = victim.poll()  # None: still running
    victim.kill()
    victim.wait()
    for s in (udp, tcp, unix):
        s.close()
    result = {"code": code, "elapsed": elapsed, "n": n, "honest": honest, "out": out, "subs": subs,
              "changed": before != tree_state(outside, subs, SOLUTIONS, EXERCISES), "received": received,
              "victim_alive": victim_alive, "alive": _alive_with(MARKER),
              "uid_procs": _sandbox_uid_processes(),
              "texts": {name: (out / name).read_text() for name in grading.RESULT_FILES}}
    with open(out / "scores_long.csv", newline="") as f:
        result["long"] = list(csv.DictReader(f))
    with open(out / "scores_wide.csv", newline="") as f:
        result["wide"] = {row["student"]: row for row in csv.DictReader(f)}
    return result


def _total(graded, name):
    return float(graded["wide"][name]["total"])


def _rows(graded, name):
    return {r["grade_id"].split("_test_")[-1]: r for r in graded["long"] if r["student"] == name
            and r["notebook"] == EX1}


def test_the_run_finishes_with_results(graded):
    assert graded["code"] == 0
    assert graded["elapsed"] < graded["n"] * TIMEOUT / 2 + 60
    umask = os.umask(0o022)
    os.umask(umask)
    for name in grading.RESULT_FILES:  # readable by others as the umask allows, not 0600
        assert (graded["out"] / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in graded["out"].iterdir()) == sorted(grading.RESULT_FILES)  # no staging left


def test_every_submission_gets_its_honest_score(graded):
    shown = {name.replace("\n", "\\n"): value for name, value in graded["honest"].items()}
    got = {name.lstrip("'"): _total(graded, name) for name in graded["wide"]}
    assert got == {name: float(value) for name, value in shown.items()}


def test_controls_statuses_and_reasons(graded):
    blank = [r for r in graded["long"] if r["student"] == "blank"]
    assert len(blank) == 23
    assert all(r["status"] == "error" and "NotImplementedError" in r["reason"] for r in blank)
    bob = _rows(graded, "bob")
    assert bob["megabytes"]["status"] == "failed" and "gave a wrong value" in bob["megabytes"]["reason"]
    assert bob["counts"]["status"] == bob["ratio"]["status"] == "passed"
    assert all("after cell" in r["reason"] and "ModuleNotFoundError" in r["reason"]
               for r in _rows(graded, "carol").values())
    assert all(r["status"] == "timeout" and f"within {TIMEOUT} "
                                            f"s" in r["reason"] for r in _rows(graded, "dave").values())
    assert all(r["status"] == "crashed" and "exited with status "
                                            "3" in r["reason"] for r in _rows(graded, "henry").values())
    erin = _rows(graded, "erin")
    assert erin["ratio"]["status"] == "failed" and erin["validation"]["status"] == "passed"
    summary = graded["texts"]["summary.md"]
    assert "restored: ex1\\_vae" not in summary and "restored: ex1_vae_compression_test_ratio" in summary
    assert "put back: ex1_vae_compression_test_validation" in summary
    others = {r["status"] for r in graded["long"] if r["student"] == "bob" and r["notebook"] != EX1}
    assert others == {"missing"}


def test_attacks_on_the_judgement_score_nothing(graded):
    for name in ("always_equal", "patched", "hooks", "steals", "tamper"):
        rows = _rows(graded, name)
        assert all(r["status"] != "passed" for r in rows.values()), name
        assert sum(float(r["max_points"]) for r in rows.values()) == 10  # tampered points changed nothing
    # The search for solutions finished (it did not run out of time) and found none: the blank's own error.
    assert all(r["status"] == "error" and "NotImplementedError" in r["reason"]
               for r in _rows(graded, "steals").values())


def test_nothing_outside_the_sandbox_changed_or_heard(graded):
    assert not graded["changed"], "a file outside the sandbox changed"
    assert graded["received"] == [], "a message left the sandbox"
    assert graded["victim_alive"] is None, f"a process outside the sandbox died ({graded['victim_alive']})"


def test_nothing_the_run_started_is_alive(graded):
    assert graded["alive"] == [] and graded["uid_procs"] == []


def test_links_special_and_malformed_files_get_a_reason(graded):
    reasons = {name: {r["reason"] for r in graded["long"] if r["student"] == name and r["notebook"] == EX1}
               for name in ("linkfile", "fifo", "device", "nested", "notjson", "nocells", "oddcells", "huge")}
    assert "symbolic link" in next(iter(reasons["linkfile"]))
    assert "FIFO" in next(iter(reasons["fifo"])) and "device" in next(iter(reasons["device"]))
    assert "nested too deeply" in next(iter(reasons["nested"]))
    assert "not valid JSON" in next(iter(reasons["notjson"]))
    assert "no code cells" in next(iter(reasons["nocells"]))
    assert "no code cells" in next(iter(reasons["oddcells"]))
    assert "over the 20 MB limit" in next(iter(reasons["huge"]))
    assert "symbolic link" in graded["texts"]["summary.md"]  # the linked student folder
    assert "bytes\\xff\\xfename" in graded["wide"]


def test_results_leak_nothing_and_start_no_formula(graded):
    hidden = []
    for path in SOLUTIONS.glob("*.ipynb"):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if "### BEGIN HIDDEN TESTS" in cell.source:
                block = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
                hidden += [" ".join(li.split()) for li in block.splitlines() if len(li.strip()) >= 12]
            if nbgrader_meta(cell).get("solution"):
                hidden += [li.strip() for li in cell.source.splitlines()
                           if "return" in li and len(li.strip()) > 20]
    text = "\n".join(graded["texts"].values())
    flat = " ".join(text.split())
    assert hidden and not [h for h in hidden if h in flat]
    for secret in (str(REPO), str(graded["subs"]), "LESSONS_", "PYTHONPATH", "--workers", "HOME="):
        assert secret not in text
    for name in ("scores_long.csv", "scores_wide.csv"):
        for row in csv.reader(graded["texts"][name].splitlines()):
            assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    lines = graded["texts"]["summary.md"].splitlines()
    assert not any(li.startswith("| forged") for li in lines)
    students = lines[lines.index("## Students") + 2: lines.index("## Questions") - 1]
    pipes = {len(re.findall(r"(?<!\\)\|", li)) for li in students}
    assert len(students) == len(graded["wide"]) + 2 and len(pipes) == 1


def test_summary_says_what_was_enforced(graded):
    summary = graded["texts"]["summary.md"]
    assert "bubblewrap sandbox" in summary and "own PID, network, IPC" in summary
    assert "NOT SANDBOXED" not in summary


# --------------------------------------------------------------------------- run-stopping inputs
STOPPERS = ["fifo", "dev_zero", "nested", "list_grade_id", "non_utf8_name"]


def _stopper(kind: str, folder: Path) -> None:
    bad = folder / f"bad_{kind}"
    if kind == "fifo":
        bad.mkdir()
        os.mkfifo(bad / EX1)
    elif kind == "dev_zero":
        folder.joinpath(f"bad_{kind}.ipynb").symlink_to("/dev/zero")
    elif kind == "nested":
        bad.mkdir()
        (bad / EX1).write_text('{"cells": ' + "[" * 200_000 + "]" * 200_000 + "}")
    elif kind == "list_grade_id":
        nb = _ex1(blank=True)
        for cell in nb.cells:
            if "nbgrader" in cell.metadata:
                cell.metadata["nbgrader"]["grade_id"] = [cell.metadata["nbgrader"]["grade_id"]]
        _save(nb, bad / EX1)
    elif kind == "non_utf8_name":
        _save(_ex1(blank=True), folder / os.fsdecode(b"\xff\xfe=bad") / EX1)


@needs_bwrap
def test_a_run_stopping_input_costs_only_its_own_notebook(tmp_path):
    """Every kind of input that could stop a grading run, all in one run beside an honest submission: each
    costs only its own notebook (0 points), the honest one keeps its 10."""
    subs = tmp_path / "subs"
    _save(_ex1(), subs / "ok" / EX1)
    for kind in STOPPERS:
        _stopper(kind, subs)
    code = grading.main([str(subs), "--out", str(tmp_path / "out"), "--timeout", "60", "--workers", "2"])
    assert code == 0
    with open(tmp_path / "out" / "scores_wide.csv", newline="") as f:
        wide = {row["student"]: row for row in csv.DictReader(f)}
    assert float(wide["ok"]["total"]) == 10 and len(wide) == 1 + len(STOPPERS), wide
    assert {name: float(row["total"]) for name, row in wide.items() if name != "ok"} == {
        name: 0.0 for name in wide if name != "ok"}


# --------------------------------------------------------------------------- units
def test_prepared_notebook_holds_no_expected_value():
    assignment = grading.load_sources(SOLUTIONS)[EX1]
    prepared, index, notes = prepare_notebook(_ex1(blank=True), assignment)
    text = "\n".join(c.source for c in prepared.cells if c.cell_type == "code")
    assert "expect(" not in text and "### BEGIN" not in text and "64 * 96 * 4" not in text
    assert "observe('latent_values(512, 768)'" in text   # the value it computes is there; the answer is not
    assert sorted(index.values()) == sorted(assignment.tests) and notes == []


def test_submission_layout_and_matching(tmp_path):
    sources = grading.load_sources(SOLUTIONS)
    (tmp_path / "amy").mkdir()
    shutil.copy(SOLUTIONS / EX1, tmp_path / "amy" / "ex1_vae_compression (2).ipynb")
    (tmp_path / "amy" / ".ipynb_checkpoints").mkdir()
    shutil.copy(SOLUTIONS / EX1, tmp_path / "amy" / ".ipynb_checkpoints" / EX1)
    shutil.copy(SOLUTIONS / "ex2_cfg_scale.ipynb", tmp_path / "bo.ipynb")  # loose: student "bo"
    from course_tools.intake import find_submissions, match_assignment, read_notebook
    subs = find_submissions(tmp_path)
    assert [(s.student, s.path.name) for s in subs] == [("amy", "ex1_vae_compression (2).ipynb"),
                                                        ("bo", "bo.ipynb")]
    for sub, expected in zip(subs, [EX1, "ex2_cfg_scale.ipynb"], strict=True):
        nb, why = read_notebook(sub.path)
        assert why == "" and match_assignment(sub, nb, sources).name == expected


@pytest.mark.parametrize("args, message", [
    (["--max-file-mb", "0"], "argument --max-file-mb: expected a whole number from 1 to 1048576 (e.g. 64), got '0'"),
    (["--timeout", "0"], "argument --timeout: expected a finite number in [1, 86400] (e.g. 120), got '0'"),
    (["--timeout", "nan"], "expected a finite number in [1, 86400]"),
    (["--workers", "0"], "argument --workers: expected a whole number from 1 to 64 (e.g. 2), got '0'"),
    (["--workers", "65"], "argument --workers: expected a whole number from 1 to 64"),
    (["--workers", "two"], "argument --workers: expected a whole number from 1 to 64 (e.g. 2), got 'two'"),
    (["--memory-mb", "100"], "expected a whole number from 1024 to 4194304"),
    (["--disk-mb", "-1"], "expected a whole number from 16 to 1048576"),
])
def test_bad_flags_are_refused_at_the_boundary(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        grading.main([str(tmp_path), "--out", str(tmp_path / "o")] + args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_folders_are_refused_before_grading(tmp_path, capsys):
    subs = tmp_path / "subs"
    _save(_ex1(), subs / "amy" / EX1)
    assert grading.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "No submissions folder" in capsys.readouterr().err
    assert grading.main([str(subs), "--out", str(subs / "results")]) == 2
    assert "inside it" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert grading.main([str(subs), "--out", str(tmp_path / "afile" / "results")]) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "nothing was graded" in err
    assert grading.main([str(subs), "--out", str(tmp_path / "o"), "--source", str(tmp_path / "none")]) == 2
    assert "--source" in capsys.readouterr().err


def test_without_bubblewrap_the_grader_refuses(tmp_path, capsys, monkeypatch):
    subs = tmp_path / "subs"
    _save(_ex1(), subs / "amy" / EX1)
    monkeypatch.setattr(grading, "probe", lambda: (False, "bubblewrap (bwrap) is not installed"))
    assert grading.main([str(subs), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "apt-get install bubblewrap" in err and "--no-sandbox" in err and "Nothing was graded" in err
    assert not any((tmp_path / "o").glob("*.csv"))


def test_results_are_never_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores_long.csv").write_text("earlier")
    subs = tmp_path / "subs"
    _save(_ex1(), subs / "amy" / EX1)
    assert grading.main([str(subs), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "scores_long.csv").read_text() == "earlier"


@needs_bwrap
def test_results_that_cannot_be_written_are_saved_elsewhere(tmp_path, capsys, monkeypatch):
    subs = tmp_path / "subs"
    _save(_ex1(), subs / "amy" / EX1)
    real = grading.commit
    calls = []

    def full_disk(folder, files):
        calls.append(folder)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(folder, files)

    monkeypatch.setattr(grading, "commit", full_disk)
    assert grading.main([str(subs), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"saved in {calls[1]}" in err
    assert "amy,2,3,3,2,10,10" in (calls[1] / "scores_wide.csv").read_text()
    shutil.rmtree(calls[1])


@needs_bwrap
def test_interrupted_run_leaves_nothing_behind(tmp_path):
    subs, tmp = tmp_path / "subs", tmp_path / "tmp"
    tmp.mkdir()
    _save(_after_solution(_ex1(), f"import time\nwhile True:\n    time.sleep(1)  # "
                                  f"{MARKER}-int"), subs / "dave" / EX1)
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "course_tools.grading", str(subs), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd,
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(12)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "no results were written" in err
    time.sleep(1)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert list(tmp.iterdir()) == [] and _sandbox_uid_processes() == []


def test_the_student_install_carries_no_grader():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = " ".join(project["project"]["dependencies"]) + (REPO / "requirements.txt").read_text()
    for tool in ("nbformat", "nbclient", "nbconvert", "ipykernel", "nbval"):
        assert tool not in deps, f"{tool} is an instructor tool, not a student dependency"
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["lessons_lib*"]
    for path in (REPO / "lessons_lib").rglob("*.py"):
        text = path.read_text()
        assert "course_tools" not in text and "import nbformat" not in text and "nbclient" not in text, path
