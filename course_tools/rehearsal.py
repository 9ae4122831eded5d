"""Local mirrors laid out like the real hosts, for the offline rehearsal of the full profile.

The full profile (what every Colab student runs) downloads CIFAR-10, horse2zebra and
torchvision weights, and loads Stable Diffusion pipelines from the Hugging Face hub. CI
has no internet, so the rehearsal builds stand-ins for each, in the real formats and under
the real names, and the real download, verify, extract and loading code runs against them:

* :func:`build_cifar10_archive`: ``cifar-10-python.tar.gz`` in the published format
  (``cifar-10-batches-py/`` with ``data_batch_1``..``5``, ``test_batch``, ``batches.meta``
  and ``readme.html``; each batch a protocol-2 pickle written the way the published Python 2
  pickles are, so torchvision's loader (``encoding="latin1"``) and the course's
  (``encoding="bytes"``) both read it), made from real photos (an ImageFolder);
* :func:`build_horse2zebra_zip`: ``horse2zebra.zip`` in the published layout
  (``horse2zebra/trainA``, ``testB``, ``trainB``, ``testA`` of 256x256 JPEGs named like the
  real ones, ``n02381460_<n>.jpg`` for horses and ``n02391049_<n>.jpg`` for zebras); domain A
  is photos, domain B *other* photos with their hue rotated;
* :func:`seed_torch_cache`: torchvision weight files under their real names in
  ``$TORCH_HOME/hub/checkpoints/``, each a state dict with exactly the real architecture's
  keys and shapes (random values), so ``torchvision.models.vgg19(weights=...)``,
  ``inception_v3(weights=...)`` and ``lpips.LPIPS(net="alex")`` load them offline;
* :func:`serve`: a threaded HTTP server on 127.0.0.1 over a folder that answers Range
  requests like the real hosts (206 with Content-Range; 200 without Range);
* :func:`rehearsal_environment`: all of the above under one folder (plus the Hugging Face
  cache of tiny pipelines, ``lessons_lib.editing.tiny.seed_hub_cache``), returning the
  environment variables a rehearsal run needs; :func:`mirror_urls` adds the addresses
  once the caller has started :func:`serve`::

      env = rehearsal_environment(root, photos_dir, cache=repo / ".cache" / "rehearsal")
      with serve(mirror_folder(root)) as base_url:
          env.update(mirror_urls(base_url))
          subprocess.run([...], env={**os.environ, **env})

The mirrors hold the archives at their real hosts' paths: the server's
``<base>/www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz`` is the registry's first CIFAR-10
address with ``https://`` replaced by ``<base>/``. The archives are not the published bytes,
so the environment carries their own checksums (``LESSONS_CHECKSUM_<NAME>``, see
:mod:`lessons_lib.registry`); every other check of the download code still runs.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import re
import shutil
import struct
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image

from lessons_lib import registry
from lessons_lib.files import atomic_write

__all__ = ["CIFAR_LABELS", "build_cifar10_archive", "build_horse2zebra_zip", "seed_torch_cache",
           "serve", "rehearsal_environment", "mirror_folder", "mirror_path", "mirror_urls",
           "weights_filename", "ARCHIVES", "TORCH_NAMES", "HORSE_WNID", "ZEBRA_WNID"]

# The published label order (batches.meta's label_names): the label of an image is its index here.
CIFAR_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_TOP = "cifar-10-batches-py"
# ImageNet (WordNet) ids the published horse2zebra files are named after.
HORSE_WNID, ZEBRA_WNID = "n02381460", "n02391049"
# The order of the folders in the published zip (as an unzip of the 116,867,962-byte archive lists them).
H2Z_FOLDERS = ("trainA", "testB", "trainB", "testA")
H2Z_SIZE = 256
_EPOCH = (2017, 3, 30, 0, 0, 0)   # fixed member times: the same photos give the same bytes
_TAR_MTIME = 1244563200           # 2009-06-09, about when the published CIFAR-10 archive was made
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# --------------------------------------------------------------------------- photos
def _photos(photos_dir: str | Path) -> list[tuple[Path, str]]:
    """(file, class) for every image under ``photos_dir`` (an ImageFolder, or a folder holding one),
    sorted by path, hidden files left out. Raises FileNotFoundError/ValueError saying what is wrong."""
    root = Path(photos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Photo folder '{root}' does not exist: pass an ImageFolder "
                                "(one sub-folder of images per class), e.g. the CIFAR-10 subset.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise ValueError(f"No images (.png/.jpg) under '{root}'.")
    return [(p, p.parent.name) for p in files]


def _split(n_items: int, n_first: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of range(n_items) cut after ``n_first``: the same split (and the same
    order, classes mixed as in the published batches) on every machine."""
    order = np.random.default_rng(seed).permutation(n_items)
    return order[:n_first], order[n_first:]


