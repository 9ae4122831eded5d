"""Course weights for notebook 6: the AdaIN decoder and the two 4x super-resolution nets.

    python -m course_tools.train_weights --only style/features   # first: the features they use
    python -m course_tools.train_weights --only 'style/[as]*'

Each recipe is the notebook's own training (same networks, losses and ``training.fit``
loop), longer, scored on held-out images against its trivial baseline. The features the
losses are measured in are the fast profile's: the course's trained feature network
(``style/features``, recipe ``course_tools.recipes.features``); the manifest says so, and
the AdaIN decoder is loaded with that same encoder, since a decoder only inverts the
features it was trained on.

* super-resolution, 16 -> 64 px: crops of the bundled training photos
  (``textures.photo_crops("train")``), scored on crops of the held-out photos;
* AdaIN: CIFAR-10 subset training photos (upsampled to 64 px) and crops of the training
  photos, with drawn and photographed textures in training palettes; scored on the
  held-out photos with textures in palettes training never saw.
"""
from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from course_tools.train_weights import Trained
from lessons_lib import data, style, tables, textures, training
from lessons_lib.runtime import seed_everything

SR_NET = {"scale": 4, "width": 32, "blocks": 4}
SR_SIZE, SR_PHOTOS, SR_TEST, SR_EPOCHS = 64, 1024, 96, 2
PIXEL_WEIGHT = 0.1
ADAIN_SIZE, ADAIN_PHOTOS, ADAIN_EPOCHS = 64, 512, 1
STYLE_WEIGHT = 10.0
FEATURES = "course"


@functools.lru_cache(maxsize=None)  # made once for both SR recipes
def _photos() -> tuple[torch.Tensor, torch.Tensor]:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return (textures.photo_crops("train", SR_PHOTOS, SR_SIZE), textures.photo_crops("test", SR_TEST, SR_SIZE))


def _train_sr(loss_fn, train: torch.Tensor) -> style.SRNet:
    seed_everything(0)
    net = style.SRNet(**SR_NET)
    low, high = style.make_sr_pairs(train, SR_NET["scale"])
    loader = data.make_loader(torch.utils.data.TensorDataset(low, high), batch_size=32, seed=0)
    training.fit(training.SupervisedTask(net, lr=1e-3, loss_fn=loss_fn), loader, epochs=SR_EPOCHS,
                 progress=False, device="cpu")
    return net.eval()


@torch.no_grad()
def _sr_metrics(net, test) -> dict:
    """PSNR, SSIM and the patch SWD to the real crops (as notebook 6 judges them), net and bicubic,
    with the standard error of the net's per-crop difference from bicubic."""
    from lessons_lib.metrics import psnr, ssim

    low, _ = style.make_sr_pairs(test, SR_NET["scale"])
    outs = {"net": net.eval()(low).clamp(0, 1), "bicubic": style.bicubic(low, SR_NET["scale"])}
    per = {k: {"PSNR": psnr(o, test, reduction="none"), "SSIM": ssim(o, test, reduction="none"),
               "patch SWD": style.patch_swd(o, test)} for k, o in outs.items()}
    scores = {k: {m: float(v.mean()) for m, v in row.items()} for k, row in per.items()}
    spread = {m: tables.mean_se(per["net"][m] - per["bicubic"][m])[1] for m in per["net"]}
    return scores, spread


def sr_pixel() -> Trained:
    train, test = _photos()
    net = _train_sr(F.mse_loss, train)
    scores, spread = _sr_metrics(net, test)
    metrics = {"what": f"4x super-resolution {SR_SIZE // 4} -> {SR_SIZE} px (pixel MSE): PSNR (dB), held-out crops",
               "model": scores["net"]["PSNR"], "baseline": scores["bicubic"]["PSNR"], "better": "higher",
               "baseline_name": "bicubic", "spread": spread["PSNR"]}
    return Trained(net.state_dict(), {"net": SR_NET, "loss": "pixel MSE"}, SR_EPOCHS, metrics,
                   extra={"held_out": {"crops": len(test), **scores}})


