import numpy as np
import pytest
import torch
from helpers import nhwc
from scipy import linalg
from skimage import color
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lessons_lib import data, metrics


def _pairs_random():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 32, 32, generator=g)
    y = (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    y[0] = x[0]                     # identical pair
    y[1] = torch.rand(3, 32, 32, generator=g)  # unrelated pair
    x[2] = 0.5                      # gray (achromatic: the hue terms' special cases)
    return x, y


@pytest.fixture(scope="module")
def real_pairs(cifar_subset):
    x = data.stack(data.ImageFolderDataset(cifar_subset / "train", size=32), limit=40)
    # A plausible "colorization": the gray image, and a desaturated/shifted version.
    gray = x.mean(dim=1, keepdim=True).expand_as(x)
    return torch.cat([x, x]), torch.cat([gray, (0.6 * x + 0.4 * gray + 0.03).clamp(0, 1)])


def _ref_ssim(x, y):
    return np.array([structural_similarity(a, b, channel_axis=-1, data_range=1.0)
                     for a, b in zip(nhwc(x), nhwc(y), strict=True)])


def _ref_de(x, y, fn):
    return np.array([fn(color.rgb2lab(a), color.rgb2lab(b)).mean()
                     for a, b in zip(nhwc(x), nhwc(y), strict=True)])


@pytest.mark.parametrize("source", ["random", "real"])
def test_agree_with_skimage(source, request):
    x, y = _pairs_random() if source == "random" else request.getfixturevalue("real_pairs")
    assert np.abs(metrics.ssim(x, y, reduction="none").numpy() - _ref_ssim(x, y)).max() < 1e-4
    assert np.abs(metrics.delta_e76(x, y, reduction="none").numpy()
                  - _ref_de(x, y, color.deltaE_cie76)).max() < 1e-3
    assert np.abs(metrics.delta_e2000(x, y, reduction="none").numpy()
                  - _ref_de(x, y, color.deltaE_ciede2000)).max() < 1e-3
    ref_psnr = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(nhwc(x), nhwc(y), strict=True)]
    ours = metrics.psnr(x, y, reduction="none").numpy()
    finite = np.isfinite(ref_psnr)
    assert np.allclose(ours[finite], np.array(ref_psnr)[finite], atol=1e-3)
    assert np.array_equal(np.isinf(ours), ~finite)


def test_ciede2000_pixelwise_against_skimage_on_hard_colours():
    # Hues on both sides of 0/360 degrees, neutral colours and large differences.
    g = torch.Generator().manual_seed(3)
    lab1 = torch.stack([torch.rand(2, 9, 9, generator=g) * 100,
                        torch.randn(2, 9, 9, generator=g) * 40,
                        torch.randn(2, 9, 9, generator=g) * 40], dim=1)
    lab2 = lab1 + torch.randn(lab1.shape, generator=g) * 10
    lab1[0, 1:, 0, 0] = 0.0  # exactly achromatic pixel
    ours = metrics.delta_e2000_lab(lab1.double(), lab2.double()).numpy()
    ref = color.deltaE_ciede2000(nhwc(lab1), nhwc(lab2))
    assert np.abs(ours - ref).max() < 1e-6


def test_ciede2000_opposite_and_neutral_hues_against_skimage():
    # Hues exactly 180 degrees apart (the mean-hue rule's tie), in both orders, and
    # achromatic colours on one or both sides.
    pairs = [((50, 10, 0), (50, -10, 0)), ((50, -10, 0), (50, 10, 0)), ((40, 0, 12), (60, 0, -12)),
             ((40, 0, -12), (60, 0, 12)), ((55, 8, 8), (45, -8, -8)), ((55, -8, 8), (45, 8, -8)),
             ((50, 0, 0), (50, 20, -30)), ((50, 20, -30), (50, 0, 0)), ((30, 0, 0), (70, 0, 0)),
             ((50, 0, 0), (50, -20, 0))]
    lab1 = torch.tensor([p[0] for p in pairs], dtype=torch.float64).T.reshape(1, 3, 1, -1)
    lab2 = torch.tensor([p[1] for p in pairs], dtype=torch.float64).T.reshape(1, 3, 1, -1)
    ours = metrics.delta_e2000_lab(lab1, lab2).numpy()
    ref = color.deltaE_ciede2000(nhwc(lab1), nhwc(lab2))
    assert np.abs(ours - ref).max() < 1e-6