def _rgb(path: Path, size: int) -> np.ndarray:
    """The photo as (size, size, 3) uint8: shorter side resized (bicubic), centre crop."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        if (w, h) != (size, size):
            scale = size / min(w, h)
            img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8).copy()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


# --------------------------------------------------------------------------- CIFAR-10
class _Global:
    """A module-level name written as a pickle GLOBAL, the way Python 2's numpy wrote it."""

    def __init__(self, module: str, name: str):
        self.line = f"{module}\n{name}\n".encode("ascii")


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    """Protocol 2 the way Python 2 wrote the published CIFAR-10 batches.

    Python 2 strings (bytes) become SHORT_BINSTRING/BINSTRING, which Python 3 reads as ``str``
    with ``encoding="latin1"`` (torchvision) and as ``bytes`` with ``encoding="bytes"`` (the
    course); Python 3's own pickler writes bytes as a ``codecs.encode`` call instead, which both
    read back as bytes, and torchvision's ``entry["data"]`` would then fail. A uint8 array is
    written as numpy's reduce of those years (``numpy.core.multiarray._reconstruct``).
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_global_line(self, obj):
        self.write(pickle.GLOBAL + obj.line)
        self.memoize(obj)

    def save_ndarray(self, arr):
        if arr.dtype != np.uint8 or arr.ndim != 2:
            raise TypeError("only the (N, 3072) uint8 pixel array is written in the Python 2 form")
        self.save(_Global("numpy.core.multiarray", "_reconstruct"))
        self.save((_Global("numpy", "ndarray"), (0,), b"b"))
        self.write(pickle.REDUCE)
        self.save((1, tuple(int(n) for n in arr.shape), _DTYPE_U1, False, np.ascontiguousarray(arr).tobytes()))
        self.write(pickle.BUILD)

    def save_dtype_u1(self, obj):
        self.save(_Global("numpy", "dtype"))
        self.save(("u1", 0, 1))
        self.write(pickle.REDUCE)
        self.save((3, "|", None, None, None, -1, -1, 0))
        self.write(pickle.BUILD)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str
    dispatch[_Global] = save_global_line
    dispatch[np.ndarray] = save_ndarray


class _DtypeU1:
    """Stands for numpy.dtype('uint8') inside the array's state."""


_DTYPE_U1 = _DtypeU1()
_Python2Pickler.dispatch[_DtypeU1] = _Python2Pickler.save_dtype_u1


def _py2_pickle(obj: dict) -> bytes:
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


