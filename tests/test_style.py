"""lessons_lib.style: VGG features by name, Gram matrices, Gatys, AdaIN, perceptual loss."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset
from torchvision.models.vgg import cfgs, make_layers

from lessons_lib import registry, style, textures, training
from lessons_lib.data import make_loader, sample_photos
from lessons_lib.models import vgg as vgg_module
from lessons_lib.models.adain import AdaINDecoder


@pytest.fixture(scope="module")
def vgg():
    return style.VGGFeatures(style.STYLE_LAYERS + style.CONTENT_LAYERS + ("relu2_2",), verbose=False)


# --------------------------------------------------------------------------- VGG features
def test_layer_names_follow_torchvision_vgg19():
    ref = make_layers(cfgs["E"])
    assert len(style.VGG19_LAYERS) == len(ref) == 37
    for name, layer in zip(style.VGG19_LAYERS, ref, strict=True):
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
        assert isinstance(layer, kind), name
    # The full-width trunk takes torchvision's VGG19 weights key for key, shape for shape.
    ours = vgg_module._trunk("random", 64).state_dict()
    theirs = ref.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_features_by_name_match_torchvision_layers(vgg):
    ref = make_layers([v * vgg.width // 64 if v != "M" else v for v in cfgs["E"]]).eval()
    ref.load_state_dict(vgg.body.state_dict(), strict=False)
    x = torch.rand(2, 3, 32, 32)
    normed = (x - torch.tensor(vgg_module.IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(vgg_module.IMAGENET_STD).view(1, 3, 1, 1)
    ext = style.VGGFeatures(["conv1_1", "relu3_1", "pool2", "relu4_2"], verbose=False)
    with torch.no_grad():
        feats = ext(x)
        assert list(feats) == ["conv1_1", "relu3_1", "pool2", "relu4_2"]
        for name, f in feats.items():
            depth = style.VGG19_LAYERS.index(name) + 1
            torch.testing.assert_close(f, ref[:depth](normed))
    assert ext.channels("relu3_1") == feats["relu3_1"].shape[1]


def test_unknown_layer_name_lists_the_valid_ones():
    message = r"Unknown VGG19 layer name.*'relu6_1'.*Valid names are: conv1_1, relu1_1"
    with pytest.raises(ValueError, match=message):
        style.VGGFeatures(["relu1_1", "relu6_1"], verbose=False)
    with pytest.raises(ValueError, match="Unknown VGG19 layer"):
        style.PerceptualLoss(layers=("conv2_9",))


def test_the_weights_are_chosen_explicitly_and_the_fast_profile_never_downloads(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LESSONS_PROFILE", "fast")
    monkeypatch.setattr(vgg_module, "_weights_file", lambda: tmp_path / "vgg19-dcbb9e9d.pth")

    def no_download(*args, **kwargs):
        raise AssertionError("the fast profile must not download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    # The default is the course's trained network, and it says so.
    ext = style.VGGFeatures(["relu1_1"])
    assert ext.weights == "course" and not ext.pretrained and ext.width == vgg_module.COURSE_WIDTH == 16
    out = capsys.readouterr().out
    assert "course's VGG19-layout feature network" in out and "held-out accuracy" in out
    # The library never picks by profile: the default is the same in the full profile (the caller asks for ImageNet).
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    assert style.VGGFeatures(["relu1_1"], verbose=False).weights == vgg_module.DEFAULT_WEIGHTS == "course"
    # Random features only when asked for, and named as such.
    rand = style.VGGFeatures(["relu1_1"], weights="random", verbose=False)
    assert rand.description.startswith("random VGG19")
    assert style.VGGFeatures(["relu1_1"], pretrained=False, verbose=False).weights == "random"
    # The course network stops at relu5_1; the real weights exist only at full width.
    with pytest.raises(ValueError, match="stops at relu5_1"):
        style.VGGFeatures(["relu5_2"], weights="course", verbose=False)
    with pytest.raises(ValueError, match="only at width 64"):
        style.VGGFeatures(["relu1_1"], weights="imagenet", width=16, verbose=False)
    with pytest.raises(ValueError, match="weights must be one of"):
        style.VGGFeatures(["relu1_1"], weights="vgg", verbose=False)
    # Asking for the real weights offline says what to do, instead of failing in a download.
    # Hermetic: an empty torch cache, and the loading step itself (a trunk that an earlier test built from
    # seeded weights stays in memory, and clearing that cache would change later tests' random draws).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(registry.DownloadUnavailable, match="VGG19 weights.*offline"):
        vgg_module._load_pretrained_state()


def test_course_feature_network_learned_its_task(cifar_subset):
    """The shipped trunk is the trained classifier's, batch norm folded: its held-out accuracy is far above chance."""
    from course_tools.recipes import features as recipe
    from lessons_lib import course_weights

    info = course_weights.entry(vgg_module.COURSE_FEATURES)
    assert info["metrics"]["model"] > 2 * info["metrics"]["baseline"] and info["metrics"]["model"] > 0.35, info
    assert info["config"]["width"] == vgg_module.COURSE_WIDTH and info["config"]["last"] == "relu5_1"
    # Folding batch norm into the convolutions changes nothing the network computes.
    torch.manual_seed(0)
    net = vgg_module.VGGClassifier()
    net.train()
    net(torch.rand(16, 3, 32, 32))   # running statistics that are not the identity
    net.eval()
    trunk = vgg_module.vgg19_trunk(16, "relu5_1")
    trunk.load_state_dict(net.feature_state())
    x = torch.rand(2, 3, 32, 32)
    normed = (x - net.mean) / net.std
    torch.testing.assert_close(trunk(normed), net.features(normed), atol=1e-4, rtol=1e-4)
    assert recipe.EPOCHS == info["epochs"]


