"""The budget kept on disk between runs (under the ignored ``/.cache/``), keyed on everything it is
computed from: the budget's own code, lessons_lib's, the notebooks, the libraries that build and
count the networks, and the registry's overrides (``LESSONS_CHECKSUM_*`` replaces a download's size)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

from .items import Item, Row
from .notebooks import NOTEBOOKS, ROOT
from .report import budget

CACHE_DIR = ROOT / ".cache" / "budget"
LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "lpips", "nbformat", "scikit-image", "numpy")


def source_key() -> str:
    """A hash of every input of :func:`budget` (any change to one of them misses the cache)."""
    lib = ROOT / "lessons_lib"
    files = ([(f"budget/{f.name}", f) for f in sorted(Path(__file__).parent.glob("*.py"))]
             + [(f"lessons_lib/{f.relative_to(lib).as_posix()}", f) for f in sorted(lib.rglob("*.py"))]
             + [(f"notebooks/{name}", ROOT / "notebooks" / name) for name in NOTEBOOKS.values()])
    h = hashlib.sha256()
    for name, f in files:
        h.update(f"{name}\0".encode() + f.read_bytes() + b"\0")
    for name in LIBRARIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{name}={version}\0".encode())
    # The registry's overrides change the download sizes; the other LESSONS_* settings (profile,
    # folders, which the test suite makes afresh each session) change no count.
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith(("LESSONS_CHECKSUM_", "LESSONS_URL_")))
    h.update(f"{sys.version}\0{settings}".encode())
    return h.hexdigest()[:32]


def _load(path: Path) -> tuple[Row, ...]:
    rows = json.loads(path.read_text())
    return tuple(Row(**{**r, "items": [Item(**i) for i in r["items"]]}) for r in rows)


def cached_budget() -> tuple[Row, ...]:
    """:func:`budget`, from the cache when nothing it depends on has changed (JSON keeps floats exact)."""
    path = CACHE_DIR / f"{source_key()}.json"
    try:
        return _load(path)
    except (OSError, ValueError, TypeError, KeyError):   # absent, or written by another version
        pass
    rows = budget()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(r) for r in rows]))
    os.replace(tmp, path)   # atomic: a concurrent run reads the old file or the whole new one
    for old in CACHE_DIR.glob("*.json"):
        if old != path:
            old.unlink(missing_ok=True)
    return rows
