import numpy as np
import pytest
import torch
from helpers import nhwc
from PIL import Image
from skimage import color

from lessons_lib import data, images


@pytest.fixture(scope="module")
def random_rgb():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 24, 20, generator=g)
    x[0, :, :4] = 0.0  # exact black, white and gray corners
    x[0, :, 4:8] = 1.0
    x[1] = 0.5
    return x


def test_rgb_to_lab_matches_skimage_random(random_rgb):
    ref = np.stack([color.rgb2lab(im) for im in nhwc(random_rgb)])
    assert np.abs(nhwc(images.rgb_to_lab(random_rgb)) - ref).max() < 1e-3


def test_rgb_to_lab_matches_skimage_real(cifar_subset):
    x = data.stack(data.ImageFolderDataset(cifar_subset / "train", size=32), limit=64)
    ref = np.stack([color.rgb2lab(im) for im in nhwc(x)])
    assert np.abs(nhwc(images.rgb_to_lab(x)) - ref).max() < 1e-3


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    g = torch.Generator().manual_seed(1)
    lab = torch.stack([torch.rand(4, 16, 16, generator=g) * 100,
                       torch.rand(4, 16, 16, generator=g) * 200 - 100,
                       torch.rand(4, 16, 16, generator=g) * 200 - 100], dim=1)
    with pytest.warns(UserWarning):  # skimage warns about negative Z values it clips
        ref = np.stack([color.lab2rgb(one) for one in nhwc(lab)])
    assert np.abs(nhwc(images.lab_to_rgb(lab)) - ref).max() < 1e-3


def test_rgb_to_lab_has_gradients_that_match_its_values(random_rgb):
    # Under autograd the conversion takes its out-of-place path: the same values (skimage's),
    # and gradients that agree with finite differences, also at black (the knees are clamped).
    x = random_rgb[:2, :, :6, :6].double().requires_grad_()
    assert torch.allclose(images.rgb_to_lab(x), images.rgb_to_lab(x.detach()), atol=1e-9)
    assert torch.autograd.gradcheck(images.rgb_to_lab, (x,))
    black = torch.zeros(1, 3, 2, 2, requires_grad=True)
    images.rgb_to_lab(black).sum().backward()
    assert torch.isfinite(black.grad).all()


def test_lab_round_trip(random_rgb):
    assert torch.allclose(images.lab_to_rgb(images.rgb_to_lab(random_rgb)), random_rgb, atol=1e-4)


def test_lab_accepts_single_image_and_rejects_bad_shape():
    assert images.rgb_to_lab(torch.rand(3, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        images.rgb_to_lab(torch.rand(2, 4, 8, 8))


def test_gray_matches_pil():
    arr = (np.random.default_rng(0).random((10, 12, 3)) * 255).astype(np.uint8)
    pil_gray = np.asarray(Image.fromarray(arr).convert("L"), dtype=np.float64) / 255
    ours = images.rgb_to_gray(images.pil_to_tensor(Image.fromarray(arr)).unsqueeze(0))[0, 0].numpy()
    assert np.abs(ours - pil_gray).max() <= 1 / 255 + 1e-6
    assert images.rgb_to_gray(torch.rand(2, 3, 4, 4), keep_channels=True).shape == (2, 3, 4, 4)


def test_tensor_pil_round_trip_and_ranges():
    arr = (np.random.default_rng(0).random((9, 7, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    t = images.pil_to_tensor(img)
    assert t.shape == (3, 9, 7) and 0 <= t.min() and t.max() <= 1
    assert np.array_equal(np.asarray(images.tensor_to_pil(t)), arr)
    s = images.pil_to_tensor(img, value_range=(-1, 1))
    assert s.min() >= -1 and torch.allclose(images.to_unit(s), t, atol=1e-6)
    assert torch.allclose(images.to_signed(t), s, atol=1e-6)
    assert np.array_equal(np.asarray(images.tensor_to_pil(s, value_range=(-1, 1))), arr)
    assert images.tensor_to_pil(torch.rand(1, 5, 5)).mode == "L"
    with pytest.raises(ValueError, match="Cannot make an image"):
        images.tensor_to_pil(torch.rand(2, 5, 5))


def test_pils_to_batch_rejects_mixed_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        images.pils_to_batch([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))])
    with pytest.raises(ValueError, match="No images"):
        images.pils_to_batch([])


# ----------------------------------------------------------------- modes and EXIF
def test_modes_are_normalised(tmp_path):
    rgba = Image.new("RGBA", (6, 4), (255, 0, 0, 0))  # fully transparent red -> white background
    assert images.normalize_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 255))
    assert images.normalize_image(half).getpixel((0, 0)) == (0, 0, 0)
    pal = Image.new("P", (3, 3))
    pal.putpalette([10, 20, 30] * 256)
    assert images.normalize_image(pal).getpixel((1, 1)) == (10, 20, 30)
    assert images.normalize_image(Image.new("L", (2, 2), 77)).getpixel((0, 0)) == (77, 77, 77)
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    assert images.normalize_image(cmyk).getpixel((0, 0)) == (255, 0, 0)
    assert images.normalize_image(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)
    f = Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32), mode="F")
    assert images.normalize_image(f).getpixel((0, 0)) == (128, 128, 128)


