"""Course weights for notebook 6: the AdaIN decoder and the two 4x super-resolution nets.

    python -m course_tools.train_weights --only style/

Each recipe is the notebook's own training (same networks, losses and ``training.fit``
loop) on all 4,194 training photos of the CIFAR-10 subset for a few epochs, scored on
the 466 held-out photos against its trivial baseline. The VGG19 the losses are measured
in is the one the fast profile has offline: a narrow network with fixed random weights
(``lessons_lib.models.vgg``); the manifest says so, and the AdaIN decoder is loaded with
that same encoder, since a decoder only inverts the features it was trained on.
"""
from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from course_tools.train_weights import Trained
from lessons_lib import data, style, textures, training
from lessons_lib.runtime import seed_everything

SR_NET = {"scale": 4, "width": 32, "blocks": 4}
SR_EPOCHS = 3
PIXEL_WEIGHT = 0.1
ADAIN_PHOTOS, ADAIN_EPOCHS = 2048, 2
STYLE_WEIGHT = 10.0


@functools.lru_cache(maxsize=None)  # loaded once for all three recipes
def _photos() -> tuple[torch.Tensor, torch.Tensor]:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return data.stack(data.colour_images("train")), data.stack(data.colour_images("test"))


def _train_sr(loss_fn, train: torch.Tensor) -> style.SRNet:
    seed_everything(0)
    net = style.SRNet(**SR_NET)
    low, high = style.make_sr_pairs(train, SR_NET["scale"])
    loader = data.make_loader(torch.utils.data.TensorDataset(low, high), batch_size=32, seed=0)
    training.fit(training.SupervisedTask(net, lr=1e-3, loss_fn=loss_fn), loader, epochs=SR_EPOCHS,
                 progress=False, device="cpu")
    return net.eval()


def _sr_metrics(net, test) -> dict:
    extractor = style.VGGFeatures(style.DISTANCE_LAYERS, verbose=False)
    return style.sr_scores({"net": net}, test, extractor), extractor.description


def sr_pixel() -> Trained:
    train, test = _photos()
    net = _train_sr(F.mse_loss, train)
    scores, vgg = _sr_metrics(net, test)
    metrics = {"what": "4x super-resolution (pixel MSE): PSNR (dB)", "model": scores["net"]["PSNR"],
               "baseline": scores["bicubic"]["PSNR"], "better": "higher", "baseline_name": "bicubic"}
    return Trained(net.state_dict(), {"net": SR_NET, "loss": "pixel MSE"}, SR_EPOCHS, metrics,
                   extra={"held_out": scores, "vgg": vgg})


def sr_perceptual() -> Trained:
    train, test = _photos()
    loss = style.PerceptualLoss(("relu2_2",), pixel_weight=PIXEL_WEIGHT,
                                extractor=style.VGGFeatures(["relu2_2"], verbose=False))
    net = _train_sr(loss, train)
    scores, vgg = _sr_metrics(net, test)
    metrics = {"what": "4x super-resolution (perceptual): VGG-feature distance",
               "model": scores["net"]["feature distance"], "baseline": scores["bicubic"]["feature distance"],
               "better": "lower", "baseline_name": "bicubic"}
    config = {"net": SR_NET, "loss": f"VGG relu2_2 feature MSE + {PIXEL_WEIGHT} x pixel MSE"}
    return Trained(net.state_dict(), config, SR_EPOCHS, metrics, extra={"held_out": scores, "vgg": vgg})



def adain_decoder() -> Trained:
    train, test = _photos()
    seed_everything(0)
    train_styles, test_styles = textures.style_bank("train"), textures.style_bank("test")
    gen = torch.Generator().manual_seed(0)
    contents = train[torch.randperm(len(train), generator=gen)[:ADAIN_PHOTOS]]
    pairs = torch.utils.data.TensorDataset(
        contents, train_styles[torch.randint(len(train_styles), (len(contents),), generator=gen)])
    encoder = style.VGGFeatures(style.ADAIN_STYLE_LAYERS, verbose=False)
    model = style.AdaINStyleTransfer(encoder, residual=True)
    task = style.AdaINTask(model, lr=1e-3, style_weight=STYLE_WEIGHT)
    training.fit(task, data.make_loader(pairs, batch_size=16, seed=0), epochs=ADAIN_EPOCHS, progress=False,
                 device="cpu")
    held_out_styles = test_styles[torch.arange(len(test)) % len(test_styles)]  # as notebook 6 pairs them
    scores = style.adain_scores(model, test, held_out_styles, STYLE_WEIGHT)
    metrics = {"what": f"AdaIN objective (content + {STYLE_WEIGHT:g} x style), held-out photos and styles",
               "model": scores["AdaIN decoder"]["total"], "baseline": scores["colour transfer"]["total"],
               "better": "lower", "baseline_name": "colour transfer (AdaIN on pixels)"}
    encoder = {"pretrained": model.encoder.pretrained, "width": model.encoder.width}
    config = {"encoder": encoder, "residual": True, "style_weight": STYLE_WEIGHT, "photos": ADAIN_PHOTOS}
    return Trained(model.decoder.state_dict(), config,
                   ADAIN_EPOCHS, metrics, extra={"held_out": scores, "vgg": model.encoder.description})


RECIPES = {"style/adain_decoder": adain_decoder, "style/sr_pixel": sr_pixel,
           "style/sr_perceptual": sr_perceptual}