_CIFAR_README = (b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n")


def build_cifar10_archive(photos_dir: str | Path, out_dir: str | Path, n_test: int = 1000, seed: int = 0) -> Path:
    """Write ``out_dir/cifar-10-python.tar.gz`` in the published format from the photos of
    ``photos_dir`` (an ImageFolder whose class folders are CIFAR-10's class names; other names
    get labels after them, sorted). ``n_test`` photos, chosen by a seeded permutation, form
    ``test_batch``; the rest, in that permutation's order (classes mixed, as in the published
    batches), are cut into ``data_batch_1``..``data_batch_5``.
    Pixels are the photos' own at 32x32 (other sizes: shorter side resized, centre crop).
    The same photos give the same bytes (fixed times, gzip without a time stamp). Returns the path.
    """
    photos = _photos(photos_dir)
    if not 0 < n_test < len(photos) - 4:
        raise ValueError(f"n_test={n_test}: need 1 <= n_test and at least 5 training photos "
                         f"(there are {len(photos)} photos in {photos_dir}).")
    others = sorted({c for _, c in photos} - set(CIFAR_LABELS))
    names = list(CIFAR_LABELS) + others
    index = {c: i for i, c in enumerate(names)}
    test_idx, train_idx = _split(len(photos), n_test, seed)

    def batch(indices, label: str) -> dict:
        pixels = np.stack([_rgb(photos[i][0], 32).transpose(2, 0, 1).reshape(3072) for i in indices])
        return {b"batch_label": label.encode(), b"labels": [index[photos[i][1]] for i in indices],
                b"data": pixels,
                b"filenames": [f"{photos[i][1]}_{photos[i][0].stem}.png".encode() for i in indices]}

    train_parts = np.array_split(train_idx, 5)
    members = {f"data_batch_{k + 1}": _py2_pickle(batch(part, f"training batch {k + 1} of 5"))
               for k, part in enumerate(train_parts)}
    members["test_batch"] = _py2_pickle(batch(test_idx, "testing batch 1 of 1"))
    members["batches.meta"] = _py2_pickle({b"num_cases_per_batch": int(len(train_parts[0])),
                                           b"label_names": [n.encode() for n in names], b"num_vis": 3072})
    members["readme.html"] = _CIFAR_README

    def write(fh) -> None:
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf:
            top = tarfile.TarInfo(CIFAR_TOP)
            top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, _TAR_MTIME
            tf.addfile(top)
            for name, body in members.items():
                info = tarfile.TarInfo(f"{CIFAR_TOP}/{name}")
                info.size, info.mode, info.mtime = len(body), 0o644, _TAR_MTIME
                tf.addfile(info, io.BytesIO(body))

    return atomic_write(Path(out_dir) / "cifar-10-python.tar.gz", write)


# --------------------------------------------------------------------------- horse2zebra
def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build_horse2zebra_zip(photos_dir: str | Path, out_dir: str | Path, n: int = 48, n_test: int = 8,
                          seed: int = 0, degrees: float | None = None) -> Path:
    """Write ``out_dir/horse2zebra.zip`` in the published layout: ``horse2zebra/trainA/``,
    ``testB/``, ``trainB/``, ``testA/`` (directory entries, in that order) of 256x256 JPEGs,
    ``n`` per training folder and ``n_test`` per test folder, named ``n02381460_<k>.jpg`` (A,
    horses) and ``n02391049_<k>.jpg`` (B, zebras) as the published files are.

    A is photos from ``photos_dir`` upscaled to 256 px; B is *other* photos (a seeded
    permutation keeps the two sets disjoint) with their hue rotated by ``degrees`` (default
    :data:`lessons_lib.translation.HUE_DEGREES`): an unpaired pair of domains. Returns the path.
    """
    import torch

    from lessons_lib.translation import HUE_DEGREES, hue_rotate

    photos = [p for p, _ in _photos(photos_dir)]
    need = 2 * (n + n_test)
    if n < 1 or n_test < 1 or need > len(photos):
        raise ValueError(f"n={n}, n_test={n_test}: need n, n_test >= 1 and 2 * (n + n_test) = {need} photos "
                         f"at most ({len(photos)} in {photos_dir}).")
    order = np.random.default_rng(seed).permutation(len(photos))[:need]
    picks = {"trainA": order[:n], "testA": order[n:n + n_test],
             "trainB": order[n + n_test:2 * n + n_test], "testB": order[2 * n + n_test:]}
    # Distinct file numbers per animal, like the published ImageNet ids (n02381460_1001.jpg).
    numbers = iter(np.random.default_rng(seed + 1).choice(np.arange(1, 12000), size=need, replace=False))
    angle = HUE_DEGREES if degrees is None else degrees

    def write(fh) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for folder in H2Z_FOLDERS:
                entry = zipfile.ZipInfo(f"horse2zebra/{folder}/", date_time=_EPOCH)
                entry.external_attr = (0o40755 << 16) | 0x10  # a directory (Unix mode, MS-DOS flag)
                zf.writestr(entry, b"")
                wnid = HORSE_WNID if folder.endswith("A") else ZEBRA_WNID
                for i in picks[folder]:
                    pixels = _rgb(photos[i], H2Z_SIZE)
                    if folder.endswith("B"):
                        t = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0)
                        t = hue_rotate(t, angle)[0]
                        pixels = t.mul(255).round().byte().permute(1, 2, 0).numpy()
                    info = zipfile.ZipInfo(f"horse2zebra/{folder}/{wnid}_{int(next(numbers))}.jpg",
                                           date_time=_EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, _jpeg(pixels))

    return atomic_write(Path(out_dir) / "horse2zebra.zip", write)


