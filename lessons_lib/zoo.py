"""The colorization zoo: train, test and compare the eight models, from Python or the shell.

Shell (the classic ``main.py`` flags, plus ``--data`` and ``--out``)::

    python -m lessons_lib.zoo --model unet --mode train --epochs 10 --data photos/ --out runs/
    python -m lessons_lib.zoo --model unet --mode test --weights 10 --data test_photos/ --out runs/
    python -m lessons_lib.zoo compare --epochs 5 --data photos/ --out runs/   # every model

``--data`` is a folder of colour images (flat, or one sub-folder per class) or
``cifar10``; left out, it is CIFAR-10 in the full profile and the course's small photo
set in the fast one. Training writes ``OUT/<model>/epoch_XXXX.pt`` checkpoints (resumed
when run again), ``history.csv``/``history.json`` and ``config.json``; testing writes
``OUT/metrics_<model>.json`` and ``OUT/samples_<model>.png``; ``compare`` holds out a
validation split, trains and tests every model on it and writes
``OUT/comparison.md`` and ``OUT/comparison.csv``. Earlier results are never
overwritten unless ``--overwrite`` is given.

Python (what notebook 2 calls)::

    photos = zoo.load_photos("path/or/cifar10", size=32)
    model, history = zoo.train("unet", photos, "runs/", epochs=5)
    result = zoo.test("unet", test_photos, "runs/")
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from . import adversarial, course_weights, data, evaluation, training
from . import validate as V
from .files import atomic_write, atomic_write_text
from .images import rgb_to_gray, rgb_to_lab, to_signed, to_unit
from .models.colorizers import MODELS, ZooConfig
from .runtime import free_memory, get_device, get_profile, seed_everything
from .tasks import CheckpointMisfit

__all__ = ["ZooConfig", "LOSSES", "LR_SCHEDULES", "COURSE_SETTINGS", "delta_e76_loss", "make_task",
           "load_photos", "colorization_pairs", "train", "load_trained", "test", "compare",
           "save_samples", "main"]

GAN_LAMBDA_L1 = 1000.0
# The diffusion models' sampling steps for --mode test and compare (the course weights'
# temperature is chosen at these steps: fewer draw less colour).
SAMPLING_STEPS = 50


def delta_e76_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean Delta E 76 between two batches of RGB images in [-1, 1]: the distance in CIELAB,
    the space the lesson scores colour in. MSE in RGB weighs every channel alike, so it spends
    the model on differences the eye (and Delta E) barely sees; trained on this, a regressor
    lands closer to the photos' colours as Delta E 76 measures them (and more muted: the
    per-pixel median colour rather than the mean)."""
    # In float32 even under mixed precision (fp16 on a T4): the cube roots and a distance of up
    # to ~200 units lose too much in half precision, and the loss is a handful of operations.
    with torch.autocast(prediction.device.type, enabled=False):
        diff = rgb_to_lab(to_unit(prediction.float())) - rgb_to_lab(to_unit(target.float()))
    # The small constant keeps the square root's gradient finite where the colours already agree.
    return (diff.pow(2).sum(1) + 1e-4).sqrt().mean()


# The regressors' training losses, by name: what --loss accepts.
LOSSES = {"mse": F.mse_loss, "delta_e76": delta_e76_loss}
# How the course trains each model beyond the shared settings (the course weights' recipe and
# notebook 2 both pass these to train). resnet is the zoo's best on the lesson's measure: it
# learns on that measure, with mirrored photos and a decaying learning rate. unet stays on MSE:
# it is the regression twin the GAN and the diffusion guess are compared with.
COURSE_SETTINGS = {"resnet": {"loss": "delta_e76", "flip": True, "lr_schedule": "cosine"}}
# Learning-rate schedules: constant, or cosine decay to 0 over the run's epochs (without the
# decay, resnet's held-out Delta E jumped by 0.5 between its 5th and 6th epochs).
LR_SCHEDULES = ("constant", "cosine")


def _check_loss(name: str, loss: str) -> None:
    """``loss`` is one of LOSSES, and only a regressor is given another than MSE."""
    V.choice("loss", loss, LOSSES)
    kind = MODELS[V.choice("model", name, MODELS)].kind
    if kind != "supervised" and loss != "mse":
        regressors = ", ".join(n for n, spec in MODELS.items() if spec.kind == "supervised")
        raise ValueError(f"--loss {loss} is a choice for the regressors ({regressors}); {name!r} trains with "
                         f"its own {kind} loss: leave --loss out.")


