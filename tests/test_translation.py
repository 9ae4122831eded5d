"""lessons_lib.translation and its networks: pix2pix, CycleGAN, losses, pool, data."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.feature import canny

from lessons_lib import registry, scenes, training
from lessons_lib import translation as tr
from lessons_lib.data import TensorImages, make_loader, sample_photos
from lessons_lib.images import rgb_to_gray
from lessons_lib.models.cyclegan import ResnetGenerator
from lessons_lib.models.pix2pix import PatchDiscriminator, UNetGenerator


# --------------------------------------------------------------------------- losses by hand
def test_lsgan_loss_by_hand():
    pred = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    # real: ((0.5-1)^2 + (-1-1)^2 + (2-1)^2 + (0-1)^2) / 4 = (0.25 + 4 + 1 + 1) / 4
    assert math.isclose(float(tr.lsgan_loss(pred, True)), 6.25 / 4)
    # fake: (0.25 + 1 + 4 + 0) / 4
    assert math.isclose(float(tr.lsgan_loss(pred, False)), 5.25 / 4)
    assert math.isclose(float(tr.discriminator_loss(pred, pred)), 0.5 * (6.25 + 5.25) / 4)


def test_vanilla_gan_and_pix2pix_losses_by_hand():
    logits = torch.tensor([0.0, 2.0])
    real = (-math.log(0.5) - math.log(1 / (1 + math.exp(-2.0)))) / 2
    fake = (-math.log(0.5) - math.log(1 - 1 / (1 + math.exp(-2.0)))) / 2
    assert math.isclose(float(tr.gan_loss(logits, True, "vanilla")), real, rel_tol=1e-6)
    assert math.isclose(float(tr.gan_loss(logits, False, "vanilla")), fake, rel_tol=1e-6)
    fake_img, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]]])
    parts = tr.pix2pix_generator_loss(logits, fake_img, target)
    assert math.isclose(float(parts["l1"]), 0.5)                      # (0.5 + 0.5 + 1 + 0) / 4
    assert math.isclose(float(parts["loss"]), real + 100 * 0.5, rel_tol=1e-6)
    with pytest.raises(ValueError, match="'lsgan' or 'vanilla'"):
        tr.gan_loss(logits, True, "wgan")


def test_cycle_and_identity_losses_by_hand():
    real = torch.tensor([0.0, 1.0, 2.0, 3.0])
    rec = torch.tensor([1.0, 1.0, 1.0, 1.0])
    # mean |real - rec| = (1 + 0 + 1 + 2) / 4 = 1; lambda 10
    assert float(tr.cycle_loss(real, rec)) == 10.0
    # identity: 0.5 x lambda x L1 = 5
    assert float(tr.identity_loss(real, rec)) == 5.0
    assert float(tr.cycle_loss(real, rec, lambda_cycle=2.0)) == 2.0
    assert float(tr.identity_loss(real, rec, lambda_cycle=2.0, lambda_identity=0.25)) == 0.5


# --------------------------------------------------------------------------- image pool
def test_image_pool_fills_then_swaps_half_the_time():
    pool = tr.ImagePool(50, seed=0)
    first = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1).expand(50, 3, 2, 2)
    out = pool.query(first[:30])
    torch.testing.assert_close(out, first[:30])         # while filling: the images themselves
    out = pool.query(first[30:])
    torch.testing.assert_close(out, first[30:])
    assert len(pool) == 50
    swaps, n = 0, 1000
    for k in range(n):
        new = torch.full((1, 3, 2, 2), 1000.0 + k)
        before = set(torch.stack(pool.images)[:, 0, 0, 0].tolist())
        got = pool.query(new)
        value = float(got[0, 0, 0, 0])
        after = set(torch.stack(pool.images)[:, 0, 0, 0].tolist())
        assert len(pool) == 50
        if value == 1000.0 + k:                           # returned as is: pool unchanged
            assert after == before
        else:                                             # an older image came back and left the pool
            swaps += 1
            assert value in before and value not in after and 1000.0 + k in after
    assert 0.45 < swaps / n < 0.55


def test_image_pool_is_seeded_off_and_resumable():
    batches = [torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(30)]
    a, b = tr.ImagePool(5, seed=3), tr.ImagePool(5, seed=3)
    outs_a = [a.query(x) for x in batches[:20]]
    state = a.state_dict()
    for x, y in zip(outs_a, [b.query(x) for x in batches[:20]], strict=True):
        torch.testing.assert_close(x, y)
    c = tr.ImagePool(5, seed=99)
    c.load_state_dict(state)
    for x in batches[20:]:
        torch.testing.assert_close(a.query(x), c.query(x))
    off = tr.ImagePool(0)
    assert off.query(batches[0]) is batches[0] and len(off) == 0
    with pytest.raises(ValueError, match="pool_size"):
        tr.ImagePool(-1)


def test_linear_decay_schedule():
    decay = tr.LinearDecay(n_epochs=3, n_epochs_decay=3)
    assert [decay(e) for e in range(7)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = tr.linear_decay_scheduler(opt, 2, 1)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.2, 0.2, 0.1])


# --------------------------------------------------------------------------- networks
def test_networks_shapes_and_patchgan_grid():
    g = UNetGenerator(1, 3, num_downs=5, ngf=8)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="divisible by 32"):
        g(torch.rand(1, 1, 48, 40))
    # The 70x70 PatchGAN on 256 px gives a 30x30 grid of logits, as in the paper's code.
    d = PatchDiscriminator(6, ndf=4, n_layers=3)
    assert d(torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    with pytest.raises(ValueError, match="expects"):
        d(torch.rand(1, 3, 64, 64))
    r = ResnetGenerator(3, 3, ngf=8, n_blocks=2)
    assert r(torch.rand(2, 3, 24, 24)).shape == (2, 3, 24, 24)


def test_resnet_generator_colour_path_sees_absolute_colour():
    # Instance norm after the first layer removes each image's mean colour from every feature, so
    # the paper's network gives the same output for a photo and the photo with a colour cast.
    # The 1x1 colour path sees the cast.
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 8, 8) - 0.5
    cast = photo + torch.tensor([0.4, 0.0, -0.4]).view(1, 3, 1, 1)
    plain = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(photo), plain(cast), atol=1e-4, rtol=0)
        coloured = ResnetGenerator(3, 3, ngf=4, n_blocks=1, colour_path=True).eval()
        # It starts at zero: before training, the paper's network (clamped).
        torch.testing.assert_close(coloured(cast), coloured.net(cast).clamp(-1, 1))
        coloured.colour.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        assert (coloured(photo) - coloured(cast)).abs().max() > 0.05
        assert coloured(cast).abs().max() <= 1
        # It is the sum of the network and the 1x1 map, clamped to [-1, 1].
        torch.testing.assert_close(coloured(cast), (coloured.net(cast) + coloured.colour(cast)).clamp(-1, 1))


def test_unet_skips_carry_the_input():
    # Cutting a skip (zeroing the outermost encoder level) changes the output: the skips are used.
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, num_downs=3, ngf=4, norm="instance").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        full = g(x)
        g.down[0][0].weight.zero_()
        assert not torch.allclose(full, g(x))


# --------------------------------------------------------------------------- data
def test_edge_pairs_use_skimage_canny():
    photos = sample_photos(4, 32, seed=1)
    pairs = tr.EdgePairs(photos, sigma=1.0)
    edges, photo = pairs[2]
    assert edges.shape == (1, 32, 32) and photo.shape == (3, 32, 32)
    gray = rgb_to_gray(photos[2:3])[0, 0].numpy().astype(np.float64)
    expected = canny(gray, sigma=1.0)
    assert expected.any()
    # black (-1) edges on white (+1)
    np.testing.assert_array_equal(edges[0].numpy() == -1.0, expected)
    torch.testing.assert_close(photo, photos[2] * 2 - 1)
    with pytest.raises(ValueError, match="RGB"):
        tr.canny_edges(torch.rand(1, 1, 8, 8))


def test_hue_rotation():
    x = torch.rand(2, 3, 8, 8) * 0.5 + 0.25
    torch.testing.assert_close(tr.hue_rotate(x, 0), x)
    torch.testing.assert_close(tr.hue_rotate(x, 360), x, atol=1e-5, rtol=0)
    gray = torch.full((1, 3, 2, 2), 0.4)
    torch.testing.assert_close(tr.hue_rotate(gray, 150), gray, atol=1e-5, rtol=0)   # grays stay gray
    # luminance is kept (the 0.213/0.715/0.072 weights) for colours that stay in gamut
    y = tr.hue_rotate(x, 30)
    w = torch.tensor([0.213, 0.715, 0.072]).view(1, 3, 1, 1)
    torch.testing.assert_close((y * w).sum(1), (x * w).sum(1), atol=1e-3, rtol=0)
    red = torch.tensor([1.0, 0.1, 0.1]).view(1, 3, 1, 1)
    assert (tr.hue_rotate(red, 120) - red).abs().max() > 0.3


def test_offline_domains_are_unpaired(monkeypatch):
    monkeypatch.delenv("LESSONS_DATA_DIR", raising=False)   # skimage crops: no dependence on CIFAR
    a, b = tr.offline_domains(n=8, size=16, degrees=150)
    assert len(a) == len(b) == 8
    ds = tr.UnpairedImages(a, b)
    x, y = ds[3]
    assert x.shape == y.shape == (3, 16, 16) and x.min() >= -1 and y.max() <= 1
    photos = torch.stack([a[i] for i in range(len(a))])
    # B is made from other photos: no B image is the hue-rotated version of an A image.
    rotated_a = tr.hue_rotate(photos, 150)
    for i in range(len(b)):
        assert min(float((b[i] - r).abs().mean()) for r in rotated_a) > 1e-3


def test_offline_domains_hold_the_same_kind_of_photo(cifar_subset):
    # The subset comes ordered by class: halving it in that order gave A airplanes to deer and B
    # dogs to trucks. Shuffled first, the two domains differ in hue only, so their colours match
    # once A is turned by the domains' angle, and much less at other angles.
    a, b = tr.offline_domains(n=500, size=16, degrees=150)
    a, b = (torch.stack([d[i] for i in range(len(d))]) for d in (a, b))
    distance = {angle: tr.colour_distance(tr.hue_rotate(a, angle), b) for angle in range(0, 360, 30)}
    assert min(distance, key=distance.get) == 150, distance
    assert distance[150] < 0.25 * distance[0], distance


def test_colour_distance_against_scipy():
    from scipy.stats import wasserstein_distance

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 4, 5, generator=g), torch.rand(3, 3, 4, 5, generator=g) ** 2
    # One direction: the 1-D Wasserstein distance of the projected pixels, as scipy computes it.
    d = torch.nn.functional.normalize(torch.randn(3, 1, generator=torch.Generator().manual_seed(0)), dim=0)
    px, py = (t.movedim(1, -1).reshape(-1, 3) @ d for t in (x, y))
    assert tr.colour_distance(x, y, directions=1) == pytest.approx(
        wasserstein_distance(px.flatten().numpy(), py.flatten().numpy()), rel=1e-5)
    # Where the pixels are does not matter; which colours they have does.
    shuffled = x.flatten(2)[:, :, torch.randperm(20, generator=g)].reshape(x.shape).flip(0)
    assert tr.colour_distance(x, shuffled) == pytest.approx(0.0, abs=1e-7)
    assert tr.colour_distance(x, y) > 0.05
    # Sets of different sizes compare through their quantiles.
    assert tr.colour_distance(x, torch.cat([x, x])) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="same channels"):
        tr.colour_distance(x, y[:, :1])


def test_unpaired_folders_with_no_images(tmp_path):
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "trainA" / "x.png")
    (tmp_path / "trainB" / "notes.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match=r"Domain B folder .*trainB' has no images.*trainA/ and trainB/"):
        tr.unpaired_folders(tmp_path / "trainA", tmp_path / "trainB")
    with pytest.raises(FileNotFoundError, match="Domain B"):
        tr.unpaired_folders(tmp_path / "trainA", tmp_path / "missing")
    Image.new("L", (30, 24), 128).save(tmp_path / "trainB" / "y.png")
    a, b = tr.unpaired_folders(tmp_path / "trainA", tmp_path / "trainB", size=16)
    assert a[0].shape == b[0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="Domain A has no images"):
        tr.UnpairedImages(TensorImages(torch.empty(0, 3, 4, 4)), b)


def test_horse2zebra_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path))
    with pytest.raises(registry.DownloadUnavailable, match="downloading is switched off.*LESSONS_PROFILE=fast"):
        tr.horse2zebra(download=False)
    # With the folders in the cache it reads them and downloads nothing.
    for split in ("trainA", "trainB"):
        (tmp_path / "datasets" / "horse2zebra" / split).mkdir(parents=True)
        folder = tmp_path / "datasets" / "horse2zebra" / split
        Image.new("RGB", (40, 40), (120, 80, 40)).save(folder / "1.jpg")
    a, b = tr.horse2zebra(size=32)
    assert len(a) == len(b) == 1 and a[0].shape == (3, 32, 32)


# --------------------------------------------------------------------------- training
def test_pix2pix_losses_fall():
    torch.manual_seed(0)
    pairs = tr.EdgePairs(sample_photos(24, 32, seed=0))
    task = tr.Pix2PixTask(UNetGenerator(1, 3, num_downs=5, ngf=8), PatchDiscriminator(4, ndf=8, n_layers=2))
    history = training.fit(task, make_loader(pairs, 8, seed=0), epochs=4, progress=False)
    assert history["train_l1"][-1] < history["train_l1"][0]
    assert history["train_g_loss"][-1] < history["train_g_loss"][0]


def _cyclegan(seed=0):
    torch.manual_seed(seed)
    return tr.CycleGANTask(ResnetGenerator(ngf=4, n_blocks=1), ResnetGenerator(ngf=4, n_blocks=1),
                           PatchDiscriminator(3, ndf=4, n_layers=2, norm="instance"),
                           PatchDiscriminator(3, ndf=4, n_layers=2, norm="instance"),
                           lr=1e-3, pool_size=6, n_epochs=2, n_epochs_decay=2)


def test_luminance_loss_keeps_light_not_colour():
    photos = sample_photos(6, 16, seed=4)
    x = photos * 2 - 1
    turned = tr.hue_rotate(photos, 150) * 2 - 1
    # A hue rotation keeps the BT.709 luma (up to clipping at 0 and 1); an inversion does not.
    # (The rotation's loss is its clipping at 0 and 1: over ten times smaller than the colours' change.)
    assert float(tr.luminance_loss(x, turned, 5.0)) < 0.1 * 5.0 * float((turned - x).abs().mean())
    assert float(tr.luminance_loss(x, -x, 5.0)) > 1.0
    assert float(tr.luminance_loss(x, x, 5.0)) == 0.0
    # By hand: a pure red pixel against black, weight 2: 2 x 0.2126 x (1 - (-1)) / 1 pixel.
    red, black = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1), -torch.ones(1, 3, 1, 1)
    assert float(tr.luminance_loss(black, red, 2.0)) == pytest.approx(2 * 0.2126 * 2)
    task = tr.CycleGANTask(*(ResnetGenerator(3, 3, 8, 1) for _ in range(2)),
                           *(PatchDiscriminator(3, ndf=8, n_layers=1) for _ in range(2)), lambda_luminance=5.0)
    batch = (x[:2], turned[2:4])
    losses = task.generator_losses(batch, task.generate(batch))
    assert {"lum_ab", "lum_ba"} <= set(losses)
    with pytest.raises(ValueError, match="lambda_luminance"):
        tr.CycleGANTask(*(ResnetGenerator(3, 3, 8, 1) for _ in range(2)),
                        *(PatchDiscriminator(3, ndf=8, n_layers=1) for _ in range(2)), lambda_luminance=-1)


def test_cyclegan_losses_fall_and_resume_exactly(tmp_path):
    photos = sample_photos(16, 16, seed=2)
    ds = tr.UnpairedImages(TensorImages(photos[:8]), TensorImages(tr.hue_rotate(photos[8:], 150)))

    straight = _cyclegan()
    h = training.fit(straight, make_loader(ds, 4, seed=0), epochs=3, progress=False)
    cycle = [a + b for a, b in zip(h["train_cycle_a"], h["train_cycle_b"], strict=True)]
    assert cycle[-1] < cycle[0] and h["train_g_loss"][-1] < h["train_g_loss"][0]
    # The learning rate decayed linearly over the last epochs.
    assert straight.optimizers["generators"].param_groups[0]["lr"] == pytest.approx(1e-3 / 3)

    # Interrupted after 2 epochs, resumed from the checkpoint: the same result, pool included.
    first = _cyclegan()
    training.fit(first, make_loader(ds, 4, seed=0), epochs=2, ckpt_dir=tmp_path, progress=False)
    assert len(first.pool_a) == 6
    resumed = _cyclegan(seed=123)                 # different initial weights: all must come from the file
    h2 = training.fit(resumed, make_loader(ds, 4, seed=0), epochs=3, ckpt_dir=tmp_path, progress=False)
    assert h2["train_g_loss"] == pytest.approx(h["train_g_loss"], rel=1e-5)
    for name in ("g_ab", "d_b"):
        for p, q in zip(straight.models[name].parameters(), resumed.models[name].parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.stack(straight.pool_b.images), torch.stack(resumed.pool_b.images))
    with pytest.raises(ValueError, match="exactly one"):
        resumed.translate()


# --------------------------------------------------------------------------- notebook 7 shows the code
def test_notebook_definitions_equal_the_library():
    from notebook_code import notebook_functions

    nb = notebook_functions("07_pix2pix_cyclegan.ipynb", ["lsgan_loss", "cycle_loss", "identity_loss"])
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 1, 6, 6, generator=gen)
    for real in (True, False):
        torch.testing.assert_close(nb["lsgan_loss"](pred, real), tr.lsgan_loss(pred, real))
    x, y = torch.rand(2, 3, 8, 8, generator=gen) * 2 - 1, torch.rand(2, 3, 8, 8, generator=gen) * 2 - 1
    torch.testing.assert_close(nb["cycle_loss"](x, y), tr.cycle_loss(x, y))
    torch.testing.assert_close(nb["cycle_loss"](x, y, 3.0), tr.cycle_loss(x, y, 3.0))
    torch.testing.assert_close(nb["identity_loss"](x, y), tr.identity_loss(x, y))
    torch.testing.assert_close(nb["identity_loss"](x, y, 4.0, 0.25), tr.identity_loss(x, y, 4.0, 0.25))


# --------------------------------------------------------------------------- measures and course weights
def test_scores_against_their_baselines():
    photos = sample_photos(6, 32, seed=2)
    identity = torch.nn.Identity()
    identity.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))  # gives the scorer a device
    s = tr.cyclegan_scores(identity, photos)
    assert s["CycleGAN A->B"] == pytest.approx(s["identity"], rel=1e-5) and s["identity"] > 0.01
    exact = ResnetGenerator(3, 3, 4, 1)
    exact.forward = lambda x: tr.hue_rotate((x + 1) / 2, tr.HUE_DEGREES) * 2 - 1
    assert tr.cyclegan_scores(exact, photos)["CycleGAN A->B"] < 1e-6
    # pix2pix: a generator that returns the target exactly has no error and the target's fine detail.
    labels, targets = scenes.scene_pairs(6, 32, "test")
    truth = torch.nn.Conv2d(3, 3, 1)
    truth.forward = lambda x: targets * 2 - 1
    s = tr.pix2pix_scores(truth, labels, targets)
    assert s["error"] < 1e-6 and s["sharpness"] == pytest.approx(1.0, rel=1e-5)
    median = targets.median(dim=0).values
    m = tr.picture_scores(median, targets)
    assert m["error"] == pytest.approx(float((median - targets).abs().mean()), rel=1e-5)
    per_image = (median - targets).abs().mean(dim=(1, 2, 3))
    assert m["error_se"] == pytest.approx(float(per_image.std() / math.sqrt(6)), rel=1e-5)
    assert torch.allclose(m["error_values"], per_image) and m["sharpness_values"].shape == (6,)
    assert float(m["sharpness_values"].mean()) == pytest.approx(m["sharpness"], rel=1e-5)


@pytest.fixture(scope="module")
def held_out(cifar_subset):
    from lessons_lib import data

    return tuple(data.stack(data.colour_images(split, profile="fast")) for split in ("test", "train"))


def test_course_pix2pix_follows_the_label_map_and_the_gan_adds_detail():
    labels, targets = scenes.scene_pairs(96, 64, "test")
    median = tr.picture_scores(scenes.scene_pairs(256, 64, "train")[1].median(dim=0).values, targets)
    scores = {}
    for which in ("l1", "gan"):
        generator, info = tr.course_pix2pix(which)
        scores[which] = tr.pix2pix_scores(generator, labels, targets)
        # What notebook 7 claims: both at least 20 % below the edge-blind median scene, by more than the spread.
        assert scores[which]["error"] + 2 * scores[which]["error_se"] <= 0.8 * median["error"], (which, scores, median)
        assert info["config"]["size"] == 64 and (info["config"]["discriminator"] is None) == (which == "l1")
    assert scores["l1"]["sharpness"] < 0.5
    assert abs(1 - scores["gan"]["sharpness"]) < abs(1 - scores["l1"]["sharpness"]), scores
    with pytest.raises(ValueError, match="'gan'"):
        tr.course_pix2pix("edges")


def test_pix2pix_on_l1_alone_has_no_discriminator():
    torch.manual_seed(0)
    labels, targets = scenes.scene_pairs(16, 32, "train")
    task = tr.Pix2PixTask(UNetGenerator(3, 3, num_downs=3, ngf=8), None)
    assert set(task.models) == {"generator"} and set(task.optimizers) == {"generator"}
    history = training.fit(task, make_loader(scenes.ScenePairs(labels, targets), 8, seed=0), epochs=3, progress=False,
                           val_loader=make_loader(scenes.ScenePairs(labels, targets), 16, shuffle=False))
    assert history["train_l1"][-1] < history["train_l1"][0] and history["train_g_gan"] == [0.0] * 3
    # Logged in [0, 1] units, like the tables: half the network's [-1, 1] difference.
    g = task.models["generator"].eval()
    with torch.no_grad():
        unit = float(((g(labels * 2 - 1) + 1) / 2 - targets).abs().mean())
    assert history["val_l1"][-1] == pytest.approx(unit, rel=1e-4)


def test_course_cyclegan_beats_identity_on_the_exact_hue_map(held_out):
    test, _ = held_out
    g_ab, g_ba, info = tr.course_cyclegan()
    scores = tr.cyclegan_scores(g_ab, test)
    assert scores["CycleGAN A->B"] < scores["identity"], scores
    assert info["metrics"]["model"] == pytest.approx(scores["CycleGAN A->B"], abs=1e-3)
    # B -> A undoes it: the reconstruction comes back closer to the photo than the B image is.
    with torch.no_grad():
        b = tr.hue_rotate(test[:64], tr.HUE_DEGREES)
        back = (g_ba(b * 2 - 1).clamp(-1, 1) + 1) / 2
    assert (back - test[:64]).abs().mean() < (b - test[:64]).abs().mean()


def test_unpaired_scores_rank_a_map_toward_b_above_the_identity():
    photos = torch.rand(24, 3, 16, 16) * 0.5  # dark photos; B is the same kind of photo made light
    domain_a, domain_b = photos[:12], photos[12:] + 0.5

    class Lighten(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):  # [-1, 1] in and out, as the generators: +0.5 in [0, 1] is +1 here
            return (x + 1.0).clamp(-1, 1)

    scores = tr.unpaired_scores(Lighten(), domain_a, domain_b, batch=5)
    assert scores["CycleGAN A->B"] < 0.1 * scores["identity"]
    assert scores["identity"] == pytest.approx(tr.colour_distance(domain_a, domain_b))


def test_unpaired_domains_have_a_held_out_split(monkeypatch):
    a, b = tr.unpaired_domains("hue", size=16, n=8, split="test")
    train_a, _ = tr.unpaired_domains("hue", size=16, n=8)
    assert len(a) == len(b) == 8 and not torch.equal(a[0], train_a[0])
    assert tr.unpaired_domains("hue", n=2)[0][0].shape[-1] == tr.CYCLEGAN_RECIPES["hue"].size   # the recipe's size
    with pytest.raises(ValueError, match="Unknown split 'val'. Choose one of: train, test"):
        tr.unpaired_domains(split="val")
    with pytest.raises(ValueError, match="Unknown unpaired domains 'horses'.*horse2zebra"):
        tr.unpaired_domains("horses")


def test_the_cyclegan_recipe_follows_the_data():
    # One recipe per domain pair, whatever the profile: the hue recipe is the course weights' own.
    assert set(tr.CYCLEGAN_RECIPES) == set(tr.DOMAINS)
    from lessons_lib import course_weights

    hue, info = tr.CYCLEGAN_RECIPES["hue"], course_weights.entry("translation/cyclegan")
    g = hue.generator()
    assert {"in_channels": 3, "out_channels": 3, "ngf": hue.ngf, "n_blocks": hue.blocks,
            "colour_path": hue.colour_path} == info["config"]["generator"]
    assert (hue.lambda_identity, hue.lambda_luminance) == (info["config"]["lambda_identity"],
                                                           info["config"]["lambda_luminance"])
    assert hue.exact_hue == info["config"]["hue_degrees"] == tr.HUE_DEGREES
    assert sum(p.numel() for p in g.parameters()) == sum(p.numel() for p in tr.course_cyclegan()[0].parameters())
    h2z = tr.CYCLEGAN_RECIPES["horse2zebra"]
    assert h2z.exact_hue is None and not h2z.colour_path and h2z.lambda_identity == 0.5   # the paper's
    assert h2z.discriminator()(torch.zeros(1, 3, h2z.size, h2z.size)).shape[-1] > 1       # a patch verdict


def test_the_scores_build_no_autograd_graph():
    g = ResnetGeneratorForScores()
    photos = torch.rand(4, 3, 16, 16)
    calls = []
    g.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    tr.cyclegan_scores(g, photos)
    tr.unpaired_scores(g, photos, photos)
    assert calls and not any(calls)  # no graph kept for thousands of scored photos on a GPU


class ResnetGeneratorForScores(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x))
