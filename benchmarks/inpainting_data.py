"""The inpainting data path per batch: per-image masks (before) vs batched, and vs a training step.

    python benchmarks/inpainting_data.py [--repeats 15] [--threads 2] [--batch-size 64] [--size 32]

What the inpainting tasks do for every training batch before the model runs: take a
batch from the seeded loader ``train_inpainters`` builds, draw the batch's random
"mixed" training masks, and make the masked [-1, 1] input. "per-image" draws the masks
as lessons_lib did before (a Python loop per image and per stroke, kept below as the
reference the tests compare the distribution with); "batched" is ``masks.make_masks``
now (one vectorised call for the batch, on the generator's device). Beside them, one
full-size training step of the inpainting UNet (forward, masked MSE, backward, Adam) at
the full profile's batch size, resolution and width (64, 32 px, 32: notebook 3), on the
same, already drawn batch; and the stroke masks alone, the kind that had the per-image
loops. All run interleaved ``--repeats`` times and the medians are printed with the
ratios; the data path must stay under a tenth of the step (it says whether it does).
On a GPU it also times the batched masks and the step there.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from lessons_lib import data, inpainting, masks
from lessons_lib.images import to_signed

FULL_BATCH, FULL_SIZE, FULL_WIDTH = 64, 32, 32  # notebook 3's BATCH, SIZE and WIDTH in the full profile


# --------------------------------------------------------------------------- the reference sampler
# lessons_lib.masks before the masks were batched (strokes and half images per image in
# Python, "mixed" one sub-batch per kind): tests/test_masks.py checks that the batched
# sampler keeps its distribution.
def _free_form_per_image(n, h, w, g, strokes=(1, 4), max_vertices=6):
    lo, hi = strokes
    max_width = max(2.0, min(h, w) / 8)
    max_len = min(h, w) / 3
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    mask = torch.ones(n, 1, h, w)
    for i in range(n):
        hole = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(int(torch.randint(lo, hi + 1, (1,), generator=g))):
            y, x = float(torch.rand(1, generator=g)) * h, float(torch.rand(1, generator=g)) * w
            radius = (1 + float(torch.rand(1, generator=g)) * (max_width - 1)) / 2
            for _ in range(int(torch.randint(2, max_vertices + 1, (1,), generator=g))):
                angle = float(torch.rand(1, generator=g)) * 2 * math.pi
                length = (0.3 + 0.7 * float(torch.rand(1, generator=g))) * max_len
                y2 = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
                x2 = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
                dy, dx = y2 - y, x2 - x
                seg = max(dy * dy + dx * dx, 1e-8)
                s = (((yy - y) * dy + (xx - x) * dx) / seg).clamp(0, 1)
                dist2 = (yy - (y + s * dy)) ** 2 + (xx - (x + s * dx)) ** 2
                hole |= dist2 <= radius * radius
                y, x = y2, x2
        mask[i, 0] = (~hole).float()
    return mask


def _half_per_image(n, h, w, g):
    mask = torch.ones(n, 1, h, w)
    for i, s in enumerate(int(k) for k in torch.randint(0, 4, (n,), generator=g)):
        if s == 0:
            mask[i, :, :, : w // 2] = 0
        elif s == 1:
            mask[i, :, :, w // 2:] = 0
        elif s == 2:
            mask[i, :, : h // 2] = 0
        else:
            mask[i, :, h // 2:] = 0
    return mask


def per_image_masks(kind: str, n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """The masks of ``kind`` as the per-image sampler drew them (CPU generator)."""
    if kind == "center":
        return masks.center_box(n, size)
    if kind == "boxes":  # already batched then; unchanged
        return masks.random_boxes(n, size, seed=g)
    if kind == "strokes":
        return _free_form_per_image(n, size, size, g)
    if kind == "half":
        return _half_per_image(n, size, size, g)
    kinds = torch.randint(0, len(masks.MASK_KINDS), (n,), generator=g)
    out = torch.empty(n, 1, size, size)
    for j, k in enumerate(masks.MASK_KINDS):
        idx = (kinds == j).nonzero().flatten()
        if len(idx):
            out[idx] = per_image_masks(k, len(idx), size, g)
    return out


# --------------------------------------------------------------------------- the timed pieces
def data_path(batches, sample, g, size):
    """One batch from the loader, its masks and the masked model input (what _MaskRNG._batch does)."""
    images = next(batches)
    x = to_signed(images)
    mask = sample("mixed", len(x), size, g).to(x)
    return x, mask, masks.apply_mask(x, mask)


def training_step(task, x, mask, masked):
    """One update of the inpainting UNet on an already drawn batch (InpaintTask without its data)."""
    pred = task.models["model"](masked, mask)
    return task.optimize(inpainting.masked_mse(pred, x, mask), "model")


def timed(fn, *args):
    """(wall seconds, process CPU seconds, result)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    sync()
    return time.perf_counter() - t0, time.process_time() - c0, out


