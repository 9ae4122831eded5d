"""Stable Diffusion editing: the pipelines and helpers of notebooks 4 and 5.

One module per concern; everything a notebook uses is importable from here
(``from lessons_lib import editing as E``):

* :mod:`.specs`    the four tasks (pipeline class, UNet, schedulers) and their hub ids
* :mod:`.loading`  ``load_pipeline`` in both profiles, T4 memory options
* :mod:`.tiny`     the tiny offline pipelines (img2img's trained by the course), and the seeded hub
                   cache of the rehearsal
* :mod:`.judging`  what img2img did on held-out photos: distance to the input, the judge's class
* :mod:`.checks`   what only editing checks (strength, scales, steps, prompts, boxes, pipelines);
                   images and masks made ready (generic checks: :mod:`lessons_lib.validate`)
* :mod:`.edits`    img2img, strength sweep, inpaint, outpaint, region edits
* :mod:`.instruct` InstructPix2Pix edits and the guidance grid
* :mod:`.upscale`  x4 super-resolution, tiled
* :mod:`.oplog`    safe file names and the operation log
* :mod:`.figures`, :mod:`.widgets`  what the notebooks show
"""
from ..photos import demo_image
from .checks import MAX_EDIT_SIDE, check_strength, prepare_image
from .edits import (
                    STRENGTHS,
                    SUGGESTED_STRENGTH,
                    edit_region,
                    feather_mask,
                    img2img,
                    img2img_many,
                    inpaint,
                    mask_from_bbox,
                    outpaint,
                    steps_that_run,
                    strength_sweep,
                    suggest_strength,
)
from .figures import grid_figure, show_edit, sweep_figure
from .instruct import (
                    IMAGE_STABILITY,
                    PIX2PIX_STEPS,
                    TEXT_STRENGTH,
                    guidance_grid,
                    instruct_edit,
                    instruct_edits,
)
from .loading import apply_memory_options, attention_slicing_active, clear_pipeline_cache, load_pipeline
from .oplog import OperationLog, safe_filename, save_image, save_result
from .running import EditResult
from .specs import TASKS, hub_id
from .upscale import UPSCALE_MAX_INPUT, upscale
from .widgets import InstructPanel

__all__ = [
    "load_pipeline", "clear_pipeline_cache", "apply_memory_options", "attention_slicing_active", "TASKS",
    "hub_id", "IMAGE_STABILITY", "TEXT_STRENGTH", "PIX2PIX_STEPS", "STRENGTHS", "SUGGESTED_STRENGTH",
    "UPSCALE_MAX_INPUT", "MAX_EDIT_SIDE", "EditResult", "demo_image", "prepare_image", "check_strength",
    "steps_that_run", "img2img", "img2img_many", "strength_sweep", "instruct_edit", "instruct_edits", "guidance_grid",
    "inpaint", "outpaint", "upscale", "mask_from_bbox", "feather_mask", "suggest_strength", "edit_region",
    "OperationLog", "safe_filename", "save_image", "save_result", "show_edit", "sweep_figure",
    "grid_figure", "InstructPanel",
]

