"""Course weights for lesson 4's fast profile: a tiny Stable Diffusion that has learned something.

    python -m course_tools.train_weights --only editing/

The fast profile's img2img pipeline is a real ``StableDiffusionImg2ImgPipeline`` with the
tiny configs of ``lessons_lib.editing.tiny`` (an SD-style VAE that compresses 8x per side,
a two-level UNet with cross-attention, a two-layer CLIP text encoder). These recipes train
its parts on the CIFAR-10 subset's training photos, upsampled to the profile's 64 px and
mirrored, each captioned with its class ("a photo of a cat"):

* ``editing/vae``: the autoencoder (L1 reconstruction + a small KL term), then its
  ``scaling_factor`` set so the latents have unit spread, as SD's 0.18215 does for SD's VAE;
* ``editing/text2img-unet`` and ``editing/text_encoder``: the UNet predicts the noise
  (epsilon) added to the latents at a random step of SD 1.5's own noise schedule, given the
  caption's embedding, trained together with the text encoder; one caption in ten is
  dropped (replaced by the empty prompt) so classifier-free guidance works.

Held-out metrics: the VAE's round-trip PSNR beside an 8x8 thumbnail's (the latent's grid);
the UNet's noise-prediction error with the true caption beside the empty caption's (the
text must help).
"""
from __future__ import annotations

import functools
import time

import torch
from torch.nn import functional as F

from course_tools.recipes.features import BATCH, LR, labelled_photos, train_classifier
from course_tools.train_weights import Trained
from lessons_lib import course_weights, metrics
from lessons_lib.data import CIFAR10_CLASSES as CLASSES
from lessons_lib.editing import specs
from lessons_lib.editing import tiny as T
from lessons_lib.runtime import seed_everything

SIZE = 64               # the fast profile's image side (notebook 4's SIZE)
SEED = 0
VAE_STEPS, VAE_BATCH, VAE_LR, VAE_KL = 1500, 16, 1e-3, 1e-4
UNET_STEPS, UNET_BATCH, UNET_LR, TEXT_LR = 3000, 64, 1e-3, 2e-4
CAPTION_DROPOUT = 0.1
TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}", "a photo of the {}")


def _kind_config(model, kind: str) -> dict:
    config = model.config.to_dict() if kind == "text_encoder" else dict(model.config)
    return {"kind": kind, "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()
                                    if not k.startswith("_") and k not in ("transformers_version", "architectures")}}


@functools.lru_cache(maxsize=None)
def _photos(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images at SIZE px in [-1, 1], labels) of the subset's fixed 90/10 split."""
    x, y = labelled_photos(split)
    big = F.interpolate(x, size=SIZE, mode="bicubic", align_corners=False).clamp(0, 1)
    return big * 2 - 1, y


@torch.no_grad()
def _latents(vae, x: torch.Tensor, scaled: bool = True) -> torch.Tensor:
    """The VAE's latents (the posterior's mode) of images in [-1, 1], times its scaling factor."""
    z = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mode() for i in range(0, len(x), 256)])
    return z * vae.config.scaling_factor if scaled else z


# --------------------------------------------------------------------------- the VAE
@functools.lru_cache(maxsize=None)
def _train_vae():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    seed_everything(SEED)
    vae = T._tiny_vae(specs.task_spec("img2img"))
    x, _ = _photos("train")
    opt = torch.optim.Adam(vae.parameters(), lr=VAE_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=VAE_STEPS)
    gen = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    vae.train()
    for step in range(1, VAE_STEPS + 1):
        batch = x[torch.randint(0, len(x), (VAE_BATCH,), generator=gen)]
        batch = torch.where(torch.rand(VAE_BATCH, 1, 1, 1, generator=gen) < 0.5, batch, batch.flip(-1))
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        # KL per latent value (averaged, like the reconstruction over pixels): a gentle pull to N(0, 1)
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = F.l1_loss(recon, batch) + VAE_KL * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0:
            print(f"editing/vae: step {step}/{VAE_STEPS} loss {float(loss):.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    vae.eval()
    # latents of unit spread, as SD's scaling factor makes its own
    vae.register_to_config(scaling_factor=round(float(1.0 / _latents(vae, x, scaled=False).std()), 5))
    return vae


@torch.no_grad()
def _vae_scores(vae) -> dict:
    xt, _ = _photos("test")
    z = _latents(vae, xt, scaled=False)
    recon = torch.cat([vae.decode(z[i:i + 128]).sample for i in range(0, len(z), 128)]).clamp(-1, 1)
    unit, target = (recon + 1) / 2, (xt + 1) / 2
    grid = SIZE // 8
    thumb = F.interpolate(F.interpolate(target, size=grid, mode="area"), size=SIZE, mode="bicubic",
                          align_corners=False).clamp(0, 1)
    return {"model": float(metrics.psnr(unit, target)), "baseline": float(metrics.psnr(thumb, target))}


def vae() -> Trained:
    model = _train_vae()
    scores = _vae_scores(model)
    return Trained(
        state=model.state_dict(), config=_kind_config(model, "vae"),
        epochs=VAE_STEPS * VAE_BATCH / len(_photos("train")[0]),
        metrics={"what": f"tiny SD VAE: round-trip PSNR (dB) at {SIZE} px, held-out photos", **scores,
                 "better": "higher",
                 "baseline_name": f"an {SIZE // 8}x{SIZE // 8} thumbnail (the latent's grid) upsampled"},
        extra={"training": {"steps": VAE_STEPS, "batch": VAE_BATCH, "lr": VAE_LR, "kl_weight": VAE_KL,
                            "loss": "L1 + KL per latent value",
                            "images": f"subset photos, bicubic to {SIZE} px, mirrored"},
               "scaling_factor": model.config.scaling_factor})


# --------------------------------------------------------------------------- the UNet and text encoder
def _captions(labels: torch.Tensor, gen: torch.Generator, dropout: float) -> list[str]:
    picks = torch.randint(0, len(TEMPLATES), (len(labels),), generator=gen)
    drop = torch.rand(len(labels), generator=gen) < dropout
    return ["" if d else TEMPLATES[int(t)].format(CLASSES[int(c)]) for c, t, d in zip(labels, picks, drop)]


def _embed(tokenizer, text_encoder, captions: list[str]) -> torch.Tensor:
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids)[0]