def test_16bit_png(tmp_path):
    arr = np.array([[0, 65535], [32896, 257 * 10]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    img = images.load_image(path)
    assert img.mode == "RGB"
    assert [img.getpixel((x, y))[0] for y in range(2) for x in range(2)] == [0, 255, 128, 10]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=100)
    out = images.load_image(path)
    assert out.size == (2, 4)


def test_bad_image_inputs_have_clear_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image file at"):
        images.load_image(tmp_path / "missing.png")
    fake = tmp_path / "page.jpg"
    fake.write_text("<html>not a picture</html>")
    with pytest.raises(ValueError, match="is not an image that can be read"):
        images.load_image(fake)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        images.load_image(tmp_path)
    broken = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    broken.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ValueError, match="damaged|not an image"):
        images.load_image(broken)
    with pytest.raises(TypeError, match="Expected a PIL image"):
        images.normalize_image(np.zeros((2, 2)))


def test_resize_to_multiple():
    img = Image.new("RGB", (300, 200))
    out = images.resize_to_multiple(img, 8, max_side=512)
    assert out.size == (512, 336)  # 512 x 341.3 -> height rounded down to a multiple of 8
    assert images.resize_to_multiple(Image.new("RGB", (17, 23)), 8, max_side=None).size == (16, 16)
    with pytest.raises(ValueError, match="smaller than 8 pixels"):
        images.resize_to_multiple(Image.new("RGB", (5, 40)), 8, max_side=None)
    rgba = Image.new("RGBA", (64, 64))
    assert images.resize_to_multiple(rgba).mode == "RGB"


def test_chroma_round_trip_and_pil_ycbcr():
    import numpy as np
    from PIL import Image

    from lessons_lib.images import luma_chroma_to_rgb, rgb_to_chroma, rgb_to_gray

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for batch in (x, x * 2 - 1):  # the same formulas in [0, 1] and in [-1, 1]
        back = luma_chroma_to_rgb(rgb_to_gray(batch), rgb_to_chroma(batch))
        assert (back - batch).abs().max() < 1e-5
    gray = rgb_to_gray(x, keep_channels=True)
    assert rgb_to_chroma(gray).abs().max() < 1e-6          # a gray picture has no chroma
    # PIL's JPEG YCbCr: Cb, Cr = 128 + 255 x our chroma (to its uint8 rounding).
    img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    ycbcr = torch.from_numpy(np.asarray(img.convert("YCbCr"), dtype=np.float32)).permute(2, 0, 1) / 255
    ours = rgb_to_chroma(torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None] / 255)[0]
    assert (ours + 128 / 255 - ycbcr[1:]).abs().max() <= 1.5 / 255
    with pytest.raises(ValueError, match="chroma"):
        luma_chroma_to_rgb(torch.rand(1, 1, 4, 4), torch.rand(1, 3, 4, 4))
