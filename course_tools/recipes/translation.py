"""Course weights for notebook 7: pix2pix (label maps -> scenes) and CycleGAN (the hue domains).

    python -m course_tools.train_weights --only translation/

All are the notebook's own recipes (``translation.Pix2PixTask`` and ``translation.CycleGANTask``
through ``training.fit``). pix2pix: the same U-Net trained twice on the course's procedural scenes
(``lessons_lib.scenes``, 64 px), once with L1 alone (``translation/pix2pix-l1``) and once with
GAN + 100 x L1 and a PatchGAN (``translation/pix2pix``), scored on held-out scenes for error
against the median training scene (the best guess that ignores the label map) and for sharpness
(fine detail as a fraction of the real scenes'). CycleGAN: the CIFAR-10 subset's 4,194 training
photos at 32 px, scored on the 466 held-out photos against leaving the photo unchanged, measured
against the exact hue rotation the fast-profile domains were made with. Only the generators ship.

CycleGAN trains with ``translation.CYCLEGAN_RECIPES["hue"]``, the hue domains' recipe that notebook 7's
fast profile uses too (a colour path, no identity loss, a luminance loss; the reasons are beside it).
Measured over seeds 0-3 (held-out error to the exact hue map; identity 0.0945): with the
luminance loss 0.052, 0.074, 0.072, 0.051; without it 0.050, 0.091, 0.42 (a map that
inverts the colours: it matches B's collection as well, and the cycle loss allows it)
and 0.063. The course weights are the recipe's seed 0, as for every other recipe.
"""
from __future__ import annotations

import functools

import torch

from course_tools.train_weights import Trained
from lessons_lib import data, scenes, training, translation
from lessons_lib.models.pix2pix import PatchDiscriminator, UNetGenerator
from lessons_lib.runtime import seed_everything

SIZE = 32
PIX2PIX_SIZE = 64
PIX2PIX_G = {"in_channels": 3, "out_channels": 3, "num_downs": 4, "ngf": 16}
PIX2PIX_D = {"in_channels": 6, "ndf": 16, "n_layers": 2}
PIX2PIX_SCENES, PIX2PIX_TEST, PIX2PIX_EPOCHS, PIX2PIX_BATCH = 2048, 512, 4, 16
CYCLE = translation.CYCLEGAN_RECIPES["hue"]
CYCLE_G = {"in_channels": 3, "out_channels": 3, "ngf": CYCLE.ngf, "n_blocks": CYCLE.blocks,
           "colour_path": CYCLE.colour_path}
CYCLE_EPOCHS, CYCLE_DECAY = 2, 2


@functools.lru_cache(maxsize=None)  # loaded once for both recipes
def _photos() -> tuple[torch.Tensor, torch.Tensor]:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    train, test = (data.stack(data.colour_images(split, size=SIZE)) for split in ("train", "test"))
    return train, test


def _pix2pix(gan: bool) -> Trained:
    torch.set_num_threads(1)  # small convolutions: one thread is faster than two on a busy 2-core machine
    labels, targets = scenes.scene_pairs(PIX2PIX_SCENES, PIX2PIX_SIZE, "train")
    test_labels, test_targets = scenes.scene_pairs(PIX2PIX_TEST, PIX2PIX_SIZE, "test")
    seed_everything(0)
    generator = UNetGenerator(**PIX2PIX_G)
    discriminator = PatchDiscriminator(**PIX2PIX_D) if gan else None
    task = translation.Pix2PixTask(generator, discriminator, lr=2e-4, lambda_l1=translation.LAMBDA_L1)
    def sharpness():  # progress: the fine detail of 128 held-out scenes, as a fraction of the real ones'
        return translation.pix2pix_scores(generator, test_labels[:128], test_targets[:128])["sharpness"]

    val = data.make_loader(scenes.ScenePairs(test_labels[:128], test_targets[:128]), batch_size=128, shuffle=False)
    training.fit(task, data.make_loader(scenes.ScenePairs(labels, targets), batch_size=PIX2PIX_BATCH, seed=0),
                 epochs=PIX2PIX_EPOCHS, progress=False, device="cpu", val_loader=val,
                 on_epoch=lambda epoch, row: print(f"  epoch {epoch}: held-out L1 {row['val_l1']:.4f}, fine detail "
                                                   f"{sharpness():.2f}", flush=True))
    score = translation.pix2pix_scores(generator, test_labels, test_targets)
    median = translation.picture_scores(targets.median(dim=0).values, test_targets)
    name = "pix2pix (L1 + GAN)" if gan else "U-Net, L1 alone"
    metrics = {"what": f"{name} label map -> scene: mean absolute error", "model": score["error"],
               "baseline": median["error"], "better": "lower", "baseline_name": "median training scene"}
    config = {"generator": PIX2PIX_G, "discriminator": PIX2PIX_D if gan else None, "size": PIX2PIX_SIZE,
              "lambda_l1": translation.LAMBDA_L1, "scenes": PIX2PIX_SCENES, "batch": PIX2PIX_BATCH, "lr": 2e-4}
    return Trained(generator.state_dict(), config, PIX2PIX_EPOCHS, metrics,
                   extra={"data": f"procedural scenes (lessons_lib.scenes, {PIX2PIX_SIZE} px): {PIX2PIX_SCENES} "
                                  f"training, {PIX2PIX_TEST} held out (split='test')",
                          "held_out": {"scenes": PIX2PIX_TEST, "model": score, "median scene": median}})


def pix2pix() -> Trained:
    return _pix2pix(gan=True)


def pix2pix_l1() -> Trained:
    return _pix2pix(gan=False)


def cyclegan() -> Trained:
    train, test = _photos()
    seed_everything(0)
    domain_a, domain_b = translation.offline_domains(n=len(train) // 2, size=CYCLE.size)
    g_ab, g_ba = CYCLE.generator(), CYCLE.generator()
    task = translation.CycleGANTask(g_ab, g_ba, CYCLE.discriminator(), CYCLE.discriminator(), lr=CYCLE.lr,
                                    lambda_identity=CYCLE.lambda_identity, lambda_luminance=CYCLE.lambda_luminance,
                                    n_epochs=CYCLE_EPOCHS, n_epochs_decay=CYCLE_DECAY)
    loader = data.make_loader(translation.UnpairedImages(domain_a, domain_b), batch_size=CYCLE.batch_size, seed=0)
    training.fit(task, loader, epochs=CYCLE_EPOCHS + CYCLE_DECAY, progress=False, device="cpu")
    scores = translation.cyclegan_scores(g_ab, test)
    metrics = {"what": f"CycleGAN A->B vs the exact {translation.HUE_DEGREES:g} degree hue map: "
                       "mean absolute error",
               "model": scores["CycleGAN A->B"], "baseline": scores["identity"], "better": "lower",
               "baseline_name": "identity (the photo unchanged)"}
    state = {**{f"g_ab.{k}": v for k, v in g_ab.state_dict().items()},
             **{f"g_ba.{k}": v for k, v in g_ba.state_dict().items()}}
    config = {"generator": CYCLE_G, "hue_degrees": translation.HUE_DEGREES,
              "lambda_cycle": translation.LAMBDA_CYCLE, "lambda_identity": CYCLE.lambda_identity,
              "lambda_luminance": CYCLE.lambda_luminance}
    return Trained(state, config, CYCLE_EPOCHS + CYCLE_DECAY, metrics, extra={"held_out": scores})


RECIPES = {"translation/pix2pix": pix2pix, "translation/pix2pix-l1": pix2pix_l1, "translation/cyclegan": cyclegan}
