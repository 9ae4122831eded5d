"""The colorization zoo: model shapes, evaluation tables, the CLI end to end, bad input."""
import json

import pytest
import torch
from helpers import SMALL, photo_folder, zoo_cli
from PIL import Image

from lessons_lib import evaluation, training, zoo
from lessons_lib.models.colorizers import MODELS, build_model

ALL = list(MODELS)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", ALL)
def test_forward_shapes(name, size):
    torch.manual_seed(0)
    model = build_model(name, latent_dim=8, width=8).eval()
    gray = torch.rand(2, 1, size, size) * 2 - 1
    with torch.no_grad():
        out = evaluation.colorize(model, gray, num_inference_steps=2)
    assert out.shape == (2, 3, size, size)
    assert out.min() >= -1 and out.max() <= 1
    kind = MODELS[name].kind
    with torch.no_grad():
        if kind == "vae":
            y, mu, logvar = model.train()(gray)
            assert y.shape == (2, 3, size, size) and mu.shape == logvar.shape == (2, 8, size // 8, size // 8)
        elif kind == "gan":
            logits = model.discriminator(gray, out)  # a map of patch logits
            assert logits.shape[:2] == (2, 1) and 1 < logits.shape[-1] < size // 4
        elif kind == "diffusion":
            v = model(torch.randn(2, 2, size, size), torch.tensor([0, 999]), gray)  # the two chroma channels
            assert v.shape == (2, 2, size, size)
    if kind != "diffusion":
        # The chroma starts at zero: an untrained model is the gray baseline.
        assert torch.allclose(out, gray.expand(-1, 3, -1, -1), atol=1e-6)


def test_model_registry_messages():
    with pytest.raises(ValueError, match=r"Unknown model 'vgg'\. Choose one of: resnet, unet, gan"):
        build_model("vgg")
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("gan", width=4)(torch.zeros(1, 1, 36, 36))
    with pytest.raises(ValueError, match="latent_dim must be a whole number >= 1, got 0"):
        build_model("basicvae", latent_dim=0)


def test_image_metrics_and_results_table():
    g = torch.Generator().manual_seed(0)
    photos = torch.rand(4, 3, 32, 32, generator=g)
    same = evaluation.image_metrics(photos, photos)
    assert same["ssim"] == pytest.approx(1.0) and same["delta_e76"] == pytest.approx(0, abs=1e-3)
    assert same["lpips"] is None
    gray = evaluation.image_metrics(evaluation.gray_baseline(photos), photos)
    assert gray["colorfulness"] == pytest.approx(0, abs=1e-3) and gray["delta_e76"] > 5
    results = {"a": {"ssim": 0.9, "psnr": 20.0, "delta_e76": 5.0, "delta_e2000": 4.0, "colorfulness": 30.0,
                     "lpips": None},
               "gray baseline": {"ssim": 0.95, "psnr": 18.0, "delta_e76": 9.0, "delta_e2000": 7.0,
                                 "colorfulness": 0.0, "lpips": None}}
    table = evaluation.results_table(results, target_colorfulness=25.0)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "**0.9500**" in rows["gray baseline"] and "**20.00**" in rows["a"]
    assert "**5.00**" in rows["a"] and "**30.00**" in rows["a"] and "n/a" in rows["a"]
    assert "real photos: 25.00" in table
    assert evaluation.results_csv(results).splitlines()[0] == "model,ssim,psnr,delta_e76,delta_e2000,colorfulness,lpips"


def test_cli_train_then_test_end_to_end(tmp_path, capsys):
    data, out = photo_folder(tmp_path / "photos"), tmp_path / "out"
    code, io = zoo_cli(capsys, "--model", "unet", "--mode", "train", "--epochs", 2, "--data", data, "--out", out,
                       *SMALL)
    assert code == 0, io.err
    assert sorted(training.list_checkpoints(out / "unet")) == [1, 2]
    assert len(json.loads((out / "unet" / "history.json").read_text())) == 2
    code, io = zoo_cli(capsys, "--model", "unet", "--mode", "test", "--weights", 1, "--data", data, "--out", out,
                    "--num_images", 3)
    assert code == 0, io.err
    record = json.loads((out / "metrics_unet.json").read_text())
    for part in ("model", "gray"):
        assert set(record[part]) == {"ssim", "psnr", "delta_e76", "delta_e2000", "colorfulness", "lpips"}
    assert record["epoch"] == 1 and record["n_images"] == 12
    assert record["gray"]["colorfulness"] == pytest.approx(0, abs=1e-3)
    with Image.open(out / "samples_unet.png") as grid:  # 3 rows (gray, output, target) x 3 images
        assert grid.size == (3 * 34 + 2, 3 * 34 + 2)
    # A second test run keeps the first result unless told to overwrite it.
    code, io = zoo_cli(capsys, "--model", "unet", "--mode", "test", "--data", data, "--out", out)
    assert code == 2 and "2 of its result files already exist" in io.err and "are kept: nothing was started" \
        in io.err and "--overwrite" in io.err
    code, io = zoo_cli(capsys, "--model", "unet", "--mode", "test", "--data", data, "--out", out, "--overwrite")
    assert code == 0 and json.loads((out / "metrics_unet.json").read_text())["epoch"] == 2


def test_compare_writes_the_table_for_every_model(tmp_path, capsys):
    data, out = photo_folder(tmp_path / "photos", n=10, flat=True), tmp_path / "out"
    code, io = zoo_cli(capsys, "compare", "--epochs", 1, "--data", data, "--out", out, "--steps", 2,
                    "--val_fraction", 0.2, "--latent_dim", 4, *SMALL)
    assert code == 0, io.err
    table = (out / "comparison.md").read_text()
    for name in [*ALL, "gray baseline"]:
        assert f"| {name} |" in table
    assert table.count("**") >= 2 * 5
    lines = (out / "comparison.csv").read_text().splitlines()
    assert len(lines) == len(ALL) + 2
    assert all((out / f"metrics_{n}.json").is_file() and (out / f"samples_{n}.png").is_file() for n in ALL)


def test_bad_input_gets_one_clear_message(tmp_path, capsys):
    data, out = photo_folder(tmp_path / "photos", n=4), tmp_path / "out"
    code, io = zoo_cli(capsys, "--model", "vgg", "--data", data, "--out", out)
    assert code == 2 and "Unknown model 'vgg'. Choose one of: resnet, unet" in io.err
    code, io = zoo_cli(capsys, "--data", tmp_path / "nowhere", "--out", out)
    assert code == 2 and "does not exist" in io.err
    (tmp_path / "empty").mkdir()
    code, io = zoo_cli(capsys, "--data", tmp_path / "empty", "--out", out)
    assert code == 2 and "No images found" in io.err and "It is empty" in io.err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a photo")
    code, io = zoo_cli(capsys, "--data", junk, "--out", out)
    assert code == 2 and "No images found" in io.err and "notes.txt" in io.err
    (junk / "photo.png").write_text("<html>not a png</html>")
    code, io = zoo_cli(capsys, "--data", junk, "--out", out)
    assert code == 2 and "photo.png" in io.err and "not an image" in io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--data", data, "--out", out)
    assert code == 2 and "No checkpoints in" in io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 1, "--data", data, "--out", out, *SMALL)
    assert code == 0, io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--weights", 7, "--data", data, "--out", out)
    assert code == 2 and "No checkpoint for epoch 7" in io.err and "saved epochs: 1" in io.err
    ckpt = training.checkpoint_path(out / "resnet", 1)
    ckpt.write_bytes(b"\x00" * 100)
    code, io = zoo_cli(capsys, "--model", "resnet", "--mode", "test", "--weights", 1, "--data", data, "--out", out)
    assert code == 2 and "cannot be read: it is damaged or truncated" in io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 1, "--data", data, "--out", out, "--width", "8",
                    "--batch_size", "4")
    assert code == 2 and "recorded with --width 4; this run asks for --width 8" in io.err
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 1, "--data", data, "--out", out, "--latent_dim", "4",
                    *SMALL)
    assert code == 2 and "--latent_dim is the VAEs' latent channels (basicvae, unetvae)" in io.err
    assert "'resnet' has no latent to size: leave it out" in io.err
    with pytest.raises(SystemExit) as stop:
        zoo_cli(capsys, "--epochs", 0, "--data", data, "--out", out)
    assert stop.value.code == 2
    assert "argument --epochs: expected a whole number >= 1 (e.g. 10), got '0'" in capsys.readouterr().err


