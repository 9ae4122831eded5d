"""Image-quality metrics, batched in torch and run on the tensors' device.

All take NCHW RGB tensors in [0, 1] (a single CHW image works too) and return one
value per image (``reduction="none"``) or their mean (``reduction="mean"``, the
default). Each agrees with scikit-image where scikit-image has the metric:

=================  =====================================================
``ssim``           ``skimage.metrics.structural_similarity`` (defaults:
                   7x7 uniform window, sample covariance), channel mean
``psnr``           ``skimage.metrics.peak_signal_noise_ratio``
``delta_e76``      ``skimage.color.deltaE_cie76`` on ``rgb2lab``
``delta_e2000``    ``skimage.color.deltaE_ciede2000`` on ``rgb2lab``
=================  =====================================================

``compare`` computes several of these for the same pairs in one pass. Plus
``colorfulness`` (Hasler and Suesstrunk, 2003), an ``LPIPS`` wrapper over the
``lpips`` package, and ``frechet_distance`` between two sets of features.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch

from . import registry
from . import validate as V
from .ciede2000 import delta_e2000_lab, hue_weight
from .images import check_batch, rgb_to_lab

__all__ = ["ssim", "psnr", "delta_e", "delta_e76", "delta_e2000", "delta_e2000_lab", "compare", "FULL_REFERENCE",
           "hue_weight", "colorfulness", "LPIPS", "LPIPSUnavailable", "frechet_distance", "feature_statistics",
           "high_frequency_energy"]


def _pair(x: torch.Tensor, y: torch.Tensor, channels: int | None = 3):
    x = check_batch(x, "first image batch", channels)
    y = check_batch(y, "second image batch", channels)
    if x.shape != y.shape:
        raise ValueError(f"The two image batches differ in shape: {tuple(x.shape)} vs "
                         f"{tuple(y.shape)}. Compare images of the same size and count.")
    return x, y


def _scale(x: torch.Tensor, data_range: float | None = None) -> None:
    """Refuses images on another scale than the metric's: 0..255 values read as [0, 1] give a
    PSNR of -9 dB or a Delta E in the thousands, silently."""
    V.number("data_range", 1.0 if data_range is None else data_range, 0.0, low_open=True,
             hint="It is the span of the pixel values: 1 for [0, 1] images, 255 for 0..255, 2 for [-1, 1].")
    limit = 2.0 * (1.0 if data_range is None else float(data_range))
    if x.numel():
        # One pass, no temporary, on one thread: a parallel region here would leave OpenMP's
        # workers spinning while the chunks run on the metric's own threads (measured: 10.0x
        # -> 10.7x against scikit-image with them kept idle).
        # (amax and amin take a faster path than aminmax or max on the CPU: 3x, measured.)
        with _intra_op_threads(1 if x.device.type == "cpu" else torch.get_num_threads()):
            hi = max(float(x.detach().amax()), -float(x.detach().amin()))
    else:
        hi = 0.0
    if hi > limit and data_range is None:
        raise ValueError(f"The images have values up to {hi:.4g}; these metrics take RGB in [0, 1]: "
                         f"divide 0..255 images by 255 (and convert [-1, 1] ones with images.to_unit).")
    if hi > limit:
        raise ValueError(f"The images have values up to {hi:.4g}, far beyond data_range={data_range:g} (the "
                         f"span of the pixel values): pass data_range=255 for 0..255 images, or divide "
                         f"them by 255.")


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_image.mean()
    if reduction == "none":
        return per_image
    V.choice("reduction", reduction, ("mean", "none"))
    raise AssertionError(f"reduction {reduction!r} has no rule")


# --------------------------------------------------------------------------- chunks
# Images are processed in chunks so the ~20 temporaries of a formula stay in the CPU
# cache: on a machine with little memory bandwidth that, not arithmetic, sets the speed.
# (Pixels per chunk; the sizes are measured with benchmarks/metrics.py.)
_SSIM_PIXELS = 1 << 15


def _chunks(x: torch.Tensor, pixels: int):
    per_image = x.shape[-1] * x.shape[-2]
    step = max(1, pixels // per_image) if x.device.type == "cpu" else len(x)
    return [slice(i, i + step) for i in range(0, len(x), step)]


@contextmanager
def _intra_op_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(calls: list, device: torch.device) -> list:
    """``call()`` for every call, in order (the calls: chunks of a metric's work).

    On a CPU with several torch threads the calls are shared out between this thread and
    that many minus one workers, each running its ops single-threaded: the default (every
    op split across all threads) synchronises the threads once per op, hundreds of times
    per chunk, and on a busy machine each of those waits for a thread that is not running
    (measured: 3 to 10x slower than one thread under load). torch releases the GIL inside
    its ops. This thread works too rather than waiting: it is already running, while a
    sleeping worker can take milliseconds to start on a machine that was idle (measured:
    46 -> 38 ms for SSIM + CIEDE2000 of 1,000 photos right after a single-threaded loop).
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or len(calls) < 2:
        return [call() for call in calls]
    results = [None] * len(calls)
    pending = iter(enumerate(calls))
    lock = threading.Lock()
    stop = []  # set when this thread fails (or is interrupted): the workers stop taking calls

    def drain() -> None:
        while True:
            with lock:
                item = None if stop else next(pending, None)
            if item is None:
                return
            results[item[0]] = item[1]()

    with _intra_op_threads(1):
        workers = [_pool(threads - 1).submit(drain) for _ in range(threads - 1)]
        try:
            drain()
        except BaseException:
            stop.append(True)
            raise
        finally:
            wait(workers)  # never return (or raise) while a worker still runs a call
        for worker in workers:
            worker.result()  # a worker's error
    return results


def _per_chunk(fn, x: torch.Tensor, pixels: int) -> list:
    """``fn(chunk)`` for every chunk of the batch ``x``, in order."""
    return _run([partial(fn, part) for part in _chunks(x, pixels)], x.device)


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """A worker pool kept for the process: new threads each call cost more than the work
    (each starts with empty memory arenas, so every temporary page-faults; measured 1.5x
    slower). Keyed by process id too, so a forked child (a DataLoader worker) gets its own."""
    key = (os.getpid(), threads)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="lessons-metrics")
        return _POOLS[key]


