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

plus ``colorfulness`` (Hasler and Suesstrunk, 2003), an ``LPIPS`` wrapper over the
``lpips`` package, and ``frechet_distance`` between two sets of features.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from . import registry
from . import validate as V
from .images import check_batch, rgb_to_lab

__all__ = ["ssim", "psnr", "delta_e", "delta_e76", "delta_e2000", "delta_e2000_lab", "colorfulness",
           "LPIPS", "LPIPSUnavailable", "frechet_distance", "feature_statistics"]


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
        with _intra_op_threads(1 if x.device.type == "cpu" else torch.get_num_threads()):
            lo, hi = torch.aminmax(x.detach())
        hi = max(float(hi), -float(lo))
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
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")


# --------------------------------------------------------------------------- chunks
# Images are processed in chunks so the ~20 temporaries of a formula stay in the CPU
# cache: on a machine with little memory bandwidth that, not arithmetic, sets the speed.
_CHUNK_PIXELS = 1 << 15


def _chunks(x: torch.Tensor, pixels: int = _CHUNK_PIXELS):
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


def _per_chunk(fn, x: torch.Tensor, pixels: int = _CHUNK_PIXELS) -> list:
    """``fn(chunk)`` for every chunk of the batch ``x``, in order.

    On a CPU with several torch threads the chunks go to that many worker threads, each
    running its ops single-threaded: the default (every op split across all threads)
    synchronises the threads once per op, hundreds of times per chunk, and on a busy
    machine each of those waits for a thread that is not running (measured: 3 to 10x
    slower than one thread under load). torch releases the GIL inside its ops.
    """
    parts = _chunks(x, pixels)
    threads = torch.get_num_threads()
    if x.device.type != "cpu" or threads < 2 or len(parts) < 2:
        return [fn(p) for p in parts]
    with _intra_op_threads(1):
        return list(_pool(threads).map(fn, parts))


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
    4 + 2 + 1, four additions instead of six)."""
    n_out = x.shape[dim] - k + 1
    sums, width = {1: x}, 1
    while width * 2 <= k:
        s = sums[width]
        sums[width * 2] = s.narrow(dim, 0, s.shape[dim] - width) + s.narrow(dim, width, s.shape[dim] - width)
        width *= 2
    out, offset = None, 0
    for width in sorted(sums, reverse=True):
        if k - offset >= width:
            part = sums[width].narrow(dim, offset, n_out)
            out = part.clone() if out is None else out.add_(part)
            offset += width
    return out


def _box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over every k x k window that fits inside the image ("valid" positions).

    Separable, each pass a running sum of shifted views over the whole batch: for the
    small images of the course this beats a banded matrix product (whose 32 x 26 shapes
    waste most of a GEMM) and a convolution, and it adds the numbers directly (no
    cumulative-sum cancellation).
    """
    return _window_sum(_window_sum(x, k, -1), k, -2).div_(k * k)


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
    if win_size % 2 == 0 or win_size < 3:
        raise ValueError(f"win_size must be odd and at least 3, got {win_size}.")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"Images of {x.shape[-2]}x{x.shape[-1]} are smaller than the "
                         f"{win_size}x{win_size} SSIM window; use win_size <= the image side.")
    x, y = x.float(), y.float()
    c = x.shape[1]
    cov_norm = win_size ** 2 / (win_size ** 2 - 1)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    def chunk(part: slice) -> torch.Tensor:
        a, b = x[part], y[part]
        # The formula only needs the local mean of x^2 + y^2, not of each: four maps to filter.
        moments = _box_mean(torch.cat([a, b, torch.addcmul(a * a, b, b), a * b], dim=1), win_size)
        ux, uy, uxx_uyy, uxy = moments.split(c, dim=1)
        uxuy = ux * uy
        ux2_uy2 = torch.addcmul(ux * ux, uy, uy)
        num = (2 * uxuy + c1) * (2 * cov_norm * (uxy - uxuy) + c2)
        den = (ux2_uy2 + c1) * (cov_norm * (uxx_uyy - ux2_uy2) + c2)
        return (num / den).mean(dim=(1, 2, 3))

    return _reduce(torch.cat(_per_chunk(chunk, x)), reduction)


# --------------------------------------------------------------------------- PSNR
def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0,
         reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (infinite for identical images)."""
    x, y = _pair(x, y, channels=None)
    _scale(x, data_range), _scale(y, data_range)
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3))
    return _reduce((10 * torch.log10(data_range ** 2 / mse)).float(), reduction)


# --------------------------------------------------------------------------- Delta E
def _delta_e_chunks(x: torch.Tensor, y: torch.Tensor, which: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Per-image Delta E 76 and/or 2000, from one CIELAB conversion of each chunk."""
    x, y = _pair(x, y)
    _scale(x), _scale(y)

    def chunk(part: slice) -> dict[str, torch.Tensor]:
        # One conversion of both images: half the operations to dispatch.
        lab1, lab2 = rgb_to_lab(torch.cat([x[part], y[part]])).chunk(2)
        out = {}
        if "delta_e76" in which:
            out["delta_e76"] = (lab1 - lab2).square().sum(dim=1).sqrt().mean(dim=(1, 2))
        if "delta_e2000" in which:
            out["delta_e2000"] = delta_e2000_lab(lab1, lab2).mean(dim=(1, 2))
        return out

    # Four times the base chunk: the formula is ~100 operations long, and Python's dispatch cost
    # per operation (serialised between the threads) weighs less on bigger tensors (measured).
    parts = _per_chunk(chunk, x, 4 * _CHUNK_PIXELS)
    return {k: torch.cat([d[k] for d in parts]) for k in which}