def test_wandb_is_optional(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    data = photo_folder(tmp_path / "photos", n=4)
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 1, "--data", data, "--out", tmp_path / "o",
                    "--wandb", *SMALL)
    assert code == 2 and "pip install wandb" in io.err


def test_resuming_with_other_settings_is_refused(tmp_path):
    photos16 = torch.rand(8, 3, 16, 16)
    zoo.train("unet", photos16, tmp_path, epochs=1, batch_size=4, width=4, latent_dim=8, progress=False)
    with pytest.raises(ValueError, match="holds a unet run .* recorded with --image_size 16; this run asks "
                                         "for --image_size 32"):
        zoo.train("unet", torch.rand(8, 3, 32, 32), tmp_path, epochs=1, batch_size=4, width=4, latent_dim=8,
                  progress=False)
    with pytest.raises(ValueError, match="recorded with --width 4; this run asks for --width 8"):
        zoo.train("unet", photos16, tmp_path, epochs=1, batch_size=4, width=8, latent_dim=8, progress=False)
    # latent_dim does not shape a unet: it is neither recorded nor compared, and the run resumes
    zoo.train("unet", photos16, tmp_path, epochs=2, batch_size=4, width=4, latent_dim=16, progress=False)
    assert "latent_dim" not in json.loads((tmp_path / "unet" / "config.json").read_text())
    assert sorted(training.list_checkpoints(tmp_path / "unet")) == [1, 2]


