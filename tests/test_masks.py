"""lessons_lib.masks: the one convention (1 = keep), check_mask, boxes, feathering, converters."""
from __future__ import annotations

import numpy as np
import pytest
import torch
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
    with pytest.raises(ValueError, match="feather radius must be a non-negative"):
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
