"""The grading sandbox: every submitted notebook runs under bubblewrap (``bwrap``).

Each run gets its own PID, network, IPC, UTS (and, where possible, cgroup) namespaces,
``--new-session`` and ``--die-with-parent``. Inside it sees only:

* the Python environment the grader runs in (its prefixes, ``/usr`` and the system
  library folders), read-only;
* the ``lessons_lib`` package, read-only, under ``/opt/lessons`` (never the checkout it
  may come from: the solutions and the submissions are not there);
* ``/grader``, read-only: the worker program, the prepared notebook (test cells without
  expected values) and its settings;
* a private, size-capped, writable home (``/home/student``, the working folder) and
  ``/tmp``, both fresh memory file systems that vanish with the sandbox;
* a new ``/proc`` and a minimal ``/dev``; a minimal environment (no grader variables).

Run as root (the usual case on a grading machine or in CI), bubblewrap mounts all of this
and the worker then switches for good to an unprivileged uid of its own (one per parallel
slot), so the process-count limit applies and nothing in the sandbox holds a capability.
Run as an ordinary user, bubblewrap uses an unprivileged user namespace instead.
The grader kills the whole sandbox (SIGKILL to bwrap; ``--die-with-parent`` and the PID
namespace take every process in it along) at the time limit.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "JobResult", "SandboxUnavailable", "probe", "run_job", "kill_all", "INSTALL_HINT"]

HOME = "/home/student"
GRADER = "/grader"
LESSONS = "/opt/lessons"
UID_BASE = 1_900_000_000           # sandbox users: not in /etc/passwd, one per parallel slot
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: "
                "`sudo dnf install bubblewrap`), or, accepting that submissions then run with your "
                "rights, pass --no-sandbox")
WORKER = Path(__file__).with_name("sandbox_worker.py")
MB = 2**20


@dataclass(frozen=True)
class Limits:
    timeout: float = 120.0        # wall-clock seconds per notebook, kernel start included
    memory_mb: int = 8192         # RLIMIT_AS per process (importing torch maps ~3 GB)
    max_file_mb: int = 64         # RLIMIT_FSIZE: the largest file (and report) a notebook may write
    disk_mb: int = 256            # size of the private home and of /tmp (memory file systems)
    max_processes: int = 256      # RLIMIT_NPROC (threads count too)
    cpu_factor: float = 4.0       # RLIMIT_CPU = cpu_factor x timeout, a backstop

    @property
    def cpu_seconds(self) -> int:
        return int(self.cpu_factor * self.timeout) + 1


@dataclass
class JobResult:
    records: bytes                # what the worker reported (untrusted)
    log_tail: str                 # the end of its stdout/stderr (untrusted; for the instructor's eyes)
    timed_out: bool
    returncode: int | None
    seconds: float


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


_live: dict[int, subprocess.Popen] = {}
_live_lock = threading.Lock()


def kill_all() -> None:
    """Kill every sandbox still running (the grader was interrupted)."""
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's session while bwrap is still ours (never a reaped pid: it may be reused).
    Killing bwrap is enough: --die-with-parent ends the sandbox's init, and with it its PID namespace."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


def lessons_lib_dir() -> Path:
    spec = importlib.util.find_spec("lessons_lib")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable("lessons_lib is not importable: install it (pip install -e .) first.")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _python_roots() -> list[tuple[Path, Path]]:
    """The folders that make up this Python environment (venv and base installation), as
    (folder on the host, where the sandbox sees it) pairs.

    A folder reached through a symbolic link (a virtual environment or home folder behind
    a link, common on shared machines) is shown at both its real path and the path Python
    knows it by: ``sys.executable``, ``PATH`` and ``.pth`` files spell it the latter way.
    """
    spelled = [Path(p).absolute() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)]
    spelled.append(Path(sys.executable).absolute().parent.parent)
    spelled.append(Path(sys.executable).resolve().parent.parent)
    pairs = {}
    for dest in spelled:
        host = dest.resolve()
        if host != Path("/") and host.is_dir():
            pairs.setdefault(dest, host)
            pairs.setdefault(host, host)
    def inside(d, o):  # d comes with o's binding: below it, and the same folder there
        return o != d and o in d.parents and pairs[o] / d.relative_to(o) == pairs[d]
    return sorted((h, d) for d, h in pairs.items() if not any(inside(d, o) for o in pairs))


def _ancestors(path: Path) -> list[str]:
    return [str(p) for p in reversed(path.parents) if p != Path("/")]


def _mount_args(job_dir: Path, limits: Limits, as_root: bool) -> list[str]:
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    if as_root:  # only what the worker needs to hand over its folders and drop root
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_CHOWN"]
    # The private /home and /tmp come first, so that a Python environment that lives under
    # /tmp (a CI checkout there) is bound on top of them, not hidden by them.
    args += ["--perms", "0755", "--dir", "/home",
             "--size", str(limits.disk_mb * MB), "--tmpfs", HOME,
             "--size", str(limits.disk_mb * MB), "--tmpfs", "/tmp"]
    made = {"/home", HOME, "/tmp"}
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    for root, dest in _python_roots() + [(lessons_lib_dir(), Path(LESSONS) / "lessons_lib")]:
        if str(dest).startswith(("/usr/", "/bin/", "/lib")) and root == dest:
            continue  # already visible through /usr or the library folders
        for parent in _ancestors(dest):  # bwrap would make them 0700; the sandbox user must pass
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", str(root), str(dest)]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"):
        if Path(etc).exists():
            args += ["--ro-bind", etc, etc]
    args += ["--ro-bind", str(job_dir / "passwd"), "/etc/passwd",
             "--ro-bind", str(job_dir / "group"), "/etc/group",
             "--ro-bind", str(job_dir), GRADER, "--proc", "/proc", "--dev", "/dev", "--chdir", HOME]
    return args


def _environment(home: str, pythonpath: str) -> dict[str, str]:
    """A minimal environment: nothing from the grader's own."""
    venv_bin = str(Path(sys.executable).parent)
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "USER": "student",
           "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp" if home == HOME else f"{home}/tmp",
           "PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
           "MPLBACKEND": "Agg", "LESSONS_PROFILE": "fast", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "IPYTHONDIR": f"{home}/.ipython",
           "MPLCONFIGDIR": f"{home}/.config/matplotlib",
           "JUPYTER_CONFIG_DIR": f"{home}/.jupyter", "JUPYTER_DATA_DIR": f"{home}/.local/share/jupyter",
           "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime", "XDG_CACHE_HOME": f"{home}/.cache",
           "XDG_CONFIG_HOME": f"{home}/.config", "LESSONS_CACHE_DIR": f"{home}/.cache/lessons_lib"}
    return env


