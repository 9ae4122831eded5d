"""Every notebook's Colab install cell installs the course release set in one place."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import files_under

import lessons_lib
from course_tools.release import check_ref
from lessons_lib import runtime

REPO = Path(__file__).resolve().parents[1]


def _release_tool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_tools.release", *args], cwd=cwd,
                          capture_output=True, text=True)


def _first_code_cell(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def test_every_notebook_installs_the_pinned_release_only_in_colab():
    paths = sorted(p for d in ("notebooks", "solutions", "exercises") for p in (REPO / d).glob("*.ipynb"))
    assert len(paths) >= 19
    expected = f'%pip install -q "lessons_lib @ git+{runtime.REPO_URL}@{lessons_lib.COURSE_RELEASE}"'
    for path in paths:
        cell = _first_code_cell(path)
        assert expected in cell, path.name
        assert cell.count("%pip install") == 1
        assert re.search(r'if "google\.colab" in sys\.modules:\n    %pip install', cell), path.name
    assert _release_tool().returncode == 0


def test_moving_the_release_rewrites_only_the_install_lines(tmp_path):
    for part in ("notebooks", "solutions", "exercises", "lessons_lib/__init__.py", "lessons_lib/runtime.py",
                 "course_tools"):
        src, dst = REPO / part, tmp_path / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    before = {p: p.read_text() for p in tmp_path.rglob("*.ipynb")}
    done = _release_tool("--set", "v9.8.7", "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'COURSE_RELEASE = "v9.8.7"' in (tmp_path / "lessons_lib" / "__init__.py").read_text()
    for path, old in before.items():
        new = path.read_text()
        changed = [(a, b) for a, b in zip(old.splitlines(), new.splitlines(), strict=True) if a != b]
        assert len(changed) == 1 and changed[0][1] == changed[0][0].replace(
            f"@{lessons_lib.COURSE_RELEASE}", "@v9.8.7"), path.name
    # A notebook left behind is reported, with the command that fixes it.
    stale = tmp_path / "notebooks" / "04_stable_diffusion_editing.ipynb"
    stale.write_text(stale.read_text().replace("@v9.8.7", ""))
    check = _release_tool("--root", str(tmp_path))
    assert check.returncode == 1
    assert "04_stable_diffusion_editing.ipynb: installs the default branch (unpinned)" in check.stdout
    assert "python -m course_tools.release --set v9.8.7" in check.stdout
    assert _release_tool("--set", "v1; rm -rf /", "--root", str(tmp_path)).returncode != 0


def test_the_tool_reads_the_repository_from_the_runtime():
    from course_tools.release import current_repository

    assert current_repository(REPO) == runtime.REPO_URL


def test_publishing_under_another_address_rewrites_address_release_and_colab_links(tmp_path):
    _copy_repo(tmp_path)
    old = runtime.REPO_URL.removeprefix("https://github.com/")
    done = _release_tool("--set", "v2.0.0", "--repository", "https://github.com/my-school/image-course.git",
                         "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from https://github.com/my-school/image-course" in done.stdout
    runtime_py = (tmp_path / "lessons_lib" / "runtime.py").read_text()
    assert 'REPO_URL = "https://github.com/my-school/image-course"' in runtime_py
    for path in [*tmp_path.rglob("*.ipynb"), tmp_path / "README.md"]:
        text = path.read_text()
        assert old not in text, path.name  # no link or install line left at the old address
    first = _first_code_cell(tmp_path / "notebooks" / "01_cifar10_colorization.ipynb")
    assert 'lessons_lib @ git+https://github.com/my-school/image-course@v2.0.0"' in first
    assert ("colab.research.google.com/github/my-school/image-course/blob/main/notebooks/01_cifar10_colorization"
            in (tmp_path / "README.md").read_text())
    assert _release_tool("--root", str(tmp_path)).returncode == 0  # and the check agrees


@pytest.mark.parametrize("args", [["--repository", "https://gitlab.com/me/course", "--set", "v1.0.0"],
                                  ["--repository", "https://github.com/me/course"],
                                  ["--repository", "https://github.com/me", "--set", "v1.0.0"]])
def test_an_address_colab_cannot_open_is_refused_before_any_write(tmp_path, args):
    _copy_repo(tmp_path)
    before = files_under(tmp_path)
    done = _release_tool(*args, "--root", str(tmp_path))
    assert done.returncode == 2 and "Nothing was written" in done.stderr
    assert files_under(tmp_path) == before


def _copy_repo(tmp_path: Path) -> None:
    for part in ("notebooks", "solutions", "exercises", "lessons_lib/__init__.py", "lessons_lib/runtime.py",
                 "README.md"):
        src, dst = REPO / part, tmp_path / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)


@pytest.mark.parametrize("bad, why", [
    ("v1..2", "'..'"), ("v1.0/", "end with '/'"), ("v1.0.lock", "'.lock'"), ("v1//2", "'//'"),
    ("v1.", "end with '.'"), ("v1/.hidden", "start with '.'"), ("v1; rm -rf /", "only letters"),
    ("-v1", "start with a letter"), ("", "is empty"), ("   ", "is empty"),
])
def test_a_release_git_can_never_tag_is_refused_before_any_write(tmp_path, bad, why):
    _copy_repo(tmp_path)
    before = files_under(tmp_path)
    done = _release_tool(f"--set={bad}", "--root", str(tmp_path))
    assert done.returncode == 2
    assert why in done.stderr and repr(bad) in done.stderr and "e.g. --set v0.2.0" in done.stderr
    assert "files rewritten" not in done.stdout and "notebooks install" not in done.stdout
    assert files_under(tmp_path) == before


def test_the_ref_rules_agree_with_git():
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed here")
    names = ["v0.2.0", "v1..2", "v1.0/", "v1.0.lock", "v1.lock/x", "a/b", "a//b", "v1.", ".v1", "a/.b",
             "release/2024-fall", "v1.0.locked", "0123abcd" * 5, "x.lock.y"]
    for name in names:
        git_ok = subprocess.run([git, "check-ref-format", f"refs/tags/{name}"]).returncode == 0
        try:
            ours = check_ref(name) == name
        except ValueError:
            ours = False
        assert ours == git_ok, name