def test_patch_swd_judges_local_look_without_a_network():
    gen = torch.Generator().manual_seed(0)
    stripes = textures.texture("stripes", 64, seed=1)[None]
    same_kind = textures.texture("stripes", 64, seed=1).roll(7, dims=-1)[None]     # shifted: same patches
    noise = torch.rand(1, 3, 64, 64, generator=gen)
    flat = stripes.mean(dim=(2, 3), keepdim=True).expand(1, 3, 64, 64)
    d = style.patch_swd(torch.cat([stripes, same_kind, noise, flat]), stripes)
    assert d[0] < d[2] and d[1] < d[2] and d[1] < d[3], d
    torch.testing.assert_close(d, style.patch_swd(torch.cat([stripes, same_kind, noise, flat]), stripes))
    with pytest.raises(ValueError, match="1 or N styles"):
        style.patch_swd(torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32))


def test_features_are_frozen_but_pass_gradients(vgg):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(x)["relu4_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


# --------------------------------------------------------------------------- Gram, losses
def test_gram_matrix_matches_a_direct_loop():
    f = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    g = style.gram_matrix(f)
    n, c, h, w = f.shape
    expected = torch.zeros(n, c, c, dtype=torch.float64)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                total = 0.0
                for y in range(h):
                    for x in range(w):
                        total += f[b, i, y, x] * f[b, j, y, x]
                expected[b, i, j] = total / (c * h * w)
    torch.testing.assert_close(g, expected)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        style.gram_matrix(torch.randn(4, 3, 5))


def test_content_and_style_losses_by_hand():
    a, b = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.isclose(style.content_loss(a, b), ((a - b) ** 2).mean())
    feats = {"relu1_1": a, "relu2_1": torch.randn(1, 5, 2, 2)}
    targets = {"relu1_1": style.gram_matrix(b), "relu2_1": torch.zeros(1, 5, 5)}
    expected = ((style.gram_matrix(a) - targets["relu1_1"]) ** 2).mean() \
        + 0.5 * (style.gram_matrix(feats["relu2_1"]) ** 2).mean()
    got = style.style_loss(feats, targets, weights={"relu2_1": 0.5})
    assert torch.isclose(got, expected)
    with pytest.raises(ValueError, match="No features for style layer"):
        style.style_loss({"relu1_1": a}, {"relu5_1": targets["relu1_1"]})


# --------------------------------------------------------------------------- Gatys
def test_style_transfer_cuts_the_style_loss_tenfold(vgg):
    # Within the notebook's fast-profile budget (it runs 20 steps at 48 px), fixed seed.
    content = sample_photos(1, 48, seed=3)[0]
    result = style.style_transfer(content, textures.texture("waves", 48), steps=12, extractor=vgg,
                                  snapshot_every=4, seed=0, progress=False)
    s = result.history["style"]
    assert len(s) == 13 and s[-1] * 10 <= s[0], s
    assert result.style_reduction >= 10
    assert [step for step, _ in result.snapshots] == [4, 8, 12]
    assert result.image.shape == (1, 3, 48, 48) and 0 <= result.image.min() and result.image.max() <= 1
    # Adam also brings the style loss down (it needs more steps than L-BFGS for the same cut).
    adam = style.style_transfer(content, textures.texture("waves", 48), steps=5, optimizer="adam",
                                lr=0.05, extractor=vgg, progress=False)
    assert adam.history["style"][-1] < adam.history["style"][0]


def test_style_transfer_rejects_bad_settings(vgg):
    img = torch.rand(3, 32, 32)
    with pytest.raises(ValueError, match="steps must be"):
        style.style_transfer(img, img, steps=0, extractor=vgg)
    with pytest.raises(ValueError, match="optimizer must be"):
        style.style_transfer(img, img, steps=1, optimizer="sgd", extractor=vgg)
    with pytest.raises(ValueError, match="Unknown VGG19 layer"):
        style.style_transfer(img, img, steps=1, style_layers=("relu9_9",), extractor=vgg)


def test_style_and_content_of_different_sizes_and_modes(tmp_path, capsys):
    rgba = Image.new("RGBA", (90, 40), (255, 0, 0, 128))
    gray = Image.fromarray((np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64), mode="L")
    gray.save(tmp_path / "content.png")
    c, s = style.prepare_pair(tmp_path / "content.png", rgba)
    assert c.shape == s.shape == (1, 3, 48, 64)
    assert "scaling and centre-cropping the style" in capsys.readouterr().out
    # The RGBA image was composited on white: half-transparent red -> pink, not red.
    assert torch.allclose(s[0, :, 20, 32], torch.tensor([1.0, 0.5, 0.5]), atol=0.02)
    c2, s2 = style.prepare_pair(gray, style.as_image(rgba), size=32)
    assert c2.shape == s2.shape == (1, 3, 24, 32)
    # Tensors are not guessed at: one message says how to convert them.
    with pytest.raises(ValueError, match="must be one RGB image.*load_image"):
        style.prepare_pair(torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="must be one RGB image"):
        style.prepare_pair(torch.rand(1, 3, 32, 32), torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"values in \[-1, 1\].*to_unit"):
        style.prepare_pair(torch.linspace(-1, 1, 3 * 32 * 32).view(3, 32, 32), torch.rand(3, 32, 32))
    with pytest.raises(FileNotFoundError):
        style.prepare_pair(tmp_path / "missing.png", rgba)


# --------------------------------------------------------------------------- AdaIN
def test_adain_gives_the_style_channel_statistics():
    gen = torch.Generator().manual_seed(0)
    content = torch.randn(2, 8, 6, 5, generator=gen) * 3 + 1
    style_f = torch.randn(1, 8, 7, 7, generator=gen) * torch.rand(1, 8, 1, 1, generator=gen) * 4 \
        + torch.randn(1, 8, 1, 1, generator=gen)
    out = style.adain(content, style_f)
    s_flat, o_flat = style_f.flatten(2), out.flatten(2)
    torch.testing.assert_close(o_flat.mean(2), s_flat.mean(2).expand(2, 8), atol=1e-4, rtol=0)
    torch.testing.assert_close(o_flat.std(2), s_flat.std(2).expand(2, 8), atol=1e-4, rtol=0)
    # alpha blends the stylised features with the content features.
    torch.testing.assert_close(style.adain(content, style_f, alpha=0.0), content)
    half = style.adain(content, style_f, alpha=0.5)
    torch.testing.assert_close(half, 0.5 * out + 0.5 * content)
    with pytest.raises(ValueError, match="same layer"):
        style.adain(content, torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="alpha must be in"):
        style.adain(content, style_f, alpha=1.5)


def test_adain_decoder_trains(vgg):
    torch.manual_seed(0)
    model = style.AdaINStyleTransfer(style.VGGFeatures(style.ADAIN_STYLE_LAYERS, verbose=False))
    assert isinstance(model.decoder, AdaINDecoder)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == \
        sum(p.numel() for p in model.decoder.parameters())
    content = torch.rand(8, 3, 32, 32)
    styles = textures.textures(["waves", "checker"], size=32).repeat(4, 1, 1, 1)
    task = style.AdaINTask(model, lr=1e-3)
    loader = make_loader(TensorDataset(content, styles), batch_size=4, seed=0)
    history = training.fit(task, loader, epochs=6, progress=False)
    # With trained features the loss starts high (real statistics to match) and falls steadily.
    assert history["train_loss"][-1] < 0.9 * history["train_loss"][0], history["train_loss"]
    assert all(b < a * 1.05 for a, b in zip(history["train_loss"], history["train_loss"][1:])), history
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model(content[:1], styles[:1], alpha=0.5).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 3, 30, 30), styles[:1])
    # The residual model's alpha = 0 is the content image itself.
    residual = style.AdaINStyleTransfer(model.encoder, residual=True)
    torch.nn.init.normal_(residual.decoder.net[-1].weight)   # a decoder that does paint something
    torch.testing.assert_close(residual(content[:2], styles[:2], alpha=0.0), content[:2])
    assert (residual(content[:2], styles[:2], alpha=1.0) - content[:2]).abs().max() > 0.05


