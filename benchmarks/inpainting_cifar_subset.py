"""Masked-region PSNR of the four inpainting methods beside the naive fill, on real CIFAR-10.

Trains each method briefly (same data, same seed, same step budget except the DDPM,
which needs more) on the train split of the CIFAR-10 subset, then inpaints the
held-out split with centre-box masks (a 16x16 hole in 32x32 images) and prints a
Markdown table. Reproducible: fixed seeds, fixed splits.

    PYTHONPATH=. python benchmarks/inpainting_cifar_subset.py            # ~4 CPU minutes on 2 idle cores
    PYTHONPATH=. python benchmarks/inpainting_cifar_subset.py --steps 40 --ddpm-steps 80 --eval 64   # a quick look

Needs the subset at $LESSONS_DATA_DIR/cifar10-subset (default: ../shared/data beside the checkout).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LESSONS_DATA_DIR", str(REPO.parent / "shared" / "data"))

from lessons_lib import data, inpainting, masks  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=120, help="training steps for unet, unet-gan, transformer")
    p.add_argument("--ddpm-steps", type=int, default=240, help="training steps for the DDPM")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=int, default=16, help="channel width of every network")
    p.add_argument("--eval", type=int, default=96, help="held-out images to inpaint")
    p.add_argument("--repaint-steps", type=int, default=25)
    p.add_argument("--jump-length", type=int, default=5)
    p.add_argument("--jump-n-sample", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    subset = Path(os.environ["LESSONS_DATA_DIR"]) / "cifar10-subset" / "train"
    if not subset.is_dir():
        sys.exit(f"The CIFAR-10 subset is not at {subset}; set LESSONS_DATA_DIR to the folder that holds it.")
    train = data.colour_images("train", profile="fast", seed=args.seed)
    # A random (seeded) subset of the held-out split: the split itself is ordered by class.
    test = data.stack(data.colour_images("test", profile="fast", seed=args.seed, limit=args.eval))
    print(f"train {len(train)} images, held-out {len(test)} images (CIFAR-10 subset, 90/10 split)")

    results, seconds = {}, {}
    for method in inpainting.METHODS:
        steps = args.ddpm_steps if method == "ddpm" else args.steps
        # One long "epoch" capped at `steps` batches (the loader reshuffles past its end).
        epochs = max(1, -(-steps * args.batch_size // len(train)))
        per_epoch = -(-steps // epochs)
        t0 = time.perf_counter()
        results.update(inpainting.train_inpainters(
            train, [method], epochs=epochs, steps_per_epoch=per_epoch, batch_size=args.batch_size,
            width=args.width, seed=args.seed, progress=False,
            task_kwargs={"transformer": {"depth": 4}}))
        seconds[method] = time.perf_counter() - t0
        print(f"{method}: {epochs * per_epoch} steps in {seconds[method]:.0f} s, last loss "
              f"{results[method][2][-1]:.4f}")

    mask = masks.center_box(len(test), 32)
    t0 = time.perf_counter()
    outputs = inpainting.run_inpainters(results, test, mask, num_inference_steps=args.repaint_steps,
                                        jump_length=args.jump_length, jump_n_sample=args.jump_n_sample,
                                        seed=args.seed, progress=False)
    print(f"inference (RePaint {args.repaint_steps} steps, jump {args.jump_length} x {args.jump_n_sample}) "
          f"{time.perf_counter() - t0:.0f} s")
    rows = inpainting.compare_methods(outputs, test, mask)
    print()
    print(f"Centre-box masks (16x16 hole), {len(test)} held-out CIFAR-10 images, width {args.width}, "
          f"{args.steps} training steps ({args.ddpm_steps} for the DDPM), batch {args.batch_size}:")
    print(inpainting.markdown_table(rows))


if __name__ == "__main__":
    main()