def sr_perceptual() -> Trained:
    train, test = _photos()
    features = style.VGGFeatures(["relu2_2"], weights=FEATURES, verbose=False)
    loss = style.PerceptualLoss(("relu2_2",), pixel_weight=PIXEL_WEIGHT, extractor=features)
    net = _train_sr(loss, train)
    scores, spread = _sr_metrics(net, test)
    metrics = {"what": f"4x super-resolution {SR_SIZE // 4} -> {SR_SIZE} px (perceptual): patch SWD to the real "
               "crops, held-out crops", "model": scores["net"]["patch SWD"],
               "baseline": scores["bicubic"]["patch SWD"], "better": "lower", "baseline_name": "bicubic",
               "spread": spread["patch SWD"]}
    config = {"net": SR_NET, "loss": f"relu2_2 feature MSE + {PIXEL_WEIGHT} x pixel MSE"}
    return Trained(net.state_dict(), config, SR_EPOCHS, metrics,
                   extra={"held_out": {"crops": len(test), **scores}, "vgg": features.description})


def adain_decoder() -> Trained:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    seed_everything(0)
    gen = torch.Generator().manual_seed(0)
    cifar = data.stack(data.colour_images("train", size=ADAIN_SIZE, limit=ADAIN_PHOTOS // 2))
    contents = torch.cat([cifar, textures.photo_crops("train", ADAIN_PHOTOS - len(cifar), ADAIN_SIZE)])
    train_styles = textures.style_images("train")
    pairs = torch.utils.data.TensorDataset(
        contents, train_styles[torch.randint(len(train_styles), (len(contents),), generator=gen)])
    encoder = style.VGGFeatures(style.ADAIN_STYLE_LAYERS, weights=FEATURES, verbose=False)
    model = style.AdaINStyleTransfer(encoder, residual=True)
    task = style.AdaINTask(model, lr=1e-3, style_weight=STYLE_WEIGHT)
    training.fit(task, data.make_loader(pairs, batch_size=8, seed=0), epochs=ADAIN_EPOCHS, progress=False,
                 device="cpu")
    model.eval()
    test = textures.photo_crops("test", 24, ADAIN_SIZE * 2, min_side=256)
    test_styles = textures.style_images("test", ADAIN_SIZE * 2)
    held_out_styles = test_styles[torch.arange(len(test)) % len(test_styles)]
    with torch.no_grad():
        out = torch.cat([model(test[i:i + 8], held_out_styles[i:i + 8]).clamp(0, 1) for i in range(0, len(test), 8)])
    judge = style.patch_swd(out, held_out_styles)
    baseline = style.patch_swd(style.colour_transfer(test, held_out_styles), held_out_styles)
    (m, m_se), (b, _), (_, d_se) = tables.mean_se(judge), tables.mean_se(baseline), tables.mean_se(judge - baseline)
    metrics = {"what": f"AdaIN at {ADAIN_SIZE * 2} px: patch sliced Wasserstein distance to the style, held-out "
               "photos and styles", "model": m, "baseline": b, "better": "lower",
               "baseline_name": "colour transfer (AdaIN on pixels)", "spread": d_se}
    objective = style.adain_scores(model, test, held_out_styles, STYLE_WEIGHT)
    config = {"encoder": {"weights": FEATURES}, "residual": True, "style_weight": STYLE_WEIGHT,
              "photos": ADAIN_PHOTOS, "size": ADAIN_SIZE}
    return Trained(model.decoder.state_dict(), config, ADAIN_EPOCHS, metrics,
                   extra={"held_out": {"pairs": len(test), "objective": objective, "judge_se": m_se},
                          "vgg": model.encoder.description})


RECIPES = {"style/adain_decoder": adain_decoder, "style/sr_pixel": sr_pixel,
           "style/sr_perceptual": sr_perceptual}
