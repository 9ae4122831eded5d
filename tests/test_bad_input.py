"""Bad input at every entry point outside editing and grading: one clear message, nothing lost.

Each test gives a careless value, checks the message's substance (what is wrong, the
value, what to do) and that nothing on disk changed where nothing should.
"""
import errno
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from helpers import SMALL, files_under, photo_folder, zoo_cli
from PIL import Image

from lessons_lib import (
    data,
    diffusion,
    evaluation,
    inpainting,
    masks,
    metrics,
    style,
    training,
    translation,
    zoo,
)
from lessons_lib import validate as V


def _cli_refused(capsys, *args) -> str:
    """A command line that argparse refuses: exit status 2, its message on stderr."""
    with pytest.raises(SystemExit) as stop:
        zoo.main([str(a) for a in args])
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny trained resnet (1 epoch), copied by the tests that need it."""
    root = tmp_path_factory.mktemp("zoo")
    data_dir = photo_folder(root / "photos", n=8, flat=True)
    assert zoo.main(["--model", "resnet", "--epochs", "1", "--data", str(data_dir),
                     "--out", str(root / "out"),
                     "--steps_per_epoch", "1", *SMALL]) == 0
    return root


@pytest.fixture()
def run_copy(trained_run, tmp_path):
    shutil.copytree(trained_run, tmp_path / "run")
    return tmp_path / "run" / "photos", tmp_path / "run" / "out"


BASE = ["--model", "resnet", "--steps_per_epoch", "1"]


# --------------------------------------------------------------------------- resuming
@pytest.mark.parametrize("flag, value, recorded", [("--learning_rate", "0.01", "0.001"),
                                                   ("--batch_size", "2", "4"),
                                                   ("--seed", "1", "8000"), ("--limit", "6", None)])
def test_a_resumed_run_refuses_a_changed_setting_and_names_it(run_copy, capsys, flag, value, recorded):
    photos, out = run_copy
    before = files_under(out)
    args = [*BASE, "--epochs", 2, "--data", photos, "--out", out, *SMALL]
    if flag == "--batch_size":
        args[args.index("--batch_size") + 1] = value
    else:
        args += [flag, value]
    code, io = zoo_cli(capsys, *args)
    assert code == 2
    if recorded is None:  # fewer images: the data changed
        assert "recorded with 8 training images; this run asks for 6 training images" in io.err
        assert "same --data, --limit and --val_fraction" in io.err
    else:
        assert f"recorded with {flag} {recorded}; this run asks for {flag} {value}" in io.err
        assert f"run again with {flag} {recorded} to resume it" in io.err
    assert "start a fresh run with another --out folder" in io.err
    assert files_under(out) == before  # no checkpoint, history or config touched


def test_a_resumed_run_with_the_recorded_settings_continues(run_copy, capsys):
    photos, out = run_copy
    code, io = zoo_cli(capsys, *BASE, "--epochs", 2, "--data", photos, "--out", out, *SMALL)
    assert code == 0, io.err
    assert sorted(training.list_checkpoints(out / "resnet")) == [1, 2]


def test_every_setting_that_matters_is_recorded(run_copy):
    import json

    _, out = run_copy
    config = json.loads((out / "resnet" / "config.json").read_text())
    assert config == {"model": "resnet", "width": 4, "image_size": 32,  # no latent_dim: resnet has none
                      "learning_rate": 0.001,
                      "batch_size": 4, "seed": 8000, "steps_per_epoch": 1, "n_images": 8, "loss": "mse",
                      "flip": False, "cosine_epochs": None}


def test_fewer_epochs_than_trained_says_so_and_changes_nothing(run_copy, capsys):
    photos, out = run_copy
    zoo.main([*map(str, BASE), "--epochs", "2", "--data", str(photos), "--out", str(out), *SMALL])
    capsys.readouterr()
    before = files_under(out)
    code, io = zoo_cli(capsys, *BASE, "--epochs", 1, "--data", photos, "--out", out, *SMALL)
    assert code == 0
    assert "already holds 2 epochs, more than epochs=1; nothing is trained" in io.out
    assert files_under(out) == before


# --------------------------------------------------------------------------- --mode test
def test_mode_test_reads_the_recorded_sizes(run_copy, capsys):
    photos, out = run_copy
    # No --width: it comes from config.json (4, not the default 32).
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--data", photos, "--out", out,
                    "--limit", 4)
    assert code == 0, io.err


def test_mode_test_refuses_sizes_that_disagree_with_the_record(run_copy, capsys):
    photos, out = run_copy
    before = files_under(out)
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--data", photos, "--out", out, "--width", 8)
    assert code == 2
    assert "was trained with --width 4 (its config.json); you passed --width 8" in io.err
    assert "leave --width out (or pass --width 4)" in io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--data", photos, "--out", out, "--wid", 8)
    assert code == 2 and "you passed --width 8" in io.err  # an abbreviated flag counts too
    assert files_under(out) == before


def test_mode_test_without_a_record_uses_the_flags_and_its_advice_works(run_copy, capsys):
    photos, out = run_copy
    (out / "resnet" / "config.json").unlink()
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--data", photos, "--out", out)
    assert code == 2 and "do not fit this model" in io.err and "trained with other sizes" in io.err
    # resnet's size is its width alone: the advice names --width, not a flag that changes nothing
    assert "pass the --width it was trained with (this try: --width 32)" in io.err
    assert "--latent_dim" not in io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--data", photos, "--out", out,
                    "--limit", 4, "--width", 4)
    assert code == 0, io.err  # following the advice works


def test_an_empty_model_folder(tmp_path, capsys):
    photos = photo_folder(tmp_path / "photos", n=4, flat=True)
    (tmp_path / "out" / "unet").mkdir(parents=True)
    code, io = zoo_cli(capsys, "--model", "unet", "--mode", "test", "--data", photos, "--out", tmp_path / "out")
    assert code == 2 and "No checkpoints in" in io.err and "Train first (--mode train)" in io.err
    assert list((tmp_path / "out").rglob("*")) == [tmp_path / "out" / "unet"]


# --------------------------------------------------------------------------- numbers on the command line
@pytest.mark.parametrize("args, expected", [
    (["--limit", "-5"], "argument --limit: expected a whole number >= 1 (e.g. 500), got '-5'"),
    (["--limit", "0"], "argument --limit: expected a whole number >= 1 (e.g. 500), got '0'"),
    (["--steps_per_epoch", "0"], "argument --steps_per_epoch: expected a whole number >= 1"),
    (["--epochs", "2.5"], "argument --epochs: expected a whole number >= 1 (e.g. 10), got '2.5'"),
    (["--batch_size", "nan"], "argument --batch_size: expected a whole number >= 1 (e.g. 64), got 'nan'"),
    (["--learning_rate", "nan"], "argument --learning_rate: expected a finite number in (0, 1] (e.g. 0.001)"),
    (["--learning_rate", "-1"], "argument --learning_rate: expected a finite number in (0, 1]"),
    (["compare", "--val_fraction", "1.5"],
     "argument --val_fraction: expected a finite number in (0, 1) (e.g. 0.1)"),
    (["--image_size", "4"], "argument --image_size: expected a whole number >= 8"),
])
def test_numbers_say_what_is_expected(tmp_path, capsys, args, expected):
    err = _cli_refused(capsys, "--out", tmp_path / "out", *args)
    assert expected in err and "invalid int value" not in err
    assert not (tmp_path / "out").exists()


def test_steps_per_epoch_0_never_checkpoints_an_empty_epoch(tmp_path):
    task = training.SupervisedTask(torch.nn.Linear(2, 2))
    loader = data.make_loader(torch.utils.data.TensorDataset(torch.rand(4, 2), torch.rand(4, 2)), 2)
    with pytest.raises(ValueError, match="steps_per_epoch must be a whole number >= 1, got 0.*trains at least"
                                         "|steps_per_epoch must be a whole number >= 1, got 0"):
        training.fit(task, loader, 1, ckpt_dir=tmp_path / "ck", steps_per_epoch=0, progress=False)
    with pytest.raises(ValueError, match="steps_per_epoch must be a whole number >= 1, got 0"):
        zoo.train("resnet", torch.rand(4, 3, 16, 16), tmp_path / "z", epochs=1, batch_size=2, width=4,
                  latent_dim=4, steps_per_epoch=0, progress=False)
    assert not (tmp_path / "ck").exists() and not (tmp_path / "z").exists()


def test_an_epoch_whose_loader_yields_nothing_is_not_checkpointed(tmp_path):
    class Empty:  # claims a length but yields nothing (a broken sampler or iterable)
        def __len__(self):
            return 3

        def __iter__(self):
            return iter(())

    task = training.SupervisedTask(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Epoch 1 trained no batch.*no checkpoint was written"):
        training.fit(task, Empty(), 1, ckpt_dir=tmp_path / "ck", progress=False)
    assert training.list_checkpoints(tmp_path / "ck") == {}


def test_the_blame_goes_to_the_right_setting(tmp_path):
    photos = torch.rand(10, 3, 16, 16)
    with pytest.raises(ValueError, match=r"--val_fraction .* must be in \(0, 1\), got 1.5"):
        zoo.compare(["resnet"], photos, tmp_path, val_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0. It is the number of "
                                         "images per training step"):
        zoo.train("resnet", photos, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="4 images are too few to hold out --val_fraction 0.9"):
        zoo.compare(["resnet"], photos[:4], tmp_path, val_fraction=0.9)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- output paths
def test_an_output_path_that_is_a_file(tmp_path, capsys):
    photos = photo_folder(tmp_path / "photos", n=4, flat=True)
    blocker = tmp_path / "taken"
    blocker.write_text("my notes")
    code, io = zoo_cli(capsys, "--data", photos, "--out", blocker, *SMALL)
    assert code == 2 and "The output folder (--out)" in io.err and "is a file, not a folder" in io.err
    assert "Errno" not in io.err
    code, io = zoo_cli(capsys, "--data", photos, "--out", blocker / "sub", *SMALL)
    assert code == 2 and f"'{blocker}' on its way is a file" in io.err
    with pytest.raises(NotADirectoryError, match="checkpoint folder .* is a file"):
        training.fit(training.SupervisedTask(torch.nn.Linear(2, 2)),
                     [(torch.rand(1, 2), torch.rand(1, 2))], 1, ckpt_dir=blocker, progress=False)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        evaluation.save_results({"a": {}}, blocker)
    assert blocker.read_text() == "my notes"


# --------------------------------------------------------------------------- a full disk
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_earlier_files(tmp_path, monkeypatch):
    task = training.SupervisedTask(torch.nn.Linear(2, 2))
    loader = data.make_loader(torch.utils.data.TensorDataset(torch.rand(4, 2), torch.rand(4, 2)), 2)
    training.fit(task, loader, 1, ckpt_dir=tmp_path, progress=False)
    before = files_under(tmp_path)
    monkeypatch.setattr(training.torch, "save", _disk_full)
    with pytest.raises(V.WriteFailed) as err:
        training.fit(task, loader, 2, ckpt_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert "epoch_0002.pt" in msg and "the disk is full" in msg
    assert "Nothing was replaced: the earlier checkpoints (up to epoch_0001.pt) are whole" in msg
    assert "Free some disk space" in msg and "Errno" not in msg
    assert files_under(tmp_path) == before  # no partial epoch_0002.pt, no temporary file left


def test_a_full_disk_in_the_zoo_is_one_plain_line(run_copy, capsys, monkeypatch):
    photos, out = run_copy
    before = files_under(out)
    monkeypatch.setattr(training.torch, "save", _disk_full)
    code, io = zoo_cli(capsys, *BASE, "--epochs", 2, "--data", photos, "--out", out, *SMALL)
    last = io.err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: Could not write") and "the disk is full" in last
    assert "Traceback" not in io.err
    assert files_under(out) == before  # epoch 1 whole, no epoch 2, no temporary file


def test_writing_keeps_other_errors_as_they_are(tmp_path):
    with pytest.raises(FileExistsError):
        with V.writing(tmp_path / "x"):
            raise FileExistsError("kept")
    with pytest.raises(V.WriteFailed, match="read-only or not yours"):
        with V.writing(tmp_path / "x"):
            raise PermissionError(errno.EACCES, "Permission denied")


# --------------------------------------------------------------------------- samplers
def _never_called(*args):
    raise AssertionError("the model must not run on bad input")


SCHEDULE = diffusion.make_schedule("linear", 20)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_samplers_refuse_eta_and_guidance_that_are_not_finite(bad):
    with pytest.raises(ValueError, match="eta must be"):
        diffusion.ddim_sample(_never_called, (1, 3, 4, 4), SCHEDULE, 5, eta=bad, progress=False)
    cond = torch.ones(1, 1, 4, 4)
    for sample in (diffusion.ddim_sample, diffusion.ddpm_sample):
        with pytest.raises(ValueError, match="guidance_scale must be .*1 is the plain conditional"):
            sample(_never_called, (1, 3, 4, 4), SCHEDULE, 5, cond=cond, guidance_scale=bad, progress=False)
    with pytest.raises(ValueError, match="eta must be"):
        diffusion.repaint_sample(_never_called, torch.zeros(1, 3, 8, 8), masks.center_box(1, 8), SCHEDULE, 5,
                                 eta=bad, progress=False)
    with pytest.raises(ValueError, match="eta must be"):
        diffusion.ddim_step(torch.zeros(1, 3, 4, 4), 10, torch.zeros(1, 3, 4, 4), SCHEDULE, eta=bad)


def test_samplers_refuse_bad_step_counts_before_the_model_runs():
    with pytest.raises(ValueError, match=r"num_inference_steps must be a whole number between 1 and 20 .*T=20"):
        diffusion.ddpm_sample(_never_called, (1, 3, 4, 4), SCHEDULE, 0, progress=False)
    with pytest.raises(ValueError, match="num_inference_steps must be a whole number between 1 and 20 .*got 2.5"):
        diffusion.ddim_sample(_never_called, (1, 3, 4, 4), SCHEDULE, 2.5, progress=False)


def test_repaint_checks_the_documented_value_range():
    image = torch.rand(1, 3, 8, 8) * 255
    with pytest.raises(ValueError, match=r"RePaint: the values span \[.*\], but they must lie in \[-1, 1\]. "
                                         r"It looks like 0..255 pixel values: use x / 127.5 - 1"):
        diffusion.repaint_sample(_never_called, image, masks.center_box(1, 8), SCHEDULE, 5, progress=False)
    model = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]. It looks like 0..255.*by 255"):
        inpainting.repaint_inpaint(model, image, masks.center_box(1, 8), SCHEDULE, 5, progress=False)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]. It looks like \[-1, 1\] values.*to_unit"):
        inpainting.naive_fill(torch.rand(1, 3, 8, 8) * 2 - 1, masks.center_box(1, 8))
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        inpainting.inpaint(model, torch.rand(1, 3, 8, 8), masks.center_box(1, 8), batch_size=0)
    with pytest.raises(ValueError, match="data_range must be a finite number"):
        inpainting.masked_psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), masks.center_box(1, 8),
                               data_range=float("nan"))
    with pytest.raises(ValueError, match="The output of 'unet' is"):
        inpainting.compare_methods({"unet": torch.rand(1, 3, 4, 4)}, torch.rand(1, 3, 8, 8),
                                   masks.center_box(1, 8))


# --------------------------------------------------------------------------- style transfer sizes
def _png_header(path, w, h):
    """A PNG that declares w x h pixels (header only): opening it reads no pixel data."""
    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_style_transfer_refuses_huge_and_tiny_images_with_how_to_resize(tmp_path):
    small = torch.rand(3, 32, 32)
    big = _png_header(tmp_path / "big.png", 10000, 10000)
    with pytest.raises(ValueError, match=r"content image is 10000x10000 pixels \(100 megapixels\); "
                                         r".*at most 40 "
                                         r"megapixels. Downscale it first.*thumbnail"):
        style.prepare_pair(big, small)
    with pytest.raises(ValueError, match="style image is 10000x10000"):
        style.style_transfer(small, torch.zeros(1, 3, 1, 1).expand(1, 3, 10000, 10000), steps=1)
    with pytest.raises(ValueError, match="largest supported is 1024 pixels.*Pass size=512"):
        style.prepare_pair(torch.zeros(1, 3, 1, 1).expand(1, 3, 1500, 2000), small)
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ValueError, match="content image is 1x1 pixels; it must be at least 16 .*size=256"):
        style.style_transfer(tmp_path / "dot.png", small, steps=1)
    with pytest.raises(ValueError, match="style image is 1x1 pixels"):
        style.prepare_pair(small, torch.rand(3, 1, 1))
    with pytest.raises(ValueError, match="size .* must be a whole number between 16 and 1024, got 4096"):
        style.prepare_pair(small, small, size=4096)
    c, _ = style.prepare_pair(tmp_path / "dot.png", small, size=32, verbose=False)  # scaled up: fine
    assert c.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="beta .* must be a finite number >= 0, got nan"):
        style.style_transfer(small, small, beta=float("nan"))
    with pytest.raises(ValueError, match="steps .* must be a whole number >= 1, got 2.5"):
        style.style_transfer(small, small, steps=2.5)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        style.prepare_pair(tmp_path, small)


# --------------------------------------------------------------------------- data, metrics, masks
def test_data_limits_and_sizes():
    for bad in (-5, 0, 2.5):
        with pytest.raises(ValueError, match=f"limit .* must be a whole number >= 1, got {bad}"):
            data.colour_images("train", 32, limit=bad)
        with pytest.raises(ValueError, match="limit .* must be a whole number >= 1"):
            zoo.load_photos(None, 32, limit=bad)
    with pytest.raises(ValueError, match="limit .* got -1"):
        data.stack(data.TensorImages(torch.rand(2, 3, 4, 4)), limit=-1)
    with pytest.raises(ValueError, match="size .* must be a whole number >= 1, got 0"):
        data.sample_photos(2, 0)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 2.5"):
        data.make_loader(data.TensorImages(torch.rand(2, 3, 4, 4)), 2.5)


def test_metrics_refuse_another_scale():
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="values up to .* far beyond data_range=1.*data_range=255"):
        metrics.psnr(x * 255, x * 250)
    with pytest.raises(ValueError, match="data_range must be > 0, got 0"):
        metrics.ssim(x, x, data_range=0)
    for f in (metrics.delta_e76, metrics.delta_e2000):
        with pytest.raises(ValueError, match=r"take RGB in \[0, 1\]: divide 0..255 images by 255"):
            f(x * 255, x)
    with pytest.raises(ValueError, match="divide 0..255 images by 255"):
        metrics.colorfulness(x * 255)
    assert float(metrics.psnr(x * 255, x * 250, data_range=255)) > 0  # the right data_range works
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.frechet_distance(np.full((4, 3), np.nan), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"The photos given to evaluate: the values span"):
        evaluation.evaluate(torch.nn.Conv2d(1, 3, 1), x * 255, lpips=None)


def test_masks_and_translation_numbers():
    with pytest.raises(ValueError, match=r"max_fraction .* must be a finite number in \(0, 1\], got nan"):
        masks.random_boxes(1, 8, max_fraction=float("nan"))
    with pytest.raises(ValueError, match="fill .* must be a finite number"):
        masks.apply_mask(torch.rand(1, 3, 8, 8), masks.center_box(1, 8), fill=float("nan"))
    with pytest.raises(ValueError, match="degrees must be a finite number"):
        translation.hue_rotate(torch.rand(1, 3, 8, 8), float("nan"))
    with pytest.raises(ValueError, match="sigma .* must be >= 0"):
        translation.canny_edges(torch.rand(1, 3, 8, 8), sigma=-1)


@pytest.mark.parametrize("call, message", [
    (lambda: V.choice("model", "unte", ["resnet", "unet", "gan"]),
     "Unknown model 'unte'. Choose one of: resnet, unet, gan. Did you mean 'unet'?"),
    (lambda: V.choice("model", "zzz", ["resnet", "unet"], also="or 'all'"),
     "Unknown model 'zzz'. Choose one of: resnet, unet (or 'all')."),
    (lambda: V.choice("texture", 3, ["stripes"]), "Unknown texture 3. Choose one of: stripes."),
    (lambda: V.choice("mask kind", ["center"], ["center"]), "Unknown mask kind ['center']. Choose one of: center."),
])
def test_an_unknown_name_gets_the_one_message(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


def test_every_named_choice_uses_the_one_message():
    """The entry points that take a name from a fixed set all answer in validate.choice's words."""
    from lessons_lib import diffusion, frechet, inpainting, masks, textures, zoo
    from lessons_lib.editing import specs
    from lessons_lib.models.colorizers import build_model
    for call in (lambda: zoo.make_task("unte", None), lambda: build_model("unte"),
                 lambda: inpainting.make_task("unte"), lambda: diffusion.beta_schedule("cosin"),
                 lambda: masks.make_masks("centre", 2), lambda: textures.texture("stripe"),
                 lambda: frechet.get_feature_extractor("pixel"), lambda: specs.task_spec("img2im")):
        with pytest.raises(ValueError, match=r"^Unknown .* Choose one of: .* Did you mean '"):
            call()
    assert V.choice("model", "unet", ["resnet", "unet"]) == "unet"
