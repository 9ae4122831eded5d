"""lessons_lib.photos: the student's own photo from a path, URL, upload or array; the panel; downloads."""
from __future__ import annotations

import io
import struct
import sys
import types
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from lessons_lib import photos


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (how a decompression bomb looks)."""
    data = png_bytes(Image.new("RGB", (4, 4), "red"))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return data[:8] + chunk + data[8 + 25:]


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))


def test_path_url_bytes_file_and_array_give_the_same_photo(picture, tmp_path):
    path = tmp_path / "me.png"
    path.write_bytes(png_bytes(picture))
    expected = np.asarray(picture)
    for source in (path, str(path), path.as_uri(), path.read_bytes(), io.BytesIO(path.read_bytes()),
                   expected, torch.from_numpy(expected.copy()).permute(2, 0, 1) / 255.0):
        got = photos.open_photo(source)
        assert got.mode == "RGB" and np.array_equal(np.asarray(got), expected), type(source)


def test_exif_orientation_and_odd_modes(picture):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", exif=exif)
    assert photos.open_photo(buf.getvalue()).size == (30, 50)  # upright: width and height swapped
    sixteen_bit = Image.fromarray(np.asarray(picture.convert("L")).astype(np.uint16) * 257)
    for odd in (picture.convert("RGBA"), picture.convert("P"), picture.convert("L"), sixteen_bit):
        got = photos.open_photo(png_bytes(odd))
        assert got.mode == "RGB" and got.size == (50, 30), odd.mode
    assert photos.open_photo(picture.convert("CMYK")).mode == "RGB"  # PNG cannot hold CMYK


def test_load_photo_scales_to_a_multiple_of_8(picture):
    out = photos.load_photo(picture, max_side=64)
    assert out.size == (64, 32) and out.width % 8 == 0 and out.height % 8 == 0
    assert photos.load_photo(picture.resize((1000, 700)), max_side=512).size == (512, 352)


def test_a_decompression_bomb_and_a_huge_photo_are_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(claiming_size(20000, 20000))
    with pytest.raises(ValueError, match="possible decompression bomb.*Downscale it first"):
        photos.open_photo(bomb)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ValueError) as err:
        photos.open_photo(claiming_size(10000, 10000))
    message = str(err.value)
    assert "10000x10000 pixels (100 megapixels)" in message and "up to 50 megapixels" in message
    assert "reduce(4)" in message


@pytest.mark.parametrize("shape", [(8, 8, 2), (8, 8, 5), (2, 8, 8, 3)])
def test_a_wrong_channel_count_says_what_is_expected(shape):
    with pytest.raises(ValueError, match=r"\(H, W\) gray, \(H, W, 3\) RGB or \(H, W, 4\) RGBA"):
        photos.open_photo(np.zeros(shape, dtype=np.uint8))


def test_missing_empty_and_non_image_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image file at .*upload the file first"):
        photos.open_photo(tmp_path / "nope.jpg")
    (tmp_path / "page.jpg").write_text("<html>not a picture</html>")
    with pytest.raises(ValueError, match="not an image that can be read"):
        photos.open_photo(tmp_path / "page.jpg")
    with pytest.raises(ValueError, match="empty"):
        photos.open_photo(b"")
    with pytest.raises(ConnectionError, match="Could not download the photo at file:.*pass its path"):
        photos.open_photo((tmp_path / "gone.png").as_uri())


def test_the_picker_keeps_the_bundled_photo_until_one_is_chosen(picture, tmp_path):
    picker = photos.PhotoPicker(photos.demo_image("chelsea", 64), max_side=64)
    assert picker.photo.size == (64, 64) and "bundled photo" in picker.status.value
    upload = ({"name": "me.png", "type": "image/png", "content": memoryview(png_bytes(picture))},)
    picker._on_upload({"new": upload})  # what the FileUpload widget calls
    assert picker.name == "me.png" and picker.photo.size == (64, 32) and "me.png" in picker.status.value
    picker._on_upload({"new": ({"name": "x.png", "content": memoryview(b"junk")},)})
    assert picker.name == "me.png" and picker.status.value.startswith("Not used:")  # kept the last photo
    (tmp_path / "other.jpg").write_bytes(png_bytes(picture.resize((80, 80))))
    picker.use(tmp_path / "other.jpg")
    assert picker.name == "other.jpg" and picker.photo.size == (64, 64)


def test_colab_upload_and_download(picture, tmp_path, monkeypatch, capsys):
    downloaded = []
    files = types.SimpleNamespace(upload=lambda: {"phone.png": png_bytes(picture)},
                                  download=lambda path: downloaded.append(path))
    colab = types.ModuleType("google.colab")
    colab.files = files
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    picker = photos.PhotoPicker(photos.demo_image("coffee", 32), max_side=32)
    picker.ask()
    assert picker.name == "phone.png" and picker.photo.size == (32, 16)
    results = [tmp_path / "make-it-red.png", tmp_path / "make-it-snowy.png"]
    for p in results:
        p.write_bytes(png_bytes(picture))
    archive = photos.offer_download(results, name="edits")
    assert downloaded == [str(archive)] and archive.name == "edits.zip"
    assert sorted(zipfile.ZipFile(archive).namelist()) == ["make-it-red.png", "make-it-snowy.png"]
    assert photos.offer_download(results, name="edits").name == "edits-2.zip"  # never overwritten
    monkeypatch.delitem(sys.modules, "google.colab")
    assert photos.offer_download(results) is None
    assert "2 files in" in capsys.readouterr().out


@pytest.mark.parametrize("scale, shift, hint", [(255.0, 0.0, "0..255 pixel values: divide by 255"),
                                                (2.0, -1.0, r"\[-1, 1\] values")])
def test_a_photo_tensor_outside_0_1_is_refused_not_clipped(picture, scale, shift, hint):
    t = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1) / 255.0 * scale + shift
    with pytest.raises(ValueError, match=f"photo tensor.*must lie in \\[0, 1\\].*{hint}"):
        photos.load_photo(t)


@pytest.mark.parametrize("arr, hint", [
    (np.full((8, 8, 3), np.nan), "NaN or infinite values"),
    (np.linspace(-1, 1, 192).reshape(8, 8, 3), r"span \[-1, 1\].*use \(arr \+ 1\) / 2"),
    (np.full((8, 8), 4000, dtype=np.uint16), "16-bit pixels: divide by 257"),
    (np.zeros((8, 8, 3), dtype=bool), "must hold numbers"),
])
def test_a_photo_array_that_is_no_photo_says_why(arr, hint):
    with pytest.raises((ValueError, TypeError), match=hint):
        photos.open_photo(arr)


def test_photo_arrays_in_either_documented_range_give_the_same_photo(picture):
    pixels = np.asarray(picture)
    for arr in (pixels.astype(np.float32) / 255.0, pixels.astype(np.int64), pixels.astype(np.float64)):
        assert np.array_equal(np.asarray(photos.open_photo(arr)), pixels), arr.dtype
