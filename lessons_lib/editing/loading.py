"""Loading the editing pipelines, in both profiles, once per process, T4-safe.

``load_pipeline(task)`` returns the diffusers pipeline object itself, so everything the
diffusers documentation shows works on it.

* **full** profile: the real checkpoint (``specs.hub_id(task)``; override with
  ``model_id=`` or ``LESSONS_MODEL_<TASK>``), in fp16 on CUDA with the repository's
  ``variant="fp16"`` weights where :data:`.specs.PUBLISHED` records them (half the
  download). A requested variant the repository does not publish is not an error: its
  default weights are loaded and cast to the dtype, and one printed line says so. The
  x4 upscaler's VAE overflows in fp16; diffusers' upscale pipeline decodes in fp32
  (``vae.config.force_upcast``) and nothing here changes that. Also the
  memory options diffusers documents for small GPUs: VAE slicing and tiling through
  ``pipe.vae``; attention slicing only where PyTorch lacks scaled-dot-product attention
  (with SDPA it saves nothing and slows generation down); model CPU offload when asked
  (``cpu_offload=True``).
* **fast** profile: the tiny offline pipelines of :mod:`lessons_lib.editing.tiny`,
  loaded back from disk with ``from_pretrained``, the same loading path.

Before any weight is loaded, the checkpoint's UNet is checked against the task (an
inpainting checkpoint has 9 input channels, img2img needs 4), so a wrong checkpoint is
refused with a message instead of failing deep inside a convolution.

The safety checker is switched off (``safety_checker=None``): this is a course for
research and teaching use, and the checker's false positives return black images
that would confuse the lessons. Respect the model licences when you publish results.
"""
from __future__ import annotations

import inspect
import threading
import warnings
from pathlib import Path

import torch

from .. import registry
from .. import validate as V
from ..runtime import PROFILES, get_device, get_dtype, get_profile
from .checks import require_any_pipeline
from .running import memory_advice
from .specs import PipelineSpec, hub_id, published_variants, task_for_unet, task_spec
from .tiny import tiny_pipeline_dir

__all__ = ["load_pipeline", "apply_memory_options", "clear_pipeline_cache", "attention_slicing_active",
           "dtype_argument"]

_CACHE: dict[tuple, object] = {}
_LOCK = threading.Lock()


def _diffusers():
    import diffusers

    return diffusers


def _diffusers_version() -> tuple[int, int]:
    major, minor = _diffusers().__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def dtype_argument() -> str:
    """diffusers 0.40 renamed ``from_pretrained``'s ``torch_dtype`` to ``dtype`` (the old
    name still works there, with a deprecation warning)."""
    return "dtype" if _diffusers_version() >= (0, 40) else "torch_dtype"


# --------------------------------------------------------------------------- memory options
def _sdpa_available() -> bool:
    return hasattr(torch.nn.functional, "scaled_dot_product_attention")


def apply_memory_options(pipe, vae_slicing: bool = True, vae_tiling: bool = True,
                         attention_slicing: bool | None = None):
    """Let SD 1.5 run at 512 px on a 15 GB T4 in fp16 with room to spare.

    VAE slicing decodes a batch one image at a time and VAE tiling decodes large images in
    overlapping tiles (only above the VAE's sample size); both live on ``pipe.vae``.
    ``attention_slicing=None`` (default) slices attention only when PyTorch has no
    scaled-dot-product attention: diffusers documents that with SDPA (PyTorch 2) slicing
    is not needed and can slow generation down considerably.
    """
    require_any_pipeline(pipe, "apply_memory_options")
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    if attention_slicing is None:
        attention_slicing = not _sdpa_available()
    if attention_slicing:
        pipe.enable_attention_slicing()
    return pipe


def attention_slicing_active(pipe) -> bool:
    """True when any attention layer of the UNet runs sliced."""
    require_any_pipeline(pipe, "attention_slicing_active")
    return any("Sliced" in type(p).__name__ for p in pipe.unet.attn_processors.values())


def clear_pipeline_cache() -> None:
    """Forget every loaded pipeline (frees memory; the next load_pipeline reloads)."""
    with _LOCK:
        _CACHE.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- loading
