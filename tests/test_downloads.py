"""Download, verify, extract: CIFAR-10 and horse2zebra from small local archives in the real formats,
served by local HTTP hosts on the loopback address that stall, drop the connection, answer 404 or trickle."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import pickle
import re
import shutil
import socket
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from lessons_lib import data, downloads, registry, translation


def _register(monkeypatch, name, archive, algorithm="sha256", mirrors=()):
    body = archive.read_bytes()
    digest = hashlib.new(algorithm, body).hexdigest()
    source = dataclasses.replace(registry.SOURCES[name], location=archive.as_uri(), size=len(body),
                                 checksum=f"{algorithm}:{digest}", mirrors=tuple(mirrors))
    monkeypatch.setitem(registry.SOURCES, name, source)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # "online", to a file:// URL or the loopback
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv(downloads.STALL_ENV, "1")  # seconds without a byte before the next host
    return tmp_path / "cache"


def cifar_archive(path, n=6):
    """cifar-10-python.tar.gz's layout and pickles (bytes keys, as the published ones load)."""
    rng = np.random.default_rng(0)
    batches = {}
    with tarfile.open(path, "w:gz") as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
            batch = ({b"label_names": [b"airplane"] * 10} if name == "batches.meta" else
                     {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                      b"labels": list(range(n)), b"batch_label": name.encode()})
            batches[name] = batch
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return batches


def horse2zebra_zip(path, n=3):
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w") as zf:
        for split in ("trainA", "trainB", "testA", "testB"):
            for i in range(n):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
                zf.writestr(f"horse2zebra/{split}/n0{i}.jpg", buf.getvalue())


