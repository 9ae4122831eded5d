"""Loading the Stable Diffusion editing pipelines, in both profiles, once per process.

``load_pipeline(task)`` returns the diffusers pipeline object itself, so everything the
diffusers documentation shows works on it:

============================  ===========================================  ==================
task                          pipeline class                               UNet in_channels
============================  ===========================================  ==================
``"img2img"``                 ``StableDiffusionImg2ImgPipeline``           4 (latents)
``"instruct-pix2pix"``        ``StableDiffusionInstructPix2PixPipeline``   8 (+ image latents)
``"inpaint"``                 ``StableDiffusionInpaintPipeline``           9 (+ mask + masked image)
``"upscale"``                 ``StableDiffusionUpscalePipeline``           7 (+ low-res RGB)
============================  ===========================================  ==================

* **full** profile: the real checkpoints whose hub ids live in :mod:`lessons_lib.registry`
  (``hub_id("img2img")`` ...; override with ``model_id=`` or ``LESSONS_MODEL_<TASK>``),
  fp16 on CUDA, memory-saving options for a 15 GB T4.
* **fast** profile: tiny randomly initialised pipelines with the same architecture
  families, built offline from configs, saved with ``save_pretrained`` under
  ``cache_dir()/tiny-pipelines/<task>`` and loaded back with ``from_pretrained``, so the
  real loading path runs in CI. Their outputs are noise-like: they test the plumbing,
  not the pictures.

The safety checker is switched off (``safety_checker=None``): this is a course for
research and teaching use, and the checker's false positives return black images
that would confuse the lessons. Respect the model licences when you publish results.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import registry
from .runtime import cache_dir, get_device, get_dtype, get_profile

__all__ = ["TASKS", "load_pipeline", "tiny_pipeline_dir", "build_tiny_pipeline",
           "apply_memory_options", "clear_pipeline_cache", "TINY_VERSION"]


@dataclass(frozen=True)
class Task:
    name: str
    pipeline_class: str      # attribute of the diffusers package
    unet_in_channels: int
    scheduler: str           # the scheduler load_pipeline sets (see _use_scheduler)
    shipped_scheduler: str   # the one the real checkpoint ships with (tiny pipelines copy it)
    vae_blocks: int          # 4 -> 8x latent downsampling (SD); 3 -> 4x (the x4 upscaler's VAE)


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("img2img", "StableDiffusionImg2ImgPipeline", 4, "DDIMScheduler", "PNDMScheduler", 4),
    Task("instruct-pix2pix", "StableDiffusionInstructPix2PixPipeline", 8,
         "EulerAncestralDiscreteScheduler", "EulerAncestralDiscreteScheduler", 4),
    Task("inpaint", "StableDiffusionInpaintPipeline", 9, "DDIMScheduler", "PNDMScheduler", 4),
    Task("upscale", "StableDiffusionUpscalePipeline", 7, "DDIMScheduler", "DDIMScheduler", 3),
]}

# Bump when the tiny configs change: stale cached tiny pipelines are then rebuilt.
TINY_VERSION = 1
_MARKER = "lessons_tiny.json"

_CACHE: dict[tuple, object] = {}
_TINY_DIRS: dict[tuple[str, str], Path] = {}  # (cache root, task) -> checked folder
_LOCK = threading.Lock()


def _task(task: str) -> Task:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}. Choose one of: {', '.join(TASKS)}.")
    return TASKS[task]


def _diffusers():
    import diffusers

    return diffusers


# --------------------------------------------------------------------------- tiny pipelines
def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for the bytes 0..255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


# A handful of merges so common words in the lessons' prompts become single tokens,
# as they would with the real 49k-token vocabulary.
_TINY_WORDS = ("a", "the", "make", "it", "turn", "into", "photo", "of", "cat", "dog", "sky",
               "snow", "winter", "summer", "painting", "style", "red", "blue", "green",
               "add", "sunset", "night", "day", "cartoon", "sketch", "oil", "watercolor")


def _tiny_vocab() -> tuple[dict[str, int], list[str]]:
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    for word in _TINY_WORDS:
        # Merge left to right: "c a", "ca t</w>" ... each intermediate becomes a token.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = f"{pieces[0]} {pieces[1]}"
            joined = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            if joined not in tokens:
                tokens.append(joined)
            pieces = [joined] + pieces[2:]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def _tiny_tokenizer(workdir: Path):
    """A CLIPTokenizer from a vocab.json + merges.txt written here (model_max_length 77)."""
    from transformers import CLIPTokenizer

    vocab, merges = _tiny_vocab()
    src = workdir / "tokenizer-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(src), model_max_length=77)
    shutil.rmtree(src)
    return tokenizer


def _tiny_text_encoder(vocab_size: int, bos: int, eos: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=4, projection_dim=32,
                            max_position_embeddings=77, bos_token_id=bos, eos_token_id=eos,
                            pad_token_id=eos, layer_norm_eps=1e-5)
    return CLIPTextModel(config)


def _tiny_unet(task: Task):
    kwargs = dict(sample_size=8, in_channels=task.unet_in_channels, out_channels=4,
                  block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                  cross_attention_dim=32, attention_head_dim=(2, 4))
    if task.name == "upscale":
        # The x4 upscaler conditions on the noise level added to the low-res image
        # (class labels 0..max_noise_level=350), like the real checkpoint's 1000 embeddings.
        kwargs["num_class_embeds"] = 1000
    return _diffusers().UNet2DConditionModel(**kwargs)


def _tiny_vae(task: Task):
    channels = (16, 16, 32, 32)[: task.vae_blocks]
    vae = _diffusers().AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * task.vae_blocks,
        up_block_types=("UpDecoderBlock2D",) * task.vae_blocks,
        layers_per_block=1, norm_num_groups=8, sample_size=64,
        # The upscaler's VAE uses 0.08333; SD 1.5's uses 0.18215.
        scaling_factor=0.08333 if task.name == "upscale" else 0.18215)
    return vae


def _tiny_scheduler(task: Task):
    d = _diffusers()
    common = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  num_train_timesteps=1000)
    if task.shipped_scheduler == "PNDMScheduler":
        return d.PNDMScheduler(skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False, **common)
    if task.shipped_scheduler == "EulerAncestralDiscreteScheduler":
        return d.EulerAncestralDiscreteScheduler(**common)
    # x4 upscaler: DDIM with v-prediction and a linear schedule.
    return d.DDIMScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear",
                           prediction_type="v_prediction", num_train_timesteps=1000)


def build_tiny_pipeline(task: str, seed: int = 0):
    """A tiny, randomly initialised pipeline for ``task`` (in memory; deterministic in ``seed``)."""
    spec = _task(task)
    d = _diffusers()
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        tokenizer = _tiny_tokenizer(Path(tmp))
        torch.manual_seed(seed)
        unet = _tiny_unet(spec)
        torch.manual_seed(seed)
        vae = _tiny_vae(spec)
        torch.manual_seed(seed)
        text_encoder = _tiny_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                 scheduler=_tiny_scheduler(spec), safety_checker=None, feature_extractor=None)
    cls = getattr(d, spec.pipeline_class)
    if task == "upscale":
        parts["low_res_scheduler"] = d.DDPMScheduler()
        parts["max_noise_level"] = 350
    else:
        parts["requires_safety_checker"] = False
    return cls(**parts)


def tiny_pipeline_dir(task: str) -> Path:
    """The saved tiny pipeline for ``task``, built (atomically) the first time it is asked for."""
    _task(task)
    root = cache_dir() / "tiny-pipelines"
    final = root / task
    if _TINY_DIRS.get((str(root), task)) == final and (final / _MARKER).is_file():
        return final  # checked earlier in this process
    marker = {"version": TINY_VERSION, "task": task, "diffusers": _diffusers().__version__}
    if _marker_ok(final, marker):
        _TINY_DIRS[(str(root), task)] = final
        return final
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the final folder, then rename: a half-written pipeline is never seen.
    tmp = Path(tempfile.mkdtemp(prefix=f".{task}-", dir=root))
    try:
        build_tiny_pipeline(task).save_pretrained(tmp, safe_serialization=True)
        (tmp / _MARKER).write_text(json.dumps(marker), encoding="utf-8")
        if final.exists():  # stale version: move it aside, then swap in the new one
            trash = Path(tempfile.mkdtemp(prefix=f".old-{task}-", dir=root))
            os.replace(final, trash / task)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not _marker_ok(final, marker):  # another process won the race: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _TINY_DIRS[(str(root), task)] = final
    return final


def _marker_ok(folder: Path, marker: dict) -> bool:
    try:
        return json.loads((folder / _MARKER).read_text(encoding="utf-8")) == marker
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- loading
def apply_memory_options(pipe, attention_slicing: bool = True, vae_slicing: bool = True,
                         vae_tiling: bool = True):
    """Options that let SD 1.5 run at 512 px on a 15 GB T4 in fp16 with room to spare.

    VAE slicing decodes a batch one image at a time; VAE tiling decodes large images
    in overlapping tiles (it only kicks in above the VAE's sample size); attention
    slicing computes attention in chunks. In diffusers 0.42 the VAE options live on
    ``pipe.vae`` (``pipe.enable_vae_slicing`` is gone).
    """
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    if attention_slicing:
        pipe.enable_attention_slicing()
    return pipe


def clear_pipeline_cache() -> None:
    """Forget every loaded pipeline (frees memory; the next load_pipeline reloads)."""
    with _LOCK:
        _CACHE.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_pipeline(task: str, model_id: str | None = None, profile: str | None = None,
                  device: str | torch.device | None = None, *, cpu_offload: bool = False,
                  memory_safe: bool | None = None):
    """The diffusers pipeline for ``task``, loaded once per process and reused.

    ``model_id`` is a hub id or a local folder; by default the registry's hub id in the
    full profile and the tiny offline pipeline in the fast profile. ``cpu_offload=True``
    keeps each model on the GPU only while it runs (``enable_model_cpu_offload``; needs
    CUDA, slower, for GPUs smaller than a T4). ``memory_safe`` (default: on for CUDA)
    applies :func:`apply_memory_options`.
    """
    spec = _task(task)
    profile = (profile or get_profile()).lower()
    if profile not in ("fast", "full"):
        raise ValueError(f"profile must be 'fast' or 'full', got {profile!r}.")
    device = get_device(None if device is None else str(device))
    dtype = get_dtype(device, pipeline=True)
    if cpu_offload and device.type != "cuda":
        raise ValueError("cpu_offload=True needs a CUDA GPU (it moves models between CPU and GPU); "
                         "leave it off on this device.")
    if memory_safe is None:
        memory_safe = device.type == "cuda"
    if model_id is None:
        source = str(tiny_pipeline_dir(task)) if profile == "fast" else registry.hub_id(task)
    else:
        source = str(model_id)
    key = (task, source, str(device), str(dtype), cpu_offload, memory_safe)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        pipe = _from_pretrained(spec, source, dtype)
        _use_scheduler(pipe, spec)
        if memory_safe:
            apply_memory_options(pipe)
        if cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        # Bars vanish when done, so loops over many edits stay readable.
        pipe.set_progress_bar_config(leave=False)
        _CACHE[key] = pipe
        return pipe


def _use_scheduler(pipe, spec: Task) -> None:
    """InstructPix2Pix: Euler ancestral, as it was published. img2img / inpaint: DDIM
    instead of SD 1.5's PNDM, because PNDM spends one extra UNet call on its first
    step; with DDIM, strength s and n steps run exactly int(n * s) denoising steps."""
    cls = getattr(_diffusers(), spec.scheduler)
    if type(pipe.scheduler) is not cls:
        pipe.scheduler = cls.from_config(pipe.scheduler.config)


def _from_pretrained(spec: Task, source: str, dtype: torch.dtype):
    cls = getattr(_diffusers(), spec.pipeline_class)
    # diffusers 0.42 renamed torch_dtype to dtype (the old name still works, with a warning).
    dtype_arg = "dtype" if _diffusers_version() >= (0, 42) else "torch_dtype"
    kwargs = {dtype_arg: dtype, "safety_checker": None}
    if "requires_safety_checker" in inspect.signature(cls.__init__).parameters:
        kwargs["requires_safety_checker"] = False
    local = Path(source).expanduser()
    # Hub ids are "org/name"; anything else that looks like a path is a local folder.
    if local.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
        if not local.is_dir():
            raise FileNotFoundError(
                f"No pipeline folder at '{local}' for the '{spec.name}' task. Pass a folder that "
                "holds a saved diffusers pipeline (model_index.json), or a hub id such as "
                f"'{registry.SOURCES[spec.name].location}'.")
        source = str(local)
    elif registry.SOURCES[spec.name].location == source and registry.SOURCES[spec.name].revision:
        kwargs["revision"] = registry.SOURCES[spec.name].revision
    try:
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
            " a licence accepted, accept it and log in with `huggingface-cli login`."
        ) from err


def _diffusers_version() -> tuple[int, int]:
    major, minor = _diffusers().__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


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