def make_task(name: str, model: nn.Module, lr: float = 1e-3, loss: str = "mse") -> training.Task:
    """The training task for a zoo model: a regressor's ``loss`` (MSE in RGB, or ``"delta_e76"``,
    :func:`delta_e76_loss`), GAN (BCE + L1), VAE (MSE + 0.001 KL) or diffusion."""
    _check_loss(name, loss)
    kind = MODELS[name].kind
    if kind == "supervised":
        return training.SupervisedTask(model, lr=lr, loss_fn=LOSSES[loss])
    if kind == "gan":
        # pix2pix's conditional GAN (BCE adversarial loss + lambda x L1) at pix2pix's pace: a fifth
        # of the zoo's learning rate (2e-4 for the default 1e-3). The L1 term must dominate: chroma
        # errors are small numbers, so it gets Context Encoders' ratio (0.999 reconstruction to
        # 0.001 adversarial, about 1000:1) rather than pix2pix's 100 (measured: with 100 the
        # adversarial term paints vivid wrong colours and loses to the gray image, and so does the
        # U-Net generator with 300).
        return adversarial.Pix2PixTask(model.generator, model.discriminator, lr=lr / 5, lambda_l1=GAN_LAMBDA_L1)
    if kind == "vae":
        return training.VAETask(model, lr=lr, kl_weight=1e-3)
    if kind == "diffusion":
        # The averaged weights sample far cleaner after a short run (see DiffusionTask); the
        # loss is the regressor's and the denoiser's together (see DiffusionColorizer).
        return training.DiffusionTask(model, model.schedule, lr=lr, loss_fn=model.training_loss,
                                      ema_decay=0.999)
    raise AssertionError(f"no task for the {kind!r} kind of model {name!r}")


# --------------------------------------------------------------------------- data
def load_photos(source: str | Path | None = None, size: int = 32, split: str = "train",
                limit: int | None = None, seed: int = 0) -> torch.Tensor:
    """:func:`lessons_lib.data.load_photos` at a size the zoo models take (they halve it three times)."""
    return data.load_photos(source, size, split, limit, seed, multiple_of=8)


def colorization_pairs(photos: torch.Tensor) -> TensorDataset:
    """(grayscale, colour) pairs in [-1, 1], computed once for the whole set (fast to batch)."""
    return TensorDataset(to_signed(rgb_to_gray(photos)), to_signed(photos))


# --------------------------------------------------------------------------- config files
def _config_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / name / "config.json"


def _read_config(out_dir, name) -> dict | None:
    path = _config_path(out_dir, name)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise training.CheckpointError(f"'{path}' is damaged (not valid JSON). Delete it and pass "
                                       f"--latent_dim/--width as used for training.") from None


# Every setting that decides what a resumed run trains; --epochs may grow between runs.
_SETTINGS = {"latent_dim": "--latent_dim", "width": "--width", "image_size": "--image_size",
             "learning_rate": "--learning_rate", "batch_size": "--batch_size", "seed": "--seed",
             "steps_per_epoch": "--steps_per_epoch", "n_images": "--data/--limit", "loss": "--loss",
             "flip": "--flip", "cosine_epochs": "--epochs"}


def _config(name: str | ZooConfig, latent_dim: int | None, width: int | None) -> ZooConfig:
    """The model's config: ``name`` is a model's name (the sizes given, else the defaults) or a
    :class:`ZooConfig` (then no sizes beside it)."""
    if isinstance(name, ZooConfig):
        if latent_dim is not None or width is not None:
            raise ValueError("Pass the sizes inside the ZooConfig, or a model name with latent_dim/width; not both.")
        return name
    return ZooConfig.from_dict({}, model=name, latent_dim=latent_dim, width=width)


def _check_train_args(out_dir, epochs, batch_size, lr, steps_per_epoch) -> None:
    """Ranges and the output folder, before any work starts (the sizes are ZooConfig's to check)."""
    V.count("epochs", epochs)
    V.count("batch_size", batch_size, hint="It is the number of images per training step, e.g. 64.")
    V.number("learning_rate (lr)", lr, 0.0, 1.0, low_open=True, hint="Try 0.001.")
    V.optional_count("steps_per_epoch", steps_per_epoch,
                     hint="An epoch that trains nothing would still be checkpointed as complete; "
                          "leave it out (None) to use every batch.")
    V.output_dir(out_dir, "output folder (--out)")