def test_delta_e76_loss_is_the_metric_and_trains_a_regressor(tmp_path):
    from lessons_lib import metrics
    from lessons_lib.images import to_unit

    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1, torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    # the loss is the lesson's Delta E 76 (the tiny constant under the square root aside) ...
    assert zoo.delta_e76_loss(pred, target).item() == pytest.approx(
        metrics.delta_e76(to_unit(pred), to_unit(target)).item(), rel=1e-4)
    # ... with a finite gradient, also where the colours already agree
    pred.requires_grad_()
    zoo.delta_e76_loss(pred, pred.detach()).backward()
    assert torch.isfinite(pred.grad).all()
    # under mixed precision (fp16 on a T4, bf16 here) it is still computed in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = zoo.delta_e76_loss(pred.detach().bfloat16(), target.bfloat16())
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(zoo.delta_e76_loss(pred.detach().bfloat16().float(),
                                                            target.bfloat16().float()).item(), rel=1e-6)
    # trained on it (with mirrored photos), a regressor records both settings, and a resume must match
    photos = torch.rand(8, 3, 16, 16, generator=g)
    settings = dict(batch_size=4, width=4, progress=False, flip=True, lr_schedule="cosine")
    _, history = zoo.train("resnet", photos, tmp_path, epochs=2, loss="delta_e76", **settings)
    record = json.loads((tmp_path / "resnet" / "config.json").read_text())
    assert record["loss"] == "delta_e76" and record["flip"] is True and record["n_images"] == 8
    assert record["cosine_epochs"] == 2
    assert history.epochs == [1, 2] and history["train_loss"][0] > 1  # Delta E units, not MSE's
    # the cosine schedule ran down over the two epochs, and its state is in the checkpoint
    state = torch.load(tmp_path / "resnet" / "epoch_0002.pt", weights_only=False)
    assert state["task_state"]["schedulers"]["model"]["last_epoch"] == 2
    assert state["task_state"]["optimizers"]["model"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="recorded with --loss delta_e76; this run asks for --loss mse"):
        zoo.train("resnet", photos, tmp_path, epochs=2, **settings)
    with pytest.raises(ValueError, match="recorded with --epochs 2; this run asks for --epochs 3"):
        zoo.train("resnet", photos, tmp_path, epochs=3, loss="delta_e76", **settings)
    # the other families keep their own losses
    with pytest.raises(ValueError, match="--loss delta_e76 is a choice for the regressors .resnet, unet.; 'gan'"):
        zoo.make_task("gan", build_model("gan", width=4), loss="delta_e76")
    with pytest.raises(ValueError, match="Unknown loss .l1.. Choose one of: mse, delta_e76"):
        zoo.make_task("unet", build_model("unet", width=4), loss="l1")