def _write_job(job_dir: Path, notebook_text: str, job: dict, uid: int) -> None:
    job_dir.mkdir(mode=0o755)
    os.chmod(job_dir, 0o755)
    files = {"worker.py": WORKER.read_text(encoding="utf-8"), "notebook.ipynb": notebook_text,
             "job.json": json.dumps(job),
             "passwd": f"student:x:{uid}:{uid}:student:{HOME}:/usr/sbin/nologin\n",
             "group": f"student:x:{uid}:\n"}
    for name, text in files.items():
        (job_dir / name).write_text(text, encoding="utf-8")
        os.chmod(job_dir / name, 0o644)


def _read_capped(path: Path, cap: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(cap)
    except OSError:
        return b""


def run_job(notebook_text: str, limits: Limits, *, sandboxed: bool = True, slot: int = 0,
            records_cap: int = 32 * MB) -> JobResult:
    """Run one prepared notebook (its JSON text) under the limits; return what the worker reported."""
    start = time.monotonic()
    as_root = os.geteuid() == 0
    uid = UID_BASE + slot if (as_root and sandboxed) else os.getuid()
    private = Path(tempfile.mkdtemp(prefix="lessons-grade-"))
    proc = None
    try:
        job_dir = private / "grader"
        if sandboxed:
            home, grader_dir, pythonpath = HOME, GRADER, LESSONS
            writable = [HOME, "/tmp"]
        else:  # --no-sandbox: the same worker in a temporary folder, with the limits only
            home, grader_dir, pythonpath = str(private / "home"), str(job_dir), str(lessons_lib_dir().parent)
            (private / "home" / "tmp").mkdir(parents=True)
            writable = []
        records_path, log_path = private / "records.jsonl", private / "worker.log"
        records_fd = os.open(records_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        job = {"notebook": f"{grader_dir}/notebook.ipynb", "workdir": home, "records_fd": records_fd,
               "timeout": limits.timeout, "memory_mb": limits.memory_mb, "max_file_mb": limits.max_file_mb,
               "cpu_seconds": limits.cpu_seconds, "max_processes": limits.max_processes,
               "uid": uid if as_root and sandboxed else None, "gid": uid if as_root and sandboxed else None,
               "writable": writable}
        _write_job(job_dir, notebook_text, job, uid)
        env = _environment(home, pythonpath)
        python = str(Path(sys.executable))
        if sandboxed:
            cmd = ["bwrap", *_mount_args(job_dir, limits, as_root), "--clearenv"]
            for key, value in env.items():
                cmd += ["--setenv", key, value]
            cmd += ["--", python, f"{GRADER}/worker.py", f"{GRADER}/job.json"]
            env_for_popen = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            cmd = [python, str(job_dir / "worker.py"), str(job_dir / "job.json")]
            env_for_popen = env
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env_for_popen, cwd=str(private if sandboxed else home),
                                        pass_fds=(records_fd,), start_new_session=True)
        finally:
            os.close(records_fd)
        with _live_lock:
            _live[proc.pid] = proc
        timed_out = False
        try:
            proc.wait(timeout=max(0.0, limits.timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill(proc)  # whatever is left in the sandbox's session goes too
            proc.wait()
            with _live_lock:
                _live.pop(proc.pid, None)
        log = _read_capped(log_path, 64 * 1024).decode("utf-8", "replace")
        return JobResult(_read_capped(records_path, records_cap), log[-2000:], timed_out, proc.returncode,
                         time.monotonic() - start)
    finally:
        shutil.rmtree(private, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def probe(limits: Limits = Limits(timeout=60.0, memory_mb=2048)) -> tuple[bool, str]:
    """Check that bubblewrap runs here with the grader's mounts: (works, what was found)."""
    if shutil.which("bwrap") is None:
        return False, "bubblewrap (bwrap) is not installed"
    private = Path(tempfile.mkdtemp(prefix="lessons-probe-"))
    try:
        job_dir = private / "grader"
        _write_job(job_dir, "{}", {}, UID_BASE)
        cmd = ["bwrap", *_mount_args(job_dir, limits, os.geteuid() == 0), "--clearenv",
               "--", sys.executable, "-c", "import os, sys; print('sandbox ok', os.getpid())"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=private,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bubblewrap could not be started ({type(exc).__name__}: {exc})"
        if res.returncode == 0 and "sandbox ok 2" in res.stdout:
            version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
            how = "as root, dropping to an unprivileged uid" if os.geteuid() == 0 else "in a user namespace"
            return True, f"{version or 'bubblewrap'}, {how}"
        why = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        if "execvp" in why:  # the sandbox was made; what it shows of this Python environment is not enough
            return False, (f"bubblewrap cannot start this Python inside its sandbox ({why}); the sandbox shows "
                           f"the folders {', '.join(str(d) for _, d in _python_roots())} of this environment. "
                           "Run the grader with the Python of a virtual environment or installation whose "
                           "files are all inside those folders")
        return False, (f"bubblewrap is installed but cannot create its sandbox here ({why}); on a desktop "
                       "Linux, unprivileged user namespaces may be switched off (e.g. Ubuntu 24.04's "
                       "kernel.apparmor_restrict_unprivileged_userns); run the grader as root, or allow them")
    finally:
        shutil.rmtree(private, ignore_errors=True)
