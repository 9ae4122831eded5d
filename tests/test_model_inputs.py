"""Every network refuses an input of the wrong channel count or rank with one message naming what it takes."""
import pytest
import torch

from lessons_lib.models.colorizers import MODELS, build_model
from lessons_lib.models.cyclegan import ResnetGenerator
from lessons_lib.models.encoder_decoder import EncoderDecoder
from lessons_lib.models.inpainting import InpaintUNet, PatchTransformer
from lessons_lib.models.pix2pix import UNetGenerator
from lessons_lib.models.srnet import SRNet


@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n].kind != "diffusion"])
def test_a_colour_photo_given_to_a_colorizer_says_to_convert_it(name):
    model = build_model(name, latent_dim=4, width=4).eval()
    with pytest.raises(ValueError, match=r"takes \(N, 1, H, W\) batches, got shape \(2, 3, 32, 32\)\. It "
                                         r"colourises grayscale images: .*rgb_to_gray"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"got shape \(1, 32, 32\)\. Add the batch dimension"):
        model(torch.rand(1, 32, 32))
    assert model(torch.rand(2, 1, 32, 32)) is not None  # the documented input still runs


@pytest.mark.parametrize("make, channels", [
    (lambda: EncoderDecoder(), 1),
    (lambda: UNetGenerator(3, 3, num_downs=3, ngf=4), 3),
    (lambda: ResnetGenerator(3, 3, ngf=4, n_blocks=1), 3),
    (lambda: SRNet(scale=2, width=4, blocks=1), 3),
])
def test_image_to_image_networks_name_the_channels_they_take(make, channels):
    model = make().eval()
    wrong = torch.rand(1, channels + 1, 16, 16)
    expected = rf"takes \(N, {channels}, H, W\) batches, got shape \(1, {channels + 1}, 16, 16\)"
    with pytest.raises(ValueError, match=expected):
        model(wrong)
    with pytest.raises(TypeError, match="takes a torch tensor"):
        model(wrong.numpy())
    assert model(torch.rand(1, channels, 16, 16)).dim() == 4


@pytest.mark.parametrize("make", [lambda: InpaintUNet(width=4), lambda: PatchTransformer(image_size=16)])
def test_inpainters_name_the_masked_image_they_take(make):
    model = make().eval()
    mask = torch.ones(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"masked image takes \(N, 3, H, W\) batches, got shape \(1, 4, 16, 16\)"):
        model(torch.rand(1, 4, 16, 16), mask)
    assert model(torch.rand(1, 3, 16, 16), mask).shape == (1, 3, 16, 16)