def parameter_count(name: str | ZooConfig, latent_dim: int | None = None, width: int | None = None) -> int:
    """The parameters of zoo model ``name`` at ``width``, without building it at that size.

    Every layer's channels are proportional to ``width``, so the count is a quadratic in it;
    three narrow builds fix the quadratic exactly (tested against real builds)."""
    config = _config(name, latent_dim, width)
    width = config.width
    counts = [sum(p.numel() for p in dataclasses.replace(config, width=w).build().parameters()) for w in (4, 8, 12)]
    a = (counts[2] - 2 * counts[1] + counts[0]) // 32  # second difference / (2 * 4**2)
    b = (counts[1] - counts[0]) // 4 - 12 * a
    return int(a * width * width + b * width + counts[0] - 4 * b - 16 * a)


def _check_fits(config: ZooConfig, device: torch.device) -> None:
    """Refuses a model whose weights, gradients and Adam's two moments alone exceed the memory free
    on ``device`` (activations come on top): before any work, with the size that would fit."""
    free = free_memory(device)
    params = parameter_count(config)
    need = 16 * params  # fp32 weights + gradients + two Adam moments
    if free is None or need <= free:
        return
    name, width = config.model, config.width
    fits = width
    while fits > 1 and 16 * parameter_count(dataclasses.replace(config, width=fits)) > free // 2:
        fits //= 2
    raise ValueError(
        f"{name} with --width {width} has about {params / 1e6:,.0f} million parameters: training it needs at "
        f"least {need / 1e9:.1f} GB for its weights, gradients and optimizer state, and {device} has "
        f"{free / 1e9:.1f} GB free. Use a smaller --width (e.g. --width {fits}; the course trains 32) or a "
        f"device with more memory.")


def _run_config(config: ZooConfig, photos, batch_size, lr, seed, steps_per_epoch, loss, flip, cosine_epochs) -> dict:
    """What a run records: the model's shape fields and every training setting that decides what it trains."""
    return {**config.to_dict(), "image_size": int(photos.shape[-1]), "learning_rate": float(lr),
            "batch_size": int(batch_size), "seed": int(seed),
            "steps_per_epoch": None if steps_per_epoch is None else int(steps_per_epoch), "n_images": len(photos),
            "loss": loss, "flip": bool(flip), "cosine_epochs": cosine_epochs}


def _resume_config(out_dir, name: str, config: dict) -> dict | None:
    """The recorded config of a run to resume, or None when there is nothing to resume.

    A setting that differs from the record is refused, naming it: a resumed run must train
    exactly as the run it continues (settings an older record lacks are recorded now).
    """
    saved = _read_config(out_dir, name)
    folder = Path(out_dir) / name
    found = training.list_checkpoints(folder)
    if saved is None or not found:
        return None
    changed = [k for k in config if k in saved and saved[k] != config[k]]
    if not changed:
        return saved

    def show(k, v):
        return f"{v} training images" if k == "n_images" else f"{_SETTINGS.get(k, k)} {v}"

    recorded = ", ".join(show(k, saved[k]) for k in changed)
    asked = ", ".join(show(k, config[k]) for k in changed)
    flags = " ".join(f"{_SETTINGS[k]} {saved[k]}" for k in changed
                     if k != "n_images" and saved[k] is not None)
    todo = f"run again with {flags} to resume it" if flags else "use the same settings to resume it"
    if "n_images" in changed:
        todo += " (with the same --data, --limit and --val_fraction)"
    raise ValueError(
        f"'{folder}' holds a {name} run (checkpoints up to epoch {max(found)}) recorded with {recorded}; "
        f"this run asks for {asked}. A resumed run must use the recorded settings: {todo}, or start a "
        f"fresh run with another --out folder (or move '{folder}' away).")


