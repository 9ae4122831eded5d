"""A small time-conditioned UNet for diffusion: predicts the noise in x_t given t.

The timestep enters through a sinusoidal embedding (as in the Transformer and in
DDPM) passed through an MLP and added inside every residual block. An optional
condition image (``cond_channels`` > 0: a grayscale image for colorization, a masked
image plus its mask for inpainting) is concatenated to the input channels.
Works for any image side divisible by 2 ** (len(channel_mults) - 1): 32x32 and up.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["timestep_embedding", "TimeUNet", "ResBlock"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) features [cos(t w_i), sin(t w_i)], w_i = max_period^(-i / (dim/2)).

    The same as diffusers' ``get_timestep_embedding(t, dim, flip_sin_to_cos=True,
    downscale_freq_shift=0)`` (what ``UNet2DModel`` uses by default).
    """
    if dim % 2:
        raise ValueError(f"The embedding size must be even, got {dim}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0 and channels // g >= 2 or g == 1:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the time embedding added in between, plus a skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels of a (small) feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.out(a.transpose(1, 2).reshape(n, c, h, w))


class TimeUNet(nn.Module):
    """Noise-prediction UNet: ``forward(x_t, t, cond=None) -> eps`` (same shape as x_t).

    in_channels / out_channels: image channels (3 for RGB). cond_channels: channels of
    an optional condition image of the same size, concatenated to x_t (0 = none).
    width, channel_mults: widths per resolution level (each level after the
    first halves the side). num_res_blocks per level; attention at the lowest level
    when ``attention`` is true.
    """

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, cond_channels: int = 0,
                 width: int = 32, channel_mults: tuple[int, ...] = (1, 2, 2),
                 num_res_blocks: int = 1, attention: bool = True, dropout: float = 0.0):
        super().__init__()
        if width < 1 or not channel_mults:
            raise ValueError("width must be positive and channel_mults non-empty.")
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.cond_channels = cond_channels
        self.levels = len(channel_mults)
        emb_dim = width * 4
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(in_channels + cond_channels, width, 3, padding=1)

        widths = [width * m for m in channel_mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, ch = [width], width
        for i, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, w, emb_dim, dropout))
                ch = w
                skips.append(ch)
            self.down.append(blocks)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid1 = ResBlock(ch, ch, emb_dim, dropout)
        self.mid_attn = SelfAttention(ch) if attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, emb_dim, dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), w, emb_dim, dropout))
                ch = w
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(ch, ch, 3, padding=1)))
        self.out_norm = nn.GroupNorm(_groups(ch), ch)
        self.out_conv = nn.Conv2d(ch, self.out_channels, 3, padding=1)
        # Start as a zero predictor: training begins from a stable point.
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def _check(self, x: torch.Tensor, cond: torch.Tensor | None) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Expected x_t of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}.")
        factor = 2 ** (self.levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"Image sides must be divisible by {factor} for this UNet "
                             f"({self.levels} levels), got {x.shape[-2]}x{x.shape[-1]}; resize or pad.")
        if self.cond_channels:
            if cond is None:
                raise ValueError(f"This UNet is conditional (cond_channels={self.cond_channels}): pass cond.")
            if cond.shape[0] != x.shape[0] or cond.shape[1] != self.cond_channels or cond.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"cond must be (N, {self.cond_channels}, H, W) matching x_t {tuple(x.shape)}, "
                                 f"got {tuple(cond.shape)}.")
        elif cond is not None:
            raise ValueError("This UNet is unconditional (cond_channels=0) but a cond was given.")

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, cond)
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.width))
        h = self.stem(torch.cat([x, cond], dim=1) if self.cond_channels else x)
        hs = [h]
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out_conv(F.silu(self.out_norm(h)))
