"""Masks, the inpainting models and tasks, and the Frechet distance with pluggable features."""
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from lessons_lib import diffusion as D
from lessons_lib import frechet, inpainting, masks, registry, training
from lessons_lib.inpainting import cli as inpainting_cli
from lessons_lib.metrics import frechet_distance


# --------------------------------------------------------------------------- masks
def test_center_box_geometry():
    m = masks.center_box(3, 32)
    assert m.shape == (3, 1, 32, 32) and m.dtype == torch.float32
    assert m[0, 0, 8:24, 8:24].eq(0).all() and m.sum() == 3 * (32 * 32 - 16 * 16)
    assert torch.allclose(masks.hole_fraction(m), torch.full((3,), 0.25))
    assert masks.center_box(1, (16, 8), fraction=0.5)[0, 0].eq(0).sum() == 8 * 4


@pytest.mark.parametrize("kind", ["boxes", "strokes", "half", "mixed"])
def test_random_masks_are_seeded_binary_and_partial(kind):
    a = masks.make_masks(kind, 16, 32, seed=3)
    b = masks.make_masks(kind, 16, 32, seed=3)
    c = masks.make_masks(kind, 16, 32, seed=4)
    assert a.shape == (16, 1, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all((a == 0) | (a == 1))
    frac = masks.hole_fraction(a)
    assert (frac > 0).all() and (frac < 1).all()  # every mask has a hole and known pixels
    assert len({tuple(x.flatten().tolist()) for x in a}) > 1  # the batch is not one mask repeated
    D.check_mask(a, torch.zeros(16, 3, 32, 32))  # usable by RePaint as they are


def test_half_image_sides_and_mask_errors():
    m = masks.half_image(1, 8, side="left")
    assert m[0, 0, :, :4].eq(0).all() and m[0, 0, :, 4:].eq(1).all()
    assert masks.hole_fraction(masks.half_image(8, 32, seed=0)).eq(0.5).all()
    with pytest.raises(ValueError, match="Unknown mask kind 'ring'"):
        masks.make_masks("ring", 2, 32)
    with pytest.raises(ValueError, match=r"Unknown side 'middle'. Choose one of: left, right, top, bottom \(or None"):
        masks.half_image(1, 8, side="middle")
    with pytest.raises(ValueError, match=r"n \(the number of masks\) must be a whole number >= 1, got 0"):
        masks.center_box(0, 8)
    with pytest.raises(ValueError, match="mask is 16x16 but the images are 32x32"):
        masks.apply_mask(torch.zeros(1, 3, 32, 32), masks.center_box(1, 16))


# --------------------------------------------------------------------------- baselines and metrics
def test_naive_fill_is_mean_of_known_pixels():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 8, generator=g)
    mask = masks.center_box(2, 8)
    out = inpainting.naive_fill(images, mask)
    keep = mask.expand_as(images).bool()
    assert torch.equal(out[keep], images[keep])
    for i in range(2):
        for c in range(3):
            known = images[i, c][mask[i, 0].bool()]
            assert torch.allclose(out[i, c][~mask[i, 0].bool()], known.mean().expand(16), atol=1e-6)
    with pytest.raises(ValueError, match="keeps no pixel"):
        inpainting.naive_fill(images, torch.zeros(8, 8))


def test_masked_psnr_only_counts_the_hole():
    target = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = masks.center_box(2, 8)
    out = target.clone()
    out[:, :, 2:6, 2:6] += 0.1  # error of 0.1 inside the hole
    out[:, :, 0, 0] += 0.5       # errors outside the hole do not count
    assert torch.allclose(inpainting.masked_psnr(out, target, mask), torch.full((2,), 20.0), atol=1e-4)
    loss = inpainting.masked_mse(out, target, mask)
    assert loss.item() == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(ValueError, match="no hole pixels"):
        inpainting.masked_psnr(out, target, torch.ones(2, 1, 8, 8))


