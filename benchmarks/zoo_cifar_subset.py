"""The zoo on real photos: train each model on the CIFAR-10 subset within a CPU-time budget,
score it on a held-out validation split beside the gray baseline.

    PYTHONPATH=. python benchmarks/zoo_cifar_subset.py --models unet --minutes 10
    PYTHONPATH=. python benchmarks/zoo_cifar_subset.py --models resnet,gan --minutes 3

Reads ``$LESSONS_DATA_DIR/cifar10-subset`` (default ../shared/data beside the checkout;
skips cleanly when absent). The budget is process CPU time (fair on a shared machine):
whole epochs run while the next one is expected to fit. Training goes through
``zoo.train``, so each extra epoch resumes from the previous checkpoint. Prints and
writes (``--out``) the results table: SSIM, PSNR, Delta E 76/2000, colourfulness.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lessons_lib import data, evaluation, zoo  # noqa: E402
from lessons_lib.models.colorizers import MODELS  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="unet", help="comma-separated, or 'all'")
    p.add_argument("--minutes", type=float, default=10.0, help="CPU-time budget per model")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--latent_dim", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=25, help="diffusion sampling steps")
    p.add_argument("--val_fraction", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=8000)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(os.environ.get("LESSONS_DATA_DIR") or REPO.parent / "shared" / "data") / "cifar10-subset" / "train"
    if not root.is_dir():
        print(f"CIFAR-10 subset not found at {root}: nothing to measure.")
        return None
    names = list(MODELS) if args.models == "all" else args.models.split(",")
    photos = data.stack(data.ImageFolderDataset(root, size=32))
    perm = torch.randperm(len(photos), generator=torch.Generator().manual_seed(0))
    n_val = round(len(photos) * args.val_fraction)
    train_photos, val_photos = photos[perm[n_val:]], photos[perm[:n_val]]
    print(f"{len(train_photos)} training / {len(val_photos)} validation photos; budget {args.minutes} CPU min "
          f"per model, width {args.width}, {args.threads} thread(s)", flush=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="zoo_cifar_"))
    results, notes = {}, {}
    for name in names:
        cpu0, wall0, epoch, last = time.process_time(), time.time(), 0, 0.0
        while True:
            start = time.process_time()
            model, hist = zoo.train(name, train_photos, out, epochs=epoch + 1, batch_size=args.batch_size,
                                    lr=args.learning_rate, latent_dim=args.latent_dim, width=args.width,
                                    seed=args.seed, device="cpu", progress=False)
            epoch, last = epoch + 1, time.process_time() - start
            used = time.process_time() - cpu0
            if used + last > args.minutes * 60:
                break
        cpu, wall = time.process_time() - cpu0, time.time() - wall0
        scores = evaluation.evaluate(model, val_photos, num_inference_steps=args.steps, seed=0, lpips=None)
        results[name] = scores["model"]
        results["gray baseline"] = scores["gray"]
        notes[name] = f"{epoch} epochs, {cpu / 60:.1f} CPU min ({wall / 60:.1f} wall min)"
        print(f"{name}: {notes[name]}; dE76 {scores['model']['delta_e76']:.2f} vs gray "
              f"{scores['gray']['delta_e76']:.2f}", flush=True)
        target = scores["target_colorfulness"]
    table = evaluation.results_table({k: results[k] for k in [*names, "gray baseline"]}, target)
    print(table)
    for name, note in notes.items():
        print(f"- {name}: {note}")
    evaluation.save_results(results, out, f"cifar_subset_{'_'.join(names) if len(names) < 3 else 'zoo'}",
                            target, overwrite=True)
    print("written under", out)
    return results


if __name__ == "__main__":
    main()
