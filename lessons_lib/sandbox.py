"""Confinement for a grading kernel: resource limits, Landlock write restriction, parent-death signal.

``python -m lessons_lib.sandbox CONNECTION_FILE`` is the argv of the grader's kernelspec: it
reads its settings from the ``LESSONS_GRADER_SANDBOX`` environment variable (JSON: the
working folder, the pid file, the limits, whether to use Landlock), applies them to itself
and then replaces itself with ``python -m ipykernel_launcher``; the limits carry over to the
kernel and to every process it starts. Kept free of heavy imports: it runs once per graded
notebook.

* ``RLIMIT_AS`` / ``RLIMIT_CPU`` / ``RLIMIT_FSIZE`` / ``RLIMIT_CORE`` via ``resource.setrlimit``;
* ``PR_SET_PDEATHSIG``: the kernel is killed when the grader's worker process dies;
* Linux Landlock (kernel 5.13+): create/write/delete/rename only beneath the working folder
  (and write to ``/dev/null``); with ABI 4+ no outgoing TCP connections. Reading is not restricted.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SANDBOX_ENV", "landlock_abi", "restrict_writes", "probe_landlock", "main"]

SANDBOX_ENV = "LESSONS_GRADER_SANDBOX"
REPO_ROOT = Path(__file__).resolve().parents[1]

_FS_WRITE_V1 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
_FS_REFER, _FS_TRUNCATE, _FS_WRITE_FILE = 1 << 13, 1 << 14, 1 << 1
_NET_CONNECT_TCP = 1 << 1
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446  # the same numbers on every architecture


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version of the running Linux kernel (0 when unavailable)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _libc().syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def restrict_writes(writable_dirs: list[str], writable_files: list[str]) -> int:
    """Allow writes only beneath writable_dirs (and to writable_files); block TCP connect. Returns the ABI."""
    abi = landlock_abi()
    if abi < 1:
        return 0
    libc = _libc()
    fs = _FS_WRITE_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, _NET_CONNECT_TCP if abi >= 4 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    for path, rights in [(d, fs) for d in writable_dirs] + [(f, file_rights) for f in writable_files]:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = _PathBeneath(rights, fd)
            if libc.syscall(_SYS_ADD_RULE, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
        finally:
            os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, required by landlock_restrict_self
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.syscall(_SYS_RESTRICT, ruleset, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)
    return abi


@functools.lru_cache(maxsize=1)
def probe_landlock() -> tuple[bool, str]:
    """Check, in a throwaway process, that Landlock really blocks a write outside a folder
    (and whether it blocks an outgoing TCP connection): (writes blocked, what was verified)."""
    abi = landlock_abi()
    if abi < 1:
        return False, "Landlock is not available on this system"
    code = ("import socket, sys\nfrom lessons_lib.sandbox import restrict_writes\n"
            "server = socket.socket()\nserver.bind(('127.0.0.1', 0))\nserver.listen(1)\n"
            "restrict_writes([sys.argv[1]], ['/dev/null'])\n"
            "open(sys.argv[1] + '/inside', 'w').write('ok')\n"
            "try:\n    socket.create_connection(server.getsockname(), timeout=5).close()\n"
            "    print('tcp open')\nexcept PermissionError:\n    print('tcp blocked')\n"
            "try:\n    open(sys.argv[2], 'w')\nexcept PermissionError:\n    sys.exit(0)\nsys.exit(3)\n")
    with tempfile.TemporaryDirectory(prefix="lessons-probe-") as tmp:
        inside, outside = Path(tmp) / "work", Path(tmp) / "outside.txt"
        inside.mkdir()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        try:
            res = subprocess.run([sys.executable, "-c", code, str(inside), str(outside)], env=env,
                                 capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return False, f"Landlock ABI {abi} could not be checked (the probe timed out)"
        if res.returncode == 0 and (inside / "inside").exists() and not outside.exists():
            tcp = "; outgoing TCP connections blocked too" if "tcp blocked" in res.stdout else ""
            return True, f"Landlock ABI {abi}{tcp}"
        why = (res.stderr.strip().splitlines() or ["a write outside the folder was not blocked"])[-1]
        return False, f"Landlock ABI {abi} is present but did not work here ({why})"


def main() -> None:
    """Kernel launcher (the kernelspec's argv): apply the limits, then become the ipykernel."""
    import resource  # POSIX only; the grader runs kernels on Linux (and macOS without Landlock)

    config = json.loads(os.environ.pop(SANDBOX_ENV))
    Path(config["pidfile"]).write_text(str(os.getpid()))
    mb = 2**20

    def limit(kind, soft, hard):  # never above what the system already allows
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))

    limit(resource.RLIMIT_AS, config["memory_mb"] * mb, config["memory_mb"] * mb)
    limit(resource.RLIMIT_CPU, config["cpu_seconds"], config["cpu_seconds"] + 5)
    limit(resource.RLIMIT_FSIZE, config["max_file_mb"] * mb, config["max_file_mb"] * mb)
    limit(resource.RLIMIT_CORE, 0, 0)
    if sys.platform.startswith("linux"):
        _libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the worker
        if os.getppid() == 1:  # the worker is already gone
            os._exit(1)
    if config["landlock"]:
        restrict_writes([config["workdir"]], ["/dev/null"])
    connection_file = sys.argv[1]
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file])


if __name__ == "__main__":
    main()