def load_pipeline(task: str, model_id: str | None = None, profile: str | None = None,
                  device: str | torch.device | None = None, *, cpu_offload: bool = False,
                  memory_safe: bool | None = None, dtype: torch.dtype | None = None,
                  variant: str | None = None):
    """The diffusers pipeline for ``task``, loaded once per process and reused.

    ``model_id`` is a hub id or a local folder; by default the registry's hub id in the
    full profile and the tiny offline pipeline in the fast profile. ``cpu_offload=True``
    keeps each model on the GPU only while it runs (``enable_model_cpu_offload``; needs
    CUDA; slower, for when the GPU runs out of memory). ``memory_safe`` (default: on for
    CUDA) applies :func:`apply_memory_options`. ``dtype`` defaults to fp16 on CUDA and
    fp32 elsewhere; ``variant`` defaults to "fp16" for a hub checkpoint loaded in fp16
    unless the repository is recorded as publishing no fp16 weights. A variant that is
    missing falls back to the default weights, cast to ``dtype``.
    """
    spec = task_spec(task)
    if profile is None:
        profile = get_profile()
    else:
        profile = V.choice("profile", V.text("profile", profile, "'fast' or 'full'").lower(), PROFILES)
    device = get_device(None if device is None else str(device))
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch dtype such as torch.float16 or torch.float32, got {dtype!r}; "
                        "leave it out for fp16 on CUDA and fp32 elsewhere.")
    dtype = get_dtype(device, pipeline=True) if dtype is None else dtype
    if variant is not None:
        V.text("variant", variant, "a weight variant such as 'fp16'")
    if model_id is not None:
        if isinstance(model_id, Path):
            model_id = str(model_id)
        V.text("model_id", model_id, f"a hub id such as '{registry.SOURCES[spec.name].location}' or the folder "
               "of a saved pipeline")
    cpu_offload = V.flag("cpu_offload", cpu_offload)
    if memory_safe is not None:
        memory_safe = V.flag("memory_safe", memory_safe)
    if cpu_offload and device.type != "cuda":
        raise ValueError("cpu_offload=True needs a CUDA GPU (it moves models between CPU and GPU); "
                         "leave it off on this device.")
    if memory_safe is None:
        memory_safe = device.type == "cuda"
    if model_id is None:
        source = str(tiny_pipeline_dir(task)) if profile == "fast" else hub_id(task)
    else:
        source = str(model_id)
    if variant is None and dtype == torch.float16 and source == hub_id(task) \
            and "fp16" in (published_variants(source) or ("fp16",)):
        variant = "fp16"  # a repository not in the record is tried too: a missing variant falls back
    key = (task, source, str(device), str(dtype), variant, cpu_offload, memory_safe)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        pipe = _from_pretrained(spec, source, dtype, variant)
        _use_scheduler(pipe, spec)
        if memory_safe:
            apply_memory_options(pipe)
        with memory_advice(f"loading the '{task}' pipeline onto {device}"):
            if cpu_offload:
                pipe.enable_model_cpu_offload(device=device)
            else:
                pipe.to(device)
        # Bars vanish when done, so loops over many edits stay readable.
        pipe.set_progress_bar_config(leave=False)
        _CACHE[key] = pipe
        return pipe


def _use_scheduler(pipe, spec: PipelineSpec) -> None:
    """InstructPix2Pix: Euler ancestral, as it was published. img2img / inpaint: DDIM
    instead of SD 1.5's PNDM, because PNDM spends one extra UNet call on its first
    step; with DDIM, strength s and n steps run exactly int(n * s) denoising steps."""
    cls = getattr(_diffusers(), spec.scheduler)
    if type(pipe.scheduler) is not cls:
        pipe.scheduler = cls.from_config(pipe.scheduler.config)


def _hub_kwargs(spec: PipelineSpec, source: str) -> tuple[str, dict]:
    """(source, revision kwargs): a local folder as a path, a hub id with the registry's revision."""
    local = Path(source).expanduser()
    # Hub ids are "org/name"; anything else that looks like a path is a local folder.
    if local.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
        if not local.is_dir():
            raise FileNotFoundError(
                f"No pipeline folder at '{local}' for the '{spec.name}' task. Pass a folder that "
                "holds a saved diffusers pipeline (model_index.json), or a hub id such as "
                f"'{registry.SOURCES[spec.name].location}'.")
        if not (local / "model_index.json").is_file():
            raise FileNotFoundError(
                f"The folder '{local}' holds no saved diffusers pipeline (no model_index.json). "
                "Pass the folder that pipe.save_pretrained(...) wrote, or a hub id.")
        return str(local), {}
    registered = registry.get_source(spec.name)
    if registered.location == source and registered.revision:
        return source, {"revision": registered.revision}
    return source, {}