# --------------------------------------------------------------------------- perceptual loss
def test_perceptual_loss(vgg):
    loss = style.PerceptualLoss(layers=("relu2_2", "relu3_1"), weights=(1.0, 0.5), extractor=vgg,
                                pixel_weight=0.1)
    hr = torch.rand(2, 3, 32, 32)
    assert float(loss(hr, hr)) == 0.0
    out = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(out, hr)
    value.backward()
    assert value > 0 and out.grad.abs().sum() > 0
    feats_o, feats_t = vgg(out.detach()), vgg(hr)
    layers = (("relu2_2", 1.0), ("relu3_1", 0.5))
    expected = sum(w * ((feats_o[n] - feats_t[n]) ** 2).mean() for n, w in layers) \
        + 0.1 * ((out.detach() - hr) ** 2).mean()
    assert torch.isclose(value.detach(), expected, rtol=1e-4)
    with pytest.raises(ValueError, match="differ in shape"):
        loss(out, hr[:1])
    low, high = style.make_sr_pairs(hr, 4)
    assert low.shape == (2, 3, 8, 8) and high is hr
    torch.testing.assert_close(low[0, :, 0, 0], hr[0, :, :4, :4].mean(dim=(1, 2)))
    with pytest.raises(ValueError, match="divisible by 4"):
        style.make_sr_pairs(torch.rand(1, 3, 30, 30))


