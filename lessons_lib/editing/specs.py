"""The four editing tasks in one table: pipeline class, UNet, schedulers, published files.

``hub_id(task)`` is the checkpoint of the full profile. The ids themselves live in
:mod:`lessons_lib.registry` with every other download (``LESSONS_MODEL_<TASK>``
overrides them, e.g. ``LESSONS_MODEL_IMG2IMG=my-org/my-sd15``); this module adds
what the code needs to know about each task.

============================  ===========================================  ==================
task                          pipeline class                               UNet in_channels
============================  ===========================================  ==================
``"img2img"``                 ``StableDiffusionImg2ImgPipeline``           4 (latents)
``"instruct-pix2pix"``        ``StableDiffusionInstructPix2PixPipeline``   8 (+ image latents)
``"inpaint"``                 ``StableDiffusionInpaintPipeline``           9 (+ mask + masked image)
``"upscale"``                 ``StableDiffusionUpscalePipeline``           7 (+ low-res RGB)
============================  ===========================================  ==================

``SCHEDULER_CONFIGS`` are the ``scheduler/scheduler_config.json`` files the real
repositories publish (the tiny pipelines and the offline rehearsal copy them, so the
schedulers in CI are configured exactly like the students'); ``MODEL_INDEX`` lists the
components of each repository's ``model_index.json``; ``PUBLISHED`` records which
weight variants (``*.fp16.*`` files) each repository's main branch publishes, per
component, with where and when that was read. The offline rehearsal lays out exactly
those files, and ``load_pipeline`` asks for ``variant="fp16"`` only where they exist.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import registry
from .. import validate as V

__all__ = ["PipelineSpec", "TASKS", "task_spec", "hub_id", "SCHEDULER_CONFIGS", "MODEL_INDEX",
           "task_for_unet", "Published", "PUBLISHED", "published_variants"]


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    pipeline_class: str      # attribute of the diffusers package
    unet_in_channels: int
    scheduler: str           # the scheduler load_pipeline sets (see loading._use_scheduler); the
                             # one each repository ships is in SCHEDULER_CONFIGS
    vae_blocks: int          # 4 -> 8x latent downsampling (SD); 3 -> 4x (the x4 upscaler's VAE)
    call_args: tuple[str, ...]  # pipeline arguments the helpers rely on (a wrong pipeline lacks them)

    @property
    def variants(self) -> tuple[str, ...]:
        """The weight variants the task's real repository publishes (see ``PUBLISHED``)."""
        return PUBLISHED[self.name].variants


TASKS: dict[str, PipelineSpec] = {t.name: t for t in [
    PipelineSpec("img2img", "StableDiffusionImg2ImgPipeline", 4, "DDIMScheduler", 4, ("image", "strength")),
    PipelineSpec("instruct-pix2pix", "StableDiffusionInstructPix2PixPipeline", 8,
         "EulerAncestralDiscreteScheduler", 4, ("image", "image_guidance_scale")),
    PipelineSpec("inpaint", "StableDiffusionInpaintPipeline", 9, "DDIMScheduler", 4,
         ("image", "mask_image", "strength")),
    PipelineSpec("upscale", "StableDiffusionUpscalePipeline", 7, "DDIMScheduler", 3, ("image", "noise_level")),
]}


def task_spec(task: str) -> PipelineSpec:
    return TASKS[V.choice("task", task, TASKS)]


def hub_id(task: str) -> str:
    """The full profile's checkpoint for ``task`` (``LESSONS_MODEL_<TASK>`` overrides it)."""
    task_spec(task)
    return registry.hub_id(task)


def task_for_unet(in_channels: int) -> str | None:
    """Which task a UNet with ``in_channels`` input channels belongs to (None: none of ours)."""
    return next((t.name for t in TASKS.values() if t.unet_in_channels == in_channels), None)


# SD 1.5's noise schedule, shared by img2img, inpainting and InstructPix2Pix.
_SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
         "num_train_timesteps": 1000, "trained_betas": None, "clip_sample": False,
         "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1}

