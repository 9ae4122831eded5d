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
components of each repository's ``model_index.json``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import registry

__all__ = ["PipelineSpec", "TASKS", "task_spec", "hub_id", "SCHEDULER_CONFIGS", "MODEL_INDEX",
           "task_for_unet"]


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    pipeline_class: str      # attribute of the diffusers package
    unet_in_channels: int
    scheduler: str           # the scheduler load_pipeline sets (see loading._use_scheduler); the
                             # one each repository ships is in SCHEDULER_CONFIGS
    vae_blocks: int          # 4 -> 8x latent downsampling (SD); 3 -> 4x (the x4 upscaler's VAE)
    fp16_variant: bool       # the repository publishes *.fp16.safetensors (variant="fp16")
    call_args: tuple[str, ...]  # pipeline arguments the helpers rely on (a wrong pipeline lacks them)


TASKS: dict[str, PipelineSpec] = {t.name: t for t in [
    PipelineSpec("img2img", "StableDiffusionImg2ImgPipeline", 4, "DDIMScheduler", 4, True,
         ("image", "strength")),
    PipelineSpec("instruct-pix2pix", "StableDiffusionInstructPix2PixPipeline", 8,
         "EulerAncestralDiscreteScheduler", 4, False,
         ("image", "image_guidance_scale")),
    PipelineSpec("inpaint", "StableDiffusionInpaintPipeline", 9, "DDIMScheduler", 4, True,
         ("image", "mask_image", "strength")),
    PipelineSpec("upscale", "StableDiffusionUpscalePipeline", 7, "DDIMScheduler", 3, True,
         ("image", "noise_level")),
]}


def task_spec(task: str) -> PipelineSpec:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}. Choose one of: {', '.join(TASKS)}.")
    return TASKS[task]


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
