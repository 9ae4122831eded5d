import pytest
import torch
from PIL import Image

from lessons_lib import data, registry


def _write_images(folder, n, size=(40, 30), sub=None):
    target = folder / sub if sub else folder
    target.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (i * 20 % 256, 100, 200)).save(target / f"{i}.png")


def test_flat_and_imagefolder_layouts(tmp_path):
    _write_images(tmp_path / "flat", 3)
    ds = data.ImageFolderDataset(tmp_path / "flat", size=16)
    assert len(ds) == 3 and ds[0].shape == (3, 16, 16) and ds.classes == []
    _write_images(tmp_path / "tree", 2, sub="cats")
    _write_images(tmp_path / "tree", 2, sub="dogs")
    tree = data.ImageFolderDataset(tmp_path / "tree", size=8)
    assert len(tree) == 4 and tree.classes == ["cats", "dogs"] and tree.label(3) == 1
    assert 0.0 <= float(tree[0].min()) and float(tree[0].max()) <= 1.0


def test_real_subset_loads(cifar_subset):
    ds = data.ImageFolderDataset(cifar_subset / "train", size=32)
    assert len(ds) == 4660 and len(ds.classes) == 10 and ds[0].shape == (3, 32, 32)


def test_colour_images_fast_profile_uses_real_subset(cifar_subset, monkeypatch):
    monkeypatch.setenv("LESSONS_DATA_DIR", str(cifar_subset.parent))
    train = data.colour_images("train", profile="fast")
    test = data.colour_images("test", profile="fast")
    assert len(train) + len(test) == 4660 and len(test) == 466
    assert set(train.indices).isdisjoint(test.indices)
    assert len(data.colour_images("train", profile="fast", limit=50)) == 50


def test_colour_images_fast_profile_offline_fallback(monkeypatch):
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)
    ds = data.colour_images("train", size=24, profile="fast", limit=20)
    assert len(ds) == 20 and ds[0].shape == (3, 24, 24)
    photos = data.sample_photos(8, 16, seed=1)
    assert torch.equal(photos, data.sample_photos(8, 16, seed=1))
    assert photos.std() > 0.05  # real photo content, not a flat fill


def test_colorization_pairs():
    pairs = data.ColorizationPairs(data.TensorImages(torch.rand(4, 3, 8, 8)))
    gray, colour = pairs[0]
    assert gray.shape == (1, 8, 8) and colour.shape == (3, 8, 8)
    assert gray.min() >= -1 and gray.max() <= 1 and colour.min() >= -1


def test_split_and_loader_are_seeded():
    ds = data.TensorImages(torch.rand(20, 3, 4, 4))
    a_train, a_val = data.split(ds, 0.25, seed=5)
    b_train, b_val = data.split(ds, 0.25, seed=5)
    assert a_val.indices == b_val.indices and len(a_val) == 5 and len(a_train) == 15
    first = [b for b in data.make_loader(ds, 4, seed=1)][0]
    again = [b for b in data.make_loader(ds, 4, seed=1)][0]
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.5"):
        data.split(ds, 1.5)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        data.make_loader(ds, 0)


def test_missing_empty_and_non_image_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images found .* It is empty"):
        data.ImageFolderDataset(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="It holds other files \\(notes.txt"):
        data.ImageFolderDataset(tmp_path / "docs")
    (tmp_path / "file.png").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        data.ImageFolderDataset(tmp_path / "file.png")
    mixed = tmp_path / "mixed"
    _write_images(mixed, 1)
    (mixed / "fake.jpg").write_text("<html>")
    ds = data.ImageFolderDataset(mixed)
    with pytest.raises(ValueError, match="fake.jpg' is not an image"):
        [ds[i] for i in range(len(ds))]


def test_data_dir_env_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="LESSONS_DATA_DIR=.* is not a folder"):
        data.data_root()


def test_cifar10_offline_is_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)
    with pytest.raises(registry.DownloadUnavailable, match="Could not get CIFAR-10.*LESSONS_PROFILE=fast"):
        data.cifar10(download=False)


def test_cifar10_download_failure_is_a_clear_message(monkeypatch, tmp_path):
    import urllib.request

    def no_network(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(registry.DownloadUnavailable, match="(?s)name resolution.*enable internet"):
        data.cifar10(download=True)
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == []  # nothing half-made left


def test_cifar10_reads_a_local_copy(tmp_path, monkeypatch):
    # A tiny file in CIFAR-10's own pickle format: the real loading path, offline.
    import pickle

    import numpy as np

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": np.random.default_rng(0).integers(0, 255, (4, 3072), dtype=np.uint8),
             "labels": [0, 1, 2, 3]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    ds = data.cifar10(train=False, root=tmp_path, download=False)
    assert len(ds) == 4 and ds[0].shape == (3, 32, 32)
    assert torch.allclose(ds[0][0, 0, 0] * 255, torch.tensor(float(batch["data"][0, 0])), atol=1e-4)


def test_corrupted_local_cifar10_says_so(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(ValueError, match="(?s)damaged or incomplete.*Delete that folder"):
        data.cifar10(root=tmp_path, download=False)
