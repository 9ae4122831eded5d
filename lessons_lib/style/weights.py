"""Lesson 6's course weights: how to build each ``style/`` name from its manifest entry
(registered with :func:`lessons_lib.course_weights.register` when the lesson is imported),
and the loaders the notebook calls."""
from __future__ import annotations

from torch import nn

from .. import course_weights
from ..models.adain import ADAIN_STYLE_LAYERS, AdaINStyleTransfer
from ..models.srnet import SRNet
from ..models.vgg import COURSE_FEATURES, VGGFeatures, vgg19_trunk

__all__ = ["course_sr_net", "course_adain"]


def _course_sr_net(name: str, state: dict, info: dict) -> SRNet:
    return course_weights.load_into(SRNet(**info["config"]["net"]), state, name)


def _course_adain(name: str, state: dict, info: dict) -> AdaINStyleTransfer:
    encoder = VGGFeatures(ADAIN_STYLE_LAYERS, verbose=False, **info["config"]["encoder"])
    model = AdaINStyleTransfer(encoder, residual=info["config"]["residual"])
    course_weights.load_into(model.decoder, state, name)
    return model


def _course_features(name: str, state: dict, info: dict) -> nn.Module:
    trunk = vgg19_trunk(info["config"]["width"], info["config"]["last"])
    return course_weights.load_into(trunk, state, name)


for _name in ("style/sr_pixel", "style/sr_perceptual"):
    course_weights.register(_name, _course_sr_net)
course_weights.register("style/adain_decoder", _course_adain)
course_weights.register(COURSE_FEATURES, _course_features)


def course_sr_net(name: str) -> tuple[SRNet, dict]:
    """The course's trained SR net ``name`` ("style/sr_pixel" or "style/sr_perceptual"),
    eval mode, and its manifest entry (config, training command, held-out metrics)."""
    return course_weights.load(name)


def course_adain() -> tuple[AdaINStyleTransfer, dict]:
    """The course's trained AdaIN model (decoder weights + the encoder they were trained
    with, named in the manifest), eval mode, and its manifest entry."""
    return course_weights.load("style/adain_decoder")
