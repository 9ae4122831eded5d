"""Masks, the inpainting models and tasks, and the Frechet distance with pluggable features."""
import numpy as np
import pytest
import scipy.linalg
import torch

from lessons_lib import diffusion as D
from lessons_lib import frechet, inpainting, masks, registry, training
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
    with pytest.raises(ValueError, match="side must be one of left, right, top, bottom"):
        masks.half_image(1, 8, side="middle")
    with pytest.raises(ValueError, match="positive integer"):
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
    # Any callable images -> (N, D) plugs in.
    g = torch.Generator().manual_seed(0)
    imgs_a, imgs_b = torch.rand(64, 3, 16, 16, generator=g), torch.rand(64, 3, 16, 16, generator=g) ** 2
    for extractor in (frechet.PixelFeatures(2), frechet.RandomConvFeatures(width=4), lambda x: x.mean(dim=(2, 3))):
        fa, fb = extractor(imgs_a).double().numpy(), extractor(imgs_b).double().numpy()
        ours = frechet.frechet_distance_images(imgs_a, imgs_b, extractor)
        assert ours == pytest.approx(_scipy_frechet(fa, fb), rel=1e-4, abs=1e-8)
        assert ours > 0
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
