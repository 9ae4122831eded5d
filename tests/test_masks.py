"""lessons_lib.masks: the one convention (1 = keep), check_mask, boxes, feathering, converters."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lessons_lib import diffusion
from lessons_lib import masks as M


def test_check_mask_lives_in_masks_and_diffusion_uses_the_same():
    assert M.check_mask.__module__ == "lessons_lib.masks"
    assert diffusion.check_mask is M.check_mask
    keep = M.center_box(2, 16)
    assert torch.equal(M.check_mask(keep, torch.zeros(2, 3, 16, 16)), keep)
    with pytest.raises(ValueError, match="keeps every pixel"):
        M.check_mask(torch.ones(16, 16), torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("kind", M.MASK_KINDS)
def test_round_trips_through_both_forms(kind):
    keep = M.make_masks(kind, 1, (24, 40), seed=3)
    holes = M.to_holes(keep)
    assert holes.dtype == bool and holes.shape == (24, 40)
    assert np.array_equal(holes, keep[0, 0].numpy() == 0)  # True = hole = keep 0
    assert torch.equal(M.from_holes(holes), keep)
    sd = M.to_sd_mask(keep)
    assert sd.mode == "L" and sd.size == (40, 24)  # PIL sizes are (width, height)
    assert set(np.unique(np.asarray(sd))) <= {0, 255}
    assert np.array_equal(np.asarray(sd) == 255, holes)  # white = repaint = hole
    assert torch.equal(M.from_sd_mask(sd), keep)
    assert torch.equal(M.from_sd_mask(sd, binary=True), keep)


def test_soft_masks_stay_soft_in_the_sd_form_and_threshold_as_holes():
    keep = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    sd = np.asarray(M.to_sd_mask(keep))
    assert sd.tolist() == [[255, 191, 128, 0]]
    assert torch.allclose(M.from_sd_mask(Image.fromarray(sd)), keep[None, None], atol=1 / 255)
    assert M.to_holes(keep).tolist() == [[True, True, False, False]]
    assert M.from_sd_mask(Image.fromarray(sd), binary=True).flatten().tolist() == [0, 0, 0, 1]


def test_hole_fraction_is_exercise_4s_coverage():
    holes = np.zeros((256, 256), dtype=bool)
    holes[113:143, 113:143] = True  # exercise 4's 30 px square: coverage 900 / 65536
    assert float(M.hole_fraction(M.from_holes(holes))) == pytest.approx(900 / 65536, abs=1e-12)
    batch = M.make_masks("half", 3, 16, seed=0)
    assert torch.allclose(M.hole_fraction(batch), torch.full((3,), 0.5))


def test_box_mask_and_feather():
    keep = M.box_mask((30, 40), (5, 6, 25, 16))
    assert keep.shape == (1, 1, 30, 40) and int((keep == 0).sum()) == 20 * 10
    assert keep[0, 0, 6, 5] == 0 and keep[0, 0, 16, 25] == 1 and keep[0, 0, 5, 5] == 1
    soft = M.feather(M.box_mask((50, 60), (10, 10, 50, 40)), 3)[0, 0]
    assert soft[25, 30] < 0.02 and 0.5 < soft[25, 8] < 1 and 0 < soft[25, 11] < 0.5 and soft[0, 0] > 0.99
    assert torch.equal(M.feather(keep, 0), keep)
    with pytest.raises(ValueError, match="not a box inside the 40x30 image"):
        M.box_mask((30, 40), (10, 10, 80, 20))
    with pytest.raises(ValueError, match="The feather radius must be >= 0, got -2. It is in pixels"):
        M.feather(keep, -2)


def test_converters_refuse_the_wrong_shape_or_values():
    with pytest.raises(ValueError, match="one mask at a time"):
        M.to_sd_mask(M.center_box(2, 8))
    with pytest.raises(ValueError, match="must be 2-D"):
        M.from_holes(np.zeros((2, 8, 8), dtype=bool))
    with pytest.raises(ValueError, match="boolean .* or hold only 0 and 1"):
        M.from_holes(np.full((4, 4), 7))
    with pytest.raises(TypeError, match="needs a PIL image"):
        M.from_sd_mask(np.zeros((4, 4)))


# --------------------------------------------------------------------------- the batched sampler
def _reference():
    """The per-image sampler lessons_lib used before the masks were batched (kept in the benchmark)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "inpainting_data.py"
    spec = importlib.util.spec_from_file_location("inpainting_data_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.per_image_masks


@pytest.mark.parametrize("kind", ["boxes", "half"])
def test_batched_boxes_and_halves_equal_the_per_image_sampler(kind):
    # Same draws in the same order: on the CPU the masks are identical, not only alike.
    old = _reference()(kind, 64, 32, torch.Generator().manual_seed(5))
    assert torch.equal(M.make_masks(kind, 64, 32, seed=5), old)


@pytest.mark.parametrize("kind", ["strokes", "mixed"])
def test_batched_strokes_keep_the_per_image_distribution(kind):
    """Other draws, same distribution: coverage and where the holes fall match the per-image
    sampler's within a few standard errors (n = 1500: the mean's is about 0.002)."""
    n = 1500
    new = M.make_masks(kind, n, 32, seed=1)
    old = _reference()(kind, n, 32, torch.Generator().manual_seed(1))
    a, b = M.hole_fraction(new), M.hole_fraction(old)
    assert abs(float(a.mean() - b.mean())) < 0.01
    assert float(a.std() / b.std()) == pytest.approx(1, abs=0.08)
    q = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(a.quantile(q), b.quantile(q), atol=0.02)
    # Where the holes fall: the hole frequency of each 8x8 block of the image.
    holes_new = F.avg_pool2d(1 - new, 8).mean(0)
    holes_old = F.avg_pool2d(1 - old, 8).mean(0)
    assert torch.allclose(holes_new, holes_old, atol=0.03)
    if kind == "mixed":  # each kind about a quarter of the images: centre boxes hide 1/4, halves 1/2
        for exact in (0.25, 0.5):
            assert float((a == exact).float().mean()) == pytest.approx(float((b == exact).float().mean()), abs=0.03)


def test_masks_are_drawn_where_the_generator_is():
    g = torch.Generator().manual_seed(0)
    assert M.make_masks("mixed", 3, 8, seed=g).device.type == "cpu"
    # A seed and a device make a generator there; a generator elsewhere is refused, not moved.
    assert torch.equal(M.make_masks("strokes", 4, 16, seed=2, device="cpu"), M.make_masks("strokes", 4, 16, seed=2))
    with pytest.raises(ValueError, match="differs from the generator's device"):
        M.make_masks("boxes", 2, 8, seed=g, device="cuda")
    with pytest.raises(ValueError, match="max_vertices .* must be a whole number >= 2"):
        M.free_form(2, 16, max_vertices=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_masks_on_a_gpu_come_from_the_gpu_generator():
    g = torch.Generator("cuda").manual_seed(0)
    m = M.make_masks("mixed", 256, 32, seed=g)
    assert m.device.type == "cuda" and torch.all((m == 0) | (m == 1))
    assert torch.equal(m, M.make_masks("mixed", 256, 32, seed=0, device="cuda"))
    frac = M.hole_fraction(m.cpu())
    assert abs(float(frac.mean() - M.hole_fraction(M.make_masks("mixed", 256, 32)).mean())) < 0.03