def endless(loader):
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved runs (their median is reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--batch-size", type=int, default=FULL_BATCH)
    parser.add_argument("--size", type=int, default=FULL_SIZE)
    parser.add_argument("--width", type=int, default=FULL_WIDTH)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    root = data.data_root()
    real = root is not None and (root / data.CIFAR_SUBSET / "train").is_dir()
    photos = data.stack(data.colour_images("train", size=args.size, profile="fast", limit=16 * args.batch_size))
    # In memory, as the full profile's CIFAR-10 is: the loader indexes and collates per image.
    loader = data.make_loader(data.TensorImages(photos), batch_size=args.batch_size, drop_last=True)
    old_batches, new_batches = endless(loader), endless(loader)
    old_g, new_g = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    task = inpainting.make_task("unet", image_size=args.size, width=args.width)
    params = sum(p.numel() for p in task.models["model"].parameters())
    source = "real CIFAR-10 photos" if real else "offline crops of scikit-image photos"
    print(f"{source}, batch {args.batch_size}, {args.size}x{args.size}, InpaintUNet width {args.width} "
          f"({params:,} parameters), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{args.repeats} runs")

    x, mask, masked = data_path(new_batches, masks.make_masks, new_g, args.size)
    training_step(task, x, mask, masked)  # warm-up (allocator, first-call overheads)
    old, new, step, strokes_old, strokes_new = [], [], [], [], []
    n = args.batch_size
    for _ in range(args.repeats):  # interleaved, so all of them see the same machine load
        old.append(timed(data_path, old_batches, per_image_masks, old_g, args.size)[:2])
        w, c, batch = timed(data_path, new_batches, masks.make_masks, new_g, args.size)
        new.append((w, c))
        step.append(timed(training_step, task, *batch)[:2])
        strokes_old.append(timed(per_image_masks, "strokes", n, args.size, old_g)[:2])
        strokes_new.append(timed(masks.make_masks, "strokes", n, args.size, new_g)[:2])
    med = statistics.median
    rows = {"data path, per-image masks": old, "data path, batched masks": new, "UNet training step": step,
            f"{n} strokes masks, per-image": strokes_old, f"{n} strokes masks, batched": strokes_new}
    for name, runs in rows.items():
        print(f"{name:27s}: wall {med(r[0] for r in runs) * 1e3:8.1f} ms, cpu {med(r[1] for r in runs) * 1e3:8.1f} ms")
    old_w, new_w, step_w, so_w, sn_w = (med(r[0] for r in runs) for runs in rows.values())
    # "mixed" draws every kind for the whole batch (no device sync), so on a CPU it does four
    # kinds' work where the per-image sampler did one; the strokes alone show the vectorisation.
    print(f"batched vs per-image strokes masks (wall): {so_w / sn_w:.1f}x faster")
    print(f"batched vs per-image data path (wall): {old_w / new_w:.1f}x faster")
    print(f"data path / training step (wall): per-image {old_w / step_w:.3f}, batched {new_w / step_w:.3f} "
          f"({'under' if new_w < step_w / 10 else 'NOT under'} a tenth)")

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        task.to(dev)
        g = torch.Generator(dev).manual_seed(0)
        x = to_signed(photos[:args.batch_size]).to(dev)

        def gpu_masks():
            return masks.make_masks("mixed", args.batch_size, args.size, g)

        gpu_masks()
        mask = gpu_masks()
        training_step(task, x, mask, masks.apply_mask(x, mask))
        m = med(timed(gpu_masks)[0] for _ in range(args.repeats))
        s = med(timed(training_step, task, x, mask, masks.apply_mask(x, mask))[0] for _ in range(args.repeats))
        print(f"{torch.cuda.get_device_name()}: batched masks {m * 1e3:.2f} ms, UNet training step {s * 1e3:.2f} ms, "
              f"ratio {m / s:.3f}")


if __name__ == "__main__":
    main()