# --------------------------------------------------------------------------- SSIM
def _window_sum(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums of k consecutive entries along ``dim`` ("valid" positions), by doubling: sums of
    windows 1, 2, 4, ... each from the one before, then k's binary digits added up (for k = 7:
    4 + 2 + 1, four passes over memory instead of six)."""
    n_out = x.shape[dim] - k + 1
    sums, width = {1: x}, 1
    while width * 2 <= k:
        s = sums[width]
        sums[width * 2] = s.narrow(dim, 0, s.shape[dim] - width) + s.narrow(dim, width, s.shape[dim] - width)
        width *= 2
    parts, offset = [], 0
    for width in sorted(sums, reverse=True):
        if k - offset >= width:
            parts.append(sums[width].narrow(dim, offset, n_out))
            offset += width
    if len(parts) == 1:
        return parts[0]
    out = parts[0] + parts[1]
    for part in parts[2:]:
        out.add_(part)
    return out


def _box_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sum over every k x k window that fits inside the image ("valid" positions).

    Separable, each pass a running sum of shifted views over the whole batch: for the
    small images of the course this beats a banded matrix product (whose 32 x 26 shapes
    waste most of a GEMM) and a convolution, and it adds the numbers directly (no
    cumulative-sum cancellation).
    """
    return _window_sum(_window_sum(x, k, -1), k, -2)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7,
         reduction: str = "mean") -> torch.Tensor:
    """Structural similarity, as scikit-image computes it at its defaults.

    A uniform ``win_size`` window, sample covariance (N / (N - 1)), K1 = 0.01,
    K2 = 0.03, the mean over the window positions that fit inside the image and
    over channels. The five local moments come from one separable box filter
    over a stacked tensor.
    """
    x, y = _pair(x, y, channels=None)
    _scale(x, data_range), _scale(y, data_range)
    _check_window(x, win_size)
    x, y = x.float(), y.float()
    return _reduce(torch.cat(_per_chunk(partial(_ssim_chunk, x, y, data_range, win_size), x, _SSIM_PIXELS)),
                   reduction)