# --------------------------------------------------------------------------- train / test
def train(name: str | ZooConfig, photos: torch.Tensor, out_dir: str | Path, epochs: int = 10, batch_size: int = 64,
          lr: float = 1e-3, latent_dim: int | None = None, width: int | None = None, seed: int = 8000,
          device: str | torch.device | None = None, val_photos: torch.Tensor | None = None,
          steps_per_epoch: int | None = None, on_epoch: Callable | None = None,
          progress: bool = True, keep: int | None = training.KEEP, loss: str = "mse",
          flip: bool = False, lr_schedule: str = "constant") -> tuple[nn.Module, training.History]:
    """Trains zoo model ``name`` on ``photos`` with checkpoints in ``out_dir/name`` (resumable): the last
    ``keep`` and the best by validation loss are kept (None: every epoch's). ``name`` is a model's
    name (sizes from ``latent_dim``/``width``, else :class:`ZooConfig`'s defaults) or a ZooConfig.
    ``loss`` is a regressor's loss (see :data:`LOSSES`); ``flip=True`` adds every photo's mirror
    image (twice the photos per epoch: a cat facing left is as likely as one facing right);
    ``lr_schedule="cosine"`` decays every optimizer's rate to 0 over ``epochs`` (a resumed run
    must then ask for the same epochs: they are the schedule's length)."""
    model_config = _config(name, latent_dim, width)
    name = model_config.model
    if len(photos) == 0:
        raise ValueError("There are no training images.")
    _check_train_args(out_dir, epochs, batch_size, lr, steps_per_epoch)
    V.flag("flip", flip)
    cosine_epochs = epochs if V.choice("lr_schedule", lr_schedule, LR_SCHEDULES) == "cosine" else None
    config = _run_config(model_config, photos, batch_size, lr, seed, steps_per_epoch, loss, flip, cosine_epochs)
    saved = _resume_config(out_dir, name, config)
    device = get_device(None if device is None else str(device))
    _check_fits(model_config, device)
    seed_everything(seed)
    model = model_config.build()
    task = make_task(name, model, lr, loss)
    if cosine_epochs:  # stepped once per epoch by fit, and checkpointed with the optimizers
        task.schedulers.update({key: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cosine_epochs)
                                for key, opt in task.optimizers.items()})
    if flip:
        photos = torch.cat([photos, photos.flip(-1)])
    loader = data.make_loader(colorization_pairs(photos), batch_size=batch_size, seed=seed)
    val_loader = (data.make_loader(colorization_pairs(val_photos), batch_size=batch_size, shuffle=False)
                  if val_photos is not None and len(val_photos) else None)
    ckpt_dir = Path(out_dir) / name
    if saved != config and training.main_process():  # under accelerate launch: written once
        with V.writing(_config_path(out_dir, name)):
            atomic_write_text(_config_path(out_dir, name), json.dumps(config, indent=1))
    history = training.fit(task, loader, epochs, val_loader=val_loader, ckpt_dir=ckpt_dir, device=device,
                           steps_per_epoch=steps_per_epoch, progress=progress, desc=name, on_epoch=on_epoch,
                           keep=keep)
    return _inference_model(task, model), history


def _inference_model(task: training.Task, model: nn.Module) -> nn.Module:
    """The weights that colourise: a diffusion model's moving average, else the model itself."""
    return task.inference_model() if isinstance(task, training.DiffusionTask) else model


def load_trained(name: str, out_dir: str | Path, epoch: int | None = None, latent_dim: int | None = None,
                 width: int | None = None, device: str | torch.device | None = None) -> tuple[nn.Module, int]:
    """The model saved after ``epoch`` (default: the latest) in ``out_dir/name``; returns (model, epoch).

    The sizes come from the run's recorded ``config.json``; ``latent_dim``/``width`` are
    only needed without one (default: :class:`ZooConfig`'s), and are refused when they
    disagree with it (``latent_dim`` matters to the VAEs only).
    """
    V.choice("model", name, MODELS)
    saved = _read_config(out_dir, name) or {}
    config = _recorded_config(out_dir, name, saved, latent_dim, width)
    latent_dim, width = config.latent_dim, config.width
    model = config.build()
    task = make_task(name, model)
    try:
        epoch = training.load_weights(task, Path(out_dir) / name, epoch)
    except CheckpointMisfit as err:
        if saved:  # the sizes came from the run's record: the message says enough
            raise
        vae = config.spec.has_latent  # the only models whose size depends on --latent_dim
        tried = f"--width {width}" + (f" --latent_dim {latent_dim}" if vae else "")
        raise training.CheckpointError(
            f"{err} The run has no config.json to read its sizes from: pass the "
            f"{'--width and --latent_dim' if vae else '--width'} it was trained with (this try: {tried}).") from None
    model = _inference_model(task, model)
    model.to(get_device(None if device is None else str(device))).eval()
    return model, epoch


