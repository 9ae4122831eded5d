"""Download, verify, extract: CIFAR-10 and horse2zebra from small local archives in the real formats."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from lessons_lib import data, downloads, registry, translation


def _register(monkeypatch, name, archive, algorithm="sha256", mirrors=()):
    digest = hashlib.new(algorithm, archive.read_bytes()).hexdigest()
    source = dataclasses.replace(registry.SOURCES[name], location=archive.as_uri(),
                                 checksum=f"{algorithm}:{digest}", mirrors=tuple(mirrors))
    monkeypatch.setitem(registry.SOURCES, name, source)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # "online", to a file:// URL
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
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


def horse2zebra_zip(path):
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w") as zf:
        for split in ("trainA", "trainB", "testA", "testB"):
            for i in range(3):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
                zf.writestr(f"horse2zebra/{split}/n0{i}.jpg", buf.getvalue())


def test_horse2zebra_uses_its_checksum_and_falls_back_to_the_mirror(cache, monkeypatch, tmp_path):
    horse2zebra_zip(tmp_path / "horse2zebra.zip")
    _register(monkeypatch, "horse2zebra", tmp_path / "horse2zebra.zip",
              mirrors=[(tmp_path / "horse2zebra.zip").as_uri()])
    down = dataclasses.replace(registry.SOURCES["horse2zebra"], location=(tmp_path / "gone.zip").as_uri())
    monkeypatch.setitem(registry.SOURCES, "horse2zebra", down)  # the main server is down
    horses, zebras = translation.horse2zebra(size=32)
    assert len(horses) == len(zebras) == 3 and horses[0].shape == (3, 32, 32)
    assert (cache / "datasets" / "horse2zebra" / "testB").is_dir()


def test_the_published_horse2zebra_checksum_is_recorded():
    source = registry.get_source("horse2zebra")
    assert source.checksum == "sha256:a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1"
    assert source.mirrors and "LESSONS_URL_HORSE2ZEBRA" in source.note


def test_a_mirror_url_from_the_environment_is_still_verified(cache, monkeypatch, tmp_path):
    horse2zebra_zip(tmp_path / "copy.zip")
    monkeypatch.setenv("LESSONS_URL_HORSE2ZEBRA", (tmp_path / "copy.zip").as_uri())
    with pytest.raises(registry.DownloadUnavailable, match="copy.zip: .*not the expected sha256:a74d9d"):
        translation.horse2zebra(size=32)  # the registry's real checksum: this stand-in fails it
    assert not (cache / "datasets" / "horse2zebra").exists()


def test_archive_members_outside_the_target_are_refused(cache, monkeypatch, tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../../outside.txt", "x")
    _register(monkeypatch, "horse2zebra", tmp_path / "evil.zip")
    with pytest.raises(registry.DownloadUnavailable, match="would be written outside"):
        downloads.fetch_archive("horse2zebra", cache / "h2z")
    assert not (tmp_path / "outside.txt").exists() and not (cache / "h2z").exists()