def _check_window(x: torch.Tensor, win_size: int) -> None:
    if V.count("win_size", win_size, 3, hint="It must be odd, e.g. 7 (the default).") % 2 == 0:
        raise ValueError(f"win_size must be odd (the window has a centre pixel), got {win_size}; e.g. 7.")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"Images of {x.shape[-2]}x{x.shape[-1]} are smaller than the "
                         f"{win_size}x{win_size} SSIM window; use win_size <= the image side.")


def _ssim_chunk(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int, part: slice) -> torch.Tensor:
    """Per-image SSIM of the images ``part`` of x and y."""
    a, b = x[part], y[part]
    c = a.shape[1]
    n = win_size ** 2
    # The formula only needs the local mean of x^2 + y^2, not of each: four maps to filter.
    # It is written with window sums S = n * mean: numerator and denominator both carry
    # a factor n^4, which cancels, and the division by n is saved on the largest tensor.
    sx, sy, sxx_syy, sxy = _box_sum(torch.cat([a, b, torch.addcmul(a * a, b, b), a * b], dim=1),
                                    win_size).split(c, dim=1)
    cov_norm = n / (n - 1)  # sample covariance
    c1 = (0.01 * data_range * n) ** 2
    c2 = (0.03 * data_range * n) ** 2
    sxsy = sx * sy
    sx2_sy2 = torch.addcmul(sx * sx, sy, sy)
    num = sxsy.mul(2).add_(c1).mul_(torch.add(sxsy, sxy, alpha=-n).mul_(-2 * cov_norm).add_(c2))
    den = sx2_sy2.add(c1).mul_(torch.add(sx2_sy2, sxx_syy, alpha=-n).mul_(-cov_norm).add_(c2))
    return num.div_(den).mean(dim=(1, 2, 3))


# --------------------------------------------------------------------------- PSNR
def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0,
         reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (infinite for identical images)."""
    x, y = _pair(x, y, channels=None)
    _scale(x, data_range), _scale(y, data_range)
    return _reduce(_psnr(x, y, data_range), reduction)


def _psnr(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3))
    return (10 * torch.log10(data_range ** 2 / mse)).float()


# --------------------------------------------------------------------------- Delta E
# Larger chunks than SSIM's: the formula is ~100 operations long, and Python's dispatch cost
# per operation (serialised between the threads) weighs less on bigger tensors (measured).
_DELTA_E_PIXELS = 1 << 17


def _delta_e_chunk(x: torch.Tensor, y: torch.Tensor, which: tuple[str, ...], part: slice) -> dict[str, torch.Tensor]:
    """Per-image Delta E 76 and/or 2000 of the images ``part``, from one CIELAB conversion."""
    # One conversion of both images: half the operations to dispatch.
    lab1, lab2 = rgb_to_lab(torch.cat([x[part], y[part]])).chunk(2)
    out = {}
    if "delta_e76" in which:
        out["delta_e76"] = (lab1 - lab2).square().sum(dim=1).sqrt().mean(dim=(1, 2))
    if "delta_e2000" in which:
        out["delta_e2000"] = delta_e2000_lab(lab1, lab2).mean(dim=(1, 2))
    return out


def delta_e(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> dict[str, torch.Tensor]:
    """Both colour differences, ``{"delta_e76": ..., "delta_e2000": ...}``, converting each
    image to CIELAB once (``compare`` with both)."""
    return compare(x, y, ("delta_e76", "delta_e2000"), reduction)


def delta_e76(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CIE76 colour difference: Euclidean distance in CIELAB, averaged over pixels."""
    return compare(x, y, ("delta_e76",), reduction)["delta_e76"]