def test_textures_are_deterministic_images():
    a = textures.textures(size=32, seed=1)
    assert a.shape == (len(textures.TEXTURES), 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(a, textures.textures(size=32, seed=1))
    assert all(t.std() > 0.05 for t in a)  # patterned, not flat
    with pytest.raises(ValueError, match="Unknown texture"):
        textures.texture("plaid")


def test_style_bank_holds_out_palettes():
    train, test = textures.style_bank("train", 16), textures.style_bank("test", 16)
    assert train.shape == (48, 3, 16, 16) and test.shape == (12, 3, 16, 16)
    # None of the held-out styles was seen in training.
    assert min(float((t - train).abs().flatten(1).mean(1).min()) for t in test) > 0.01
    with pytest.raises(ValueError, match="Unknown split 'val'. Choose one of: train, test"):
        textures.style_bank("val")


# --------------------------------------------------------------------------- recipes for short budgets
def test_untrained_residual_models_start_at_their_baselines():
    torch.manual_seed(0)
    low = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(style.SRNet(4, width=8, blocks=1)(low),
                               torch.nn.functional.interpolate(low, scale_factor=4, mode="bicubic"))
    assert torch.equal(style.bicubic(low), style.bicubic(low).clamp(0, 1))
    encoder = style.VGGFeatures(style.ADAIN_STYLE_LAYERS, verbose=False)
    model = style.AdaINStyleTransfer(encoder, residual=True)
    c, s = torch.rand(2, 3, 16, 16), textures.textures(["waves", "dots"], size=16)
    torch.testing.assert_close(model(c, s), style.colour_transfer(c, s))
    # The colour transfer gives each colour channel the style's mean and standard deviation.
    ct = style.adain(c, s)
    torch.testing.assert_close(ct.mean((2, 3)), s.mean((2, 3)), atol=1e-5, rtol=0)


def test_scores_compare_with_the_baselines(vgg):
    hr = sample_photos(4, 32, seed=1)
    scores = style.sr_scores({"bicubic again": torch.nn.Upsample(scale_factor=4, mode="bicubic")}, hr, vgg)
    for key in ("PSNR", "SSIM", "feature distance"):
        assert scores["bicubic"][key] == pytest.approx(scores["bicubic again"][key], rel=1e-4)
    encoder = style.VGGFeatures(style.ADAIN_STYLE_LAYERS, verbose=False)
    model = style.AdaINStyleTransfer(encoder, residual=True)
    adain_scores = style.adain_scores(model, hr, textures.textures(size=32)[:4])
    assert adain_scores["AdaIN decoder"] == pytest.approx(adain_scores["colour transfer"], rel=1e-4)
    assert adain_scores["content image"]["style"] > adain_scores["colour transfer"]["style"]


# --------------------------------------------------------------------------- course weights
def test_photos_and_styles_hold_out_what_training_never_sees():
    assert not set(textures.PHOTOS["train"]) & set(textures.PHOTOS["test"])
    crops = textures.photo_crops("test", 5, 64)
    assert crops.shape == (5, 3, 64, 64) and 0 <= crops.min() and crops.max() <= 1
    torch.testing.assert_close(crops, textures.photo_crops("test", 5, 64))
    train, test = textures.style_images("train", 16), textures.style_images("test", 16)
    assert train.shape == (72, 3, 16, 16) and test.shape == (18, 3, 16, 16)
    assert min(float((t - train).abs().flatten(1).mean(1).min()) for t in test) > 0.01
    wall = textures.real_texture("brick", 32, seed=3)
    assert wall.shape == (3, 32, 32) and wall.std() > 0.05


def test_course_sr_nets_beat_bicubic_on_held_out_photos():
    pixel, info = style.course_sr_net("style/sr_pixel")
    perceptual, perceptual_info = style.course_sr_net("style/sr_perceptual")
    held_out = textures.photo_crops("test", 96, 64)
    extractor = style.VGGFeatures(style.DISTANCE_LAYERS, weights="course", verbose=False)
    scores = style.sr_scores({"pixel": pixel, "perceptual": perceptual}, held_out, extractor)
    assert scores["pixel"]["PSNR"] > scores["bicubic"]["PSNR"] + 0.2, scores
    # The manifest's numbers are these numbers (float16 weights change nothing reported).
    assert info["metrics"]["model"] == pytest.approx(scores["pixel"]["PSNR"], abs=0.02)
    assert info["metrics"]["baseline"] == pytest.approx(scores["bicubic"]["PSNR"], abs=0.02)
    # The perceptual net wins where the notebook's row judges it: the feature distance.
    assert scores["perceptual"]["feature distance"] < scores["bicubic"]["feature distance"], scores
    low, _ = style.make_sr_pairs(held_out, 4)
    with torch.no_grad():
        swd_net = style.patch_swd(perceptual(low).clamp(0, 1), held_out)
    assert perceptual_info["metrics"]["model"] == pytest.approx(float(swd_net.mean()), rel=0.02)


def test_course_adain_decoder_is_what_notebook_6_says():
    """Notebook 6 marks the course AdaIN decoder's patch-judge row as an expected loss: trained one epoch on
    a CPU, it stays level with the colour transfer it starts from (0.087 against 0.085 on 24 held-out pairs),
    while beating it on its own objective. This holds the weights to exactly that; a retrained decoder that
    wins must change the notebook's row and this test together."""
    model, info = style.course_adain()
    assert model.encoder.weights == info["config"]["encoder"]["weights"] == "course"
    photos = textures.photo_crops("test", 24, 128, min_side=256)
    styles = textures.style_images("test", 128)
    held_out = styles[torch.arange(len(photos)) % len(styles)]
    with torch.no_grad():
        out = torch.cat([model(photos[i:i + 8], held_out[i:i + 8]).clamp(0, 1) for i in range(0, len(photos), 8)])
        torch.testing.assert_close(model(photos[:2], held_out[:2], alpha=0.0), photos[:2])
    judge = style.patch_swd(out, held_out)
    baseline = style.patch_swd(style.colour_transfer(photos, held_out), held_out)
    assert info["metrics"]["model"] == pytest.approx(float(judge.mean()), rel=0.02)
    # On its own objective it does beat the colour transfer (a judge it cannot be held to, see the notebook).
    objective = info["held_out"]["objective"]
    assert objective["AdaIN decoder"]["total"] < objective["colour transfer"]["total"]
    # Level with the colour transfer on the patch judge: within 10 % of it, not (yet) below it.
    assert baseline.mean() <= judge.mean() < 1.1 * baseline.mean(), (judge.mean(), baseline.mean())


# --------------------------------------------------------------------------- notebook 6 shows the code
def test_notebook_definitions_equal_the_library():
    from notebook_code import notebook_functions

    nb = notebook_functions("06_style_transfer.ipynb",
                            ["gram_matrix", "content_loss", "style_loss", "total_variation", "adain"], {"torch": torch})
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(nb["gram_matrix"](f), style.gram_matrix(f))
    g = torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(nb["content_loss"](f, g), style.content_loss(f, g))
    feats = {"relu1_1": f, "relu2_1": torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)}
    grams = {"relu1_1": style.gram_matrix(g),
             "relu2_1": torch.randn(1, 3, 3, generator=gen, dtype=torch.float64)}
    for weights in (None, {"relu2_1": 0.3}):
        expected = style.style_loss(feats, grams, weights)
        torch.testing.assert_close(nb["style_loss"](feats, grams, weights), expected)
    img = torch.rand(2, 3, 9, 7, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(nb["total_variation"](img), style.total_variation(img))
    c = torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64) * 2 + 1
    for s in (torch.randn(1, 4, 7, 7, generator=gen, dtype=torch.float64) * 3,
              torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64) - 2):
        for alpha in (1.0, 0.4, 0.0):
            torch.testing.assert_close(nb["adain"](c, s, alpha), style.adain(c, s, alpha))
