"""CycleGAN's generator (Zhu et al., 2017): a ResNet image-to-image network.

Layout as in the authors' code: 7x7 reflection-padded stem, two stride-2 downsamplings,
``n_blocks`` residual blocks (9 at 256 px, 6 at 128 px), two transposed-convolution
upsamplings, a 7x7 output convolution and Tanh. Instance normalisation throughout.

``colour_path=True`` adds a 1x1 convolution from the input straight to the output
(``out = clamp(net(x) + colour(x), -1, 1)``). Instance normalisation right after the
first layer removes each image's mean and spread from every feature, so the paper's
network cannot see absolute colours: fine for horses -> zebras (a change of texture),
fatal for a change of colour such as the course's hue domains (measured: mean abs error
0.34-0.37 to the exact hue map, against 0.094 for leaving the photo unchanged; with the
colour path, 0.054).
The discriminator is pix2pix's :class:`~lessons_lib.models.pix2pix.PatchDiscriminator`
on a single image.
"""
from __future__ import annotations

from torch import nn

from .inputs import check_side
from .pix2pix import PatchDiscriminator, init_gan_weights, norm_layer

__all__ = ["ResnetGenerator", "PatchDiscriminator"]


class ResnetBlock(nn.Module):
    def __init__(self, ch: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), norm_layer(norm, ch), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), norm_layer(norm, ch))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1]; H, W divisible by 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", colour_path: bool = False):
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7),
                                   norm_layer(norm, ngf), nn.ReLU()]
        for i in range(2):
            m = 2 ** i
            layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), norm_layer(norm, ngf * m * 2), nn.ReLU()]
        layers += [ResnetBlock(ngf * 4, norm) for _ in range(n_blocks)]
        for i in range(2):
            m = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1),
                       norm_layer(norm, ngf * m // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_gan_weights(self)
        self.colour = nn.Conv2d(in_channels, out_channels, 1) if colour_path else None
        if self.colour is not None:
            # Started at zero, so training starts from the paper's network. Measured on the hue
            # domains: started at the identity the generators stay there; started at random, the
            # sign of the start decides whether they find the rotation or an inverted map.
            nn.init.zeros_(self.colour.weight)
            nn.init.zeros_(self.colour.bias)

    def forward(self, x):
        check_side(x, 4, "The ResNet generator", self.in_channels)
        if self.colour is None:
            return self.net(x)
        return (self.net(x) + self.colour(x)).clamp(-1, 1)