# --------------------------------------------------------------------------- models and tasks
@pytest.mark.parametrize("method", inpainting.METHODS)
def test_tasks_train_through_fit_and_inpaint(method, tmp_path):
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(images, batch_size=4)
    kwargs = {"depth": 1} if method == "transformer" else {}
    task = inpainting.make_task(method, width=8, **kwargs)
    before = {k: v.clone() for k, v in next(iter(task.models.values())).state_dict().items()}
    history = training.fit(task, loader, epochs=1, ckpt_dir=tmp_path / method, progress=False)
    assert np.isfinite(history["train_loss" if method != "unet-gan" else "train_g_loss"][0])
    after = next(iter(task.models.values())).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it learned something
    assert training.latest_checkpoint(tmp_path / method) is not None
    mask = masks.center_box(2, 32)
    if method == "ddpm":
        out = inpainting.repaint_inpaint(task.models["model"], images[:2], mask, task.schedule,
                                         num_inference_steps=5, jump_length=2, jump_n_sample=2,
                                         generator=torch.Generator().manual_seed(0), progress=False)
    else:
        out = inpainting.inpaint(next(iter(task.models.values())), images[:2], mask)
    keep = mask.expand_as(out).bool()
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[keep], images[:2][keep])


def test_inpaint_task_masks_resume_exactly(tmp_path):
    """Training masks come from a generator saved in the checkpoint: resuming gives the same run."""
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(images, batch_size=4)
    full = inpainting.make_task("unet", width=8)
    training.fit(full, loader, epochs=2, progress=False)
    part = inpainting.make_task("unet", width=8)
    training.fit(part, loader, epochs=1, ckpt_dir=tmp_path, progress=False)
    resumed = inpainting.make_task("unet", width=8, seed=99)  # a different mask seed, restored from the checkpoint
    torch.manual_seed(123)
    training.fit(resumed, loader, epochs=2, ckpt_dir=tmp_path, progress=False)
    for k, v in full.models["model"].state_dict().items():
        assert torch.allclose(v, resumed.models["model"].state_dict()[k], atol=1e-6), k


def test_training_masks_are_one_batched_call_on_the_batch_device(monkeypatch):
    task = inpainting.make_task("unet", width=8)
    calls = []
    real = masks.make_masks

    def spy(kind, n, size, seed=0, device=None):
        calls.append((kind, n, size, seed.device.type))
        return real(kind, n, size, seed, device)

    monkeypatch.setattr(masks, "make_masks", spy)
    x, mask = task._batch(torch.rand(6, 3, 16, 16))
    # The whole batch at once (and each kind for the whole batch), not image by image.
    assert calls[0] == ("mixed", 6, (16, 16), "cpu") and all(n == 6 for _, n, _, _ in calls)
    assert mask.shape == (6, 1, 16, 16) and mask.device == x.device and mask.dtype == x.dtype


def test_mask_rng_state_is_a_cpu_tensor_and_names_its_device():
    task = inpainting.make_task("unet", width=8)
    state = task.extra_state()
    assert state["mask_rng"].device.type == "cpu" and state["mask_rng_device"] == "cpu"
    assert state["mask_rng"].dtype == torch.uint8


def _next_masks(task, n=8):
    return task._batch(torch.rand(n, 3, 16, 16))[1]


def test_mask_rng_from_another_device_or_an_older_checkpoint_resumes_deterministically():
    # A CUDA generator's state (16 bytes: seed and offset) cannot be set on a CPU generator:
    # the masks go on from a seed fixed by that state, the same on every resume.
    cuda_state = {"mask_rng": torch.arange(16, dtype=torch.uint8), "mask_rng_device": "cuda"}
    resumed = []
    for _ in range(2):
        task = inpainting.make_task("unet", width=8)
        task.load_extra_state(cuda_state)
        assert task.mask_generator.device.type == "cpu"
        resumed.append(_next_masks(task))
    fresh = _next_masks(inpainting.make_task("unet", width=8))
    assert torch.equal(resumed[0], resumed[1]) and not torch.equal(resumed[0], fresh)
    # Checkpoints written before the device was recorded hold a CPU generator's state.
    source = inpainting.make_task("unet", width=8, seed=7)
    old_format = {"mask_rng": source.mask_generator.get_state()}
    task = inpainting.make_task("unet", width=8)
    task.load_extra_state(old_format)
    assert torch.equal(_next_masks(task), _next_masks(source))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_inpaint_task_masks_on_the_gpu_resume_exactly(tmp_path):
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(images, batch_size=4)
    full = inpainting.make_task("unet", width=8)
    training.fit(full, loader, epochs=2, progress=False, device="cuda")
    assert full.mask_generator.device.type == "cuda"
    part = inpainting.make_task("unet", width=8)
    training.fit(part, loader, epochs=1, ckpt_dir=tmp_path, progress=False, device="cuda")
    assert part.extra_state()["mask_rng_device"] == "cuda" and part.extra_state()["mask_rng"].device.type == "cpu"
    resumed = inpainting.make_task("unet", width=8, seed=99)
    training.fit(resumed, loader, epochs=2, ckpt_dir=tmp_path, progress=False, device="cuda")
    for k, v in full.models["model"].state_dict().items():
        assert torch.allclose(v, resumed.models["model"].state_dict()[k], atol=1e-5), k


