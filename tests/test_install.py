"""The notebooks' Colab install line, rehearsed: the exact line of every notebook's first code cell, run
against a local git repository tagged with COURSE_RELEASE (a file:// URL standing in for the published
address), in a fresh virtual environment that already has the libraries Colab preinstalls.

What this catches that the rest of the suite cannot: a release line pip cannot parse, a tag that is not
there, a package that builds without its data files (the course weights), an import that only works from
a checkout.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

import lessons_lib
from lessons_lib import course_weights
from lessons_lib.runtime import REPO_URL

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("git") is None, reason="the install line installs from git")]


def _install_line(notebook: Path) -> str:
    """The ``%pip install ...`` line of the notebook's first code cell, as a student's Colab runs it."""
    first = next(c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    lines = [ln.strip() for ln in first.source.splitlines() if ln.strip().startswith("%pip install")]
    assert len(lines) == 1, f"{notebook.name}: expected one %pip install line in the first code cell"
    return lines[0]


def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=course", "-c", "user.email=course@localhost", *args], cwd=cwd,
                   check=True, capture_output=True, text=True)


def _published_copy(tmp: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) as a repository tagged COURSE_RELEASE."""
    repo = tmp / "lessons"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "the course", cwd=repo)
    _git("tag", lessons_lib.COURSE_RELEASE, cwd=repo)
    return repo


def test_the_install_line_installs_the_release_in_a_fresh_environment(tmp_path):
    line = _install_line(ROOT / "notebooks" / "01_cifar10_colorization.ipynb")
    repo = _published_copy(tmp_path)
    # file://localhost/...: the pip that a fresh venv brings wants a host in a git+ URL.
    local = line.replace(REPO_URL, "file://localhost" + repo.as_posix())
    assert local != line and local.startswith("%pip install ")
    venv = tmp_path / "colab"
    # Without its own pip (ensurepip alone takes seconds): this checkout's pip installs into it (--python).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    py = venv / "bin" / "python"
    # Colab preinstalls torch, numpy and the rest: this environment sees ours, read-only, as Colab's.
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "colab_preinstalled.pth").write_text("\n".join(sorted(ours)) + "\n")
    args = re.findall(r'"[^"]*"|\S+', local[len("%pip "):])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LESSONS_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    done = subprocess.run([*pip, *[a.strip('"') for a in args]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # From a folder without the checkout, so the installed copy is the one imported.
    check = ("import lessons_lib, lessons_lib.course_weights as cw; from lessons_lib.runtime import "
             "environment_report as r; print(lessons_lib.__file__); print(lessons_lib.COURSE_RELEASE); "
             "print(len(cw.manifest()['weights'])); cw.load_state(sorted(cw.manifest()['weights'])[0]); print(r())")
    out = subprocess.run([py, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    where, tag, n_weights, *report = out.stdout.splitlines()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(ROOT)
    assert tag == lessons_lib.COURSE_RELEASE
    assert int(n_weights) == len(course_weights.manifest()["weights"])  # the package data came along
    assert any("profile" in ln for ln in report), report