def test_reductions_and_identity():
    x = torch.rand(4, 3, 16, 16)
    assert metrics.ssim(x, x, reduction="none").shape == (4,)
    assert torch.allclose(metrics.ssim(x, x), torch.tensor(1.0))
    assert metrics.delta_e2000(x, x) == 0 and metrics.delta_e76(x, x) == 0
    assert torch.isinf(metrics.psnr(x, x))
    assert torch.allclose(metrics.ssim(x, x.flip(0)), metrics.ssim(x, x.flip(0), reduction="none").mean())


def test_bad_metric_inputs():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.ssim(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 8))
    with pytest.raises(ValueError, match="smaller than the 7x7 SSIM window"):
        metrics.ssim(torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5))
    with pytest.raises(ValueError, match="Unknown reduction 'sum'. Choose one of: mean, none"):
        metrics.psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), reduction="sum")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        metrics.delta_e2000(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_colorfulness():
    gray = torch.full((2, 3, 8, 8), 0.4)
    assert torch.allclose(metrics.colorfulness(gray), torch.tensor(0.0))
    # Direct NumPy computation of Hasler and Suesstrunk's formula on a random image.
    x = torch.rand(1, 3, 10, 10)
    r, g, b = (x[0] * 255).double().numpy()
    rg, yb = r - g, 0.5 * (r + g) - b
    expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    assert abs(float(metrics.colorfulness(x)) - expected) < 1e-3
    vivid = torch.zeros(1, 3, 8, 8)
    vivid[:, 0, :, :4] = 1
    vivid[:, 2, :, 4:] = 1
    assert metrics.colorfulness(vivid) > metrics.colorfulness(x)


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = rng.normal(loc=0.5, scale=1.3, size=(150, 8)) @ rng.normal(size=(8, 8)) * 0.5
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert abs(metrics.frechet_distance(a, b) - expected) < 1e-6 * max(1, expected)
    assert metrics.frechet_distance(a, a) < 1e-6
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.frechet_distance(a[:1], b)
    with pytest.raises(ValueError, match="Feature sizes differ"):
        metrics.frechet_distance(a, b[:, :4])


def test_lpips_offline_says_weights_are_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(metrics.LPIPSUnavailable, match="LPIPS alex backbone weights.*offline"):
        metrics.LPIPS("alex")


def test_lpips_wrapper_computes_with_random_backbone():
    lp = metrics.LPIPS("alex", pretrained_backbone=False)
    x = torch.rand(3, 3, 32, 32)
    d = lp(x, x.flip(-1), reduction="none")
    assert d.shape == (3,) and torch.all(d >= 0)
    assert torch.allclose(lp(x, x), torch.tensor(0.0), atol=1e-6)
    with pytest.raises(ValueError, match=r"Unknown LPIPS backbone \(net\) 'resnet'. Choose one of: alex, vgg"):
        metrics.LPIPS("resnet")


def test_both_delta_e_from_one_lab_conversion(monkeypatch):
    from lessons_lib import evaluation

    x, y = _pairs_random()
    both = metrics.delta_e(x, y, reduction="none")
    assert torch.equal(both["delta_e76"], metrics.delta_e76(x, y, reduction="none"))
    assert torch.equal(both["delta_e2000"], metrics.delta_e2000(x, y, reduction="none"))
    calls = []
    real = metrics.rgb_to_lab
    monkeypatch.setattr(metrics, "rgb_to_lab", lambda t: calls.append(len(t)) or real(t))
    scores = evaluation.image_metrics(x, y)
    assert sum(calls) == 2 * len(x)  # each image converted to CIELAB once, for both Delta E
    assert scores["delta_e76"] == pytest.approx(float(both["delta_e76"].mean()))


def test_chunks_in_worker_threads_give_the_same_numbers_and_restore_the_thread_count():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(100, 3, 32, 32, generator=g)  # several chunks
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = metrics.ssim(x, y, reduction="none"), metrics.delta_e(x, y, reduction="none")
        torch.set_num_threads(2)
        pooled = metrics.ssim(x, y, reduction="none"), metrics.delta_e(x, y, reduction="none")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert torch.equal(serial[0], pooled[0])
    assert all(torch.equal(serial[1][k], pooled[1][k]) for k in serial[1])


@pytest.mark.parametrize("win_size", [3, 5, 9, 11])
def test_ssim_window_sizes_against_skimage(win_size):
    g = torch.Generator().manual_seed(win_size)
    x = torch.rand(3, 3, 24, 20, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ref = [structural_similarity(a, b, channel_axis=-1, data_range=1.0, win_size=win_size)
           for a, b in zip(nhwc(x), nhwc(y), strict=True)]
    assert np.abs(metrics.ssim(x, y, win_size=win_size, reduction="none").numpy() - np.array(ref)).max() < 1e-4


def test_compare_gives_the_separate_functions_values_in_one_pass(monkeypatch):
    x, y = _pairs_random()
    x, y = torch.cat([x] * 30), torch.cat([y] * 30)  # several chunks of each kind
    scores = metrics.compare(x, y, reduction="none")
    assert list(scores) == list(metrics.FULL_REFERENCE)
    assert torch.equal(scores["ssim"], metrics.ssim(x, y, reduction="none"))
    assert torch.equal(scores["delta_e2000"], metrics.delta_e2000(x, y, reduction="none"))
    assert torch.equal(scores["delta_e76"], metrics.delta_e76(x, y, reduction="none"))
    assert torch.equal(scores["psnr"], metrics.psnr(x, y, reduction="none"))
    only = metrics.compare(x, y, ["delta_e2000", "ssim"])
    assert list(only) == ["delta_e2000", "ssim"]
    assert only["ssim"] == pytest.approx(float(scores["ssim"].mean()), abs=1e-6)
    calls = []
    real = metrics._scale
    monkeypatch.setattr(metrics, "_scale", lambda t, *a: calls.append(t) or real(t, *a))
    metrics.compare(x, y)
    assert len(calls) == 2  # each batch checked once, not once per metric
    with pytest.raises(ValueError, match="which must name some of"):
        metrics.compare(x, y, ["ssim", "lpips"])
    with pytest.raises(ValueError, match="smaller than the 7x7 SSIM window"):
        metrics.compare(x[:, :, :5, :5], y[:, :, :5, :5])
    assert set(metrics.compare(x[:, :, :5, :5], y[:, :, :5, :5], ["psnr", "delta_e76"])) == {"psnr", "delta_e76"}


def test_hue_weight_polynomial_is_the_ciede2000_cosine_sum():
    h = torch.linspace(0, 360, 721, dtype=torch.float64)
    r = torch.deg2rad
    expected = (1 - 0.17 * torch.cos(r(h - 30)) + 0.24 * torch.cos(r(2 * h))
                + 0.32 * torch.cos(r(3 * h + 6)) - 0.20 * torch.cos(r(4 * h - 63)))
    assert torch.allclose(metrics.hue_weight(torch.cos(r(h)), torch.sin(r(h))), expected, atol=1e-12)


def test_worker_threads_keep_the_order_and_pass_errors_on():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cpu = torch.device("cpu")
        assert metrics._run([lambda i=i: i * i for i in range(50)], cpu) == [i * i for i in range(50)]

        def fail():
            raise RuntimeError("chunk failed")
        for where in (0, 25, 49):  # whichever thread takes it
            calls = [lambda: 1] * 50
            calls[where] = fail
            with pytest.raises(RuntimeError, match="chunk failed"):
                metrics._run(calls, cpu)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_high_frequency_energy_inside_a_region():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    everywhere = torch.ones(2, 1, 16, 16)
    torch.testing.assert_close(metrics.high_frequency_energy(images, everywhere), metrics.high_frequency_energy(images))
    flat_hole = images.clone()
    flat_hole[:, :, 4:12, 4:12] = 0.5                          # a smooth fill in the middle, texture around it
    hole = torch.zeros(2, 1, 16, 16)
    hole[:, :, 4:12, 4:12] = 1                                 # the seam around the fill is not detail
    assert metrics.high_frequency_energy(flat_hole, hole).abs().max() < 1e-12
    assert (metrics.high_frequency_energy(images, hole) > 0.1).all()
    with pytest.raises(ValueError, match=r"where must be \(N, 1, H, W\)"):
        metrics.high_frequency_energy(images, hole[:, :, :8])