# scheduler/scheduler_config.json of each repository (plus the upscaler's low_res_scheduler).
SCHEDULER_CONFIGS: dict[str, dict] = {
    "img2img": {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", **_SD15},
    "inpaint": {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0.dev0", **_SD15},
    "instruct-pix2pix": {"_class_name": "EulerAncestralDiscreteScheduler",
                         "_diffusers_version": "0.12.0.dev0", "prediction_type": "epsilon", **_SD15},
    "upscale": {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0", "beta_start": 0.0001,
                "beta_end": 0.02, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
                "prediction_type": "v_prediction", "trained_betas": None, "clip_sample": False,
                "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1},
    "upscale/low_res_scheduler": {"_class_name": "DDPMScheduler", "_diffusers_version": "0.8.0",
                                  "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                                  "num_train_timesteps": 1000, "trained_betas": None, "clip_sample": False,
                                  "variance_type": "fixed_small"},
}

# model_index.json components (library, class) of each repository. The SD repositories carry
# the safety checker and its feature extractor; load_pipeline passes safety_checker=None.
_SD_COMPONENTS = {
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
MODEL_INDEX: dict[str, dict] = {
    "img2img": {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
                "scheduler": ["diffusers", "PNDMScheduler"], **_SD_COMPONENTS},
    "inpaint": {"_class_name": "StableDiffusionInpaintPipeline", "_diffusers_version": "0.6.0.dev0",
                "scheduler": ["diffusers", "PNDMScheduler"], **_SD_COMPONENTS},
    "instruct-pix2pix": {"_class_name": "StableDiffusionInstructPix2PixPipeline",
                         "_diffusers_version": "0.12.0.dev0", "requires_safety_checker": True,
                         "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"], **_SD_COMPONENTS},
    "upscale": {"_class_name": "StableDiffusionUpscalePipeline", "_diffusers_version": "0.8.0",
                "low_res_scheduler": ["diffusers", "DDPMScheduler"], "max_noise_level": 350,
                "scheduler": ["diffusers", "DDIMScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]},
}


# --------------------------------------------------------------------------- published weight variants
@dataclass(frozen=True)
class Published:
    """Which components of a real repository's main branch publish an fp16 weight file.

    ``fp16``: components whose ``*.fp16.safetensors`` file was seen in the file list;
    ``no_fp16``: components whose file list was seen without one. Any other component
    was not checked: nothing is claimed about it, and the rehearsal gives it no fp16
    file (diffusers then loads that component's default weights, cast to fp16).
    """
    repo: str
    fp16: tuple[str, ...]
    no_fp16: tuple[str, ...]
    seen: str  # where and when the file lists were read

    @property
    def variants(self) -> tuple[str, ...]:
        return ("fp16",) if self.fp16 else ()


# Read on 2026-12-07 from the huggingface.co "Files and versions" pages as stored by the
# course's public-material search (no network on the machine that wrote this). Dates
# there are relative ("over 1 year ago"); the commits are the ones those pages show.
PUBLISHED: dict[str, Published] = {
    "img2img": Published(
        "stable-diffusion-v1-5/stable-diffusion-v1-5", fp16=("unet",), no_fp16=(),
        seen="huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/tree/main/unet (commit f03de32, "
             "'Initial commit'): diffusion_pytorch_model.fp16.safetensors and .fp16.bin beside the fp32 files"),
    "inpaint": Published(
        "stable-diffusion-v1-5/stable-diffusion-inpainting", fp16=("unet", "vae"), no_fp16=(),
        seen="huggingface.co/stable-diffusion-v1-5/stable-diffusion-inpainting/tree/8a4288a/unet (the "
             "repository's one commit) and .../tree/main/vae: diffusion_pytorch_model.fp16.safetensors in both"),
    "instruct-pix2pix": Published(
        "timbrooks/instruct-pix2pix", fp16=(), no_fp16=("unet",),
        seen="huggingface.co/timbrooks/instruct-pix2pix/tree/ff0267a/unet: only diffusion_pytorch_model.bin "
             "and .safetensors (fp32, 3.44 GB)"),
    # The x4 upscaler's half-precision weights were first an `fp16` branch (commit 7b42781, "add
    # diffusers fp16 weights"); Hugging Face's PR #21 (commit 572c992, "Fix deprecated float16/fp16
    # variant loading through new `version` API") added *.fp16.* files to main. Its unet/ folder
    # is listed as changed by that PR too, but its file list was not seen: not claimed.
    "upscale": Published(
        "stabilityai/stable-diffusion-x4-upscaler", fp16=("text_encoder", "vae"), no_fp16=(),
        seen="huggingface.co/stabilityai/stable-diffusion-x4-upscaler/tree/main/vae and .../tree/main/"
             "text_encoder (commit 572c992, PR #21): diffusion_pytorch_model.fp16.safetensors, "
             "model.fp16.safetensors"),
}


def published_variants(repo: str) -> tuple[str, ...] | None:
    """The weight variants ``repo`` publishes by ``PUBLISHED``; None for a repository not recorded."""
    return next((p.variants for p in PUBLISHED.values() if p.repo == repo), None)