def test_cli_loss_and_flip_are_training_settings(tmp_path, capsys):
    data = photo_folder(tmp_path / "photos", n=4)
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 1, "--data", data, "--out", tmp_path / "o",
                       "--loss", "delta_e76", "--flip", "--lr_schedule", "cosine", *SMALL)
    assert code == 0, io.err
    assert json.loads((tmp_path / "o" / "resnet" / "config.json").read_text())["loss"] == "delta_e76"
    code, io = zoo_cli(capsys, "--model", "gan", "--epochs", 1, "--data", data, "--out", tmp_path / "o",
                       "--loss", "delta_e76", *SMALL)
    assert code == 2 and "'gan' trains with its own gan loss" in io.err
    code, io = zoo_cli(capsys, "compare", "--epochs", 1, "--data", data, "--out", tmp_path / "c", "--flip", *SMALL)
    assert code == 2 and "--loss, --flip and --lr_schedule are training settings" in io.err


def test_the_zoo_config_is_the_one_place_for_sizes(tmp_path):
    vae = zoo.ZooConfig("basicvae", width=4, latent_dim=8)
    assert vae.shape == ("width", "latent_dim") and zoo.ZooConfig("unet").shape == ("width",)
    assert vae.to_dict() == {"model": "basicvae", "width": 4, "latent_dim": 8}
    assert zoo.ZooConfig.from_dict({"width": 4, "image_size": 32}, model="unet") == zoo.ZooConfig("unet", 4)
    assert build_model("basicvae").to_stats.out_channels == 2 * zoo.ZooConfig.latent_dim  # defaults from it
    with pytest.raises(ValueError, match="width must be a whole number >= 1, got 0"):
        zoo.ZooConfig("unet", width=0)
    with pytest.raises(ValueError, match="not both"):
        zoo.train(vae, torch.rand(8, 3, 16, 16), tmp_path, width=4)
    # a config trains like its name and sizes, and its record holds the latent a VAE uses
    zoo.train(vae, torch.rand(8, 3, 16, 16), tmp_path, epochs=1, batch_size=4, progress=False)
    assert json.loads((tmp_path / "basicvae" / "config.json").read_text())["latent_dim"] == 8
    model, _ = zoo.load_trained("basicvae", tmp_path)  # the sizes from the record
    assert model.latent_dim == 8
    with pytest.raises(ValueError, match="trained with --latent_dim 8 .*; you passed --latent_dim 16"):
        zoo.load_trained("basicvae", tmp_path, latent_dim=16)