# --------------------------------------------------------------------------- loopback hosts
class Host:
    """An HTTP host on 127.0.0.1 serving one file, the way a real one misbehaves.

    ``behaviour``: "ok", "404", "stall" (sends ``cut`` bytes, then nothing), "drop" (the first
    answer closes the connection after ``cut`` bytes) or "trickle" (``cut`` bytes every 0.1 s).
    ``ranges=False``: a host that ignores Range and always answers 200 with the whole file.
    ``requests`` records the Range header of every GET (None without one).
    """

    def __init__(self, body: bytes, behaviour: str = "ok", cut: int = 0, ranges: bool = True):
        self.body, self.behaviour, self.cut, self.ranges = body, behaviour, cut, ranges
        self.requests: list[str | None] = []
        self.release = threading.Event()
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def handle(self):
                try:
                    super().handle()
                except (ConnectionError, TimeoutError):
                    pass  # the client gave up on us: that is the point of several behaviours

            def do_GET(self):
                host.serve(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/files/archive"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def serve(self, handler):
        asked = handler.headers.get("Range")
        self.requests.append(asked)
        if self.behaviour == "404":
            handler.send_error(404, "Not Found")
            return
        start = int(re.match(r"bytes=(\d+)-", asked).group(1)) if asked and self.ranges else 0
        if start >= len(self.body) and start:
            handler.send_error(416, "Range Not Satisfiable")
            return
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
        handler.send_header("Content-Length", str(len(self.body) - start))
        handler.end_headers()
        rest = self.body[start:]
        if self.behaviour == "stall":
            handler.wfile.write(rest[:self.cut])
            handler.wfile.flush()
            self.release.wait(10)  # bounded: the test ends long before
        elif self.behaviour == "drop" and len(self.requests) == 1:
            handler.wfile.write(rest[:self.cut])  # then the connection closes, half way
        elif self.behaviour == "trickle":
            for i in range(0, len(rest), self.cut):
                handler.wfile.write(rest[i:i + self.cut])
                handler.wfile.flush()
                if self.release.wait(0.1):
                    return
        else:
            handler.wfile.write(rest)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def hosts():
    made = []

    def make(body, behaviour="ok", cut=0, ranges=True):
        made.append(Host(body, behaviour, cut, ranges))
        return made[-1]

    yield make
    for host in made:
        host.close()


def refused_url() -> str:
    """An address on the loopback where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/files/archive"


@pytest.fixture
def cifar(cache, monkeypatch, tmp_path):
    """The CIFAR-10 stand-in archive, registered (checksum and size) as the real one is."""
    batches = cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    _register(monkeypatch, "cifar10", tmp_path / "cifar-10-python.tar.gz", algorithm="md5")
    return (tmp_path / "cifar-10-python.tar.gz").read_bytes(), batches


def _use(monkeypatch, name, *urls):
    monkeypatch.setenv(registry.url_env_key(name), " ".join(urls))


def _check_cifar(cache, batches):
    test = data.cifar10(train=False)
    assert len(test) == 6 and np.allclose(test[2].numpy() * 255, batches["test_batch"][b"data"][2].reshape(3, 32, 32))
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["cifar-10-batches-py"]  # no .part left


# --------------------------------------------------------------------------- hosts that misbehave
def test_a_stalled_host_gives_way_to_the_next_which_continues_its_partial_file(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    stalled, mirror = hosts(body, "stall", cut=10_000), hosts(body)
    _use(monkeypatch, "cifar10", stalled.url, mirror.url)
    _check_cifar(cache, batches)
    assert stalled.requests == [None] and mirror.requests == ["bytes=10000-"]


def test_a_connection_dropped_half_way_resumes_with_a_range_request(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    half = len(body) // 2
    host = hosts(body, "drop", cut=half)
    _use(monkeypatch, "cifar10", host.url)
    _check_cifar(cache, batches)  # the whole archive, md5 checked, from two connections
    assert host.requests == [None, f"bytes={half}-"]


def test_a_partial_file_from_an_earlier_session_continues(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "cifar-10-python.tar.gz.part").write_bytes(body[:1000])
    host = hosts(body)
    _use(monkeypatch, "cifar10", host.url)
    _check_cifar(cache, batches)
    assert host.requests == ["bytes=1000-"]


def test_a_host_that_ignores_ranges_sends_the_whole_file_again(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "cifar-10-python.tar.gz.part").write_bytes(b"\0" * 1000)  # would not match
    host = hosts(body, ranges=False)
    _use(monkeypatch, "cifar10", host.url)
    _check_cifar(cache, batches)  # the 200 answer replaced the partial file instead of extending it
    assert host.requests == ["bytes=1000-"]


def test_a_resumed_file_that_fails_its_checksum_is_fetched_whole_again(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "cifar-10-python.tar.gz.part").write_bytes(b"\0" * 1000)  # not this file's bytes
    host = hosts(body)
    _use(monkeypatch, "cifar10", host.url)
    _check_cifar(cache, batches)
    assert host.requests == ["bytes=1000-", None]


def test_a_404_uses_the_mirror(cache, monkeypatch, tmp_path, hosts):
    horse2zebra_zip(tmp_path / "horse2zebra.zip")
    _register(monkeypatch, "horse2zebra", tmp_path / "horse2zebra.zip")
    body = (tmp_path / "horse2zebra.zip").read_bytes()
    gone, mirror = hosts(body, "404"), hosts(body)
    _use(monkeypatch, "horse2zebra", gone.url, mirror.url)
    horses, zebras = translation.horse2zebra(size=32)
    assert len(horses) == len(zebras) == 3 and horses[0].shape == (3, 32, 32)
    assert gone.requests == [None] and mirror.requests == [None]


def test_a_slow_host_is_set_aside_and_used_again_when_the_others_fail(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    rate = downloads.SLOW_BYTES_PER_S // 2  # bytes a second: a tenth of it every 0.1 s, at most
    assert len(body) > 2 * rate, "the archive must outlast one measuring window (1 s here)"
    slow, gone = hosts(body, "trickle", cut=rate // 10), hosts(body, "404")
    _use(monkeypatch, "cifar10", slow.url, gone.url)
    _check_cifar(cache, batches)
    # set aside after a window, the 404 tried, then back to the slow host, continuing its partial file
    assert slow.requests[0] is None and len(gone.requests) == 1
    assert len(slow.requests) == 2 and re.fullmatch(r"bytes=[1-9]\d*-", slow.requests[1])


def test_a_slow_host_gives_way_to_a_faster_mirror(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    slow = hosts(body, "trickle", cut=downloads.SLOW_BYTES_PER_S // 40)
    mirror = hosts(body)
    _use(monkeypatch, "cifar10", slow.url, mirror.url)
    _check_cifar(cache, batches)
    assert slow.requests == [None] and len(mirror.requests) == 1
    assert re.fullmatch(r"bytes=[1-9]\d*-", mirror.requests[0])  # continuing what the slow host sent


def test_when_every_host_fails_one_message_names_each_and_what_to_do(cifar, cache, monkeypatch, hosts):
    body, _ = cifar
    monkeypatch.setenv("LESSONS_PROFILE", "full")  # the profile that downloads: the fast one is an option
    gone, stalled, nobody = hosts(body, "404"), hosts(body, "stall", cut=5000), refused_url()
    _use(monkeypatch, "cifar10", gone.url, stalled.url, nobody)
    with pytest.raises(registry.DownloadUnavailable) as err:
        data.cifar10()
    message = str(err.value)
    assert f"{gone.url}: HTTP 404" in message
    assert f"{stalled.url}: stalled: no data for 1 s after 5,000 bytes" in message
    assert re.search(re.escape(nobody) + r": .*refused", message)
    part = cache / "datasets" / "cifar-10-python.tar.gz.part"
    assert part.stat().st_size == 5000 and str(part) in message  # kept, to continue next time
    assert f"download cifar-10-python.tar.gz yourself from any address above and put it in {part.parent}" in message
    assert "LESSONS_URL_CIFAR10" in message and "cifar-10-batches-py" in message and "LESSONS_PROFILE=fast" in message
    assert not (cache / "datasets" / "cifar-10-batches-py").exists()


def test_a_host_serving_another_size_is_skipped_before_downloading(cifar, cache, monkeypatch, hosts):
    body, batches = cifar
    wrong, mirror = hosts(body + b"<html>"), hosts(body)
    _use(monkeypatch, "cifar10", wrong.url, mirror.url)
    _check_cifar(cache, batches)
    assert mirror.requests == [None]  # nothing of the wrong file was kept to resume from


def test_an_archive_downloaded_by_hand_is_checked_and_used(cifar, cache, monkeypatch, tmp_path):
    body, batches = cifar
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "cifar-10-python.tar.gz").write_bytes(body)
    _use(monkeypatch, "cifar10", refused_url())  # no host needed
    assert len(data.cifar10(train=False)) == 6
    shutil.rmtree(cache / "datasets" / "cifar-10-batches-py")
    (cache / "datasets" / "cifar-10-python.tar.gz").write_bytes(body[:-1])
    with pytest.raises(registry.DownloadUnavailable, match="not the expected md5.*Delete or replace"):
        data.cifar10(root=cache / "datasets")  # found there, and wrong: said so, not downloaded


def test_the_stall_timeout_setting_is_checked(monkeypatch):
    monkeypatch.setenv(downloads.STALL_ENV, "soon")
    with pytest.raises(ValueError, match="LESSONS_STALL_TIMEOUT='soon' is not a number of seconds"):
        downloads.stall_timeout()
    monkeypatch.delenv(downloads.STALL_ENV)
    assert downloads.stall_timeout() == 30


# --------------------------------------------------------------------------- verify and unpack
def test_cifar10_is_downloaded_verified_and_unpacked(cache, monkeypatch, tmp_path):
    batches = cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    _register(monkeypatch, "cifar10", tmp_path / "cifar-10-python.tar.gz", algorithm="md5")
    train = data.cifar10(train=True)
    test = data.cifar10(train=False)
    assert len(train) == 5 * 6 and len(test) == 6 and train.labels[:6] == list(range(6))
    pixels = batches["test_batch"][b"data"][2].reshape(3, 32, 32)
    assert np.allclose(test[2].numpy() * 255, pixels, atol=1e-3)
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["cifar-10-batches-py"]
    # The profile's photos come from it too (full profile, no download the second time).
    monkeypatch.setitem(registry.SOURCES, "cifar10", dataclasses.replace(
        registry.SOURCES["cifar10"], location="file:///nowhere/cifar.tar.gz"))
    assert len(data.colour_images("test", profile="full")) == 6


def test_a_wrong_checksum_leaves_nothing_behind(cache, monkeypatch, tmp_path):
    cifar_archive(tmp_path / "cifar.tar.gz")
    _register(monkeypatch, "cifar10", tmp_path / "cifar.tar.gz", algorithm="md5")
    wrong = dataclasses.replace(registry.SOURCES["cifar10"], checksum="md5:" + "0" * 32)
    monkeypatch.setitem(registry.SOURCES, "cifar10", wrong)
    with pytest.raises(registry.DownloadUnavailable) as err:
        data.cifar10()
    assert "not the expected md5:000" in str(err.value) and "LESSONS_URL_CIFAR10" in str(err.value)
    assert list((cache / "datasets").iterdir()) == []


def test_horse2zebra_uses_its_checksum_and_falls_back_to_the_mirror(cache, monkeypatch, tmp_path):
    horse2zebra_zip(tmp_path / "horse2zebra.zip")
    _register(monkeypatch, "horse2zebra", tmp_path / "horse2zebra.zip",
              mirrors=[(tmp_path / "horse2zebra.zip").as_uri()])
    down = dataclasses.replace(registry.SOURCES["horse2zebra"], location=(tmp_path / "gone.zip").as_uri())
    monkeypatch.setitem(registry.SOURCES, "horse2zebra", down)  # the main server is down
    horses, zebras = translation.horse2zebra(size=32)
    assert len(horses) == len(zebras) == 3 and horses[0].shape == (3, 32, 32)
    assert (cache / "datasets" / "horse2zebra" / "testB").is_dir()


def test_the_published_checksums_and_mirrors_are_recorded():
    h2z = registry.get_source("horse2zebra")
    assert h2z.checksum == "sha256:a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1"
    assert h2z.size == 116_867_962 and h2z.mirrors
    assert not any("taesung_park" in url for url in h2z.urls)  # the authors' old address answers 404
    cifar = registry.get_source("cifar10")
    assert cifar.checksum == "md5:c58f30108f718f92721af3b95e74349a"  # torchvision's tgz_md5
    assert cifar.size == 170_498_071 and len(cifar.mirrors) >= 1
    for source in (h2z, cifar):
        assert len(set(source.urls)) == len(source.urls) and all(u.startswith("https://") for u in source.urls)


def test_a_mirror_url_from_the_environment_is_still_verified(cache, monkeypatch, tmp_path):
    horse2zebra_zip(tmp_path / "copy.zip")
    monkeypatch.setenv("LESSONS_URL_HORSE2ZEBRA", (tmp_path / "copy.zip").as_uri())
    with pytest.raises(registry.DownloadUnavailable, match="copy.zip: serves .* not the 116,867,962"):
        translation.horse2zebra(size=32)  # the registry's real size (and checksum): this stand-in fails
    monkeypatch.setitem(registry.SOURCES, "horse2zebra",
                        dataclasses.replace(registry.SOURCES["horse2zebra"], size=None))
    with pytest.raises(registry.DownloadUnavailable, match="copy.zip: .*not the expected sha256:a74d9d"):
        translation.horse2zebra(size=32)
    assert not (cache / "datasets" / "horse2zebra").exists()


def test_archive_members_outside_the_target_are_refused(cache, monkeypatch, tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../../outside.txt", "x")
    _register(monkeypatch, "horse2zebra", tmp_path / "evil.zip")
    with pytest.raises(registry.DownloadUnavailable, match="would be written outside"):
        downloads.fetch_archive("horse2zebra", cache / "h2z")
    assert not (tmp_path / "outside.txt").exists() and not (cache / "h2z").exists()



def test_a_checksum_from_the_environment_replaces_the_recorded_one_and_is_checked(cache, monkeypatch, tmp_path):
    # An instructor's own copy (or the rehearsal's mirror): not the published bytes, so the recorded
    # sha256 and size cannot match; LESSONS_CHECKSUM_<NAME> names the copy's own checksum instead.
    horse2zebra_zip(tmp_path / "copy.zip")
    own = "sha256:" + hashlib.sha256((tmp_path / "copy.zip").read_bytes()).hexdigest()
    monkeypatch.setenv("LESSONS_URL_HORSE2ZEBRA", (tmp_path / "copy.zip").as_uri())
    monkeypatch.setenv("LESSONS_CHECKSUM_HORSE2ZEBRA", "sha256:" + "0" * 64)
    source = registry.get_source("horse2zebra")
    assert source.checksum == "sha256:" + "0" * 64 and source.size is None
    with pytest.raises(registry.DownloadUnavailable, match="copy.zip: .*not the expected sha256:0000"):
        translation.horse2zebra(size=32)  # still checked: against the override
    assert not (cache / "datasets" / "horse2zebra").exists()
    monkeypatch.setenv("LESSONS_CHECKSUM_HORSE2ZEBRA", own.upper().replace("SHA256", " SHA256"))
    assert registry.get_source("horse2zebra").checksum == own  # case and spaces do not matter
    horses, zebras = translation.horse2zebra(size=32)
    assert len(horses) == len(zebras) == 3
    # Only that archive's entry changes; the registry's own record is untouched.
    assert registry.get_source("cifar10").checksum == "md5:c58f30108f718f92721af3b95e74349a"
    monkeypatch.delenv("LESSONS_CHECKSUM_HORSE2ZEBRA")
    assert registry.get_source("horse2zebra").checksum.startswith("sha256:a74d9d39")
    assert registry.get_source("horse2zebra").size == 116_867_962


@pytest.mark.parametrize("value", ["a74d9d39", "sha1:" + "0" * 40, "md5:" + "0" * 31, "sha256:" + "g" * 64])
def test_a_checksum_override_that_is_not_one_says_what_to_set(monkeypatch, value):
    monkeypatch.setenv("LESSONS_CHECKSUM_CIFAR10", value)
    with pytest.raises(ValueError, match="LESSONS_CHECKSUM_CIFAR10=.* is not a checksum. Set it to sha256:<64"):
        registry.get_source("cifar10")
