"""pix2pix networks (Isola et al., 2017): a U-Net generator and a PatchGAN discriminator.

The layouts follow the authors' PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix):
4x4 convolutions with stride 2, LeakyReLU(0.2) going down, ReLU going up, skip
connections that concatenate each encoder level onto the decoder level of the same
size, dropout 0.5 in the innermost decoder levels, Tanh output in [-1, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from .inputs import check_side

__all__ = ["UNetGenerator", "PatchDiscriminator", "norm_layer", "init_gan_weights"]


def norm_layer(kind: str, channels: int) -> nn.Module:
    """"batch" (pix2pix), "instance" (CycleGAN) or "none"."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {kind!r}.")


def init_gan_weights(net: nn.Module, std: float = 0.02, seed: int | None = None) -> nn.Module:
    """The papers' initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std, generator=gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std, generator=gen)
            nn.init.zeros_(m.bias)
    return net


class UNetGenerator(nn.Module):
    """U-Net: ``num_downs`` stride-2 levels down to 1x1 at ``2**num_downs`` pixels, and back.

    (N, in_channels, S, S) in [-1, 1] -> (N, out_channels, S, S) in [-1, 1], S divisible
    by ``2**num_downs`` (8 levels for 256 px in the paper; 5 for 32 px).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8,
                 ngf: int = 64, norm: str = "batch", dropout: bool = True, residual: bool = False):
        super().__init__()
        # residual: the output is a picture ``base`` (set with ``set_base``, e.g. the median training
        # photo) plus what the network adds, and the last layer starts at zero, so the untrained
        # generator *is* that picture and training only moves it where the losses ask.
        self.residual = residual
        self.register_buffer("base", torch.zeros(1, out_channels, 1, 1) if residual else torch.zeros(0))
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {num_downs}.")
        self.num_downs, self.in_channels = num_downs, in_channels
        bias = norm != "batch"  # a BatchNorm right after the conv makes its bias redundant
        ch = [min(ngf * 2 ** i, ngf * 8) for i in range(num_downs)]
        self.down = nn.ModuleList()
        for i in range(num_downs):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_channels if i == 0 else ch[i - 1], ch[i], 4, 2, 1, bias=bias))
            if 0 < i < num_downs - 1:
                layers.append(norm_layer(norm, ch[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in reversed(range(num_downs)):
            cin = ch[i] if i == num_downs - 1 else 2 * ch[i]   # innermost has no skip yet
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(cin, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(cin, ch[i - 1], 4, 2, 1, bias=bias),
                          norm_layer(norm, ch[i - 1])]
                # As in the paper: dropout in the inner levels (not the innermost, not the outer 4).
                if dropout and 4 <= i < num_downs - 1:
                    layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))
        init_gan_weights(self)
        if residual:
            nn.init.zeros_(self.up[-1][1].weight)
            nn.init.zeros_(self.up[-1][1].bias)

    def set_base(self, image: torch.Tensor) -> "UNetGenerator":
        """The picture (out_channels, H, W) in [-1, 1] a residual generator starts from."""
        if not self.residual:
            raise ValueError("set_base is for residual generators (UNetGenerator(..., residual=True)).")
        self.base = image.detach().reshape(1, *image.shape[-3:]).to(self.base)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** self.num_downs
        check_side(x, 1, "The U-Net generator", self.in_channels)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"The U-Net with {self.num_downs} levels needs (N, C, H, W) with H and W "
                             f"divisible by {factor}, got {tuple(x.shape)}. Resize the images or "
                             f"build it with fewer levels (num_downs).")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the innermost output is the decoder's input, not a skip
        for j, layer in enumerate(self.up):
            if j > 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = layer(x)
        if self.residual:  # Tanh's output is the correction; the sum stays in [-1, 1]
            return (self.base + x).clamp(-1, 1)
        return x


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, each judging one patch (70x70 for n_layers=3).

    ``forward(x)`` or, for pix2pix's conditional discriminator, ``forward(input, output)``,
    which judges the pair concatenated along the channels (``in_channels`` = both).
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.in_channels = in_channels
        self.net = nn.Sequential(*layers)
        init_gan_weights(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            x = torch.cat([x, y], dim=1)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"The discriminator expects (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}.")
        return self.net(x)