@functools.lru_cache(maxsize=None)
def _train_unet():
    import diffusers

    shipped = course_weights.manifest()["weights"]
    vae_model = course_weights.load("editing/vae")[0] if "editing/vae" in shipped else _train_vae()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    pipe = T.build_tiny_pipeline("img2img", seed=SEED)
    unet, text_encoder, tokenizer = pipe.unet, pipe.text_encoder, pipe.tokenizer
    schedule = diffusers.DDPMScheduler.from_config(specs.SCHEDULER_CONFIGS["img2img"])
    x, y = _photos("train")
    x, y = torch.cat([x, x.flip(-1)]), torch.cat([y, y])
    z = _latents(vae_model, x)
    seed_everything(SEED)
    opt = torch.optim.AdamW([{"params": unet.parameters(), "lr": UNET_LR},
                             {"params": text_encoder.parameters(), "lr": TEXT_LR}], weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=UNET_STEPS)
    gen = torch.Generator().manual_seed(SEED)
    unet.train()
    text_encoder.train()
    start = time.perf_counter()
    for step in range(1, UNET_STEPS + 1):
        idx = torch.randint(0, len(z), (UNET_BATCH,), generator=gen)
        noise = torch.randn(z[idx].shape, generator=gen)
        t = torch.randint(0, schedule.config.num_train_timesteps, (UNET_BATCH,), generator=gen)
        noisy = schedule.add_noise(z[idx], noise, t)
        cond = _embed(tokenizer, text_encoder, _captions(y[idx], gen, CAPTION_DROPOUT))
        loss = F.mse_loss(unet(noisy, t, encoder_hidden_states=cond).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(f"editing/text2img-unet: step {step}/{UNET_STEPS} loss {float(loss):.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    unet.eval()
    text_encoder.eval()
    return unet, text_encoder, tokenizer, vae_model, schedule


@torch.no_grad()
def _unet_scores(unet, text_encoder, tokenizer, vae_model, schedule) -> dict:
    """Noise-prediction MSE on held-out latents with the true caption and with the empty one
    (the same noise and steps for both)."""
    xt, yt = _photos("test")
    z = _latents(vae_model, xt)
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(z.shape, generator=gen)
    t = torch.randint(0, schedule.config.num_train_timesteps, (len(z),), generator=gen)
    noisy = schedule.add_noise(z, noise, t)
    errors = {}
    for key, captions in [("model", [TEMPLATES[0].format(CLASSES[int(c)]) for c in yt]), ("baseline", [""] * len(yt))]:
        cond = torch.cat([_embed(tokenizer, text_encoder, captions[i:i + 256]) for i in range(0, len(z), 256)])
        pred = torch.cat([unet(noisy[i:i + 256], t[i:i + 256], encoder_hidden_states=cond[i:i + 256]).sample
                          for i in range(0, len(z), 256)])
        errors[key] = float(F.mse_loss(pred, noise))
    return errors


def _text2img(part: str):
    def run() -> Trained:
        unet, text_encoder, tokenizer, vae_model, schedule = _train_unet()
        scores = _unet_scores(unet, text_encoder, tokenizer, vae_model, schedule)
        model = unet if part == "unet" else text_encoder
        return Trained(
            state=model.state_dict(), config=_kind_config(model, part),
            epochs=UNET_STEPS * UNET_BATCH / (2 * len(_photos("train")[0])),
            metrics={"what": "tiny SD text-to-image: noise-prediction MSE on held-out latents, with the caption",
                     **scores, "better": "lower", "baseline_name": "the same UNet given the empty caption"},
            extra={"training": {"steps": UNET_STEPS, "batch": UNET_BATCH, "unet_lr": UNET_LR, "text_lr": TEXT_LR,
                                "caption_dropout": CAPTION_DROPOUT, "captions": list(TEMPLATES),
                                "objective": "epsilon, SD 1.5's scaled-linear schedule (1000 steps)",
                                "trained_with": "editing/text2img-unet and editing/text_encoder together"}})
    return run


# --------------------------------------------------------------------------- the judge
CLASSIFIER_EPOCHS = 15


def classifier() -> Trained:
    """The photo classifier notebook 4 judges img2img with: which class does an edit show?"""
    from lessons_lib.models.classifier import PhotoClassifier

    net, history, metrics = train_classifier(lambda classes: PhotoClassifier(classes=classes),
                                             CLASSIFIER_EPOCHS, tag="editing/classifier")
    return Trained(
        state=net.state_dict(), config={"kind": "classifier", "model": {"classes": len(CLASSES), "width": 32},
                                        "class_names": list(CLASSES)},
        epochs=CLASSIFIER_EPOCHS, metrics=metrics,
        extra={"held_out": {"photos": len(labelled_photos("test")[1])},
               "training": {"batch": BATCH, "optimizer": f"SGD nesterov, OneCycle max lr {LR}",
                            "augmentation": "reflect-pad 4 + random 32 px crop, horizontal flip",
                            "label_smoothing": 0.1, "history": history}})


RECIPES = {"editing/classifier": classifier, "editing/vae": vae, "editing/text2img-unet": _text2img("unet"),
           "editing/text_encoder": _text2img("text_encoder")}