def _recorded_config(out_dir, name, saved: dict, latent_dim, width) -> ZooConfig:
    """The config in the run's record (sizes given fill what it lacks); a given size that
    disagrees with the record, in a field the model uses, is refused."""
    shape = ZooConfig.from_dict({}, model=name, latent_dim=latent_dim, width=width).shape  # checks the values
    asked = {k: v for k, v in (("latent_dim", latent_dim), ("width", width)) if v is not None and k in shape}
    clash = {k: v for k, v in asked.items() if k in saved and saved[k] != v}
    if clash:
        given = ", ".join(f"--{k} {v}" for k, v in clash.items())
        rec = ", ".join(f"--{k} {saved[k]}" for k in clash)
        raise ValueError(
            f"The {name} run in '{Path(out_dir) / name}' was trained with {rec} (its config.json); you "
            f"passed {given}. Testing reads the sizes from the run's record: leave {given.split()[0]} "
            f"out (or pass {rec}), or point --out at the run that was trained with {given}.")
    return ZooConfig.from_dict(saved, model=name, latent_dim=latent_dim, width=width)


def shipped_part(model: nn.Module) -> nn.Module:
    """What the course weights hold of a zoo model: a GAN's generator (the
    discriminator is not needed to colourise), else the whole model."""
    return model.generator if hasattr(model, "discriminator") else model


def _course_model(name: str, state: dict, info: dict) -> nn.Module:
    """The course weights' builder for ``zoo/<model>`` (see course_weights.load)."""
    config = info["config"]
    model = ZooConfig.from_dict(config, model=name.split("/", 1)[1]).build()
    course_weights.load_into(shipped_part(model), state, name)
    if "temperature" in config:  # chosen on validation photos when the weights were trained
        model.temperature = float(config["temperature"])
    return model


course_weights.register("zoo/", _course_model)


def load_course_model(name: str, device: str | torch.device | None = None) -> nn.Module:
    """Zoo model ``name`` with the course weights shipped in ``lessons_lib/weights``
    (trained by ``make weights`` from the CIFAR-10 subset; see ``course_weights``), eval mode."""
    V.choice("model", name, MODELS)
    return course_weights.load(f"zoo/{name}", get_device(None if device is None else str(device)))[0]


def _check_free(paths: Sequence[Path], overwrite: bool) -> None:
    """Every result file a command will write, checked before its (possibly long) work starts."""
    taken = [str(p) for p in paths if p.exists()]
    if taken and not overwrite:
        what = f"'{taken[0]}' already exists" if len(taken) == 1 else \
            f"{len(taken)} of its result files already exist ({', '.join(repr(t) for t in taken)})"
        raise FileExistsError(f"{what} and {'is' if len(taken) == 1 else 'are'} kept: nothing was started. "
                              f"Pass --overwrite to replace {'it' if len(taken) == 1 else 'them'}, or choose "
                              f"another --out folder.")


def _result_files(names: Sequence[str], out_dir: str | Path, comparison: bool) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [out_dir / f"{kind}_{name}.{ext}" for name in names
             for kind, ext in (("metrics", "json"), ("samples", "png"))]
    return paths + ([out_dir / "comparison.md", out_dir / "comparison.csv"] if comparison else [])


def _keep_or_write(path: Path, content, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' already exists and is kept. Pass --overwrite to replace it, "
                              f"or choose another --out folder.")
    return atomic_write(path, content)


def save_samples(photos: torch.Tensor, outputs: torch.Tensor, path: str | Path, n: int = 4,
                 overwrite: bool = False) -> Path:
    """A PNG grid: grayscale inputs (top), model outputs (middle), real colour (bottom)."""
    from torchvision.utils import make_grid, save_image

    if n < 1:
        raise ValueError(f"num_images must be at least 1, got {n}.")
    n = min(n, len(photos))
    rows = torch.cat([rgb_to_gray(photos[:n], keep_channels=True), outputs[:n], photos[:n]])
    grid = make_grid(rows.clamp(0, 1), nrow=n, padding=2, pad_value=1.0)
    return _keep_or_write(Path(path), lambda fh: save_image(grid, fh, format="png"), overwrite)


def _check_temperature(name: str, temperature: float | None) -> None:
    if temperature is None:
        return
    # Only which models take one; its range is the model's own check (DiffusionColorizer.colorize).
    if MODELS[name].kind != "diffusion":
        diffusion = ", ".join(n for n, spec in MODELS.items() if spec.kind == "diffusion")
        raise ValueError(f"--temperature applies to the diffusion models ({diffusion}) only, not {name!r}: "
                         f"leave it out.")


