"""A small CNN that names the CIFAR-10 class of a photo: the course's judge of what an edit changed."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class PhotoClassifier(nn.Module):
    """Three VGG-style blocks (32 -> 16 -> 8 -> 4 px), global average pooling, one linear layer.

    Input (N, 3, H, W) in [0, 1] at any size: it is resized to 32 px (area averaging when
    larger), the size it was trained at. Output: ``classes`` logits.
    """

    def __init__(self, classes: int = 10, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(_block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, classes)

    @staticmethod
    def to_judged_size(x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) resized to the 32 px the classifier was trained at (area averaging when larger)."""
        if x.shape[-2:] == (32, 32):
            return x
        if x.shape[-1] >= 32 and x.shape[-2] >= 32:
            return F.interpolate(x, size=(32, 32), mode="area")
        return F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.to_judged_size(x) * 2 - 1).mean(dim=(2, 3)))
