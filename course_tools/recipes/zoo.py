"""Course weights for lesson 2's colorization zoo: all eight models.

Each model trains with ``lessons_lib.zoo.train`` (the same code the notebook and the CLI
run) on the CIFAR-10 subset's training split, and is scored on its held-out split
beside the keep-the-gray baseline. DDPM and DDIM are one trained network sampled two
ways, so it is trained once and shipped under both names.
"""
from __future__ import annotations

import functools
import tempfile

import torch

from course_tools.train_weights import Trained
from lessons_lib import course_weights, evaluation, zoo

WIDTH = 32
# The diffusion network is the widest per channel (a time embedding in every block): at 16 it
# fits the course's 30 MB budget for all weights together.
WIDTHS = {"unetddim": 16, "unetddpm": 16}
LATENT_DIM = 64
BATCH_SIZE = 64
SEED = 8000
# Epochs per model: where the held-out Delta E stops improving on a CPU budget of a few
# minutes (measured with course_tools.train_weights; see the manifest's metrics).
# The diffusion colorizer (a regressor and a denoiser) keeps improving for longer.
# resnet trains 6 epochs of the photos and their mirror images, on a cosine-decayed rate
# (zoo.COURSE_SETTINGS): with a tenth held back, its held-out Delta E fell to 12.84 by the 6th.
EPOCHS = {"resnet": 6, "unet": 4, "gan": 4, "unetgan": 4, "basicvae": 4, "unetvae": 4, "unetddim": 12}
# The diffusion network trains at twice the zoo's rate: with the weight average (EMA)
# it is stable there, and it needs every step it can get on a CPU.
LEARNING_RATE = {"unetddim": 2e-3}
# The diffusion models are scored, and their temperature chosen, at the steps that
# `python -m lessons_lib.zoo --mode test` samples with: fewer steps draw less colour.
SAMPLING_STEPS = zoo.SAMPLING_STEPS
VAL_FRACTION = 0.1
TEMPERATURES = tuple(round(i * 0.05, 2) for i in range(21))
# The temperature: the least whose validation colourfulness reaches COLOUR_TARGET of the
# photos'. The course promises half; the rest is a margin, because two random sets of about
# 450 subset photos differ by 3 to 4 points in this share (the validation and held-out
# photos: 56% and 52% at one temperature). Unless the Delta E first falls below MIN_LEAD of
# the guess's lead over gray: then the last temperature above it.
COLOUR_TARGET = 0.55
MIN_LEAD = 0.1


@functools.lru_cache(maxsize=None)
def _photos(split: str) -> torch.Tensor:
    return zoo.load_photos(None, 32, split)


def _split(name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(training photos, validation photos): the diffusion models keep a tenth back to choose
    their temperature on; the others train on every training photo."""
    photos = _photos("train")
    if zoo.MODELS[name].kind != "diffusion":
        return photos, None
    # A fixed random tenth: the photos come ordered by class, so a slice would hold out whole classes.
    order = torch.randperm(len(photos), generator=torch.Generator().manual_seed(SEED))
    n_val = int(len(photos) * VAL_FRACTION)
    return photos[order[n_val:]], photos[order[:n_val]]


def choose_temperature(model, val_photos: torch.Tensor) -> tuple[float, list[dict]]:
    """The least of ``TEMPERATURES`` whose validation colourfulness reaches ``COLOUR_TARGET`` of
    the photos', walking up from 0 (the regressor's guess alone) and stopping early where the
    Delta E 76 would keep less than ``MIN_LEAD`` of the guess's lead over gray; and the sweep."""
    sweep, chosen, floor = [], 0.0, None
    for temperature in TEMPERATURES:
        model.temperature = temperature
        scores = evaluation.evaluate(model, val_photos, num_inference_steps=SAMPLING_STEPS, seed=0, lpips=None)
        row = {"temperature": temperature, "delta_e76": scores["model"]["delta_e76"],
               "gray": scores["gray"]["delta_e76"], "colorfulness": scores["model"]["colorfulness"],
               "target_colorfulness": scores["target_colorfulness"]}
        sweep.append(row)
        print(f"  temperature {temperature:.2f}: validation Delta E 76 {row['delta_e76']:.3f} "
              f"(gray {row['gray']:.3f}), colourfulness {row['colorfulness']:.1f} "
              f"(photos {row['target_colorfulness']:.1f})", flush=True)
        lead = row["gray"] - row["delta_e76"]
        if floor is None:  # temperature 0: the guess sets the floor
            floor = MIN_LEAD * lead
        elif lead < floor or lead <= 0:
            break
        chosen = temperature
        if lead <= 0 or row["colorfulness"] >= COLOUR_TARGET * row["target_colorfulness"]:
            break
    model.temperature = chosen
    return chosen, sweep


_TRAINED_HERE: set[str] = set()


@functools.lru_cache(maxsize=None)
def _train(name: str):
    _TRAINED_HERE.add(name)
    train, _ = _split(name)
    with tempfile.TemporaryDirectory() as out:
        model, history = zoo.train(name, train, out, epochs=EPOCHS[name],
                                   batch_size=BATCH_SIZE, lr=LEARNING_RATE.get(name, 1e-3),
                                   latent_dim=LATENT_DIM, width=WIDTHS.get(name, WIDTH), seed=SEED, device="cpu",
                                   **zoo.COURSE_SETTINGS.get(name, {}))
    return model, len(history.epochs)


def _trained(name: str):
    """(model, epochs) for ``name``: trained here, or, for a network shipped already under
    another name (DDPM sampling of the DDIM network), the shipped weights."""
    if name != "unetddpm":
        return _train(name)
    if "unetddim" in _TRAINED_HERE:  # trained in this run (it comes first): the same network
        return _train("unetddim")
    if "zoo/unetddim" in course_weights.manifest()["weights"]:
        return zoo.load_course_model("unetddim", "cpu"), course_weights.entry("zoo/unetddim")["epochs"]
    return _train("unetddim")


def _recipe(name: str, trained_as: str | None = None):
    def run() -> Trained:
        model, epochs = _trained(name)
        config = {"width": WIDTHS.get(name, WIDTH), "latent_dim": LATENT_DIM, "image_size": 32,
                  **zoo.COURSE_SETTINGS.get(name, {})}
        extra = {}
        if zoo.MODELS[name].kind == "diffusion":  # one network, sampled by this model's own sampler
            model.sampler = "ddpm" if name == "unetddpm" else "ddim"
            config["temperature"], extra["temperature_sweep"] = choose_temperature(model, _split(name)[1])
        scores = evaluation.evaluate(model, _photos("test"), num_inference_steps=SAMPLING_STEPS, seed=0, lpips=None)
        held_out = {"model": scores["model"], "gray": scores["gray"],
                    "target_colorfulness": scores["target_colorfulness"], "photos": len(_photos("test")),
                    "sampling_steps": SAMPLING_STEPS if zoo.MODELS[name].kind == "diffusion" else None}
        return Trained(
            state=zoo.shipped_part(model).state_dict(),
            config=config,
            epochs=epochs,
            metrics={"what": f"{name}: Delta E 76 on held-out photos", "model": scores["model"]["delta_e76"],
                     "baseline": scores["gray"]["delta_e76"], "better": "lower"},
            extra={"held_out": held_out, "trained_as": trained_as or name, **extra})
    return run


# unetddim before unetddpm: the DDPM entry samples the network the DDIM entry trains.
_ORDER = sorted(zoo.MODELS, key=lambda name: name == "unetddpm")
RECIPES = {f"zoo/{name}": _recipe(name, "unetddim" if name == "unetddpm" else None) for name in _ORDER}