def delta_e2000(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CIEDE2000 colour difference, averaged over pixels (kL = kC = kH = 1)."""
    return compare(x, y, ("delta_e2000",), reduction)["delta_e2000"]


FULL_REFERENCE = ("ssim", "psnr", "delta_e76", "delta_e2000")


def compare(x: torch.Tensor, y: torch.Tensor, which: tuple[str, ...] | list[str] = FULL_REFERENCE,
            reduction: str = "mean") -> dict[str, torch.Tensor]:
    """Several full-reference metrics of the same RGB pairs, ``{name: value}``, in one pass.

    ``which`` picks from ``FULL_REFERENCE`` (SSIM, PSNR, Delta E 76, CIEDE2000). The values
    equal those of the separate functions at their defaults, but the images are checked
    once, converted to CIELAB once for both Delta E, and the SSIM and Delta E chunks share
    one round of the worker threads (what an evaluation that reports several should call).
    """
    which = tuple(which)
    unknown = [k for k in which if k not in FULL_REFERENCE]
    if unknown or not which:
        raise ValueError(f"which must name some of {FULL_REFERENCE}, got {which!r}.")
    x, y = _pair(x, y)
    _scale(x), _scale(y)
    if "ssim" in which:
        _check_window(x, 7)
    de = tuple(k for k in ("delta_e76", "delta_e2000") if k in which)
    calls = [partial(_delta_e_chunk, x, y, de, part) for part in (_chunks(x, _DELTA_E_PIXELS) if de else [])]
    n_de = len(calls)  # the long Delta E chunks first, the short SSIM ones fill in behind them
    if "ssim" in which:
        xf, yf = x.float(), y.float()
        calls += [partial(_ssim_chunk, xf, yf, 1.0, 7, part) for part in _chunks(x, _SSIM_PIXELS)]
    done = _run(calls, x.device)
    out = {k: torch.cat([d[k] for d in done[:n_de]]) for k in de}
    if "ssim" in which:
        out["ssim"] = torch.cat(done[n_de:])
    if "psnr" in which:
        out["psnr"] = _psnr(x, y, 1.0)
    return {k: _reduce(out[k], reduction) for k in which}


# --------------------------------------------------------------------------- colourfulness
def colorfulness(x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Hasler and Suesstrunk's colourfulness M on the 0-255 scale (0 for gray images).

    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), with
    rg = R - G and yb = (R + G) / 2 - B.
    """
    _scale(check_batch(x))
    x = check_batch(x) * 255.0
    r, g, b = x.unbind(1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    sigma = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mu = torch.sqrt(rg.mean(dim=1).pow(2) + yb.mean(dim=1).pow(2))
    return _reduce(sigma + 0.3 * mu, reduction)


# --------------------------------------------------------------------------- LPIPS
class LPIPSUnavailable(registry.DownloadUnavailable):
    """The LPIPS backbone weights are not on this machine and cannot be downloaded."""


def _torch_hub_has(filename_prefix: str) -> bool:
    from pathlib import Path

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return folder.is_dir() and any(p.name.startswith(filename_prefix) for p in folder.iterdir())


class LPIPS:
    """Learned perceptual distance (Zhang et al., 2018) through the ``lpips`` package.

    The package ships its small linear heads but takes the AlexNet/VGG backbone from
    torchvision, which downloads it. Offline, without the weights cached, this says so
    (:class:`LPIPSUnavailable`) instead of failing deep inside a download.
    ``pretrained_backbone=False`` builds it with a random backbone (for tests only:
    the numbers then mean nothing).
    """

    _backbone_files = {"alex": "alexnet-", "vgg": "vgg16-", "squeeze": "squeezenet1_1-"}

    def __init__(self, net: str = "alex", device: torch.device | str | None = None,
                 pretrained_backbone: bool = True):
        V.choice("LPIPS backbone (net)", net, self._backbone_files)
        if pretrained_backbone and registry.offline() and not _torch_hub_has(self._backbone_files[net]):
            raise LPIPSUnavailable(registry.unavailable_message(
                f"the LPIPS {net} backbone weights", reason="they are not in the torch hub cache "
                f"({torch.hub.get_dir()}) and this session is offline"))
        import lpips

        try:
            self.model = lpips.LPIPS(net=net, pnet_rand=not pretrained_backbone, verbose=False)
        except Exception as err:  # URLError, HTTPError, a half-downloaded file
            raise LPIPSUnavailable(registry.unavailable_message(
                f"the LPIPS {net} backbone weights", reason=str(err))) from None
        self.model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        x, y = _pair(x, y)
        device = next(self.model.parameters()).device
        d = self.model(x.to(device), y.to(device), normalize=True)  # normalize: [0,1] -> [-1,1]
        return _reduce(d.flatten(), reduction)


# --------------------------------------------------------------------------- Frechet distance
def _checked_features(features) -> torch.Tensor:
    f = torch.as_tensor(features).double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"Features must be (N, D) with N >= 2, got {tuple(f.shape)}.")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("The features hold NaN or infinite values (images with NaNs, or a diverged "
                         "model?); the Frechet distance needs finite features.")
    return f


def feature_statistics(features: torch.Tensor | np.ndarray):
    """Mean vector and (unbiased) covariance matrix of (N, D) features, in float64."""
    f = _checked_features(features)
    mu = f.mean(dim=0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _covariance_factor(features) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, C) with C^T C the unbiased covariance; C has min(N, D) rows (the centred features
    scaled by 1/sqrt(N - 1), or their QR factor R when N > D: R^T R = the same product)."""
    f = _checked_features(features)
    mu = f.mean(dim=0)
    c = (f - mu) / (f.shape[0] - 1) ** 0.5
    if c.shape[0] > c.shape[1]:
        c = torch.linalg.qr(c, mode="r").R
    return mu, c


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). With S = C^T C, the eigenvalues of
    S_a S_b are the squared singular values of C_a C_b^T, so Tr((S_a S_b)^(1/2)) is that small
    matrix's nuclear norm: exact, real, and no D x D eigendecomposition (2048 x 2048 for
    Inception features, several seconds each on a CPU; here the cost grows with the image count).
    """
    mu_a, c_a = _covariance_factor(features_a)
    mu_b, c_b = _covariance_factor(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"Feature sizes differ: {mu_a.shape[0]} vs {mu_b.shape[0]}.")
    tr_sqrt = torch.linalg.svdvals(c_a @ c_b.T).sum()
    value = (mu_a - mu_b).pow(2).sum() + c_a.pow(2).sum() + c_b.pow(2).sum() - 2 * tr_sqrt
    return float(value.clamp_min(0))


def high_frequency_energy(images: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Each image's fine detail: the mean squared response to a 3x3 Laplacian (per channel),
    one number per image (N,). Blurry pictures score low; compare with the real images'.

    ``where``: (N, 1, H, W), 1 on the region to measure (an inpainting hole, say), 0 elsewhere; a
    pixel counts when its whole 3x3 neighbourhood lies in the region, so the seam between the region
    and its surroundings is not counted as detail. None counts every pixel. The one-pixel border of
    the image has no full neighbourhood and is left out either way."""
    if images.dim() != 4:
        raise ValueError(f"high_frequency_energy needs (N, C, H, W) images, got {tuple(images.shape)}.")
    k = images.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    c = images.shape[1]
    energy = torch.nn.functional.conv2d(images, k.expand(c, 1, 3, 3), groups=c).pow(2)
    if where is None:
        return energy.mean(dim=(1, 2, 3))
    if where.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(f"where must be (N, 1, H, W) = {(images.shape[0], 1, *images.shape[2:])} for these images, "
                         f"got {tuple(where.shape)}.")
    # The region shrunk by one pixel (a 3x3 minimum), on the Laplacian's (H - 2, W - 2) grid.
    w = -torch.nn.functional.max_pool2d(-where.to(energy), 3, stride=1)[:, 0]
    return (energy.mean(dim=1) * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2)).clamp_min(1e-12)
