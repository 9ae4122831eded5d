"""Where the course runs: profile, device, dtype, seeds, Colab, environment report.

Two profiles share one code path:

* ``full``: real datasets and pretrained checkpoints, full training length.
  The default when a CUDA GPU is present.
* ``fast``: small data, short runs and tiny offline pipelines. The default on a
  CPU, and what CI uses.

``LESSONS_PROFILE=fast|full`` always wins over the automatic choice.
"""
from __future__ import annotations

import functools
import os
import platform
import random
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

PROFILES = ("fast", "full")
PROFILE_ENV = "LESSONS_PROFILE"
CACHE_ENV = "LESSONS_CACHE_DIR"
# The repository students install from in Colab (first cell of every notebook).
REPO_URL = "https://github.com/image-transformation-course/lessons"


class DeviceUnavailable(RuntimeError):
    """A device was asked for that this machine does not have."""


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The best device available: cuda, then mps, then cpu.

    ``prefer`` ("cuda", "cuda:1", "mps", "cpu", a GPU index such as "0", or a
    ``torch.device``) forces one; a name torch does not know, or a device that is not
    there, is an error that says what is.
    """
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    name = str(prefer).strip().lower()
    if name.isdigit():
        name = f"cuda:{name}"
    kind, _, index = name.partition(":")
    if kind not in _DEVICE_KINDS or (index and not index.isdigit()):
        raise DeviceUnavailable(f"Unknown device {str(prefer)!r}. Use cpu, cuda (cuda:1 or a GPU index "
                                "such as 0 for another GPU) or mps, or leave the device out to pick the "
                                "best one here.")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"Device '{name}' was asked for, but no CUDA GPU is available. "
                "Use --device cpu (or leave the device out to pick one automatically); "
                "in Colab choose Runtime > Change runtime type > T4 GPU."
            )
        n = torch.cuda.device_count()
        if index and int(index) >= n:
            raise DeviceUnavailable(f"Device '{name}' was asked for, but this machine has {n} CUDA GPU"
                                    f"{'s' if n != 1 else ''} (cuda:0{f' to cuda:{n - 1}' if n > 1 else ''}).")
    if kind == "mps" and not _mps_available():
        raise DeviceUnavailable("Device 'mps' was asked for, but Apple MPS is not available here. "
                                "Use cpu, or leave the device out to pick one automatically.")
    return torch.device(name)


# The devices the course runs on; torch knows more names (xla, meta...) that no lesson can use.
_DEVICE_KINDS = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def free_memory(device: torch.device | str) -> int | None:
    """Bytes free for new tensors on ``device`` (the GPU's free memory; the machine's available
    memory for the CPU), or None where it cannot be told. Checks use it to refuse a model that
    cannot fit before the work starts: on Linux an oversized CPU allocation is often not an
    error but the kernel killing the process without a word."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    return None


def get_dtype(device: torch.device | str | None = None, pipeline: bool = True) -> torch.dtype:
    """fp16 for diffusers pipelines on CUDA (fits a 15 GB T4), fp32 everywhere else.

    Training code passes ``pipeline=False`` and gets fp32: mixed precision there is
    handled by autocast, not by storing the weights in half precision.
    """
    device = torch.device(device) if device is not None else get_device()
    if pipeline and device.type == "cuda":
        return torch.float16
    return torch.float32


def get_profile() -> str:
    """``fast`` or ``full``: the environment variable wins, else full with CUDA."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(
                f"{PROFILE_ENV}={value!r} is not a profile. Use {PROFILE_ENV}=fast "
                f"(small, offline, CPU friendly) or {PROFILE_ENV}=full (real data and checkpoints)."
            )
        return value
    return "full" if torch.cuda.is_available() else "fast"


REHEARSAL_ENV = "LESSONS_REHEARSAL"
_UNSET: Any = object()


def rehearsal() -> bool:
    """True in the offline rehearsal of the full profile (``LESSONS_PROFILE=full`` with
    ``LESSONS_REHEARSAL=1``; the tests run every notebook so, on a CPU): the full profile's
    network sizes, resolutions, batch sizes, data pipeline, downloads (from local mirrors)
    and checkpoints, with only the counts that :func:`pick` marks ``rehearse=`` made small."""
    return os.environ.get(REHEARSAL_ENV, "").strip().lower() in ("1", "true", "yes") and get_profile() == "full"


def pick(fast: Any, full: Any, profile: str | None = None, rehearse: Any = _UNSET) -> Any:
    """The value for the current profile: ``EPOCHS = pick(fast=1, full=10)``.

    ``rehearse=`` marks a count (epochs, steps, images scored): the small value the offline
    rehearsal of the full profile uses instead of ``full`` (see :func:`rehearsal`); every
    other value of the full profile is rehearsed as it is.
    """
    if (profile or get_profile()) == "fast":
        return fast
    return rehearse if rehearse is not _UNSET and rehearsal() else full


def cache_dir() -> Path:
    """Where downloads and built pipelines are kept (``LESSONS_CACHE_DIR`` overrides)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lessons_lib"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


