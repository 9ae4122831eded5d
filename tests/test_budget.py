"""The Colab budget (course_tools.budget): every notebook's full profile fits a free T4 session.

The budget is computed from the notebooks' own counts and FLOPs measured on full-size networks
(on the CPU at a batch of one or two, and on the meta device for Stable Diffusion), never from a
wall time. Computing it takes a minute or more on two cores, so it is computed once per session
and kept under /.cache/budget/, keyed on every input (the budget's code, lessons_lib, the
notebooks, the library versions): any change to one of them computes it again.
"""
from __future__ import annotations

import dataclasses

import nbformat
import pytest

from course_tools import budget as B
from course_tools.budget import cache
from lessons_lib import translation


@pytest.fixture(scope="session")
def rows():
    return B.cached_budget()


def test_every_notebook_is_in_the_budget(rows):
    assert [r.notebook for r in rows] == list(B.NOTEBOOKS)
    for r in rows:
        assert r.items, f"notebook {r.notebook} has no work counted"
        assert all(i.flops > 0 and i.ops > 0 for i in r.items), r.notebook


@pytest.mark.parametrize("key", list(B.NOTEBOOKS))
def test_each_notebook_fits_a_free_t4_session(rows, key):
    row = next(r for r in rows if r.notebook == key)
    assert row.minutes <= B.MAX_NOTEBOOK_MINUTES, B.table(rows, details=True)
    assert row.checkpoint_gb <= B.MAX_NOTEBOOK_CHECKPOINT_GB, B.table(rows, details=True)
    assert row.memory_gb < B.T4_MEMORY_GB, B.table(rows, details=True)


def test_the_whole_course_fits_three_hours(rows):
    assert sum(r.minutes for r in rows) <= B.MAX_COURSE_MINUTES, B.table(rows)


def test_training_runs_are_counted_from_the_notebooks(rows):
    by = {r.notebook: " | ".join(i.what for i in r.items) for r in rows}
    p7, p3, p2 = B.notebook_picks("07"), B.notebook_picks("03"), B.notebook_picks("02")
    recipe, epochs, decay = translation.CYCLEGAN_RECIPES[p7.one("DOMAINS")], p7.one("EPOCHS"), p7.one("DECAY")
    ngf, blocks = recipe.ngf, recipe.blocks
    assert f"CycleGAN {ngf} filters, {blocks} blocks, 128 px: {epochs}+{decay} epochs x 1334 steps, batch 1" in by["07"]
    assert f"ddpm: {p3.one('DDPM_EPOCHS')} epochs x 781 steps, batch 64" in by["03"]
    trainings = [i for i in next(r for r in rows if r.notebook == "02").items
                 if i.what.startswith("zoo ") and "validation" not in i.what]
    assert len(trainings) == 7   # eight models, unetddpm shares unetddim's network
    # resnet trains on the photos and their mirror images (zoo.COURSE_SETTINGS): twice the steps
    assert all(f"{p2.one('EPOCHS')} epochs x {1564 if 'resnet' in i.what else 782} steps" in i.what
               for i in trainings)
    assert "(photos + mirrors)" in next(i.what for i in trainings if "resnet" in i.what)


def test_sd_rate_agrees_with_the_published_t4_benchmark():
    # One SD 1.5 txt2img iteration = one UNet call at batch 2 (classifier-free guidance), 64x64 latents.
    flops, _ = B.sd_call("sd15-unet", 2, 64, 64)
    assert 1.5e12 < flops < 1.7e12
    predicted = flops / B.RATES["sd"]
    assert predicted == pytest.approx(1 / B.SD_T4_ITERATIONS_PER_S, rel=0.1)


def test_checkpoints_follow_fits_keep():
    from lessons_lib.training import KEEP

    cost = B.TaskCost(B.Cost(1.0, 1, 1.0), B.Cost(1.0, 1), state_bytes=10, checkpoint_bytes=1_000)
    with_val = B.training("x", cost, batch=2, steps=10, epochs=10, checkpoints=True, val_images=4, val_batch=2)
    without = B.training("x", cost, batch=2, steps=10, epochs=10, checkpoints=True)
    assert with_val[0].checkpoints_kept == (KEEP + 1) * 1_000   # the last KEEP and the best by validation
    assert without[0].checkpoints_kept == KEEP * 1_000
    assert without[0].checkpoint_writing == 1_000               # the next one, before the oldest goes
    assert B.training("x", cost, 2, 10, 10)[0].checkpoints_kept == 0