def test(name: str, photos: torch.Tensor, out_dir: str | Path, epoch: int | None = None, steps: int = SAMPLING_STEPS,
         num_images: int = 4, seed: int = 8000, device: str | torch.device | None = None,
         lpips="auto", overwrite: bool = False, model: nn.Module | None = None,
         latent_dim: int | None = None, width: int | None = None, temperature: float | None = None) -> dict:
    """Scores the trained model on ``photos`` beside the gray baseline; writes metrics JSON and samples PNG.

    The model's sizes come from the run's config.json (``latent_dim``/``width`` only without one).
    ``temperature`` (diffusion models) replaces the weights' own: the course weights', chosen on
    validation photos, or the model's default for a run of your own. The JSON records the one used."""
    out_dir = Path(out_dir)
    V.count("--steps (sampling steps of the diffusion models)", steps)
    V.count("--num_images (samples in the PNG grid)", num_images)
    _check_temperature(name, temperature)
    V.output_dir(out_dir, "output folder (--out)")
    if model is None and epoch == "course":
        model = load_course_model(name, device)
    elif model is None:
        model, epoch = load_trained(name, out_dir, epoch, latent_dim, width, device=device)
    diffusion = MODELS[name].kind == "diffusion"
    if temperature is not None:
        model.temperature = float(temperature)
    metrics_path = out_dir / f"metrics_{name}.json"
    _check_free(_result_files([name], out_dir, False), overwrite)  # before the (possibly long) evaluation
    scores = evaluation.evaluate(model, photos, num_inference_steps=steps, seed=seed, lpips=lpips)
    outputs = scores.pop("outputs")
    record = {"model": name, "epoch": epoch, "steps": steps if diffusion else None,
              "temperature": model.temperature if diffusion else None, **scores}
    with V.writing(metrics_path):
        save_samples(photos, outputs, out_dir / f"samples_{name}.png", num_images, overwrite)
        atomic_write_text(metrics_path, json.dumps(record, indent=1))
    record["outputs"] = outputs
    return record