OUTPUT_ENV = "LESSONS_OUTPUT_DIR"


def output_dir(*parts: str) -> Path:
    """A folder for a notebook's checkpoints and results: ``outputs/<parts>`` under the
    working folder, or under ``LESSONS_OUTPUT_DIR`` when set (the tests point it at a
    fresh temporary folder, so a test run never resumes a stale checkpoint)."""
    path = Path(os.environ.get(OUTPUT_ENV) or "outputs").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_everything(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seeds Python, NumPy and torch (all devices); returns a CPU generator with that seed.

    ``deterministic=True`` also asks cuDNN for deterministic kernels (slower).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "huggingface_hub",
             "accelerate", "numpy", "scikit-image", "lpips", "matplotlib")


TRAINED_HERE, COURSE_WEIGHTS = "trained here", "course weights"


@dataclass(frozen=True)
class Shown:
    """Whose trained weights a lesson's pictures, claims and results rows are about.

    The full profile trains every model for real, so a lesson shows what it trained (beside
    the course weights, for comparison). The fast profile trains a few steps, only to show the
    loop run, so it shows the course weights and says so. Notebooks ask ``ENV.shown`` instead
    of branching on the profile: ``ENV.shown.choose(here=model, course=loader)``,
    ``ENV.shown.gallery(here=trained, course=shipped)``, ``ENV.shown.name("unet")``.
    """

    trained_here: bool

    @property
    def label(self) -> str:
        """"trained here" or "course weights"."""
        return TRAINED_HERE if self.trained_here else COURSE_WEIGHTS

    def name(self, name: str, label: str | None = None) -> str:
        """``"unet (trained here)"``: how a model is labelled in figures and results rows."""
        return f"{name} ({label or self.label})"

    def choose(self, here: Any, course: Any) -> Any:
        """``here`` when this run's training is what is shown, else ``course``: a value, or a
        function of no arguments that loads the course weights (called only when they are shown)."""
        if self.trained_here:
            return here
        return course() if isinstance(course, (types.FunctionType, types.MethodType, functools.partial)) else course

    def gallery(self, here: Mapping[str, Any], course: Mapping[str, Any]) -> dict[str, Any]:
        """Labelled models to compare: each of ``here`` as ``"name (trained here)"`` when this
        run trained for real, then each of ``course`` as ``"name (course weights)"``."""
        mine = {self.name(k, TRAINED_HERE): v for k, v in here.items()} if self.trained_here else {}
        return {**mine, **{self.name(k, COURSE_WEIGHTS): v for k, v in course.items()}}


def shown(profile: str | None = None) -> Shown:
    """The :class:`Shown` of ``profile`` (the current one when None)."""
    return Shown(trained_here=(profile or get_profile()) == "full")


@dataclass(frozen=True)
class Environment:
    profile: str
    device: torch.device
    dtype: torch.dtype
    colab: bool
    versions: dict

    @property
    def shown(self) -> Shown:
        """Whose weights this run's lessons show: see :class:`Shown`."""
        return shown(self.profile)

    def report(self) -> str:
        lines = [
            f"profile : {self.profile}" + (" (offline rehearsal: full sizes, small counts)"
                                           if self.profile == "full" and rehearsal() else ""),
            f"device  : {self.device}" + (f" ({torch.cuda.get_device_name(self.device)})"
                                          if self.device.type == "cuda" else ""),
            f"dtype   : {str(self.dtype).replace('torch.', '')} (pipelines)",
            f"colab   : {self.colab}",
            f"python  : {platform.python_version()} on {platform.platform()}",
        ]
        lines += [f"{name:<16}: {ver}" for name, ver in self.versions.items()]
        return "\n".join(lines)


def environment(device: str | None = None) -> Environment:
    dev = get_device(device)
    return Environment(
        profile=get_profile(),
        device=dev,
        dtype=get_dtype(dev),
        colab=in_colab(),
        versions={name: _version(name) for name in LIBRARIES},
    )


def environment_report() -> str:
    """A block of text to paste into a bug report."""
    return environment().report()


def setup_notebook(gpu: bool = False, seed: int = 0) -> Environment:
    """The first cell of every notebook: seed, print the environment, warn when slow.

    ``gpu=True`` marks a notebook that is meant for a GPU: on a CPU it still runs
    (the fast profile keeps it small) but says so plainly.
    """
    seed_everything(seed)
    env = environment()
    print(env.report())
    if rehearsal():  # CI on a CPU, on purpose: no advice to switch
        return env
    if gpu and env.device.type == "cpu":
        message = ("This notebook is meant for a GPU but is running on the CPU. " +
                   ("It will run, in the small 'fast' profile" if env.profile == "fast" else
                    f"The full profile will be very slow here (set {PROFILE_ENV}=fast for a small run)")
                   + "; in Colab choose Runtime > Change runtime type > T4 GPU for the real thing.")
        print("WARNING: " + message)
        warnings.warn(message, stacklevel=2)
    elif env.profile == "full" and env.device.type == "cpu":
        print(f"WARNING: the full profile on a CPU will be very slow; set {PROFILE_ENV}=fast.")
    return env
