"""Batched torch metrics vs a per-image scikit-image loop, side by side in one run.

    python benchmarks/metrics.py [--n 1000] [--repeats 9] [--threads 2]

Times SSIM + CIEDE2000 (what the colorization notebooks report for every model) on
N 32x32 images: real CIFAR-10 photos when LESSONS_DATA_DIR has the subset, else
offline crops (it says which). Both sides get float arrays already in memory; the
skimage side does what a per-image evaluation loop does (rgb2lab for each image, then
the metric), in float64 as scikit-image computes; the torch side is one call of
``metrics.compare`` (what the course's evaluation calls: one range check, one CIELAB
conversion, SSIM and CIEDE2000 chunks in one round of worker threads), in float32 with
``--threads`` CPU threads (2: the course's CI machine), and agrees to 1e-4 (the tests
check it). The two run interleaved, ``--repeats`` times; it prints the medians of wall
time and of process CPU time and both speed-ups (on a shared machine other jobs inflate
wall time, CPU time shows the work done); on a GPU also the CUDA figure.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from skimage import color
from skimage.metrics import structural_similarity

from lessons_lib import data, metrics


def photos(n: int) -> tuple[torch.Tensor, str]:
    # colour_images itself falls back to offline crops when LESSONS_DATA_DIR is unset.
    root = data.data_root()
    real = root is not None and (root / data.CIFAR_SUBSET / "train").is_dir()
    images = data.stack(data.colour_images("train", size=32, profile="fast", limit=n))
    return images, ("real CIFAR-10 photos" if real else "offline crops of scikit-image photos")


def skimage_loop(a: np.ndarray, b: np.ndarray):
    s, d = [], []
    for x, y in zip(a, b, strict=True):
        s.append(structural_similarity(x, y, channel_axis=-1, data_range=1.0))
        d.append(color.deltaE_ciede2000(color.rgb2lab(x), color.rgb2lab(y)).mean())
    return float(np.mean(s)), float(np.mean(d))


def torch_batched(x: torch.Tensor, y: torch.Tensor):
    scores = metrics.compare(x, y, ("ssim", "delta_e2000"))
    return float(scores["ssim"]), float(scores["delta_e2000"])


def timed(fn, *args):
    """(wall seconds, process CPU seconds, result)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9, help="interleaved runs (their median is reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    target, source = photos(args.n)
    gen = torch.Generator().manual_seed(0)
    pred = (target + 0.08 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    a = pred.permute(0, 2, 3, 1).double().numpy()
    b = target.permute(0, 2, 3, 1).double().numpy()
    print(f"{len(target)} {source}, 32x32, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{args.repeats} runs")

    sk_wall, sk_cpu, th_wall, th_cpu = [], [], [], []
    torch_batched(pred[:8], target[:8])  # warm-up (allocator, first-call overheads)
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        w, c, sk = timed(skimage_loop, a, b)
        sk_wall.append(w)
        sk_cpu.append(c)
        w, c, th = timed(torch_batched, pred, target)
        th_wall.append(w)
        th_cpu.append(c)
    med = statistics.median
    print(f"skimage loop : wall {med(sk_wall) * 1e3:8.1f} ms, cpu {med(sk_cpu) * 1e3:8.1f} ms   "
          f"ssim={sk[0]:.5f}  dE2000={sk[1]:.4f}")
    print(f"torch batched: wall {med(th_wall) * 1e3:8.1f} ms, cpu {med(th_cpu) * 1e3:8.1f} ms   "
          f"ssim={th[0]:.5f}  dE2000={th[1]:.4f}")
    ratios = sorted(s / t for s, t in zip(sk_wall, th_wall, strict=True))
    print(f"speed-up per run (wall): {', '.join(f'{r:.1f}x' for r in ratios)}")
    print(f"speed-up (cpu, median of runs): wall {med(ratios):.1f}x, "
          f"cpu time {med(sk_cpu) / med(th_cpu):.1f}x")
    if torch.cuda.is_available():
        xg, yg = pred.cuda(), target.cuda()
        torch_batched(xg, yg)
        gpu = med(timed(torch_batched, xg, yg)[0] for _ in range(args.repeats))
        print(f"torch batched: {gpu * 1e3:8.1f} ms  ({torch.cuda.get_device_name()})")
        print(f"speed-up (gpu): {med(sk_wall) / gpu:.1f}x")


if __name__ == "__main__":
    main()
