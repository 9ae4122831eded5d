"""Helpers that several test files use, kept in one place (imported as ``from helpers import ...``: pytest puts
this folder on sys.path, as for notebook_code). Fixtures live in conftest.py."""
from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# For a test that runs the grader's sandbox: conftest's bwrap skips it where there is none (fails it on CI).
needs_bwrap = pytest.mark.usefixtures("bwrap")

# The zoo's smallest models: enough to run its command line end to end in seconds.
SMALL = ["--width", "4", "--batch_size", "4"]


def zoo_cli(capsys, *args):
    """The zoo's command line with ``args`` (any values, turned to text): (exit status, what it printed)."""
    from lessons_lib import zoo

    code = zoo.main([str(a) for a in args])
    return code, capsys.readouterr()


def photo_folder(root: Path, n: int = 12, size: int = 32, flat: bool = False) -> Path:
    """``n`` small colourful photos (each a colour with noise) as PNGs under ``root``, in two class folders
    (cats, dogs) or, ``flat``, in ``root`` itself."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root if flat else root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, 3)
        arr = np.clip(base + rng.integers(-40, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img_{i}.png")
    return root


def nhwc(x) -> np.ndarray:
    """An NCHW tensor as an NHWC float64 array (the layout skimage and scipy expect)."""
    return x.permute(0, 2, 3, 1).double().numpy()


def files_under(folder: Path) -> dict:
    """{relative path: bytes} of every file under ``folder``: two of them equal when no file was added, removed
    or changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tree_state(*folders: Path) -> dict:
    """{path: (mode, modification time, sha256 of a regular file's bytes)} of everything under ``folders``,
    links and special files as themselves (not followed): two of them equal when nothing there was touched."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(path)] = (st.st_mode, st.st_mtime_ns, digest)
    return out
