"""Download, verify, extract: how a dataset archive from :mod:`lessons_lib.registry` arrives.

:func:`fetch_archive` gets a registry entry's archive from its hosts (its URL, then its
mirrors, all serving the same bytes), checks the checksum the registry records, unpacks it
into a temporary folder (refusing members that would land outside it) and only then moves
the result into place: an interrupted or corrupted download never leaves a dataset that
looks whole.

Real hosts are slow, stall and drop connections, so a transfer

* writes to ``<archive>.part`` beside the dataset and **resumes** it (an HTTP ``Range``
  request) after a dropped connection, on the next host, or in the next session; a host
  that answers ``200`` instead of ``206`` sends the whole file again, from the start;
* gives up on a host that sends **no byte for** ``LESSONS_STALL_TIMEOUT`` seconds (30 by
  default), not after a total time: a slow download that keeps going is never cut;
* sets aside a host slower than :data:`SLOW_BYTES_PER_S` while other hosts remain, and comes
  back to it, without that limit, only when they have all failed;
* shows a ``tqdm.auto`` progress bar;
* when every host fails, raises one message naming each host and why it failed, and what
  to do (the partial file is kept; the archive can be downloaded by hand into the folder
  named there, and is then checked and used like a download).

``LESSONS_URL_<NAME>`` replaces the hosts (one URL or several separated by spaces; ``file://``
for a copy on disk); the checksum is still checked.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from . import registry

__all__ = ["fetch_archive", "ChecksumMismatch", "STALL_ENV", "stall_timeout", "SLOW_BYTES_PER_S"]

_BLOCK = 1 << 16
STALL_ENV = "LESSONS_STALL_TIMEOUT"
_STALL_DEFAULT = 30.0
SLOW_BYTES_PER_S = 100_000   # the slow host of 2026 served CIFAR-10 at 70-80 kB/s (40 minutes and more)
_ATTEMPTS = 3                # connections per host while each one brings more bytes
_USER_AGENT = "Mozilla/5.0 (compatible; lessons_lib course downloader)"


class ChecksumMismatch(ValueError):
    """A downloaded file is not the file the registry describes."""


class _HostFailed(Exception):
    """This host cannot serve the file now; the next one is tried."""


class _Dropped(_HostFailed):
    """The connection ended early; the same host may continue where it stopped."""


class _Restart(_Dropped):
    """The partial file does not fit what this host serves: it was deleted; ask again."""


class _TooSlow(_HostFailed):
    """The host sends, but too slowly while others remain."""


def stall_timeout() -> float:
    """Seconds without a byte after which a host counts as stalled (``LESSONS_STALL_TIMEOUT``)."""
    value = os.environ.get(STALL_ENV, "").strip()
    if not value:
        return _STALL_DEFAULT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{STALL_ENV}={value!r} is not a number of seconds. Set it to e.g. 60 "
                         f"(how long a host may send nothing before the next one is tried), or unset it.")
    return seconds


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n:,} bytes"


def _host(url: str) -> str:
    return urlparse(url).netloc or url


def _transfer(url: str, part: Path, size: int | None, stall: float, min_rate: float) -> None:
    """Bring ``part`` up to the whole file from ``url``, continuing what it already holds."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    if size and have >= size:
        if have == size:
            return  # complete already: the checksum decides
        part.unlink()
        have = 0
    headers = {"User-Agent": _USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),  # noqa: S310
                                          timeout=stall)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the partial file does not fit this host's file
            part.unlink()
            raise _Restart("refused to continue the partial file (HTTP 416)") from None
        raise _HostFailed(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            raise _HostFailed(f"no answer within {stall:g} s") from None
        raise _HostFailed(str(reason) or type(reason).__name__) from None
    with response:
        status = getattr(response, "status", None) or 200
        length = int(response.headers.get("Content-Length") or 0) or None
        if have and status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise _Restart("answered another range than the one asked for")
            total = int(match.group(2)) if match.group(2) != "*" else (have + length if length else None)
        else:
            have, total = 0, length  # 200: the whole file again, from its first byte
        if size and total and total != size:
            raise _HostFailed(f"serves {total:,} bytes, not the {size:,} of this archive")
        total = total or size
        with open(part, "ab" if have else "wb") as fh, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, leave=False,
                     desc=f"{Path(part.name).stem} from {_host(url)}",
                     disable=total is None or total < 10 * (1 << 20)) as bar:
            got, window_start, window_bytes = have, time.monotonic(), 0
            read = getattr(response, "read1", response.read)
            while True:
                try:
                    block = read(_BLOCK)
                except TimeoutError:
                    raise _HostFailed(f"stalled: no data for {stall:g} s after {_mb(got)}") from None
                except (OSError, http.client.HTTPException) as err:
                    raise _Dropped(f"connection lost after {_mb(got)} ({type(err).__name__})") from None
                if not block:
                    break
                fh.write(block)
                got += len(block)
                window_bytes += len(block)
                bar.update(len(block))
                elapsed = time.monotonic() - window_start
                if elapsed >= stall:
                    if min_rate and window_bytes < min_rate * elapsed:
                        raise _TooSlow(f"too slow: {window_bytes / elapsed / 1e3:.0f} kB/s "
                                       f"after {_mb(got)}")
                    window_start, window_bytes = time.monotonic(), 0
        if total and got < total:
            raise _Dropped(f"connection closed after {_mb(got)} of {_mb(total)}")


