"""AdaIN (Huang and Belongie, 2017) trained and scored: the decoder's objective and losses, its
training task, and its scores on held-out pairs beside the pixel colour transfer and the unchanged content."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..models.adain import ADAIN_STYLE_LAYERS, AdaINStyleTransfer, channel_stats
from ..models.vgg import VGGFeatures
from ..training import Task
from .judging import colour_transfer

__all__ = ["adain_objective", "adain_losses", "AdaINTask", "adain_scores"]


def adain_objective(encoder: VGGFeatures, output: torch.Tensor, target: torch.Tensor,
                    style: torch.Tensor) -> dict[str, torch.Tensor]:
    """How well ``output`` images do what AdaIN asks: {"content", "style"}.

    content: MSE between the output's relu4_1 and the AdaIN target ``target`` (the
    content features carrying the style's statistics). style: MSE of channel means plus
    MSE of channel standard deviations, summed over relu1_1 .. relu4_1, against ``style``.
    It scores any image: the decoder's, or a baseline's.
    """
    out_feats = encoder(output)
    with torch.no_grad():
        style_feats = encoder(style)
    ls = 0.0
    for name in ADAIN_STYLE_LAYERS:
        om, os_ = channel_stats(out_feats[name], 1e-5)
        sm, ss = channel_stats(style_feats[name], 1e-5)
        ls = ls + F.mse_loss(om, sm.expand_as(om)) + F.mse_loss(os_, ss.expand_as(os_))
    return {"content": F.mse_loss(out_feats["relu4_1"], target), "style": ls}


def adain_losses(model: AdaINStyleTransfer, content: torch.Tensor, style: torch.Tensor,
                 style_weight: float = 10.0) -> dict[str, torch.Tensor]:
    """The AdaIN training losses for one batch: {"content", "style", "loss"}.

    The content loss compares with the AdaIN target t, not with the content image's
    features: the decoder must invert AdaIN's output (see :func:`adain_objective`).
    """
    out, t = model(content, style, return_target=True)
    losses = adain_objective(model.encoder, out, t, style)
    return {**losses, "loss": losses["content"] + style_weight * losses["style"]}


class AdaINTask(Task):
    """Trains an :class:`AdaINStyleTransfer` decoder with :func:`lessons_lib.training.fit`.

    Batches are ``(content, style)`` in [0, 1]; only the decoder is optimised (Adam).
    """

    def __init__(self, model: AdaINStyleTransfer, lr: float = 1e-4, style_weight: float = 10.0):
        super().__init__({"adain": model}, {"decoder": torch.optim.Adam(model.decoder.parameters(), lr=lr)})
        self.style_weight = style_weight

    def training_step(self, batch):
        content, style_images = batch
        losses = adain_losses(self.models["adain"], content, style_images, self.style_weight)
        return {"loss": self.optimize(losses["loss"], "decoder"),
                "content": float(losses["content"].detach()), "style": float(losses["style"].detach())}


@torch.no_grad()
def adain_scores(model: AdaINStyleTransfer, contents: torch.Tensor, styles: torch.Tensor,
                 style_weight: float = 10.0, batch: int = 64) -> dict[str, dict[str, float]]:
    """The AdaIN objective (content + ``style_weight`` x style) on held-out pairs, for
    the decoder, the pixel colour transfer and the unchanged content image.

    Returns {method: {"content", "style", "total"}}, means over the pairs.
    """
    model.eval()
    sums: dict[str, dict[str, float]] = {}
    device = next(model.decoder.parameters()).device
    for i in range(0, len(contents), batch):
        c, s = contents[i:i + batch].to(device), styles[i:i + batch].to(device)
        out, t = model(c, s, return_target=True)
        for name, image in (("AdaIN decoder", out.clamp(0, 1)), ("colour transfer", colour_transfer(c, s)),
                            ("content image", c)):
            losses = adain_objective(model.encoder, image, t, s)
            row = sums.setdefault(name, {"content": 0.0, "style": 0.0, "total": 0.0})
            row["content"] += float(losses["content"]) * len(c)
            row["style"] += float(losses["style"]) * len(c)
            row["total"] += float(losses["content"] + style_weight * losses["style"]) * len(c)
    return {name: {k: v / len(contents) for k, v in row.items()} for name, row in sums.items()}