def _notebook(tmp_path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_read_picks_takes_the_full_values_in_source_order(tmp_path):
    path = _notebook(tmp_path,
                     "%pip install x\nif True:\n    %pip install y\nEPOCHS = pick(fast=2, full=15)\nSIZE = 32",
                     "A, B = pick(fast=(1, 2), full=(3, None))\nC, D = pick(fast=1, full=5), 7\n"
                     "fit(task, make_loader(d, batch_size=pick(fast=8, full=1)), epochs=pick(fast=2, full=20))\n"
                     "make_loader(e, batch_size=32)\nCKPT = pick(fast=None, full=output_dir('x'))")
    p = B.read_picks(path)
    assert (p.one("EPOCHS"), p.one("SIZE"), p.one("A"), p.one("B"), p.one("C"), p.one("D")) == (15, 32, 3, None, 5, 7)
    assert p.one("fit.epochs") == 20
    assert p.all("make_loader.batch_size") == [1, 32]
    assert p.one("CKPT") == "output_dir('x')"


def test_a_count_missing_from_its_notebook_is_an_error(tmp_path):
    p = B.read_picks(_notebook(tmp_path, "SIZE = 32"))
    with pytest.raises(B.MissingCount, match="EPOCHS"):
        p.one("EPOCHS")
    with pytest.raises(B.MissingCount, match="make_loader.batch_size"):
        p.all("make_loader.batch_size", 2)


@pytest.mark.parametrize("key", list(B.NOTEBOOKS))
def test_every_name_the_budget_reads_is_in_the_notebook(key):
    # What each notebook must set, by name; a rename there must be followed here.
    needed = {"01": ["EPOCHS", "TRAIN_IMAGES", "TEST_IMAGES"],
              "02": ["SIZE", "EPOCHS", "BATCH_SIZE", "WIDTH", "LATENT_DIM", "STEPS", "TEST_IMAGES",
                     "STEPS_PER_EPOCH", "TRAIN_IMAGES", "LEARNING_RATE"],
              "03": ["SIZE", "WIDTH", "BATCH", "N_TEST", "DDPM_EPOCHS", "INPAINT_EPOCHS", "DDPM_SAMPLE_STEPS",
                     "DDIM_SAMPLE_STEPS", "REPAINT_STEPS", "JUMP_LENGTH", "JUMP_N_SAMPLE", "CKPT"],
              "04": ["SIZE", "STEPS", "BORDER", "LOW", "upscale.overlap"],
              "05": ["STEPS", "SIZE", "INSTRUCTIONS", "guidance_grid.image_guidance_scales",
                     "guidance_grid.guidance_scales"],
              "06": ["FEATURES", "SIZE", "STEPS", "GRID_SIZE", "GRID_STEPS", "BETAS", "JUDGE_PAIRS", "JUDGE_STEPS",
                     "ADAIN_SIZE", "N_CONTENT", "ADAIN_EPOCHS", "SR_SIZE", "N_SR_TRAIN", "N_SR_TEST", "fit.epochs"],
              "07": ["SIZE", "DOMAINS", "EPOCHS", "DECAY", "CycleGANTask.pool_size", "UNetGenerator.ngf"]}[key]
    p = B.notebook_picks(key)
    for name in needed:
        p.one(name)


def _fake_inputs(tmp_path, monkeypatch):
    """A stand-in repository for the cache: its notebooks, one lessons_lib file, and a counting budget()."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "lessons_lib").mkdir()
    for name in B.NOTEBOOKS.values():
        (tmp_path / "notebooks" / name).write_text("{}")
    (tmp_path / "lessons_lib" / "m.py").write_text("X = 1\n")
    calls = []
    row = B.Row("01", [B.Item("x", 0.1 + 0.2, 3, "fp32", memory=1e9 / 3)], 1 / 3, 2 / 7, 0.1)

    def fake_budget():
        calls.append(1)
        return (row,)

    monkeypatch.setattr(cache, "ROOT", tmp_path)
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / ".cache" / "budget")
    monkeypatch.setattr(cache, "budget", fake_budget)
    return row, calls


def test_the_cache_returns_the_same_rows_and_misses_on_any_change(tmp_path, monkeypatch):
    row, calls = _fake_inputs(tmp_path, monkeypatch)
    first = cache.cached_budget()
    again = cache.cached_budget()
    assert len(calls) == 1 and [dataclasses.asdict(r) for r in again] == [dataclasses.asdict(row)]
    assert again[0].minutes == first[0].minutes   # floats come back exact
    for change in (lambda: (tmp_path / "lessons_lib" / "m.py").write_text("X = 2\n"),
                   lambda: (tmp_path / "notebooks" / B.NOTEBOOKS["03"]).write_text("{ }"),
                   lambda: monkeypatch.setenv("LESSONS_CHECKSUM_CIFAR10", "sha256:0")):
        change()
        cache.cached_budget()
        cache.cached_budget()
    assert len(calls) == 4
    assert len(list((tmp_path / ".cache" / "budget").glob("*.json"))) == 1   # the stale entries are removed


def test_a_sampler_is_counted_exactly_from_two_and_three_steps():
    import torch

    from course_tools.budget.measure import images, measure_forward, measure_sampling
    from lessons_lib import evaluation
    from lessons_lib.models.colorizers import build_model

    gray = images(2, 16, 1)
    for name in ("unetddim", "unetddpm"):
        model = build_model(name, width=8).eval()

        def sample(n, model=model):
            return evaluation.colorize(model, gray, 2, n, torch.Generator().manual_seed(0))

        counted, measured = measure_sampling(sample, 7), measure_forward(lambda: sample(7))
        assert (counted.flops, counted.ops) == (measured.flops, measured.ops), name
