"""The colorization zoo: every model by name, built the same way from one config.

    from lessons_lib.models.colorizers import MODELS, ZooConfig, build_model
    model = build_model("unet")                          # the defaults: ZooConfig("unet").build()
    model = ZooConfig("basicvae", width=16, latent_dim=64).build()
    colour = model.colorize(gray)          # (N, 1, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]

``MODELS[name].kind`` says how it trains (``supervised``, ``gan``, ``vae`` or
``diffusion``; see ``lessons_lib.zoo.make_task``). :class:`ZooConfig` holds what decides a
model's shape, with the defaults and checks in one place: ``width`` scales every layer (the
fast profile uses narrow models); ``latent_dim`` is the VAEs' latent channels, and only they
use it (:attr:`ZooConfig.shape`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .. import validate as V
from . import gan, resnet, unet, vae

__all__ = ["ZooModel", "MODELS", "ZooConfig", "build_model"]


@dataclass(frozen=True)
class ZooModel:
    name: str
    kind: str
    summary: str
    build: Callable[["ZooConfig"], nn.Module]

    @property
    def has_latent(self) -> bool:
        """Whether ``latent_dim`` changes this model (the VAEs' latent channels)."""
        return self.kind == "vae"


def _diffusion(sampler: str):
    def build(c: "ZooConfig") -> nn.Module:
        from .diffusion_colorizer import DiffusionColorizer

        return DiffusionColorizer(width=c.width, sampler=sampler)
    return build


MODELS: dict[str, ZooModel] = {m.name: m for m in [
    ZooModel("resnet", "supervised", "residual conv features + transposed-conv upsampling (MSE, or --loss delta_e76)",
             lambda c: resnet.ResNetColorizer(width=c.width)),
    ZooModel("unet", "supervised", "U-Net with skip connections (MSE)", lambda c: unet.UNet(width=c.width)),
    ZooModel("gan", "gan", "encoder-decoder generator without skips + patch discriminator (BCE + L1)",
             lambda c: gan.gan(width=c.width)),
    ZooModel("unetgan", "gan", "U-Net generator + patch discriminator (BCE + L1)",
             lambda c: gan.unet_gan(width=c.width)),
    ZooModel("basicvae", "vae", "conv VAE without skips (MSE + 0.001 KL)",
             lambda c: vae.BasicVAE(latent_dim=c.latent_dim, width=c.width)),
    ZooModel("unetvae", "vae", "U-Net with a variational bottleneck (MSE + 0.001 KL)",
             lambda c: vae.UNetVAE(latent_dim=c.latent_dim, width=c.width)),
    ZooModel("unetddpm", "diffusion",
             "conditional diffusion UNet on chroma, ancestral DDPM sampling (v-prediction MSE)", _diffusion("ddpm")),
    ZooModel("unetddim", "diffusion",
             "conditional diffusion UNet on chroma, deterministic DDIM sampling (v-prediction MSE)",
             _diffusion("ddim")),
]}


@dataclass(frozen=True)
class ZooConfig:
    """What decides a zoo model's shape: the one place for its defaults and checks.

    Written to a run's ``config.json`` (:meth:`to_dict`) and read back (:meth:`from_dict`); the
    command line's defaults come from here. ``latent_dim`` (64, what notebook 2 and the course
    weights use) matters to the VAEs only: :attr:`shape` lists the fields that change the model,
    and a resumed or tested run is compared on those alone.
    """

    model: str = "unet"
    width: int = 32
    latent_dim: int = 64

    def __post_init__(self):
        V.choice("model", self.model, MODELS)
        object.__setattr__(self, "width", V.count("width", self.width, hint="The course trains 32."))
        object.__setattr__(self, "latent_dim", V.count("latent_dim", self.latent_dim, hint="The course uses 64."))

    @property
    def spec(self) -> ZooModel:
        return MODELS[self.model]

    @property
    def shape(self) -> tuple[str, ...]:
        """The fields that change this model's weights: width, and latent_dim for a VAE."""
        return ("width", "latent_dim") if self.spec.has_latent else ("width",)

    def build(self) -> nn.Module:
        """A freshly initialised model (seed torch first for reproducible weights)."""
        return self.spec.build(self)

    def to_dict(self) -> dict:
        """``model`` and the fields in :attr:`shape` (what a run records)."""
        return {"model": self.model, **{k: getattr(self, k) for k in self.shape}}

    @classmethod
    def from_dict(cls, record: dict, **given) -> "ZooConfig":
        """The config a record describes; ``given`` fills what it lacks (None: the default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in given.items() if v is not None}
        values.update({k: v for k, v in record.items() if k in names})
        return cls(**values)


def build_model(name: str, latent_dim: int | None = None, width: int | None = None) -> nn.Module:
    """A freshly initialised zoo model (seed torch first for reproducible weights);
    a size left out is :class:`ZooConfig`'s default."""
    return ZooConfig.from_dict({}, model=name, latent_dim=latent_dim, width=width).build()
