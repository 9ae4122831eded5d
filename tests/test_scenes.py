"""lessons_lib.scenes: the label maps -> scenes pairs notebook 7's pix2pix learns."""
import pytest
import torch

from lessons_lib import scenes


def _class_index(labels):
    d = (labels[:, None] - scenes.LABEL_COLOURS[None, :, :, None, None]).abs().sum(dim=2)
    return d.argmin(dim=1)


def test_pairs_are_deterministic_split_and_in_range():
    labels, pictures = scenes.scene_pairs(6, 64, "train")
    again = scenes.scene_pairs(6, 64, "train")
    assert labels.shape == pictures.shape == (6, 3, 64, 64)
    assert torch.equal(labels, again[0]) and torch.equal(pictures, again[1])
    assert 0 <= float(pictures.min()) and float(pictures.max()) <= 1
    test_labels, _ = scenes.scene_pairs(6, 64, "test")
    assert not any(torch.equal(a, b) for a in labels for b in test_labels)


def test_the_label_map_holds_only_class_colours_and_fixes_the_layout():
    labels, pictures = scenes.scene_pairs(8, 64, "train")
    colours = labels.permute(0, 2, 3, 1).reshape(-1, 3).unique(dim=0)
    assert all(any(torch.allclose(c, k) for k in scenes.LABEL_COLOURS) for c in colours)
    idx = _class_index(labels)
    for k, name in enumerate(scenes.CLASSES):
        assert (idx == k).any(), f"no {name} in 8 scenes"
    # Each class has its own look: the mean colour of sky, grass and wall pixels differ clearly.
    means = [pictures.permute(1, 0, 2, 3)[:, idx == k].mean(dim=1) for k in range(3)]
    assert min(float((means[i] - means[j]).abs().sum()) for i in range(3) for j in range(i)) > 0.2


def test_the_random_part_differs_between_scenes_of_one_layout():
    # Two scenes share no grain: the random detail is what no network can predict from the labels.
    a = scenes.draw_scene(64, seed=3)[1]
    b = scenes.draw_scene(64, seed=4)[1]
    assert not torch.equal(a, b)


def test_high_frequency_energy_ranks_blur_below_the_picture():
    _, pictures = scenes.scene_pairs(4, 64, "test")
    blurred = torch.nn.functional.avg_pool2d(pictures, 3, stride=1, padding=1)
    sharp, smooth = scenes.high_frequency_energy(pictures), scenes.high_frequency_energy(blurred)
    assert sharp.shape == (4,) and bool((smooth < 0.5 * sharp).all())
    assert float(scenes.high_frequency_energy(torch.full((1, 3, 16, 16), 0.3))[0]) == pytest.approx(0.0, abs=1e-10)


def test_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="Unknown split 'val'. Choose one of: train, test"):
        scenes.scene_pairs(2, 64, "val")
    with pytest.raises(ValueError, match="at least 16"):
        scenes.draw_scene(8)
    with pytest.raises(ValueError, match="ScenePairs needs two equal"):
        scenes.ScenePairs(torch.rand(2, 3, 8, 8), torch.rand(3, 3, 8, 8))