def compare(names: Sequence[str], photos: torch.Tensor, out_dir: str | Path, val_fraction: float = 0.1,
            epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, latent_dim: int | None = None,
            width: int | None = None,
            seed: int = 8000, steps: int = SAMPLING_STEPS, num_images: int = 4, device=None, steps_per_epoch=None,
            lpips="auto", overwrite: bool = False, progress: bool = True) -> dict:
    """Holds out a validation split, trains and tests each model on it, writes the comparison table."""
    configs = {name: _config(name, latent_dim, width) for name in names}
    V.fraction("--val_fraction (the share of images held out for testing)", val_fraction,
               hint="Try 0.1 (one image in ten).")
    _check_train_args(out_dir, epochs, batch_size, lr, steps_per_epoch)
    _check_free(_result_files(names, out_dir, True), overwrite)  # not after training the first model
    for config in configs.values():
        _check_fits(config, get_device(None if device is None else str(device)))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(photos), generator=g)
    n_val = max(1, round(len(photos) * val_fraction))
    if n_val >= len(photos):
        raise ValueError(f"{len(photos)} images are too few to hold out --val_fraction {val_fraction:g} "
                         f"and still train on some: use more images (--data/--limit) or a smaller "
                         f"--val_fraction.")
    train_photos, val_photos = photos[perm[n_val:]], photos[perm[:n_val]]
    if isinstance(lpips, str):
        lpips = evaluation.load_lpips()
    results, target_colour = {}, None
    for name in names:
        model, _ = train(configs[name], train_photos, out_dir, epochs=epochs, batch_size=batch_size, lr=lr,
                         seed=seed, device=device, steps_per_epoch=steps_per_epoch, progress=progress)
        if not training.main_process():  # under accelerate launch every process trains, the main one tests
            training.wait_for_main()
            continue
        rec = test(name, val_photos, out_dir, epoch=epochs, steps=steps, num_images=num_images, seed=seed,
                   device=device, lpips=lpips, overwrite=overwrite, model=model)
        training.wait_for_main()
        results[name] = rec["model"]
        results["gray baseline"] = rec["gray"]
        target_colour = rec["target_colorfulness"]
    if not training.main_process():
        return {"results": None, "target_colorfulness": None, "n_val": n_val}
    table = {k: results[k] for k in [*names, "gray baseline"]}
    evaluation.save_results(table, out_dir, "comparison", target_colour, overwrite)
    return {"results": table, "target_colorfulness": target_colour, "n_val": n_val}


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lessons_lib.zoo",
        description="Train, test and compare the colorization zoo. 'compare' (first argument) trains and "
                    "tests every model on a held-out split and writes the comparison table.")
    p.add_argument("command", nargs="?", default="run", choices=["run", "compare"],
                   help="'run' (default): --mode train/test for --model; 'compare': every model")
    # Number flags say what they accept ("--limit: expected a whole number >= 1 (e.g. 500), got '-5'",
    # NaN and 2.5 included). The sizes default to None: left out, they come from the run's record
    # (--mode test) or ZooConfig's defaults, and "typed or not" is just "is it None".
    p.add_argument("--seed", type=V.int_arg(0, 8000), default=8000)
    p.add_argument("--model", default=ZooConfig.model, help=f"one of {', '.join(MODELS)}, or 'all'")
    p.add_argument("--mode", default="train", choices=["train", "test"])
    p.add_argument("--weights", type=_weights, default=None,
                   help="epoch to test (default: the latest), or 'course' for the weights the course ships")
    p.add_argument("--batch_size", type=V.int_arg(1, 64), default=64)
    p.add_argument("--epochs", type=V.int_arg(1, 10), default=100)
    p.add_argument("--latent_dim", type=V.int_arg(1, 64), default=None,
                   help=f"the VAEs' latent channels (default {ZooConfig.latent_dim}; --mode test: the run's own)")
    p.add_argument("--device", default=None, help="GPU index (0), cuda, mps or cpu (default: the best there is)")
    p.add_argument("--learning_rate", type=V.float_arg(0, 1, low_open=True, example="0.001"), default=0.001)
    p.add_argument("--steps", type=V.int_arg(1, 50), default=SAMPLING_STEPS,
                   help="DDIM/DDPM sampling steps (diffusion models)")
    p.add_argument("--temperature", type=V.float_arg(0, 1, example="0.5"), default=None,
                   help="diffusion models, --mode test: colour = guess + temperature x drawn residual, "
                        "0 to 1 (default: the weights' own)")
    p.add_argument("--num_images", type=V.int_arg(1, 4), default=4, help="samples in the PNG grid")
    p.add_argument("--data", default=None, help="folder of colour images, or 'cifar10' (default: by profile)")
    p.add_argument("--out", default="runs/zoo", help="output folder (checkpoints, metrics, samples)")
    p.add_argument("--image_size", type=V.int_arg(8, 32), default=32)
    p.add_argument("--width", type=V.int_arg(1, 32), default=None,
                   help=f"channels of the first layer, the model's size (default {ZooConfig.width}; "
                        "--mode test: the run's own)")
    p.add_argument("--limit", type=V.int_arg(1, 500), default=None, help="use at most this many images")
    p.add_argument("--steps_per_epoch", type=V.int_arg(1, 20), default=None, help="cap the batches per epoch")
    p.add_argument("--val_fraction", type=V.fraction_arg("0.1"), default=0.1, help="held-out share for 'compare'")
    p.add_argument("--overwrite", action="store_true", help="replace earlier metrics/samples/tables")
    p.add_argument("--keep_checkpoints", type=_keep, default=training.KEEP, metavar="N|all",
                   help=f"checkpoints kept besides the best: the last N (default {training.KEEP}), or 'all' "
                        "to keep every epoch's for --weights EPOCH later")
    p.add_argument("--loss", default="mse", choices=list(LOSSES),
                   help="the regressors' (resnet, unet) training loss: mse in RGB, or delta_e76 in CIELAB, "
                        "the lesson's colour measure (the course weights use it)")
    p.add_argument("--lr_schedule", default="constant", choices=LR_SCHEDULES,
                   help="constant, or cosine decay to 0 over --epochs (the course weights of resnet use it)")
    p.add_argument("--flip", action="store_true",
                   help="train on every photo and its mirror image (the course weights of resnet and unet do)")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (if installed)")
    return p


def _count_or(word: str, meaning, expected: str):
    """An argparse type: a whole number >= 1, or ``word`` (which stands for ``meaning``)."""
    def parse(value: str):
        if value == word:
            return meaning
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return n
    return parse


_weights = _count_or("course", "course", "an epoch number (1, 2, ...) or 'course'")
_keep = _count_or("all", None, "a number of checkpoints >= 1 (e.g. 2) or 'all'")


def _wandb_logger(args, name):
    try:
        import wandb
    except ImportError:
        raise ImportError("--wandb was given but the 'wandb' package is not installed: "
                           "pip install wandb (and wandb login), or leave --wandb out.") from None
    run = wandb.init(project="colorization-zoo", name=name, config=vars(args), reinit=True)
    return lambda epoch, row: run.log(row, step=epoch)