def test_adversarial_term_changes_the_generator_update():
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    grads = {}
    for w in (0.0, 1.0):
        task = inpainting.make_task("unet-gan", width=8, seed=0)
        task.adv_weight = w
        task.training_step(images)
        grads[w] = [p.detach().clone() for p in task.models["generator"].parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(grads[0.0], grads[1.0]))


def test_transformer_mask_token_and_shapes():
    net = inpainting.PatchTransformer(image_size=16, patch_size=4, dim=32, depth=1, heads=2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = masks.center_box(2, 16)
    assert net(masks.apply_mask(x, mask), mask).shape == (2, 3, 16, 16)
    # Fully hidden patches ignore what is under them (they become the mask token).
    x2 = x.clone()
    x2[:, :, 4:12, 4:12] = 5.0
    torch.testing.assert_close(net(masks.apply_mask(x, mask), mask), net(masks.apply_mask(x2, mask), mask))
    with pytest.raises(ValueError, match="built for 16x16 images, got 32x32"):
        net(torch.zeros(1, 3, 32, 32), torch.ones(1, 1, 32, 32))
    with pytest.raises(ValueError, match="Unknown inpainting method 'pconv'"):
        inpainting.make_task("pconv")


def test_compare_methods_table():
    target = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    mask = masks.center_box(4, 16)
    rows = inpainting.compare_methods({"perfect-ish": (target + 0.01).clamp(0, 1)}, target, mask)
    assert [r["method"] for r in rows] == ["perfect-ish", "naive"]
    assert rows[1]["gain_over_naive"] == 0 and rows[0]["gain_over_naive"] > 10


# --------------------------------------------------------------------------- Frechet distance
def _scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_with_pluggable_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 12))
    b = rng.normal(size=(150, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(_scipy_frechet(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Fewer images than feature dimensions (Inception's 2048 with a few hundred photos): still scipy's value.
    few_a, few_b = rng.normal(size=(20, 64)), rng.normal(size=(30, 64)) * 1.5 + 0.1
    assert frechet_distance(few_a, few_b) == pytest.approx(_scipy_frechet(few_a, few_b), rel=1e-6)
    # Any callable images -> (N, D) plugs in.
    g = torch.Generator().manual_seed(0)
    imgs_a, imgs_b = torch.rand(64, 3, 16, 16, generator=g), torch.rand(64, 3, 16, 16, generator=g) ** 2
    for extractor in (frechet.PixelFeatures(2), frechet.RandomConvFeatures(width=4), lambda x: x.mean(dim=(2, 3))):
        fa, fb = extractor(imgs_a).double().numpy(), extractor(imgs_b).double().numpy()
        ours = frechet.frechet_distance_images(imgs_a, imgs_b, extractor)
        assert ours == pytest.approx(_scipy_frechet(fa, fb), rel=1e-4, abs=1e-8)
        assert ours > 0
    # Several methods against one reference: the same values as one pair at a time.
    many = frechet.frechet_distances(imgs_a, {"b": imgs_b, "a": imgs_a}, frechet.PixelFeatures(2))
    assert many["b"] == pytest.approx(frechet.frechet_distance_images(imgs_a, imgs_b, frechet.PixelFeatures(2)))
    assert many["a"] == pytest.approx(0.0, abs=1e-8)
    # The random conv features are fixed by their seed.
    assert torch.equal(frechet.RandomConvFeatures(4, seed=1)(imgs_a), frechet.RandomConvFeatures(4, seed=1)(imgs_a))
    with pytest.raises(ValueError, match=r"must return \(N, D\)"):
        frechet.frechet_distance_images(imgs_a, imgs_b, lambda x: x)
    with pytest.raises(ValueError, match="Unknown feature extractor 'clip'"):
        frechet.frechet_distance_images(imgs_a, imgs_b, "clip")


def test_inception_features_offline_message_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(registry.DownloadUnavailable, match="Inception-v3 weights .* offline"):
        frechet.InceptionFeatures()


def test_inception_architecture_gives_2048_features():
    feats = frechet.InceptionFeatures(pretrained=False, resize=75)(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


def test_markdown_table_bolds_the_best_psnr():
    rows = [{"method": "unet", "masked_psnr": 14.7, "masked_psnr_std": 2.1, "gain_over_naive": 1.9},
            {"method": "naive", "masked_psnr": 12.8, "masked_psnr_std": 2.9, "gain_over_naive": 0.0}]
    lines = inpainting.markdown_table(rows).splitlines()
    assert lines[2] == "| unet | **14.70** | 2.10 | +1.90 |"
    assert lines[3] == "| naive | 12.80 | 2.90 | +0.00 |"


# --------------------------------------------------------------------------- the command line
def _photos(folder, n=4):
    from PIL import Image

    folder.mkdir()
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        img = torch.rand(3, 8, 8, generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(folder / f"p{i}.png")
    return folder


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the CLI starts loading photos, training or inpainting."""
    from lessons_lib import zoo

    def work(*args, **kwargs):
        raise AssertionError("the command started working before it checked its arguments")

    for owner, name in ((zoo, "load_photos"), (inpainting_cli, "train_inpainters"),
                        (inpainting_cli, "run_inpainters"), (inpainting_cli, "load_course_task")):
        monkeypatch.setattr(owner, name, work)


def _refused(capsys, *argv) -> str:
    assert inpainting_cli.main([str(a) for a in argv]) == 2
    return capsys.readouterr().err


def test_cli_checks_every_argument_before_any_work(tmp_path, capsys, monkeypatch, no_work):
    photos = _photos(tmp_path / "photos")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    test = ["--mode", "test", "--data", photos]
    err = _refused(capsys, *test, "--out", blocker / "out")
    assert "The output folder (--out)" in err and f"'{blocker}' on its way is a file" in err
    # A read-only folder (faked: the tests may run as root, who can write anywhere).
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    real_access = inpainting_cli.V.os.access
    monkeypatch.setattr(inpainting_cli.V.os, "access", lambda p, mode: Path(p) != readonly and real_access(p, mode))
    err = _refused(capsys, *test, "--weights", "course", "--out", readonly / "out")
    assert f"'{readonly / 'out'}' is not writable" in err and ".tmp" not in err
    err = _refused(capsys, "--mode", "train", "--weights", "course", "--data", photos, "--out", tmp_path / "t")
    assert "--weights course chooses the weights that --mode test evaluates" in err and "Leave --weights out" in err
    err = _refused(capsys, *test, "--weights", "course", "--image_size", 64, "--out", tmp_path / "t")
    assert "course weights of unet inpaint 32x32 photos, not --image_size 64" in err
    assert "multiple of 8" in _refused(capsys, *test, "--image_size", 20, "--out", tmp_path / "t")
    assert "--data '" in _refused(capsys, "--mode", "test", "--data", tmp_path / "nope", "--out", tmp_path / "t")
    # Earlier results are kept: the samples as well as the metrics, checked before the evaluation.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "samples_inpainting.png").write_bytes(b"earlier")
    err = _refused(capsys, *test, "--weights", "course", "--out", kept)
    assert "samples_inpainting.png' already exists and is kept" in err and "--overwrite" in err
    assert (kept / "samples_inpainting.png").read_bytes() == b"earlier"
    for flag, value in (("--limit", 0), ("--steps", -1), ("--batch_size", 2.5), ("--weights", "best")):
        with pytest.raises(SystemExit):
            inpainting_cli.main(["--mode", "test", flag, str(value), "--out", str(tmp_path / "t")])
        assert f"argument {flag}: expected" in capsys.readouterr().err
    assert not (tmp_path / "t").exists() and sorted(p.name for p in kept.iterdir()) == ["samples_inpainting.png"]


def test_cli_refuses_weights_of_another_size_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    task = inpainting.make_task("unet", width=8)
    loader = torch.utils.data.DataLoader(torch.rand(4, 3, 32, 32), batch_size=4)
    training.fit(task, loader, epochs=1, ckpt_dir=out / "unet", progress=False)
    err = _refused(capsys, "--mode", "train", "--methods", "unet", "--width", 16, "--batch_size", 2,
                   "--data", _photos(tmp_path / "photos"), "--out", out)
    assert "do not fit a unet of --width 16" in err and "--latent_dim" not in err
    assert [p.name for p in (out / "unet").glob("epoch_*.pt")] == ["epoch_0001.pt"]


def _nan_task(method="unet"):
    task = inpainting.make_task(method, width=8)
    with torch.no_grad():
        for p in inpainting.inference_network(task).parameters():
            p.fill_(float("nan"))
    return task.eval()


def test_cli_refuses_nan_weights_naming_the_method(tmp_path, capsys, monkeypatch, no_work):
    monkeypatch.setattr(inpainting_cli, "load_course_task", lambda method, device=None: _nan_task(method))
    out = tmp_path / "out"
    err = _refused(capsys, "--mode", "test", "--weights", "course", "--methods", "unet",
                   "--data", _photos(tmp_path / "photos"), "--out", out)
    assert "The unet weights (the course weights) hold NaN or infinite values" in err
    assert not out.exists()


def test_nan_outputs_are_refused_naming_the_method_before_the_next_one_runs():
    images = torch.rand(2, 3, 32, 32)
    mask = masks.center_box(2, 32)

    class NeverRun:
        models = {"model": None}

    with pytest.raises(ValueError, match="The unet inpainter produced NaN or infinite pixels in 2 of 2 images"):
        inpainting.run_inpainters({"unet": _nan_task(), "transformer": NeverRun()}, images, mask)
    with pytest.raises(ValueError, match="The unet-gan inpainter produced NaN"):
        inpainting.compare_methods({"unet-gan": torch.full_like(images, float("nan"))}, images, mask)


def test_cli_writes_null_not_nan_for_one_photo_and_never_a_nan_metric(tmp_path, capsys, monkeypatch):
    import json

    photos = _photos(tmp_path / "photos")
    out = tmp_path / "one"
    assert inpainting_cli.main(["--mode", "test", "--weights", "course", "--methods", "unet", "--limit", "1",
                                "--data", str(photos), "--out", str(out)]) == 0
    text = (out / "metrics_inpainting.json").read_text()
    record = json.loads(text)  # strict JSON: NaN would not parse in most readers
    assert "NaN" not in text and record["unet"]["masked_psnr_std"] is None and "one photo" in record["note"]
    assert "| unet |" in capsys.readouterr().out and "n/a" in inpainting.markdown_table(
        inpainting.compare_methods({}, torch.rand(1, 3, 8, 8), masks.center_box(1, 8)))
    # Should any number still come out NaN, nothing is written and the message names it.
    real = inpainting.compare_methods
    monkeypatch.setattr(inpainting_cli, "compare_methods",
                        lambda *a: [{**r, "masked_psnr": float("nan")} if r["method"] == "unet" else r
                                    for r in real(*a)])
    err = _refused(capsys, "--mode", "test", "--weights", "course", "--methods", "unet", "--data", photos,
                   "--out", tmp_path / "two")
    assert "unet: masked_psnr came out NaN" in err and not (tmp_path / "two" / "metrics_inpainting.json").exists()