# --------------------------------------------------------------------------- torchvision weights
TORCH_NAMES = ("vgg19", "inception", "lpips-alex")


def _builder(name: str):
    import torchvision.models as tvm

    builders = {
        "vgg19": lambda: tvm.vgg19(weights=None),
        # The published file holds the auxiliary classifier too (torchvision drops it after loading).
        "inception": lambda: tvm.inception_v3(weights=None, aux_logits=True, init_weights=False),
        "lpips-alex": lambda: tvm.alexnet(weights=None),
    }
    if name not in builders:
        raise ValueError(f"No torchvision weights named {name!r}; known: {', '.join(builders)}.")
    return builders[name]


def _weights_enum(name: str):
    import torchvision.models as tvm

    source = registry.get_source(name)
    enum_name, member = source.location.split(".")
    return getattr(tvm, enum_name)[member]


def weights_filename(name: str) -> str:
    """The file name torchvision caches the registry's weights ``name`` under (the URL's last part)."""
    return Path(urlparse(_weights_enum(name).url).path).name


def _write_state_dict(name: str, path: Path) -> None:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = _builder(name)().state_dict()
    atomic_write(path, lambda fh: torch.save(state, fh))


def _place(src: Path, dest: Path) -> None:
    """``dest`` becomes a copy of ``src`` (a hard link where the file system allows), atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.link"
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def seed_torch_cache(torch_home: str | Path, names: Sequence[str] = TORCH_NAMES,
                     cache: str | Path | None = None) -> Path:
    """Put the torchvision weight files of the registry entries ``names`` into
    ``torch_home/hub/checkpoints/`` under their real file names (``vgg19-dcbb9e9d.pth``...):
    each a state dict with exactly the architecture's keys and shapes (seeded random values).
    With ``TORCH_HOME=torch_home``, torchvision and ``lpips`` then load them offline.

    The files are large (VGG19 about 550 MB): with ``cache``, each is built once into
    ``cache/torchvision-<version>/`` and linked (or copied) from there on later calls.
    Returns the checkpoints folder.
    """
    import torchvision

    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    store = Path(cache) / f"torchvision-{torchvision.__version__}" if cache is not None else None
    for name in names:
        filename = weights_filename(name)
        if store is None:
            _write_state_dict(name, folder / filename)
            continue
        kept = store / filename
        if not kept.is_file():
            _write_state_dict(name, kept)
        _place(kept, folder / filename)
    return folder


# --------------------------------------------------------------------------- the HTTP server
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the files under ``server.folder``: 200 with the whole file, or 206 with
    Content-Range for one ``Range: bytes=a-b`` / ``a-`` / ``-n``; 416 for a range past the end."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that sends nothing frees its thread

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests read their own output
        pass

    def _file(self) -> Path | None:
        root = self.server.folder
        rel = unquote(urlparse(self.path).path).lstrip("/")
        path = (root / rel).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def send_response(self, code, message=None):
        log = self.server.log
        if log is not None:
            log.append({"method": self.command, "path": unquote(urlparse(self.path).path),
                        "range": self.headers.get("Range"), "status": code})
        super().send_response(code, message)

    def _answer(self, body: bool) -> None:
        path = self._file()
        if path is None:
            self.send_error(404, "Not Found")
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start, end = int(first), min(int(last), size - 1) if last else size - 1
                else:
                    start = max(0, size - int(last))
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError), open(path, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                block = fh.read(min(left, 1 << 20))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def serve(folder: str | Path, log: list | None = None) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) while the block runs; yields the base
    URL (``http://127.0.0.1:<port>``, no trailing slash). Range requests are answered like the
    real hosts answer them. On exit the server stops (within about a second) and its port is freed;
    request threads are daemon threads and never keep the process alive.

    ``log``: a list that gets one dict per answer (``method``, ``path``, ``range``: the Range
    header or None, ``status``), to show what a run really downloaded from the mirror."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"'{folder}' is not a folder to serve.")
    server = _Server(("127.0.0.1", 0), _RangeHandler)
    server.folder, server.log = root, log
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name=f"rehearsal-mirror-{server.server_address[1]}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- the whole environment
ARCHIVES = ("cifar10", "horse2zebra")
_MARKER = "rehearsal.json"


def mirror_folder(root: str | Path) -> Path:
    """The folder :func:`rehearsal_environment` puts the mirrored archives in (what to :func:`serve`)."""
    return Path(root) / "mirror"


def mirror_path(name: str) -> str:
    """Where archive ``name`` lies in the mirror: its registry URL's host and path
    (``www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz``), as on the real host."""
    url = urlparse(registry.SOURCES[name].location)
    return f"{url.netloc}{url.path}"


def mirror_urls(base_url: str) -> dict[str, str]:
    """``LESSONS_URL_<NAME>`` for every mirrored archive, served from ``base_url`` (what :func:`serve`
    yields): ``{"LESSONS_URL_CIFAR10": "<base>/www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", ...}``."""
    base = base_url.rstrip("/")
    return {registry.url_env_key(name): f"{base}/{mirror_path(name)}" for name in ARCHIVES}


def rehearsal_environment(root: str | Path, photos_dir: str | Path, cache: str | Path | None = None,
                          hub: bool = True, n_test: int = 1000, h2z_n: int = 48,
                          h2z_n_test: int = 8) -> dict[str, str]:
    """Build every mirror and cache of the offline full-profile rehearsal under ``root`` and return
    the environment variables a run needs (all but the archives' addresses: see :func:`mirror_urls`).
    Starts nothing.

    Under ``root``: ``mirror/`` (the archives at their hosts' paths, :func:`mirror_path`; serve it),
    ``torch/hub/checkpoints/`` (:func:`seed_torch_cache`, reusing ``cache``), ``hf/hub/`` (the
    Hugging Face cache of tiny pipelines under the real hub ids; ``hub=False`` leaves it out) and
    a fresh, empty ``lessons-cache-*/`` (so the run downloads from the mirror, never reuses a copy).

    Returned: ``LESSONS_PROFILE=full``, ``LESSONS_REHEARSAL=1``, ``LESSONS_CACHE_DIR``,
    ``TORCH_HOME``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``
    and ``LESSONS_CHECKSUM_CIFAR10`` / ``LESSONS_CHECKSUM_HORSE2ZEBRA`` (the mirrored archives'
    sha256). ``LESSONS_DATA_DIR`` is not set: a folder it points at that already holds
    ``cifar-10-batches-py/`` or ``horse2zebra/`` would be used instead of the download.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    mirror = mirror_folder(root)
    builds = {"cifar10": lambda out: build_cifar10_archive(photos_dir, out, n_test=n_test),
              "horse2zebra": lambda out: build_horse2zebra_zip(photos_dir, out, n=h2z_n, n_test=h2z_n_test)}
    env = {"LESSONS_PROFILE": "full", "LESSONS_REHEARSAL": "1"}
    for name in ARCHIVES:
        where = mirror / mirror_path(name)
        built = builds[name](where.parent)
        if built != where:  # the registry's file name differs from what the builder writes
            os.replace(built, where)
        env[registry.checksum_env_key(name)] = _sha256(where)
    env["TORCH_HOME"] = str(root / "torch")
    seed_torch_cache(root / "torch", cache=cache)
    env["HF_HOME"] = str(root / "hf")
    env["HF_HUB_CACHE"] = str(root / "hf" / "hub")
    if hub:
        from lessons_lib.editing import tiny

        tiny.seed_hub_cache(root / "hf" / "hub")
    env["HF_HUB_OFFLINE"] = env["TRANSFORMERS_OFFLINE"] = "1"
    env["LESSONS_CACHE_DIR"] = tempfile.mkdtemp(prefix="lessons-cache-", dir=root)
    atomic_write(root / _MARKER, json.dumps({"built": time.strftime("%Y-%m-%d %H:%M:%S"),
                                             "photos": str(photos_dir), "env": env}, indent=2) + "\n")
    return env