def run(argv: Sequence[str] | None = None) -> dict:
    """The command line without the exit-code handling (raises on bad input)."""
    args = build_parser().parse_args(argv)
    names = list(MODELS) if args.model == "all" or args.command == "compare" else [args.model]
    for name in names:
        V.choice("model", name, MODELS, also="or 'all'")
    if args.latent_dim is not None and not any(MODELS[n].has_latent for n in names):
        vaes = ", ".join(n for n, spec in MODELS.items() if spec.has_latent)
        raise ValueError(f"--latent_dim is the VAEs' latent channels ({vaes}); {names[0]!r} has no latent to "
                         f"size: leave it out.")
    if args.data is not None and str(args.data).lower() != "cifar10" and not Path(args.data).exists():
        raise FileNotFoundError(f"--data '{args.data}' does not exist. Pass a folder of colour images "
                                f"(flat, or one sub-folder per class), or 'cifar10'.")
    if args.temperature is not None:
        if args.command == "compare" or args.mode != "test":
            raise ValueError("--temperature is a sampling setting of the diffusion models: use it with "
                             "--mode test (compare and training sample at the models' own).")
        if len(names) == 1:  # with --model all it applies to the diffusion models among them
            _check_temperature(names[0], args.temperature)
    if args.weights is not None and (args.command == "compare" or args.mode != "test"):
        raise ValueError(f"--weights {args.weights} chooses the weights to test: use it with --mode test. "
                         f"{'compare' if args.command == 'compare' else 'Training'} starts from fresh weights "
                         f"(or resumes the run in --out), so leave --weights out.")
    if args.loss != "mse" or args.flip or args.lr_schedule != "constant":
        if args.command == "compare" or args.mode != "train":
            raise ValueError("--loss, --flip and --lr_schedule are training settings: use them with --mode train "
                             "(compare trains every model its default way).")
        for name in names:
            _check_loss(name, args.loss)
    V.output_dir(args.out, "output folder (--out)")
    sizes = {"latent_dim": args.latent_dim, "width": args.width}  # None: the record's, or the default
    device = get_device(args.device)
    if args.command == "compare" or args.mode == "train":  # before loading the photos
        for name in names:
            _check_fits(_config(name, **sizes), device)
    elif len(names) > 1:
        _check_free(_result_files(names, args.out, True), args.overwrite)
    main = training.main_process()  # under accelerate launch: the one that tests, writes and prints
    if main:
        print(f"profile {get_profile()}, device {device}")
    if args.command == "compare":
        photos = load_photos(args.data, args.image_size, "train", args.limit, args.seed)
        out = compare(names, photos, args.out, val_fraction=args.val_fraction, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.learning_rate, seed=args.seed, steps=args.steps,
                      num_images=args.num_images, device=device, steps_per_epoch=args.steps_per_epoch,
                      overwrite=args.overwrite, **sizes)
        if main:
            print(evaluation.results_table(out["results"], out["target_colorfulness"]))
        return out
    split = "train" if args.mode == "train" else "test"
    photos = load_photos(args.data, args.image_size, split, args.limit, args.seed)
    results = {}
    for name in names:
        if args.mode == "train":
            on_epoch = _wandb_logger(args, name) if args.wandb and main else None
            _, history = train(_config(name, **sizes), photos, args.out, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.learning_rate, seed=args.seed, device=device,
                               on_epoch=on_epoch, steps_per_epoch=args.steps_per_epoch, keep=args.keep_checkpoints,
                               loss=args.loss, flip=args.flip, lr_schedule=args.lr_schedule)
            results[name] = dict(history)
        elif main:  # testing is not split between processes: the main one does it
            rec = test(name, photos, args.out, epoch=args.weights, steps=args.steps, num_images=args.num_images,
                       seed=args.seed, device=device, overwrite=args.overwrite, **sizes,
                       temperature=args.temperature if MODELS[name].kind == "diffusion" else None)
            rec.pop("outputs")
            results[name] = rec
            print(evaluation.results_table({name: rec["model"], "gray baseline": rec["gray"]},
                                          rec["target_colorfulness"]))
    if args.mode == "test" and not main:
        return results
    if args.mode == "test" and len(names) > 1:
        table = {n: results[n]["model"] for n in names}
        table["gray baseline"] = results[names[-1]]["gray"]
        evaluation.save_results(table, args.out, "comparison", results[names[-1]]["target_colorfulness"],
                                args.overwrite)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input prints one clear message and exits with status 2."""
    from .cli import cli_main

    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