def test_diffusion_colorizer_refines_the_regressors_guess():
    # colour = guess + temperature x drawn residual: 0 is the regressor alone, and the same draw
    # scales linearly with the temperature (before the final clamp to [-1, 1]).
    from lessons_lib.images import rgb_to_chroma
    from lessons_lib.models.diffusion_colorizer import DiffusionColorizer

    torch.manual_seed(0)
    model = DiffusionColorizer(width=8, channel_mults=(1, 2)).eval()
    with torch.no_grad():  # a guess and a denoiser that are not zero, as after training
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    gray = torch.rand(2, 1, 16, 16) * 0.2 - 0.1  # mid-gray: nothing clamps
    guess = model.guess(gray)

    def chroma_at(temperature):
        model.temperature = temperature
        return rgb_to_chroma(model.colorize(gray, num_inference_steps=3, generator=torch.Generator().manual_seed(1)))

    assert torch.allclose(chroma_at(0.0), guess, atol=1e-5)
    full, half = chroma_at(1.0) - guess, chroma_at(0.5) - guess
    assert full.abs().max() > 1e-3
    assert torch.allclose(half, 0.5 * full, atol=1e-5)
    model.temperature = 1.5
    with pytest.raises(ValueError, match=r"temperature must be in \[0, 1\], got 1.5. 1 = a full sample"):
        model.colorize(gray)
    # Training: one loss for both networks; the guess gets the MSE's gradient, the denoiser the diffusion loss's.
    model.train().zero_grad()
    model.training_loss(gray, torch.rand(2, 3, 16, 16) * 2 - 1).backward()
    assert model.mean.head.weight.grad.abs().sum() > 0
    assert model.unet.out_conv.weight.grad.abs().sum() > 0
    from lessons_lib import training
    with pytest.raises(ValueError, match="not both"):
        training.DiffusionTask(model, model.schedule, loss_fn=model.training_loss, target=lambda c, x: x)


def test_temperature_is_the_least_that_reaches_the_colour_target(monkeypatch):
    # The recipe's rule: walk up the temperatures, stop at the first whose colourfulness reaches
    # COLOUR_TARGET of the photos', or before the one whose Delta E keeps less than MIN_LEAD of
    # the guess's lead over gray.
    from course_tools.recipes import zoo as recipe

    assert recipe.COLOUR_TARGET > 0.5 and 0 < recipe.MIN_LEAD < 1  # half the photos', with a margin
    colour = {"at": lambda t: 10 + 20 * t}
    de_at = {"at": lambda t: 12.0 + 2.0 * t}  # gray 14: the guess leads by 2, the floor is 0.2

    def fake_evaluate(model, photos, **kwargs):
        assert kwargs["num_inference_steps"] == recipe.SAMPLING_STEPS == zoo.build_parser().get_default("steps")
        t = model.temperature
        return {"model": {"delta_e76": de_at["at"](t), "colorfulness": colour["at"](t)},
                "gray": {"delta_e76": 14.0}, "target_colorfulness": 30.0}

    monkeypatch.setattr(recipe.evaluation, "evaluate", fake_evaluate)
    model = torch.nn.Module()
    model.temperature = 0.3
    chosen, sweep = recipe.choose_temperature(model, torch.zeros(1, 3, 8, 8))
    # 10 + 20 t >= 0.55 x 30 = 16.5 first at t = 0.35.
    assert chosen == 0.35 and model.temperature == 0.35 and sweep[-1]["temperature"] == 0.35
    colour["at"] = lambda t: 10.0  # never colourful enough: the lead floor stops the walk
    de_at["at"] = lambda t: 12.0 + 1.9 * t
    assert recipe.choose_temperature(model, torch.zeros(1, 3, 8, 8))[0] == 0.9  # lead 2 - 1.9 t >= 0.2
    de_at["at"] = lambda t: 14.5  # a guess that loses to gray: temperature 0
    assert recipe.choose_temperature(model, torch.zeros(1, 3, 8, 8))[0] == 0.0

@pytest.mark.parametrize("name", ALL)
def test_parameter_count_is_exact_without_building_the_model_at_that_width(name):
    for width in (1, 20, 33):
        built = sum(p.numel() for p in build_model(name, latent_dim=8, width=width).parameters())
        assert zoo.parameter_count(name, latent_dim=8, width=width) == built, width


