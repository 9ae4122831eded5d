"""Pin every notebook's Colab install cell to the course release set in one place.

The one place is ``lessons_lib.COURSE_RELEASE`` (a git tag or commit of the course
repository). Every notebook in notebooks/, solutions/ and exercises/ installs
``lessons_lib @ git+<repository>@<COURSE_RELEASE>`` in its first code cell.

    python -m course_tools.release            # check: exit 1 and list what is not pinned
    python -m course_tools.release --set v0.2.0   # move the release: rewrite the constant
                                                  # and every install line

Only the install line itself is rewritten (text-level, byte for byte elsewhere), so the
notebooks' other cells and their formatting are untouched.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPOSITORY = "https://github.com/image-transformation-course/lessons"
NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")
# The package spec inside the %pip line, with or without a pinned ref.
_SPEC = re.compile(r"lessons_lib @ git\+" + re.escape(REPOSITORY) + r"(?:@(?P<ref>[A-Za-z0-9._/-]+))?")
_CONSTANT = re.compile(r'^COURSE_RELEASE = "(?P<ref>[^"]*)"$', re.MULTILINE)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def current_release(root: Path) -> str:
    match = _CONSTANT.search((root / "lessons_lib" / "__init__.py").read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit("lessons_lib/__init__.py has no line COURSE_RELEASE = \"...\"; put it back.")
    return match["ref"]


def notebooks(root: Path) -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (root / d).glob("*.ipynb"))


def install_refs(path: Path) -> list[str | None]:
    """The refs the notebook's first code cell installs (None: the default branch, unpinned)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)
    source = "".join(first["source"]) if first else ""
    return [m["ref"] for m in _SPEC.finditer(source)]


def problems(root: Path) -> list[str]:
    release = current_release(root)
    found = []
    for path in notebooks(root):
        refs = install_refs(path)
        rel = path.relative_to(root)
        if len(refs) != 1:
            found.append(f"{rel}: the first code cell should install lessons_lib once, "
                         f"found {len(refs)} times")
        elif refs[0] != release:
            found.append(f"{rel}: installs {refs[0] or 'the default branch (unpinned)'}, not {release}")
    return found


def set_release(root: Path, release: str) -> list[Path]:
    """Write ``release`` into the constant and every notebook's install line; returns the files changed."""
    if not _REF.match(release):
        raise SystemExit(f"{release!r} is not a git tag or commit (letters, digits, '.', '_', '-', '/').")
    changed = []
    init = root / "lessons_lib" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    new = _CONSTANT.sub(f'COURSE_RELEASE = "{release}"', text)
    if new != text:
        init.write_text(new, encoding="utf-8")
        changed.append(init)
    for path in notebooks(root):
        raw = path.read_text(encoding="utf-8")
        new = _SPEC.sub(f"lessons_lib @ git+{REPOSITORY}@{release}", raw)
        if new != raw:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", metavar="REF", help="move the course to this release (a git tag or commit)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository (default: this checkout)")
    args = parser.parse_args(argv)
    if args.set:
        changed = set_release(args.root, args.set)
        print(f"COURSE_RELEASE = {args.set}: {len(changed)} files rewritten.")
    found = problems(args.root)
    if found:
        print("Not pinned to the course release:", *found, sep="\n  ")
        print("Fix: python -m course_tools.release --set " + current_release(args.root))
        return 1
    print(f"All {len(notebooks(args.root))} notebooks install lessons_lib {current_release(args.root)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