def delta_e(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> dict[str, torch.Tensor]:
    """Both colour differences, ``{"delta_e76": ..., "delta_e2000": ...}``, converting each
    image to CIELAB once (what an evaluation that reports both should call)."""
    return {k: _reduce(v, reduction) for k, v in _delta_e_chunks(x, y, ("delta_e76", "delta_e2000")).items()}


def delta_e76(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CIE76 colour difference: Euclidean distance in CIELAB, averaged over pixels."""
    return _reduce(_delta_e_chunks(x, y, ("delta_e76",))["delta_e76"], reduction)


def delta_e2000(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CIEDE2000 colour difference, averaged over pixels (kL = kC = kH = 1)."""
    return _reduce(_delta_e_chunks(x, y, ("delta_e2000",))["delta_e2000"], reduction)


def _pow7(c: torch.Tensor) -> torch.Tensor:
    c3 = c * c * c
    return c3.square_().mul_(c)


# 0/1 float masks straight from a comparison: boolean tensors and torch.where are
# several times slower than arithmetic on this path.
def _gt(x: torch.Tensor, v) -> torch.Tensor:
    return torch.gt(x, v, out=torch.empty_like(x))


def _lt(x: torch.Tensor, v) -> torch.Tensor:
    return torch.lt(x, v, out=torch.empty_like(x))


_TWO_PI = 2 * math.pi
_POW25_7 = 25.0 ** 7


_COS30, _SIN30 = math.cos(math.radians(30)), math.sin(math.radians(30))
_COS6, _SIN6 = math.cos(math.radians(6)), math.sin(math.radians(6))
_COS63, _SIN63 = math.cos(math.radians(63)), math.sin(math.radians(63))


def delta_e2000_lab(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 between two (N, 3, H, W) CIELAB tensors -> (N, H, W).

    Follows Sharma, Wu and Dalal (2005) term by term, with the same hue conventions as
    ``skimage.color.deltaE_ciede2000``, but with the hue angles replaced by vectors
    where the formula allows it (the speed is in the transcendental functions):

    * the hue difference 2 sqrt(C1 C2) sin(dh / 2) is sign(dh) sqrt(C1 C2) |u1 - u2|, with
      u = (a', b) / C' the unit hue direction: no angle needed;
    * the mean hue, the bisector of the two hue directions (the formula's "add 180
      degrees when they lie more than 180 apart" is what a bisector does), is the unit
      vector (cos h, sin h) of u1 + u2, and the four cosines of T follow from it by the
      double- and triple-angle identities; only the rotation term's Gaussian in degrees
      needs the angle itself (one atan2).

    Written with in-place operations on fresh temporaries: each step is one pass over memory.
    """
    L1, a1, b1 = lab1.unbind(1)  # views: never modified in place
    L2, a2, b2 = lab2.unbind(1)
    # a* is stretched for near-neutral colours: a' = a (1 + G), G from the mean chroma.
    c7 = _pow7(torch.addcmul(a1 * a1, b1, b1).sqrt_().add_(torch.addcmul(a2 * a2, b2, b2).sqrt_()).mul_(0.5))
    stretch = c7.div_(c7 + _POW25_7).sqrt_().mul_(-0.5).add_(1.5)  # 1 + G
    a1p, a2p = a1 * stretch, a2 * stretch
    C1 = torch.addcmul(a1p * a1p, b1, b1).sqrt_()
    C2 = torch.addcmul(a2p * a2p, b2, b2).sqrt_()

    t = (L1 + L2).mul_(0.5).sub_(50).square_()
    l_term = (L2 - L1).div_(t.mul(0.015).div_(t.add_(20).sqrt_()).add_(1))  # / S_L
    c_mean = (C1 + C2).mul_(0.5)
    c_term = (C2 - C1).div_(c_mean.mul(0.045).add_(1))  # / S_C

    # Unit hue directions u = z / C (0 for an achromatic colour).
    inv1, inv2 = C1.clamp_min(1e-30).reciprocal_(), C2.clamp_min(1e-30).reciprocal_()
    u1x, u1y, u2x, u2y = a1p * inv1, b1 * inv1, a2p * inv2, b2 * inv2
    # Hue difference 2 sqrt(C1 C2) sin(dh / 2) = sign(dh) sqrt(C1 C2) |u1 - u2| (a chord of
    # the unit circle; as a difference of the unit vectors it is exactly 0 for equal hues).
    # The sign of dh in [-pi, pi] is the sign of the cross product; dh = pi counts as positive.
    cc = C1 * C2
    cross = torch.addcmul(u1x * u2y, u1y, u2x, value=-1.0)
    sign = torch.ge(cross, 0, out=cross).mul_(2).sub_(1)
    dx, dy = u1x - u2x, u1y - u2y
    dh_term = torch.addcmul(dx.mul_(dx), dy, dy).mul_(cc).sqrt_().mul_(sign)

    # Mean hue direction u1 + u2 (for an achromatic pair the other colour's hue, as the
    # formula's h1 + h2 gives).
    wx, wy = u1x.add_(u2x), u1y.add_(u2y)
    _antipodal_bisector(wx, wy, cc, a1p, b1, inv1)
    norm = torch.addcmul(wx * wx, wy, wy).sqrt_()
    zero = torch.eq(norm, 0, out=torch.empty_like(norm))  # both achromatic: hue 0
    norm.add_(zero)
    c = wx.add_(zero).div_(norm)
    s = wy.div_(norm)
    c2, s2 = (c * c).mul_(2).sub_(1), (c * s).mul_(2)
    c3, s3 = torch.addcmul(c2 * c, s2, s, value=-1.0), torch.addcmul(s2 * c, c2, s)
    c4, s4 = torch.addcmul(c2 * c2, s2, s2, value=-1.0), (c2 * s2).mul_(2)
    T = torch.addcmul(c * _COS30, s, torch.full_like(s, _SIN30)).mul_(-0.17).add_(1)
    T.add_(c2, alpha=0.24)
    T.add_(c3.mul_(_COS6).sub_(s3.mul_(_SIN6)), alpha=0.32)
    T.add_(c4.mul_(_COS63).add_(s4.mul_(_SIN63)), alpha=-0.20)
    h_term = dh_term.div_(T.mul_(c_mean).mul_(0.015).add_(1))  # / S_H

    c7 = _pow7(c_mean)
    rc = c7.div_(c7 + _POW25_7).sqrt_().mul_(2)
    # exp(-z^2), z = (h' in degrees - 275) / 25, h' in [0, 360); the clamp keeps it out of
    # denormals (slow on CPUs, and ~0 anyway); exp2 is several times faster than exp.
    h_deg = torch.atan2(s, c).mul_(180 / math.pi)
    h_deg.add_(_lt(h_deg, 0).mul_(360))
    z2 = h_deg.sub_(275).mul_(1 / 25).square_().clamp_max_(80.0)
    dtheta = z2.mul_(-math.log2(math.e)).exp2_().mul_(math.radians(30))
    r_term = dtheta.mul_(2).sin_().mul_(rc).mul_(c_term).mul_(h_term)  # R_T (sign below)
    de2 = l_term.square_().add_(c_term.square_()).add_(h_term.square_()).sub_(r_term)
    return de2.clamp_min_(0).sqrt_()


def _antipodal_bisector(wx, wy, cc, a1p, b1, inv1) -> None:
    """Where two chromatic hues lie exactly 180 degrees apart u1 + u2 vanishes; the formula
    then takes the plain mean of the angles in [0, 360), which is the lower hue turned by
    +90 degrees. Written into (wx, wy) in place; almost never needed, so checked first."""
    tiny = torch.lt(torch.addcmul(wx * wx, wy, wy), 1e-12, out=torch.empty_like(wx)).mul_(_gt(cc, 0))
    if not bool(tiny.any()):
        return
    ux, uy = a1p * inv1, b1 * inv1
    # u1 is the lower hue when its angle lies in [0, 180): b > 0, or b = 0 with a > 0.
    low = _gt(b1, 0).add_(torch.eq(b1, 0, out=torch.empty_like(b1)).mul_(_gt(a1p, 0)))
    turn = low.mul_(2).sub_(1)  # +1: turn u1; -1: turn u2 = -u1
    wx.add_(tiny * (-uy) * turn - tiny * wx)
    wy.add_(tiny * ux * turn - tiny * wy)


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
        if net not in self._backbone_files:
            raise ValueError(f"net must be one of {sorted(self._backbone_files)}, got {net!r}.")
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
def feature_statistics(features: torch.Tensor | np.ndarray):
    """Mean vector and (unbiased) covariance matrix of (N, D) features, in float64."""
    f = torch.as_tensor(features).double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"Features must be (N, D) with N >= 2, got {tuple(f.shape)}.")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("The features hold NaN or infinite values (images with NaNs, or a diverged "
                         "model?); the Frechet distance needs finite features.")
    mu = f.mean(dim=0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The trace of the matrix
    square root is computed from the eigenvalues of sqrt(S_a) S_b sqrt(S_a), which
    is symmetric, so it stays real and stable where scipy's sqrtm can go complex.
    """
    mu_a, s_a = feature_statistics(features_a)
    mu_b, s_b = feature_statistics(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"Feature sizes differ: {mu_a.shape[0]} vs {mu_b.shape[0]}.")
    evals_a, evecs_a = torch.linalg.eigh(s_a)
    sqrt_a = evecs_a @ torch.diag(evals_a.clamp_min(0).sqrt()) @ evecs_a.T
    inner = sqrt_a @ s_b @ sqrt_a
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * tr_sqrt
    return float(value.clamp_min(0))