def test_a_model_too_large_for_the_memory_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(zoo, "free_memory", lambda device: 2 * 10**9)  # a machine with 2 GB free
    monkeypatch.setattr(zoo, "load_photos", lambda *a, **k: pytest.fail("photos loaded before the check"))
    code, io = zoo_cli(capsys, "--model", "unet", "--width", 1024, "--data", tmp_path, "--out", tmp_path / "o")
    assert code == 2, io.err
    assert "unet with --width 1024 has about 1,969 million parameters" in io.err
    assert "2.0 GB free" in io.err and "e.g. --width 128; the course trains 32" in io.err
    assert not (tmp_path / "o" / "unet").exists()
    with pytest.raises(ValueError, match="has about .* million parameters"):  # the library refuses too
        zoo.train("resnet", torch.rand(4, 3, 16, 16), tmp_path / "o", epochs=1, batch_size=2, width=4096,
                  latent_dim=8, progress=False)


def test_running_out_of_memory_anyway_is_one_line_with_what_to_change(capsys, monkeypatch):
    def runs_out(argv):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(zoo, "run", runs_out)
    code, io = zoo_cli(capsys, "--model", "unet")
    assert code == 2 and "out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in io.err
    assert "smaller --batch_size or --width" in io.err and "Traceback" not in io.err


def test_compare_refuses_to_replace_a_result_before_training_anything(tmp_path, capsys):
    data, out = photo_folder(tmp_path / "photos", n=10, flat=True), tmp_path / "out"
    out.mkdir()
    (out / "comparison.md").write_text("an earlier table")
    code, io = zoo_cli(capsys, "compare", "--epochs", 1, "--data", data, "--out", out, *SMALL)
    assert code == 2 and "'" + str(out / "comparison.md") + "' already exists and is kept" in io.err
    assert "nothing was started" in io.err and "--overwrite" in io.err
    assert sorted(p.name for p in out.iterdir()) == ["comparison.md"]  # no model trained, nothing written
    assert (out / "comparison.md").read_text() == "an earlier table"


@pytest.mark.parametrize("extra", [["--mode", "train"], ["compare"]])
def test_weights_outside_test_mode_is_refused(tmp_path, capsys, extra):
    code, io = zoo_cli(capsys, *extra, "--weights", "course", "--data", tmp_path, "--out", tmp_path / "o")
    assert code == 2 and "--weights course chooses the weights to test: use it with --mode test" in io.err
    assert not (tmp_path / "o").exists()


def test_checkpoints_kept_are_bounded_unless_all_are_asked_for(tmp_path, capsys):
    data = photo_folder(tmp_path / "photos", n=8)
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 4, "--data", data, "--out", tmp_path / "few", *SMALL)
    assert code == 0, io.err
    assert set(training.list_checkpoints(tmp_path / "few" / "resnet")) <= {1, 2, 3, 4}
    assert {3, 4} <= set(training.list_checkpoints(tmp_path / "few" / "resnet"))
    assert len(training.list_checkpoints(tmp_path / "few" / "resnet")) <= 3  # the last two and the best
    code, io = zoo_cli(capsys, "--model", "resnet", "--epochs", 4, "--data", data, "--out", tmp_path / "all",
                    "--keep_checkpoints", "all", *SMALL)
    assert code == 0, io.err
    assert sorted(training.list_checkpoints(tmp_path / "all" / "resnet")) == [1, 2, 3, 4]
    with pytest.raises(SystemExit):
        zoo_cli(capsys, "--model", "resnet", "--keep_checkpoints", "0", "--data", data, "--out", tmp_path / "x")
    assert "--keep_checkpoints: expected a number of checkpoints >= 1 (e.g. 2) or 'all'" in capsys.readouterr().err
