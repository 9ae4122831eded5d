"""Batched torch metrics vs a per-image scikit-image loop, side by side in one run.

    python benchmarks/metrics.py [--n 1000] [--repeats 3]

Times SSIM + CIEDE2000 (what the colorization notebooks report for every model) on
N 32x32 images: real CIFAR-10 photos when LESSONS_DATA_DIR has the subset, else
offline crops. Both sides get float arrays already in memory; the skimage side does
what a per-image evaluation loop does (rgb2lab for each image, then the metric), in
float64 as scikit-image computes; the torch side works in float32 and agrees to 1e-4
(the tests check it). Prints the medians and the speed-up; on a GPU also the CUDA figure.
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


def photos(n: int) -> torch.Tensor:
    # colour_images itself falls back to offline crops when LESSONS_DATA_DIR is unset.
    return data.stack(data.colour_images("train", size=32, profile="fast", limit=n))


def skimage_loop(a: np.ndarray, b: np.ndarray):
    s, d = [], []
    for x, y in zip(a, b):
        s.append(structural_similarity(x, y, channel_axis=-1, data_range=1.0))
        d.append(color.deltaE_ciede2000(color.rgb2lab(x), color.rgb2lab(y)).mean())
    return float(np.mean(s)), float(np.mean(d))


def torch_batched(x: torch.Tensor, y: torch.Tensor):
    return float(metrics.ssim(x, y)), float(metrics.delta_e2000(x, y))


def timed(fn, *args):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    target = photos(args.n)
    gen = torch.Generator().manual_seed(0)
    pred = (target + 0.08 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    a = pred.permute(0, 2, 3, 1).double().numpy()
    b = target.permute(0, 2, 3, 1).double().numpy()
    print(f"{len(target)} images of 32x32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")

    sk_times, th_times = [], []
    torch_batched(pred[:8], target[:8])  # warm-up (allocator, first-call overheads)
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        t, sk = timed(skimage_loop, a, b)
        sk_times.append(t)
        t, th = timed(torch_batched, pred, target)
        th_times.append(t)
    sk_t, th_t = statistics.median(sk_times), statistics.median(th_times)
    print(f"skimage loop : {sk_t * 1e3:8.1f} ms   ssim={sk[0]:.5f}  dE2000={sk[1]:.4f}")
    print(f"torch batched: {th_t * 1e3:8.1f} ms   ssim={th[0]:.5f}  dE2000={th[1]:.4f}  (cpu)")
    print(f"speed-up (cpu): {sk_t / th_t:.1f}x")
    if torch.cuda.is_available():
        xg, yg = pred.cuda(), target.cuda()
        torch_batched(xg, yg)
        gpu = statistics.median(timed(torch_batched, xg, yg)[0] for _ in range(args.repeats))
        print(f"torch batched: {gpu * 1e3:8.1f} ms  ({torch.cuda.get_device_name()})")
        print(f"speed-up (gpu): {sk_t / gpu:.1f}x")


if __name__ == "__main__":
    main()
