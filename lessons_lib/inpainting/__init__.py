"""Four ways to inpaint, on the same masks, plus the naive baseline they must beat.

* ``"unet"``: a UNet shown the masked image and the mask, trained with MSE on the hole.
* ``"unet-gan"``: the same UNet with an adversarial term (Context Encoders, Pathak et
  al., 2016): generator loss ``masked MSE - lambda log D(composite)``, a conv
  discriminator telling real images from composites.
* ``"transformer"``: an encoder-only transformer over image patches trained by masked
  patch prediction (as in MAE / BEiT): patches that are all hole become a learned mask
  token, the transformer predicts every patch's pixels.
* ``"ddpm"``: an unconditional DDPM (the time-conditioned UNet trained to predict
  noise) used for inpainting by RePaint's resampling (:func:`lessons_lib.diffusion.repaint_sample`).
* ``"naive"``: every hole pixel gets the mean colour of the image's known pixels.

Images are [0, 1] RGB (N, 3, H, W) at the interface (what datasets and metrics use)
and [-1, 1] inside the models. Masks are keep-masks (1 = known, 0 = hole) from
:mod:`lessons_lib.masks`. Training goes through :func:`lessons_lib.training.fit`
with the tasks defined here; all outputs are composites: known pixels are the input's.

One module per concern; everything the notebook uses is importable from here
(``from lessons_lib import inpainting``):

* :mod:`.measures`    composites, masked MSE and masked-region PSNR, the naive fill
* :mod:`.methods`     the training tasks, ``make_task``, ``inpaint`` and ``repaint_inpaint``
* :mod:`.comparison`  ``train_inpainters``, ``run_inpainters``, ``compare_methods``, ``markdown_table``
* :mod:`.weights`     the ``inpainting/`` course weights (registered on import), ``load_course_task``
* :mod:`.cli`         ``python -m lessons_lib.inpainting``: ``main``, ``run``, ``build_parser``
"""
from ..models.inpainting import ConvDiscriminator, InpaintUNet, PatchTransformer
from .comparison import compare_methods, markdown_table, run_inpainters, train_inpainters
from .measures import composite, masked_mse, masked_psnr, naive_fill
from .methods import (
    METHODS,
    WIDTH,
    AdversarialInpaintTask,
    InpaintTask,
    default_schedule,
    inference_network,
    inpaint,
    make_task,
    repaint_inpaint,
)
from .weights import load_course_task

__all__ = ["METHODS", "InpaintUNet", "ConvDiscriminator", "PatchTransformer", "composite",
           "masked_mse", "masked_psnr", "naive_fill", "InpaintTask", "AdversarialInpaintTask",
           "make_task", "inpaint", "repaint_inpaint", "compare_methods",
           "train_inpainters", "run_inpainters", "markdown_table", "WIDTH", "default_schedule",
           "inference_network", "load_course_task"]
