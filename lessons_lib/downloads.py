"""Download, verify, extract: how a dataset archive from :mod:`lessons_lib.registry` arrives.

:func:`fetch_archive` downloads a registry entry's archive (its URL, then its mirrors)
into a temporary file, checks the checksum the registry records, unpacks it into a
temporary folder (refusing members that would land outside it) and only then moves the
result into place: an interrupted or corrupted download never leaves a dataset that
looks whole. ``LESSONS_URL_<NAME>`` replaces the URL (a mirror, or ``file://`` for a
copy on disk); the checksum is still checked.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from . import registry

__all__ = ["fetch_archive", "ChecksumMismatch"]

_BLOCK = 1 << 20


class ChecksumMismatch(ValueError):
    """A downloaded file is not the file the registry describes."""


def _download(url: str, target: Path, checksum: str | None) -> None:
    """``url`` -> ``target``, hashing while writing; a wrong checksum deletes the file."""
    from tqdm.auto import tqdm

    algorithm = checksum.split(":", 1)[0] if checksum else "sha256"
    digest = hashlib.new(algorithm)
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as fh:  # noqa: S310
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {Path(url).name}",
                  leave=False, disable=total is not None and total < 10 * _BLOCK) as bar:
            for block in iter(lambda: response.read(_BLOCK), b""):
                fh.write(block)
                digest.update(block)
                bar.update(len(block))
    got = f"{algorithm}:{digest.hexdigest()}"
    if checksum and got != checksum:
        target.unlink()
        raise ChecksumMismatch(f"the file from {url} has checksum {got}, not the expected {checksum} "
                               "(damaged, truncated, or a different file)")


def _safe_extract(archive: Path, into: Path) -> None:
    """Unpack a .zip or .tar(.gz) into ``into``; refuse absolute paths, '..' and links."""
    into = into.resolve()

    def check(name: str) -> None:
        target = (into / name).resolve()
        if not target.is_relative_to(into):
            raise ValueError(f"the archive member '{name}' would be written outside the target folder")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                check(name)
            zf.extractall(into)
        return
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            check(member.name)
            if member.issym() or member.islnk() or member.isdev():
                raise ValueError(f"the archive member '{member.name}' is a link or device; refused")
        tf.extractall(into, members=members)


def fetch_archive(name: str, dest: str | Path, inner: str | None = None) -> Path:
    """Download the registry's archive ``name``, verify it, unpack it, and move the folder
    ``inner`` inside it (or the archive's single top folder) to ``dest``. Returns ``dest``.

    Tries the URL (or ``LESSONS_URL_<NAME>``), then each mirror; raises
    :class:`lessons_lib.registry.DownloadUnavailable` listing what failed and what to do.
    """
    source = registry.get_source(name)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    urls = [source.location, *source.mirrors]
    failures = []
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    try:
        archive = work / "archive"
        for url in urls:
            try:
                _download(url, archive, source.checksum)
                break
            except (urllib.error.URLError, OSError, ChecksumMismatch, ValueError) as err:
                failures.append(f"{url}: {getattr(err, 'reason', err)}")
        else:
            raise registry.DownloadUnavailable(registry.unavailable_message(
                f"the {name} archive", registry.url_env_key(name),
                reason="; ".join(failures) + (f". {source.note}" if source.note else "")))
        unpacked = work / "unpacked"
        try:
            _safe_extract(archive, unpacked)
        except (zipfile.BadZipFile, tarfile.TarError, ValueError, EOFError) as err:
            raise registry.DownloadUnavailable(registry.unavailable_message(
                f"the {name} archive", registry.url_env_key(name),
                reason=f"it could not be unpacked ({err})")) from None
        top = [p for p in unpacked.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        folder = unpacked / inner if inner else (top[0] if len(top) == 1 and top[0].is_dir() else unpacked)
        if not folder.is_dir():
            raise registry.DownloadUnavailable(registry.unavailable_message(
                f"the {name} archive", registry.url_env_key(name),
                reason=f"it has no folder '{inner}' (it holds {', '.join(p.name for p in top)})"))
        if dest.exists():  # an incomplete earlier copy: replaced only now that a whole one is here
            shutil.rmtree(dest)
        os.replace(folder, dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)
