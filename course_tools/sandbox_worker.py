"""The program that runs inside a grading sandbox: it limits itself, gives up root, runs one notebook.

The grader starts it under bubblewrap as ``python /grader/worker.py /grader/job.json``;
``course_tools`` itself is not visible in the sandbox, so this file stands alone (the
standard library, then nbformat and nbclient from the read-only Python environment).

1. resource limits (inherited by the kernel and everything it starts): address space,
   CPU time, file size, process count, open files, no core dumps;
2. when started as root (the grader runs bubblewrap as root), the working folders are
   handed to an unprivileged uid/gid and the process switches to it for good: no
   capabilities are left, and the process-count limit then counts;
3. ``PR_SET_NO_NEW_PRIVS``; then the notebook runs cell by cell in a fresh ipykernel.

It reports one JSON line per event on the file descriptor ``records_fd`` (a file the
grader opened): ``started``, one ``cell`` record per code cell (reply status, exception
name and message, and the check observations the cell published), ``crashed`` and
``done``. None of it is trusted: the student's code runs as the same user in the same
sandbox and could write anything there. The grader parses it strictly and judges the
observations itself; only outputs with the check MIME type are kept, so a flood of
printed output cannot fill the worker's memory.
"""
import ctypes
import json
import os
import resource
import signal
import sys

CHECK_MIME = "application/vnd.lessons-check+json"
MAX_CHECKS_PER_CELL = 5000
MAX_TEXT = 2000
MB = 2**20


def _limit(kind, value):
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _apply_limits(job):
    _limit(resource.RLIMIT_AS, job["memory_mb"] * MB)
    _limit(resource.RLIMIT_CPU, job["cpu_seconds"])
    _limit(resource.RLIMIT_FSIZE, job["max_file_mb"] * MB)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 1024)
    _limit(resource.RLIMIT_NPROC, job["max_processes"])


def _drop_root(job):
    """Hand the writable folders to the sandbox user, then become it (no way back)."""
    uid, gid = job["uid"], job["gid"]
    for folder in job["writable"]:
        os.chown(folder, uid, gid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    with open("/proc/self/status") as fh:
        caps = [line.split()[1] for line in fh if line.startswith(("CapEff:", "CapPrm:"))]
    if os.getuid() == 0 or os.geteuid() == 0 or any(int(c, 16) for c in caps):
        raise SystemExit("the sandbox could not drop root privileges")


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        job = json.load(fh)
    records = os.fdopen(job["records_fd"], "w", buffering=1, encoding="utf-8")

    def emit(**record):
        try:
            records.write(json.dumps(record) + "\n")
        except (ValueError, RecursionError):  # unserializable or absurdly nested check data
            records.write(json.dumps({"event": record.get("event"), "cell": record.get("cell"),
                                      "unreadable": True}) + "\n")

    _apply_limits(job)
    if os.getuid() == 0 and job.get("uid") is not None:
        _drop_root(job)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: nothing started later can gain privileges
    os.chdir(job["workdir"])

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    class Client(NotebookClient):
        replies = {}

        async def _check_raise_for_error(self, cell, cell_index, exec_reply):
            if exec_reply is not None:
                self.replies[cell_index] = exec_reply.get("content", {})
            return await super()._check_raise_for_error(cell, cell_index, exec_reply)

        def output(self, outs, msg, display_id, cell_index):
            # Keep check observations only; printed text, figures and errors are dropped here.
            if msg.get("msg_type") != "display_data" or len(outs) >= MAX_CHECKS_PER_CELL:
                return None
            data = msg.get("content", {}).get("data", {})
            if not isinstance(data, dict) or CHECK_MIME not in data:
                return None
            out = nbformat.v4.new_output("display_data", data={CHECK_MIME: data[CHECK_MIME]})
            outs.append(out)
            return out

    def death(client):
        try:
            code = client.km.provisioner.process.poll()
        except AttributeError:
            code = None
        if code is None:
            return "the kernel died"
        if code < 0:
            name = signal.Signals(-code).name
            why = {"SIGXCPU": "the CPU-time limit", "SIGXFSZ": "the file-size limit",
                   "SIGKILL": "killed, e.g. out of memory", "SIGSEGV": "a segmentation fault"}.get(name)
            return f"the kernel died ({name}{': ' + why if why else ''})"
        return f"the kernel exited with status {code}"

    nb = nbformat.read(job["notebook"], as_version=4)
    client = Client(nb, kernel_name="python3", allow_errors=True, timeout=None,
                    startup_timeout=int(job["timeout"]) + 5, record_timing=False,
                    shutdown_kernel="immediate", resources={"metadata": {"path": job["workdir"]}})
    emit(event="starting")
    try:
        with client.setup_kernel():
            emit(event="started")
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                emit(event="running", cell=index)
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    emit(event="crashed", cell=index, reason=death(client))
                    return
                except Exception as exc:  # e.g. a message with a forged signature: the channel is spoiled
                    emit(event="crashed", cell=index,
                         reason=f"the kernel's messages could not be read ({type(exc).__name__})")
                    return
                reply = client.replies.get(index, {})
                checks = [o["data"][CHECK_MIME] for o in cell.get("outputs", [])
                          if CHECK_MIME in o.get("data", {})]
                emit(event="cell", cell=index, status=str(reply.get("status", "unknown"))[:20],
                     ename=str(reply.get("ename", ""))[:MAX_TEXT],
                     evalue=str(reply.get("evalue", ""))[:MAX_TEXT],
                     checks=checks)
                cell.outputs = []
    except DeadKernelError:
        emit(event="crashed", cell=None, reason=death(client))
        return
    except RuntimeError as exc:  # the kernel did not start (e.g. the memory limit is too low)
        emit(event="crashed", cell=None, reason=f"the kernel could not start: {str(exc)[:200]}")
        return
    emit(event="done")


if __name__ == "__main__":
    main()
