"""The colorization zoo: every model by name, built the same way.

    from lessons_lib.models.colorizers import MODELS, build_model
    model = build_model("unet")            # an nn.Module
    colour = model.colorize(gray)          # (N, 1, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]

``MODELS[name].kind`` says how it trains (``supervised``, ``gan``, ``vae`` or
``diffusion``; see ``lessons_lib.zoo.make_task``). ``width`` scales every layer (the
fast profile uses narrow models); ``latent_dim`` is the VAEs' latent channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .. import validate as V
from . import gan, resnet, unet, vae

__all__ = ["ZooModel", "MODELS", "build_model"]


@dataclass(frozen=True)
class ZooModel:
    name: str
    kind: str
    summary: str
    build: Callable[..., nn.Module]


def _diffusion(sampler: str):
    def build(latent_dim: int = 256, width: int = 32) -> nn.Module:
        from .diffusion_colorizer import DiffusionColorizer

        return DiffusionColorizer(width=width, sampler=sampler)
    return build


MODELS: dict[str, ZooModel] = {m.name: m for m in [
    ZooModel("resnet", "supervised", "residual conv features + transposed-conv upsampling (MSE)",
             lambda latent_dim=256, width=32: resnet.ResNetColorizer(width=width)),
    ZooModel("unet", "supervised", "U-Net with skip connections (MSE)",
             lambda latent_dim=256, width=32: unet.UNet(width=width)),
    ZooModel("gan", "gan", "encoder-decoder generator without skips + patch discriminator (BCE + L1)",
             lambda latent_dim=256, width=32: gan.gan(width=width)),
    ZooModel("unetgan", "gan", "U-Net generator + patch discriminator (BCE + L1)",
             lambda latent_dim=256, width=32: gan.unet_gan(width=width)),
    ZooModel("basicvae", "vae", "conv VAE without skips (MSE + 0.001 KL)",
             lambda latent_dim=256, width=32: vae.BasicVAE(latent_dim=latent_dim, width=width)),
    ZooModel("unetvae", "vae", "U-Net with a variational bottleneck (MSE + 0.001 KL)",
             lambda latent_dim=256, width=32: vae.UNetVAE(latent_dim=latent_dim, width=width)),
    ZooModel("unetddpm", "diffusion",
             "conditional diffusion UNet on chroma, ancestral DDPM sampling (v-prediction MSE)", _diffusion("ddpm")),
    ZooModel("unetddim", "diffusion",
             "conditional diffusion UNet on chroma, deterministic DDIM sampling (v-prediction MSE)",
             _diffusion("ddim")),
]}


def build_model(name: str, latent_dim: int = 256, width: int = 32) -> nn.Module:
    """A freshly initialised zoo model (seed torch first for reproducible weights)."""
    V.choice("model", name, MODELS)
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    return MODELS[name].build(latent_dim=latent_dim, width=width)
