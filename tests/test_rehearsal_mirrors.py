"""The offline rehearsal's mirrors (course_tools/rehearsal.py): archives in the published formats,
downloaded through the course's own download, verify and extract code from a loopback server,
read by torchvision's and the course's loaders; torchvision weights under their real names."""
from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import socket
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_tools import rehearsal as R
from lessons_lib import data, registry, translation

REPO = Path(__file__).resolve().parents[1]
N_TEST = 500


@pytest.fixture
def download_env(monkeypatch, tmp_path):
    """A fresh course cache and no local data folder: the course must download."""
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path / "lessons-cache"))
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return tmp_path / "lessons-cache"


def _use_mirror(monkeypatch, name: str, base: str, archive: Path) -> None:
    monkeypatch.setenv(registry.url_env_key(name), R.mirror_urls(base)[registry.url_env_key(name)])
    monkeypatch.setenv(registry.checksum_env_key(name), "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest())


@pytest.fixture(scope="module")
def cifar_mirror(cifar_subset, tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar-mirror")
    where = R.mirror_folder(root) / R.mirror_path("cifar10")
    archive = R.build_cifar10_archive(cifar_subset, where.parent, n_test=N_TEST)
    assert archive == where and where.name == "cifar-10-python.tar.gz"
    return root, archive


@pytest.fixture
def few_photos(cifar_subset, tmp_path):
    """40 of the real photos, 4 per class, as an ImageFolder."""
    folder = tmp_path / "photos"
    for cls in sorted(p for p in (cifar_subset / "train").iterdir() if p.is_dir()):
        for src in sorted(cls.glob("*.png"))[:4]:
            (folder / cls.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, folder / cls.name / src.name)
    return folder


# --------------------------------------------------------------------------- CIFAR-10
def test_the_cifar10_archive_has_the_published_layout(cifar_mirror):
    _, archive = cifar_mirror
    with tarfile.open(archive) as tf:
        names = tf.getnames()
        top = tf.getmember("cifar-10-batches-py")
        raw = tf.extractfile("cifar-10-batches-py/data_batch_1").read()
    assert top.isdir()
    assert sorted(names) == sorted(["cifar-10-batches-py"] + [f"cifar-10-batches-py/{n}" for n in (
        "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
        "batches.meta", "readme.html")])
    # A protocol-2 pickle whose strings are Python 2 strings (SHORT_BINSTRING 'U'), the numpy array
    # written the way Python 2's numpy wrote it: what the published files hold.
    assert raw.startswith(b"\x80\x02}") and b"U\x04data" in raw and b"U\x06labels" in raw
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"cnumpy\ndtype\nq" in raw
    import pickle

    as_str, as_bytes = pickle.loads(raw, encoding="latin1"), pickle.loads(raw, encoding="bytes")
    assert sorted(as_str) == ["batch_label", "data", "filenames", "labels"]
    assert sorted(as_bytes) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert as_bytes[b"batch_label"] == b"training batch 1 of 5"
    assert as_str["data"].dtype == np.uint8 and as_str["data"].shape[1] == 3072
    assert np.array_equal(as_str["data"], as_bytes[b"data"])


def test_cifar10_downloads_from_the_mirror_and_both_loaders_read_the_photos(
        cifar_mirror, cifar_subset, download_env, monkeypatch):
    import torchvision

    root, archive = cifar_mirror
    log: list = []
    with R.serve(R.mirror_folder(root), log=log) as base:
        _use_mirror(monkeypatch, "cifar10", base, archive)
        course = {True: data.cifar10(train=True), False: data.cifar10(train=False)}
    assert [e["path"] for e in log if e["method"] == "GET"] == ["/www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert log[0]["status"] == 200
    extracted = download_env / "datasets" / "cifar-10-batches-py"
    assert extracted.is_dir() and not list((download_env / "datasets").glob("*.part"))
    # torchvision checks each batch against the published files' md5s: given this copy's own
    # (the only difference), its reader takes the archive as it is.
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in extracted.iterdir()}
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    photos = sorted((cifar_subset / "train").rglob("*.png"))
    seen = set()
    for train in (True, False):
        tv = cls(root=str(download_env / "datasets"), train=train, download=False)
        ours = course[train]
        assert tv.classes == list(R.CIFAR_LABELS)
        assert len(tv) == len(ours) == (len(photos) - N_TEST if train else N_TEST)
        assert tv.targets == ours.labels
        # The same pixels: torchvision's HWC uint8 and the course's CHW floats.
        assert np.array_equal(tv.data, (ours.images.permute(0, 2, 3, 1)).numpy())
        filenames = []
        for name in [n for n, _ in (cls.train_list if train else cls.test_list)]:
            with open(extracted / name, "rb") as fh:
                import pickle

                filenames += [f.decode() for f in pickle.load(fh, encoding="bytes")[b"filenames"]]
        # Every image is its source photo, pixel for pixel, with its class as the label.
        for i, fname in enumerate(filenames):
            label, stem = fname[:-4].split("_", 1)
            src = cifar_subset / "train" / label / f"{stem}.png"
            assert tv.targets[i] == R.CIFAR_LABELS.index(label), fname
            assert np.array_equal(tv.data[i], np.asarray(Image.open(src).convert("RGB"))), fname
            seen.add(src)
    assert seen == set(photos)  # every photo once: train and test are disjoint and complete
    # The train batches mix the classes, as the published ones do.
    assert len(set(course[True].labels[:100])) == 10


def test_the_archives_are_the_same_bytes_every_time(few_photos, tmp_path):
    first = [R.build_cifar10_archive(few_photos, tmp_path / "a", n_test=10),
             R.build_horse2zebra_zip(few_photos, tmp_path / "a", n=8, n_test=2)]
    second = [R.build_cifar10_archive(few_photos, tmp_path / "b", n_test=10),
              R.build_horse2zebra_zip(few_photos, tmp_path / "b", n=8, n_test=2)]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    other = R.build_cifar10_archive(few_photos, tmp_path / "c", n_test=10, seed=1)
    assert other.read_bytes() != first[0].read_bytes()  # the seed chooses the split
    with pytest.raises(ValueError, match="n_test=40"):
        R.build_cifar10_archive(few_photos, tmp_path / "d", n_test=40)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        R.build_cifar10_archive(tmp_path / "nowhere", tmp_path / "d")


# --------------------------------------------------------------------------- horse2zebra
def test_horse2zebra_downloads_from_the_mirror_in_the_published_layout(few_photos, download_env, monkeypatch, tmp_path):
    root = tmp_path / "mirror-root"
    where = R.mirror_folder(root) / R.mirror_path("horse2zebra")
    archive = R.build_horse2zebra_zip(few_photos, where.parent, n=12, n_test=4)
    assert archive == where and where.name == "horse2zebra.zip"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    folders = [n for n in names if n.endswith("/")]
    assert folders == ["horse2zebra/trainA/", "horse2zebra/testB/", "horse2zebra/trainB/", "horse2zebra/testA/"]
    for name in names:
        if not name.endswith("/"):
            folder, file = name.split("/")[1:]
            animal = "n02381460" if folder.endswith("A") else "n02391049"
            assert re.fullmatch(animal + r"_\d+\.jpg", file), name
    files = [n.split("/")[-1] for n in names if not n.endswith("/")]
    assert len(files) == 2 * (12 + 4) and len(set(files)) == len(files)  # no name twice
    log: list = []
    with R.serve(R.mirror_folder(root), log=log) as base:
        _use_mirror(monkeypatch, "horse2zebra", base, archive)
        horses, zebras = translation.horse2zebra(size=64, split="train")
        test_horses, test_zebras = translation.horse2zebra(size=64, split="test")
    assert [e["path"] for e in log if e["method"] == "GET"] == [
        "/efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"]  # downloaded once
    assert len(horses) == len(zebras) == 12 and len(test_horses) == len(test_zebras) == 4
    assert horses[0].shape == (3, 64, 64)
    unpacked = download_env / "datasets" / "horse2zebra"
    assert sorted(p.name for p in unpacked.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    with Image.open(next((unpacked / "trainB").iterdir())) as img:
        assert img.size == (256, 256) and img.mode == "RGB" and img.format == "JPEG"
    # B is hue-rotated: its mean colour differs from A's far more than two photo sets of one domain do.
    a = torch.stack([horses[i] for i in range(12)]).mean(dim=(0, 2, 3))
    b = torch.stack([zebras[i] for i in range(12)]).mean(dim=(0, 2, 3))
    assert float((a - b).abs().max()) > 0.03


def test_horse2zebra_downloads_in_the_rehearsal_environment(few_photos, download_env, monkeypatch, tmp_path):
    root = tmp_path / "mirror-root"
    archive = R.build_horse2zebra_zip(few_photos, (R.mirror_folder(root) / R.mirror_path("horse2zebra")).parent,
                                      n=4, n_test=2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with R.serve(R.mirror_folder(root)) as base:
        _use_mirror(monkeypatch, "horse2zebra", base, archive)
        horses, _ = translation.horse2zebra(size=32)
    assert len(horses) == 4


# --------------------------------------------------------------------------- the server
def test_the_server_answers_ranges_like_the_real_hosts(tmp_path):
    body = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    (tmp_path / "host" / "dir").mkdir(parents=True)
    (tmp_path / "host" / "dir" / "file.bin").write_bytes(body)
    (tmp_path / "secret.txt").write_text("outside")
    log: list = []

    def get(base, path, range_=None, method="GET"):
        request = urllib.request.Request(base + path, method=method, headers={"Range": range_} if range_ else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    with R.serve(tmp_path / "host", log=log) as base:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        port = int(base.rsplit(":", 1)[1])
        status, headers, got = get(base, "/dir/file.bin")
        assert status == 200 and got == body and headers["Content-Length"] == "100000"
        assert headers["Accept-Ranges"] == "bytes" and "Content-Range" not in headers
        status, headers, got = get(base, "/dir/file.bin", "bytes=60000-")
        assert status == 206 and got == body[60000:] and headers["Content-Range"] == "bytes 60000-99999/100000"
        assert headers["Content-Length"] == "40000"
        status, headers, got = get(base, "/dir/file.bin", "bytes=10-19")
        assert status == 206 and got == body[10:20] and headers["Content-Range"] == "bytes 10-19/100000"
        status, headers, got = get(base, "/dir/file.bin", "bytes=-5")
        assert status == 206 and got == body[-5:] and headers["Content-Range"] == "bytes 99995-99999/100000"
        status, headers, got = get(base, "/dir/file.bin", "bytes=100000-")
        assert status == 416 and headers["Content-Range"] == "bytes */100000"
        status, headers, got = get(base, "/dir/file.bin", method="HEAD")
        assert status == 200 and got == b"" and headers["Content-Length"] == "100000"
        assert get(base, "/dir/missing.bin")[0] == 404
        assert get(base, "/dir")[0] == 404
        # A path that climbs out of the folder is not served (sent raw: urllib would normalise it).
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/../secret.txt")
        assert conn.getresponse().status == 404
        conn.close()
    assert [(e["range"], e["status"]) for e in log[:5]] == [
        (None, 200), ("bytes=60000-", 206), ("bytes=10-19", 206), ("bytes=-5", 206), ("bytes=100000-", 416)]
    with pytest.raises(OSError):  # stopped: nothing listens on the port any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_download_cut_half_way_continues_from_the_mirror_with_a_range_request(few_photos, download_env,
                                                                                 monkeypatch, tmp_path):
    root = tmp_path / "mirror-root"
    archive = R.build_cifar10_archive(few_photos, (R.mirror_folder(root) / R.mirror_path("cifar10")).parent,
                                      n_test=10)
    half = archive.stat().st_size // 2
    part = download_env / "datasets" / "cifar-10-python.tar.gz.part"  # an earlier session's partial file
    part.parent.mkdir(parents=True)
    part.write_bytes(archive.read_bytes()[:half])
    log: list = []
    with R.serve(R.mirror_folder(root), log=log) as base:
        _use_mirror(monkeypatch, "cifar10", base, archive)
        assert len(data.cifar10(train=False)) == 10
    assert [(e["range"], e["status"]) for e in log] == [(f"bytes={half}-", 206)]
    assert not part.exists()


# --------------------------------------------------------------------------- the whole environment
def test_the_environment_names_everything_a_rehearsal_run_needs(few_photos, tmp_path, monkeypatch):
    monkeypatch.setattr(R, "seed_torch_cache", lambda torch_home, cache=None: Path(torch_home))  # tested below
    env = R.rehearsal_environment(tmp_path / "root", few_photos, hub=False, n_test=10, h2z_n=8, h2z_n_test=2)
    root = (tmp_path / "root").resolve()
    assert env["LESSONS_PROFILE"] == "full" and env["LESSONS_REHEARSAL"] == "1"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["TORCH_HOME"] == str(root / "torch") and env["HF_HUB_CACHE"] == str(root / "hf" / "hub")
    assert env["HF_HOME"] == str(root / "hf")
    cache = Path(env["LESSONS_CACHE_DIR"])
    assert cache.is_dir() and cache.parent == root and not any(cache.iterdir())
    assert "LESSONS_DATA_DIR" not in env and not any(k.startswith("LESSONS_URL_") for k in env)
    for name in R.ARCHIVES:
        archive = R.mirror_folder(root) / R.mirror_path(name)
        assert env[registry.checksum_env_key(name)] == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
        assert archive.name == registry.SOURCES[name].filename
    assert R.mirror_urls("http://127.0.0.1:8000/") == {
        "LESSONS_URL_CIFAR10": "http://127.0.0.1:8000/www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "LESSONS_URL_HORSE2ZEBRA": "http://127.0.0.1:8000/efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"}
    # A second build gets another fresh course cache.
    again = R.rehearsal_environment(tmp_path / "root", few_photos, hub=False, n_test=10, h2z_n=8, h2z_n_test=2)
    assert again["LESSONS_CACHE_DIR"] != env["LESSONS_CACHE_DIR"]
    assert again["LESSONS_CHECKSUM_CIFAR10"] == env["LESSONS_CHECKSUM_CIFAR10"]


# --------------------------------------------------------------------------- torchvision weights
@pytest.fixture(scope="session")
def weights_cache():
    """Built once and kept between runs: the repository ignores /.cache/."""
    return REPO / ".cache" / "rehearsal"


@pytest.mark.slow
def test_torchvision_and_lpips_load_the_seeded_weights_offline(weights_cache, tmp_path, monkeypatch):
    import torchvision.models as tvm

    from lessons_lib import frechet, metrics
    from lessons_lib.models import vgg

    torch_home = tmp_path / "torch"
    folder = R.seed_torch_cache(torch_home, cache=weights_cache)
    assert folder == torch_home / "hub" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        Path(e.url).name for e in (tvm.VGG19_Weights.IMAGENET1K_V1, tvm.Inception_V3_Weights.IMAGENET1K_V1,
                                   tvm.AlexNet_Weights.IMAGENET1K_V1))
    assert (folder / "vgg19-dcbb9e9d.pth").stat().st_size > 500e6  # the real architecture's size
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    model = tvm.vgg19(weights=tvm.VGG19_Weights.IMAGENET1K_V1)  # strict: every key and shape
    saved = torch.load(folder / "vgg19-dcbb9e9d.pth", weights_only=True)
    assert torch.equal(model.features[0].weight, saved["features.0.weight"])
    assert vgg.vgg19_weights_cached()
    features = vgg.VGGFeatures(["relu1_1"], pretrained=True, verbose=False)
    assert features.pretrained and features(torch.rand(1, 3, 32, 32))["relu1_1"].shape == (1, 64, 32, 32)
    assert frechet.inception_weights_cached()
    frechet.InceptionFeatures(pretrained=True)  # torchvision's inception_v3, loaded strictly
    import lpips

    net = lpips.LPIPS(net="alex", verbose=False)
    alex = torch.load(folder / "alexnet-owt-7be5be79.pth", weights_only=True)
    assert torch.equal(net.net.slice1[0].weight, alex["features.0.weight"])
    score = metrics.LPIPS(net="alex")(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert torch.isfinite(score)
    # A second seeding links the kept files instead of building them again.
    again = R.seed_torch_cache(tmp_path / "torch2", names=("lpips-alex",), cache=weights_cache)
    assert (again / "alexnet-owt-7be5be79.pth").stat().st_size == (folder / "alexnet-owt-7be5be79.pth").stat().st_size
