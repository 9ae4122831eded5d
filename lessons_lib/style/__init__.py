"""Neural style transfer: Gram matrices, Gatys optimisation, AdaIN, perceptual loss for SR.

Everything works on RGB tensors in [0, 1], shape (N, 3, H, W); the ImageNet
normalisation VGG expects happens inside :class:`~lessons_lib.models.vgg.VGGFeatures`
(the frozen VGG19 whose features every loss here is measured in): ImageNet's VGG19 in
the full profile, the course's own trained feature network in the fast one (see
:mod:`lessons_lib.models.vgg`). Notebook 6 writes ``gram_matrix``, ``content_loss``,
``style_loss``, ``total_variation`` and ``adain`` in its own cells; the copies here are
what the other code and the tests use (a test checks the two agree).

Measures for notebook 6's results rows, each against a trivial baseline on held-out photos:

* style (Gatys and AdaIN): :func:`patch_swd`, a sliced Wasserstein distance between
  the local pixel patches of the result and of the style image. It uses no network, so
  it cannot be won by matching the very features the method optimised; the baseline is
  a plain colour transfer (:func:`colour_transfer`), which moves the palette only;
* super-resolution: PSNR against bicubic (:func:`sr_scores`); the perceptual net on
  the VGG-feature distance, where bicubic is the baseline too.

One module per concern; everything the notebook uses is importable from here
(``from lessons_lib import style``):

* :mod:`.inputs`            pictures of any mode as [0, 1] tensors, content and style made one size
* :mod:`.gatys`             Gram matrices, content / style / total-variation losses, ``style_transfer``
* :mod:`.adain_training`    the AdaIN decoder's objective, training task and held-out scores
* :mod:`.judging`           ``patch_swd`` and the ``colour_transfer`` baseline
* :mod:`.super_resolution`  ``PerceptualLoss``, SR pairs, bicubic, ``sr_scores``
* :mod:`.weights`           the ``style/`` course weights (registered on import), ``course_sr_net``, ``course_adain``
"""
from ..models.adain import ADAIN_STYLE_LAYERS, AdaINDecoder, AdaINStyleTransfer, adain, channel_stats
from ..models.srnet import SRNet
from ..models.vgg import CONTENT_LAYERS, STYLE_LAYERS, VGG19_LAYERS, VGGFeatures
from .adain_training import AdaINTask, adain_losses, adain_objective, adain_scores
from .gatys import StyleTransferResult, content_loss, gram_matrix, style_loss, style_transfer, total_variation
from .inputs import MAX_INPUT_PIXELS, MAX_SIDE, MIN_SIDE, as_image, prepare_pair
from .judging import colour_transfer, patch_swd
from .super_resolution import DISTANCE_LAYERS, PerceptualLoss, bicubic, feature_distance, make_sr_pairs, sr_scores
from .weights import course_adain, course_sr_net

__all__ = [
    "VGG19_LAYERS", "STYLE_LAYERS", "CONTENT_LAYERS", "ADAIN_STYLE_LAYERS", "DISTANCE_LAYERS", "VGGFeatures",
    "MIN_SIDE", "MAX_SIDE", "MAX_INPUT_PIXELS", "gram_matrix", "content_loss", "style_loss", "as_image",
    "prepare_pair", "StyleTransferResult", "style_transfer", "channel_stats", "adain", "AdaINDecoder",
    "AdaINStyleTransfer", "adain_objective", "adain_losses", "AdaINTask", "colour_transfer", "adain_scores",
    "PerceptualLoss", "make_sr_pairs", "bicubic", "feature_distance", "sr_scores", "SRNet", "course_sr_net",
    "course_adain", "total_variation", "patch_swd",
]
