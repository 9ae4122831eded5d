"""Pin every notebook's Colab install cell to the course release set in one place.

The one place is ``lessons_lib.COURSE_RELEASE`` (a git tag or commit of the course
repository). Every notebook in notebooks/, solutions/ and exercises/ installs
``lessons_lib @ git+<repository>@<COURSE_RELEASE>`` in its first code cell.

    python -m course_tools.release            # check: exit 1 and list what is not pinned
    python -m course_tools.release --set v0.2.0   # move the release: rewrite the constant
                                                  # and every install line
    python -m course_tools.release --set v1.0.0 --repository https://github.com/me/course
                                                  # publish under your own address too: also
                                                  # runtime.REPO_URL and every Colab link

Only the install line itself is rewritten (text-level, byte for byte elsewhere), so the
notebooks' other cells and their formatting are untouched. A release that git could never
name as a tag (``v1..2``, ``v1.0/``, ``v1.0.lock``, an empty name...) is refused before
any file is read for writing; every file is prepared first, then each is replaced atomically.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from lessons_lib.files import atomic_write

NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")
# The repository's address has one home, lessons_lib.runtime.REPO_URL (the environment report and the
# install lines use it); this tool reads it from the checkout it rewrites.
_CONSTANT = re.compile(r'^COURSE_RELEASE = "(?P<ref>[^"]*)"$', re.MULTILINE)
_REPO_CONSTANT = re.compile(r'^REPO_URL = "(?P<url>[^"]*)"$', re.MULTILINE)
# Colab opens notebooks straight from GitHub: https://github.com/<owner>/<name>.
_GITHUB = re.compile(r"^https://github\.com/(?P<path>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100})$")


def _spec(repository: str) -> re.Pattern:
    """The package spec inside the %pip line, with or without a pinned ref."""
    return re.compile(r"lessons_lib @ git\+" + re.escape(repository) + r"(?:@(?P<ref>[A-Za-z0-9._/-]+))?")


def _colab_prefix(repository: str) -> str:
    return "https://colab.research.google.com/github/" + _GITHUB.match(repository)["path"] + "/blob/"


def current_repository(root: Path) -> str:
    match = _REPO_CONSTANT.search((root / "lessons_lib" / "runtime.py").read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit('lessons_lib/runtime.py has no line REPO_URL = "..."; put it back.')
    return match["url"]


def check_repository(url) -> str:
    """``url`` if it is a GitHub repository address Colab can open notebooks from; else ValueError."""
    url = url.rstrip("/").removesuffix(".git") if isinstance(url, str) else url
    if not isinstance(url, str) or not _GITHUB.match(url):
        raise ValueError(f"--repository {url!r} is not a GitHub repository address such as "
                         "https://github.com/my-org/my-course: Colab opens the notebooks from GitHub, and the "
                         "install line installs from the same address. Nothing was written.")
    return url
# What pip's URL and the pattern above can carry; git's own ref-name rules come on top (check_ref).
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def check_ref(release) -> str:
    """``release`` if it can be a git tag that pip installs from; else ValueError saying what is wrong.

    git's ref-name rules (git-check-ref-format(1)) are written out here rather than asking
    ``git check-ref-format``: the answer must not depend on whether git is installed where the
    tool runs, and the rules that matter for the characters allowed above are few. The tests
    compare these rules with git's own answer where git exists.
    """
    if not isinstance(release, str) or not release.strip():
        raise ValueError(f"--set {release!r}: the release is empty. Give the git tag (or commit) students "
                         "should install, e.g. --set v0.2.0.")
    why = ""
    if not _REF.match(release):
        why = ("it may hold only letters, digits, '.', '_', '-' and '/', and must start with a letter or "
               "digit")
    elif ".." in release:
        why = "git refs cannot contain '..'"
    elif release.endswith("/") or "//" in release:
        why = "git refs cannot end with '/' or contain '//'"
    elif release.endswith("."):
        why = "git refs cannot end with '.'"
    elif any(part.startswith(".") or part.endswith(".lock") for part in release.split("/")):
        why = "no '/'-separated part of a git ref may start with '.' or end with '.lock'"
    if why:
        raise ValueError(f"--set {release!r} can never be a git tag ({why}), so every student's install "
                         f"cell would fail. Nothing was written. Give the tag you created with `git tag`, "
                         f"e.g. --set v0.2.0.")
    return release


def current_release(root: Path) -> str:
    match = _CONSTANT.search((root / "lessons_lib" / "__init__.py").read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit("lessons_lib/__init__.py has no line COURSE_RELEASE = \"...\"; put it back.")
    return match["ref"]


def notebooks(root: Path) -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (root / d).glob("*.ipynb"))


def install_refs(path: Path, repository: str) -> list[str | None]:
    """The refs the notebook's first code cell installs from ``repository`` (None: the default
    branch, unpinned)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)
    source = "".join(first["source"]) if first else ""
    return [m["ref"] for m in _spec(repository).finditer(source)]