def _checksum_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"


def _verify(path: Path, checksum: str | None, origin: str) -> None:
    if not checksum:
        return
    got = _checksum_of(path, checksum.split(":", 1)[0])
    if got != checksum:
        raise ChecksumMismatch(f"the file from {origin} has checksum {got}, not the expected {checksum} "
                               "(damaged, truncated, or a different file)")


def _download(source: registry.Source, part: Path, stall: float) -> dict[str, str]:
    """Fill ``part`` with the verified archive from the first host that can serve it.

    Returns the failures on the way ({url: why}); raises :class:`registry.DownloadUnavailable`
    when no host could, naming each one.
    """
    failures: dict[str, str] = {}
    queue = [(url, True) for url in source.urls]  # (url, whether the speed floor applies)
    while queue:
        url, floored = queue.pop(0)
        for _ in range(_ATTEMPTS):
            before = part.stat().st_size if part.exists() else 0
            try:
                _transfer(url, part, source.size, stall, SLOW_BYTES_PER_S if floored and queue else 0)
                _verify(part, source.checksum, url)
                return failures
            except _TooSlow as err:
                failures[url] = f"{err} (set aside while other hosts are tried)"
                queue.append((url, False))
                break
            except _Dropped as err:
                failures[url] = str(err)
                now = part.stat().st_size if part.exists() else 0
                if now <= before and not isinstance(err, _Restart):
                    break  # no progress on this host: the next one
            except _HostFailed as err:
                failures[url] = str(err)
                break
            except ChecksumMismatch as err:
                part.unlink()
                failures[url] = str(err)
                if not before:
                    break  # a whole file from this host alone: it serves something else
                # a resumed file (perhaps begun on another host): once more from this host alone
    kept = part.stat().st_size if part.exists() else 0
    raise registry.DownloadUnavailable(_all_failed(source, failures, part, kept))


def _all_failed(source: registry.Source, failures: dict[str, str], part: Path, kept: int) -> str:
    name, env = source.name, registry.url_env_key(source.name)
    lines = [f"Could not download the {name} archive ({source.filename}): every host failed."]
    lines += [f"  - {url}: {why}" for url, why in failures.items()]
    lines.append("What to do:")
    lines.append("  - enable internet access (in Colab it is on by default) and run the cell again"
                 + (f"; the {_mb(kept)} already downloaded are kept in {part} and the download continues"
                    " from there" if kept else ""))
    lines.append(f"  - or download {source.filename} yourself from any address above and put it in "
                 f"{part.parent} (it is checked against {source.checksum}), then run the cell again")
    lines.append(f"  - or set {env} to another copy, e.g. {env}=file:///path/to/{source.filename} "
                 "(several addresses separated by spaces are tried in order; a copy with other bytes, e.g. "
                 f"converted, also needs {registry.checksum_env_key(name)}=sha256:<its checksum>)")
    if source.note:
        lines.append(f"  - {source.note}")
    if registry.fast_profile_advice():
        lines.append("  - " + registry.fast_profile_advice())
    return "\n".join(lines)


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


def _unavailable(name: str, reason: str) -> registry.DownloadUnavailable:
    return registry.DownloadUnavailable(registry.unavailable_message(
        f"the {name} archive", registry.url_env_key(name), reason=reason))


def fetch_archive(name: str, dest: str | Path, inner: str | None = None) -> Path:
    """Download the registry's archive ``name``, verify it, unpack it, and move the folder
    ``inner`` inside it (or the archive's single top folder) to ``dest``. Returns ``dest``.

    A verified copy of the archive already in ``dest``'s folder (downloaded by hand, under its
    own name) is used instead of a download. Otherwise the hosts are tried in order (see the
    module's notes); when none can serve it, raises
    :class:`lessons_lib.registry.DownloadUnavailable` naming each host, why, and what to do.
    """
    source = registry.get_source(name)
    if not source.filename:
        source = dataclasses.replace(source, filename=registry.archive_filename(source.location))
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stall = stall_timeout()
    by_hand = dest.parent / source.filename
    part = dest.parent / (source.filename + ".part")
    archive = None
    if by_hand.is_file():
        try:
            _verify(by_hand, source.checksum, str(by_hand))
            archive = by_hand
        except ChecksumMismatch as err:
            raise _unavailable(name, f"{err}. Delete or replace {by_hand} and run again") from None
    if archive is None:
        _download(source, part, stall)
        archive = part
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    try:
        unpacked = work / "unpacked"
        try:
            _safe_extract(archive, unpacked)
        except (zipfile.BadZipFile, tarfile.TarError, ValueError, EOFError) as err:
            raise _unavailable(name, f"it could not be unpacked ({err})") from None
        top = [p for p in unpacked.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        folder = unpacked / inner if inner else (top[0] if len(top) == 1 and top[0].is_dir() else unpacked)
        if not folder.is_dir():
            raise _unavailable(name, f"it has no folder '{inner}' (it holds {', '.join(p.name for p in top)})")
        if dest.exists():  # an incomplete earlier copy: replaced only now that a whole one is here
            shutil.rmtree(dest)
        os.replace(folder, dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if archive == part:  # verified whole: unpacked now, or unusable whatever is tried again
            part.unlink(missing_ok=True)
