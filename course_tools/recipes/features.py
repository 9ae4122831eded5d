"""Course weights ``style/features``: the feature network notebook 6 measures style and content in.

    python -m course_tools.train_weights --only style/features

Style transfer needs features that have *learned* something about pictures: ImageNet's VGG19
in the full profile; in the fast profile (offline, a few MB) a network the course trains
itself. This recipe trains VGG19's layout at a quarter of the width (16 channels in the
first block), up to ``relu5_1``, with batch normalisation, as a classifier of the 4,194
training photos of the CIFAR-10 subset (random crops and flips), then folds the batch
normalisation into the convolutions, so the shipped trunk is VGG19's plain conv / ReLU /
max-pool stack. Its held-out accuracy on the 466 test photos is recorded beside chance (10 %).
"""
from __future__ import annotations

import math
import time

import torch
from torch.nn import functional as F

from course_tools.train_weights import Trained
from lessons_lib import data
from lessons_lib.models.vgg import COURSE_LAST_LAYER, COURSE_WIDTH, VGGClassifier
from lessons_lib.runtime import seed_everything

EPOCHS = 3
BATCH = 64
LR = 0.05


def labelled_photos(split_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the fixed 90/10 split of the CIFAR-10 subset (as data.colour_images)."""
    root = data.data_root() / data.CIFAR_SUBSET / "train"
    train, test = data.split(data.ImageFolderDataset(root, size=32), val_fraction=0.1, seed=0)
    subset = train if split_name == "train" else test
    images = torch.stack([subset[i] for i in range(len(subset))])
    labels = torch.tensor([subset.dataset.label(i) for i in subset.indices])
    return images, labels


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32 px crops of the photo padded by 4 (reflection), half of them mirrored."""
    n = len(x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy, dx = torch.randint(0, 9, (2, n), generator=gen)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    preds = torch.cat([net(images[i:i + 256]).argmax(1) for i in range(0, len(images), 256)])
    return float((preds == labels).float().mean())


def train_classifier(make_net, epochs: int = EPOCHS, lr: float = LR, tag: str = "features"
                     ) -> tuple[torch.nn.Module, list[dict], dict]:
    """(classifier, history, held-out metrics): ``make_net(classes)`` trained on the subset's
    training photos (SGD, OneCycle, crops and flips, label smoothing), scored on its held-out
    photos beside the most common class. The style features and the editing judge train here."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    seed_everything(0)
    (x, y), (xt, yt) = labelled_photos("train"), labelled_photos("test")
    net = make_net(int(y.max()) + 1)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * math.ceil(len(x) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(0)
    history = []
    for epoch in range(epochs):
        net.train()
        start, total = time.perf_counter(), 0.0
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(net(_augment(x[idx], gen)), y[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = accuracy(net, xt, yt)
        history.append({"epoch": epoch + 1, "loss": total / len(x), "held_out_accuracy": acc})
        print(f"{tag}: epoch {epoch + 1}/{epochs} loss {total / len(x):.3f} held-out accuracy {acc:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    chance = float(torch.bincount(yt).max()) / len(yt)
    metrics = {"what": "CIFAR-10 classification accuracy on the held-out photos of the subset",
               "model": accuracy(net, xt, yt), "baseline": chance, "better": "higher",
               "baseline_name": "the most common class"}
    return net, history, metrics


def features(epochs: int = EPOCHS) -> Trained:
    net, history, metrics = train_classifier(lambda classes: VGGClassifier(classes=classes), epochs)
    config = {"width": COURSE_WIDTH, "last": COURSE_LAST_LAYER, "classes": net.head.out_features,
              "normalisation": "ImageNet mean/std inside", "batch_norm": "folded into the convolutions"}
    return Trained(net.feature_state(), config, epochs, metrics,
                   extra={"held_out": {"photos": len(labelled_photos("test")[1]), "accuracy": metrics["model"]},
                          "training": {"batch": BATCH, "optimizer": f"SGD nesterov, OneCycle max lr {LR}, wd 5e-4",
                                       "augmentation": "reflect-pad 4 + random 32 px crop, horizontal flip",
                                       "label_smoothing": 0.1, "history": history}})


RECIPES = {"style/features": features}