def problems(root: Path) -> list[str]:
    release, repository = current_release(root), current_repository(root)
    found = []
    for path in notebooks(root):
        refs = install_refs(path, repository)
        rel = path.relative_to(root)
        if len(refs) != 1:
            found.append(f"{rel}: the first code cell should install lessons_lib from {repository} once, "
                         f"found {len(refs)} times")
        elif refs[0] != release:
            found.append(f"{rel}: installs {refs[0] or 'the default branch (unpinned)'}, not {release}")
    return found


def set_release(root: Path, release: str, repository: str | None = None) -> list[Path]:
    """Write ``release`` into the constant and every notebook's install line (and, given
    ``repository``, the address into runtime.REPO_URL, the install lines and every Colab link of the
    notebooks and the README); returns the files changed.

    Everything is checked and every new text prepared before the first file is replaced."""
    check_ref(release)
    current_release(root)  # the constant must be there to be moved
    old_repo = current_repository(root)
    new_repo = old_repo if repository is None else check_repository(repository)
    todo = {}
    init = root / "lessons_lib" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    todo[init] = (text, _CONSTANT.sub(f'COURSE_RELEASE = "{release}"', text))
    runtime = root / "lessons_lib" / "runtime.py"
    text = runtime.read_text(encoding="utf-8")
    todo[runtime] = (text, _REPO_CONSTANT.sub(f'REPO_URL = "{new_repo}"', text))
    links = (_colab_prefix(old_repo), _colab_prefix(new_repo)) if _GITHUB.match(old_repo) else None
    for path in [*notebooks(root), root / "README.md"]:
        if not path.is_file():
            continue
        raw = path.read_text(encoding="utf-8")
        new = _spec(old_repo).sub(f"lessons_lib @ git+{new_repo}@{release}", raw) if path.suffix == ".ipynb" \
            else raw.replace(f"git+{old_repo}@", f"git+{new_repo}@")
        todo[path] = (raw, new.replace(*links) if links else new)
    changed = []
    for path, (old, new) in todo.items():
        if new != old:
            atomic_write(path, new)
            changed.append(path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.release",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", metavar="REF", help="move the course to this release (a git tag or commit)")
    parser.add_argument("--repository", metavar="URL",
                        help="with --set: publish under this GitHub address (https://github.com/OWNER/NAME)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository (default: this checkout)")
    args = parser.parse_args(argv)
    if args.repository is not None and args.set is None:
        print("error: --repository moves the address students install from; give the release with it "
              "(--set vX.Y.Z --repository URL). Nothing was written.", file=sys.stderr)
        return 2
    if args.set is not None:  # --set "" is a mistake to report, not "no --set"
        try:
            changed = set_release(args.root, args.set, args.repository)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        where = f" from {current_repository(args.root)}" if args.repository is not None else ""
        print(f"COURSE_RELEASE = {args.set}{where}: {len(changed)} files rewritten.")
    found = problems(args.root)
    if found:
        print("Not pinned to the course release:", *found, sep="\n  ")
        print("Fix: python -m course_tools.release --set " + current_release(args.root))
        return 1
    print(f"All {len(notebooks(args.root))} notebooks install lessons_lib {current_release(args.root)} "
          f"from {current_repository(args.root)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