def _check_checkpoint(spec: PipelineSpec, source: str, revision: dict) -> None:
    """Refuse a checkpoint whose UNet does not fit the task, before loading any weight."""
    with warnings.catch_warnings():  # diffusers passes huggingface_hub a deprecated argument here
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
        config = _diffusers().UNet2DConditionModel.load_config(source, subfolder="unet", **revision)
    channels = config.get("in_channels")
    if channels == spec.unet_in_channels:
        return
    other = task_for_unet(channels)
    fits = (f"it is a checkpoint for the '{other}' task: load it with load_pipeline('{other}', "
            f"model_id='{source}')" if other else "it fits none of the course's tasks")
    raise ValueError(
        f"'{source}' cannot be used for '{spec.name}': its UNet takes {channels} input channels, and "
        f"{spec.pipeline_class} needs {spec.unet_in_channels}; {fits}. For '{spec.name}' use a checkpoint "
        f"like '{registry.SOURCES[spec.name].location}' (or leave model_id out).")


def _from_pretrained(spec: PipelineSpec, source: str, dtype: torch.dtype, variant: str | None):
    cls = getattr(_diffusers(), spec.pipeline_class)
    source, revision = _hub_kwargs(spec, source)
    kwargs = {dtype_argument(): dtype, "safety_checker": None, **revision}
    if variant is not None:
        kwargs["variant"] = variant
    if "requires_safety_checker" in inspect.signature(cls.__init__).parameters:
        kwargs["requires_safety_checker"] = False
    try:
        _check_checkpoint(spec, source, revision)
        try:
            return cls.from_pretrained(source, **kwargs)
        except ValueError as err:
            if variant is None or not _variant_missing(err, variant):
                raise
        # No component has the variant's files: the default weights, cast on loading, give
        # the same pictures (only the download is larger).
        print(f"'{source}' publishes no {variant} weight files: loading its default weights and "
              f"casting them to {str(dtype).replace('torch.', '')} instead.")
        del kwargs["variant"]
        return cls.from_pretrained(source, **kwargs)
    except Exception as err:  # noqa: BLE001 - sorted below: only download failures are rewrapped
        if not _is_download_failure(err):
            raise
        env_var = registry._env_key(spec.name)
        reason = (f"the hub id '{source}' does not exist or cannot be reached"
                  + (" (HF_HUB_OFFLINE is set, so nothing is downloaded)" if registry.offline() else "")
                  + f" [{type(err).__name__}]")
        raise registry.DownloadUnavailable(
            registry.unavailable_message(f"the '{spec.name}' pipeline '{source}'", env_var, reason)
            + f" Check the spelling of '{source}' on https://huggingface.co; if the model needs"
            " a licence accepted, accept it and log in with `hf auth login`."
        ) from err


def _variant_missing(err: ValueError, variant: str) -> bool:
    """diffusers' error for a variant of which no component has files (the same words since 0.18)."""
    text = str(err)
    return f"variant={variant}" in text and "no such modeling files" in text


def _is_download_failure(err: BaseException) -> bool:
    try:
        from huggingface_hub import errors as hf_errors
        hub_types = tuple(getattr(hf_errors, n) for n in (
            "RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError",
            "LocalEntryNotFoundError", "GatedRepoError", "HfHubHTTPError", "HFValidationError",
            "OfflineModeIsEnabled") if hasattr(hf_errors, n))
    except ImportError:  # pragma: no cover - huggingface_hub always comes with diffusers
        hub_types = ()
    seen = err
    while seen is not None:
        if isinstance(seen, hub_types) or isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        # diffusers turns some hub errors into OSError/EnvironmentError with a message.
        if isinstance(seen, OSError) and any(s in str(seen) for s in (
                "huggingface.co", "does not appear to have", "is not a local folder",
                "offline", "Cannot find", "not a valid model identifier", "couldn't connect")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

