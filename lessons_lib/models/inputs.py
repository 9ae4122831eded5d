"""The one check of a network's input, shared by every model in this package: a clear
message naming what the network takes, before a convolution's shape error."""
from __future__ import annotations

import torch

__all__ = ["check_side"]


def check_side(x: torch.Tensor, multiple: int, name: str, channels: int | None = None) -> None:
    """A network's input: an (N, channels, H, W) tensor with sides divisible by ``multiple``,
    or one message naming what the network takes (not a convolution's shape error)."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name} takes a torch tensor (N, C, H, W), got {type(x).__name__}.")
    if channels is not None and (x.dim() != 4 or x.shape[1] != channels):
        gray = (" It colourises grayscale images: convert colour ones with lessons_lib.images.rgb_to_gray "
                "(and to [-1, 1] with to_signed) first." if channels == 1 and x.dim() == 4 and x.shape[1] == 3
                else " Add the batch dimension with x.unsqueeze(0)." if x.dim() == 3 and x.shape[0] == channels
                else "")
        raise ValueError(f"{name} takes (N, {channels}, H, W) batches, got shape {tuple(x.shape)}.{gray}")
    if x.dim() != 4 or x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ValueError(f"{name} needs an (N, C, H, W) batch with H and W divisible by {multiple}, "
                         f"got {tuple(x.shape)}. Resize or crop the images (32, 64, 128, 256 all work).")
