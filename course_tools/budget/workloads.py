"""Notebooks 1, 2, 3, 6 and 7: each training run, sampling and scoring call, with the notebook's own
counts, measured on the real full-size networks (notebooks 4 and 5 are in :mod:`.pipelines`)."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .assumptions import (
    CIFAR10_TRAIN,
    CUDA_CONTEXT_BYTES,
    HORSE2ZEBRA_TRAIN_A,
    HORSE2ZEBRA_TRAIN_B,
    LBFGS_EVALS_PER_STEP,
    MEASURE_BATCH,
)
from .items import Item, Row, batches, inference, row, training
from .measure import Cost, images, measure, measure_forward, measure_sampling, measure_task, photos
from .notebooks import MissingCount, notebook_picks

SCORE_BATCH = 256   # the batch of the notebooks' scoring and evaluation loops


# --------------------------------------------------------------------------- downloads and scorers
def cifar_bytes() -> int:
    from lessons_lib import registry

    return registry.get_source("cifar10").size


def torchvision_bytes(name: str) -> float:
    """fp32 bytes of a torchvision model's pretrained weights (its parameters, counted on meta)."""
    import torchvision

    with torch.device("meta"):
        model = {"vgg19": lambda: torchvision.models.vgg19(weights=None),
                 "inception": lambda: torchvision.models.inception_v3(weights=None, init_weights=False),
                 "alexnet": lambda: torchvision.models.alexnet(weights=None)}[name]()
    return 4 * sum(t.numel() for t in model.parameters())


@functools.lru_cache(maxsize=None)
def lpips_cost() -> Cost:
    import lpips

    model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).eval()
    x, y = images(MEASURE_BATCH, 32), images(MEASURE_BATCH, 32)
    return measure_forward(lambda: model(x, y))


@functools.lru_cache(maxsize=None)
def inception_cost() -> Cost:
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
        x = torch.empty(MEASURE_BATCH, 3, 299, 299)
    return measure_forward(lambda: model(x))


def scored(what: str, cost: Cost, n: int, times: int = 1) -> Item:
    """``times`` passes over ``n`` images at :data:`SCORE_BATCH`."""
    return inference(what, cost, times * n, times * batches(n, SCORE_BATCH))


# --------------------------------------------------------------------------- notebook 1
def notebook_01() -> Row:
    from lessons_lib.images import luma_chroma_to_rgb
    from lessons_lib.models.encoder_decoder import EncoderDecoder

    p = notebook_picks("01")
    epochs, test_images = p.one("EPOCHS"), p.one("TEST_IMAGES")
    batch, test_batch = p.all("make_loader.batch_size")[:2]
    if p.one("TRAIN_IMAGES") is not None:
        raise MissingCount("notebook 01: TRAIN_IMAGES is no longer None (all of CIFAR-10); update the budget.")
    steps = batches(CIFAR10_TRAIN, batch) * epochs

    class ColourOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = EncoderDecoder(out_channels=2)

        def forward(self, gray):
            return luma_chroma_to_rgb(gray, self.net(gray))

    items = []
    for name, build in (("encoder-decoder", EncoderDecoder), ("colour only", ColourOnly)):
        torch.manual_seed(0)
        model = build()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        gray, colour = images(MEASURE_BATCH, 32, 1), images(MEASURE_BATCH, 32, 3)

        def step(model=model, opt=opt, gray=gray, colour=colour):   # the notebook's hand-written loop
            loss = F.mse_loss(model(gray), colour)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()

        cost = measure(step, MEASURE_BATCH, [model])
        fwd = measure_forward(lambda model=model, gray=gray: model(gray))
        params = sum(q.numel() * 4 for q in model.parameters())
        memory = 4 * params + cost.saved * batch + CUDA_CONTEXT_BYTES   # weights, gradients, Adam's moments
        items += [Item(f"{name}: {epochs} epochs x {steps // epochs} steps, batch {batch} (fp32)",
                       cost.flops * batch * steps, cost.ops * steps, "fp32", memory),
                  inference(f"{name}: test loss each epoch + colorized test set", fwd,
                            test_images * (epochs + 1), batches(test_images, test_batch) * (epochs + 1))]
    items.append(scored("LPIPS of 3 result sets", lpips_cost(), test_images, 3))
    return row("01", items, cifar_bytes() + torchvision_bytes("alexnet"))


# --------------------------------------------------------------------------- notebook 2
def notebook_02() -> Row:
    from lessons_lib import evaluation, zoo
    from lessons_lib.models.colorizers import MODELS, build_model

    p = notebook_picks("02")
    size, epochs, batch = p.one("SIZE"), p.one("EPOCHS"), p.one("BATCH_SIZE")
    width, latent, steps_sampling = p.one("WIDTH"), p.one("LATENT_DIM"), p.one("STEPS")
    test_images, lr = p.one("TEST_IMAGES"), p.one("LEARNING_RATE")
    if p.one("STEPS_PER_EPOCH") is not None or p.one("TRAIN_IMAGES") is not None:
        raise MissingCount("notebook 02 no longer trains full epochs on all of CIFAR-10; update the budget.")
    steps = batches(CIFAR10_TRAIN, batch) * epochs

    def batch_of(n):
        return list(zoo.colorization_pairs(photos(n, size)).tensors)

    items, diffusion_eval = [], None
    for name in MODELS:
        if name == "unetddpm":  # the notebook copies unetddim's network: trained once
            continue
        settings = zoo.COURSE_SETTINGS.get(name, {})  # the notebook passes them: its loss, mirrored photos
        loss = settings.get("loss", "mse")

        def make(name=name, loss=loss):
            return zoo.make_task(name, build_model(name, latent_dim=latent, width=width), lr, loss)

        cost = measure_task(make, batch_of, validate=True)
        model_steps = steps * (2 if settings.get("flip") else 1)
        items += training(f"zoo {name}: {epochs} epochs x {model_steps // epochs} steps, batch {batch}"
                          + (" (photos + mirrors)" if settings.get("flip") else ""), cost, batch, model_steps,
                          epochs, checkpoints=True, val_images=test_images, val_batch=batch)
    # Evaluation: every model trained here and every course model (same networks) on the test photos.
    gray = images(MEASURE_BATCH, size, 1)
    for name in MODELS:
        torch.manual_seed(0)
        model = build_model(name, latent_dim=latent, width=width).eval()
        cost = measure_sampling(lambda n, model=model: evaluation.colorize(model, gray, SCORE_BATCH, n,
                                                                           torch.Generator().manual_seed(0)),
                                steps_sampling)
        items.append(scored(f"evaluate {name} (trained here and course weights)", cost, test_images, 2))
        if name == "unetddim":
            diffusion_eval = cost
    items.append(scored("temperature curve: 5 x unetddim on the test photos", diffusion_eval, test_images, 5))
    items.append(inference("DDPM draws: 4 x 8 photos", diffusion_eval, 4 * 8, 4))
    items.append(scored("LPIPS of every evaluation (model and gray)", lpips_cost(), test_images, 2 * 2 * len(MODELS)))
    return row("02", items, cifar_bytes() + torchvision_bytes("alexnet"))


# --------------------------------------------------------------------------- notebook 3
def notebook_03() -> Row:
    from lessons_lib import diffusion, inpainting

    p = notebook_picks("03")
    size, width, batch, n_test = p.one("SIZE"), p.one("WIDTH"), p.one("BATCH"), p.one("N_TEST")
    ddpm_epochs, inpaint_epochs = p.one("DDPM_EPOCHS"), p.one("INPAINT_EPOCHS")
    if p.one("DDPM_STEPS_PER_EPOCH") is not None or p.one("INPAINT_STEPS_PER_EPOCH") is not None:
        raise MissingCount("notebook 03 no longer trains full epochs; update the budget.")
    checkpoints = p.one("CKPT") is not None
    ddpm_steps, ddim_steps = p.one("DDPM_SAMPLE_STEPS"), p.one("DDIM_SAMPLE_STEPS")
    repaint_steps, jump, resample = p.one("REPAINT_STEPS"), p.one("JUMP_LENGTH"), p.one("JUMP_N_SAMPLE")
    per_epoch = batches(CIFAR10_TRAIN, batch, drop_last=True)   # train_inpainters: drop_last=True

    items, ddpm = [], None
    for method, epochs in (("ddpm", ddpm_epochs), ("unet", inpaint_epochs), ("unet-gan", inpaint_epochs),
                           ("transformer", inpaint_epochs)):
        cost = measure_task(lambda method=method: inpainting.make_task(method, image_size=size, width=width, seed=0),
                            lambda n: photos(n, size))
        if method == "ddpm":
            ddpm = cost
        items += training(f"{method}: {epochs} epochs x {per_epoch} steps, batch {batch}", cost, batch,
                          epochs * per_epoch, epochs, checkpoints=checkpoints)
    torch.manual_seed(0)
    denoiser = inpainting.make_task("ddpm", image_size=size, width=width).inference_model().eval()
    x = images(MEASURE_BATCH, size)
    t = torch.full((MEASURE_BATCH,), 500)
    call = measure_forward(lambda: denoiser(x, t))
    walk = diffusion.repaint_schedule(repaint_steps, jump, resample)
    down = sum(1 for a, b in zip([repaint_steps] + walk, walk) if b < a)   # denoising steps: one model call each
    items += [
        inference(f"DDPM sampling: {ddpm_steps} steps x 4 images", call, 4 * ddpm_steps, ddpm_steps),
        inference(f"DDIM sampling: {ddim_steps} steps x 4 images", call, 4 * ddim_steps, ddim_steps),
        inference(f"RePaint: {down} denoising steps x {n_test} held-out images", call, down * n_test, down,
                  memory=ddpm.step.saved * n_test + CUDA_CONTEXT_BYTES),
        inference(f"RePaint again: {down} steps x 4 images, twice, and the mixed masks", call, 3 * down * 4,
                  3 * down),
    ]
    for method in ("unet", "unet-gan", "transformer"):
        net = inpainting.inference_network(inpainting.make_task(method, image_size=size, width=width, seed=0)).eval()
        m = torch.ones(MEASURE_BATCH, 1, size, size)
        c = measure_forward(lambda net=net, m=m: net(x, m))
        items.append(inference(f"{method} fills {n_test} + 4 images", c, n_test + 4, 2))
    items.append(inference(f"Inception features of 6 x {n_test} images (Frechet distance)", inception_cost(),
                           6 * n_test, 6 * batches(n_test, 64)))
    return row("03", items, cifar_bytes() + torchvision_bytes("inception"))


# --------------------------------------------------------------------------- notebook 6
def notebook_06() -> Row:
    from lessons_lib import style
    from lessons_lib.models.vgg import VGGFeatures
    from lessons_lib.training import SupervisedTask

    p = notebook_picks("06")
    if p.one("FEATURES") != "imagenet":
        raise MissingCount("notebook 06: the full profile no longer uses ImageNet's VGG19; update the budget.")
    size, steps = p.one("SIZE"), p.one("STEPS")
    grid_size, grid_steps, betas = p.one("GRID_SIZE"), p.one("GRID_STEPS"), p.one("BETAS")
    pairs, judge_steps = p.one("JUDGE_PAIRS"), p.one("JUDGE_STEPS")
    styles = 2   # the grid's two styles
    adain_size, n_content, adain_epochs = p.one("ADAIN_SIZE"), p.one("N_CONTENT"), p.one("ADAIN_EPOCHS")
    sr_size, n_sr_train, n_sr_test = p.one("SR_SIZE"), p.one("N_SR_TRAIN"), p.one("N_SR_TEST")
    adain_batch, sr_batch = p.all("make_loader.batch_size", 2)
    sr_epochs = p.one("fit.epochs")

    def vgg(layers):
        # Random weights at the full width: the same FLOPs as ImageNet's VGG19, without a download.
        return VGGFeatures(layers, weights="random", width=64, verbose=False)

    # Gatys: one closure evaluation (features, content + style + TV loss, backward to the pixels), measured
    # at 64 px and scaled by the pixel count (every layer's work is proportional to it).
    extractor = vgg(style.STYLE_LAYERS + style.CONTENT_LAYERS)
    ref = 64
    image = photos(1, ref).requires_grad_(True)
    with torch.no_grad():
        feats = extractor(photos(1, ref))
        grams = {k: style.gram_matrix(feats[k]) for k in style.STYLE_LAYERS}
        content = feats["relu4_2"]

    def closure():
        f = extractor(image)
        loss = style.content_loss(f["relu4_2"], content) + 1e5 * style.style_loss(f, grams) \
            + style.total_variation(image)
        loss.backward()
        loss.item()

    c = measure(closure, 1, [extractor])
    frozen = sum(t.numel() * 4 for t in extractor.parameters())
    items = []
    for what, side, n_steps, runs in ((f"Gatys {steps} L-BFGS steps at {size} px", size, steps, 1),
                                      (f"alpha/beta grid: {styles} x {len(betas)} runs of {grid_steps} steps at "
                                       f"{grid_size} px", grid_size, grid_steps, styles * len(betas)),
                                      (f"judged pairs: {pairs} runs of {judge_steps} steps at {size} px", size,
                                       judge_steps, pairs)):
        scale = (side / ref) ** 2
        evals = LBFGS_EVALS_PER_STEP * n_steps * runs
        items.append(Item(what, c.flops * scale * evals, c.ops * evals, "fp32",
                          frozen + c.saved * scale + CUDA_CONTEXT_BYTES))

    adain_steps = batches(n_content, adain_batch) * adain_epochs
    cost = measure_task(lambda: style.AdaINTask(style.AdaINStyleTransfer(vgg(style.ADAIN_STYLE_LAYERS),
                                                                         residual=True), lr=1e-3),
                        lambda n: [photos(n, adain_size), photos(n, adain_size)])
    items += training(f"AdaIN decoder: {adain_epochs} epochs x {adain_steps // adain_epochs} steps, batch "
                      f"{adain_batch}", cost, adain_batch, adain_steps, adain_epochs, checkpoints=True)
    sr_steps = batches(n_sr_train, sr_batch) * sr_epochs
    for name in ("pixel MSE", "perceptual"):
        def make(name=name):
            net = style.SRNet(scale=4, width=32, blocks=4)
            loss = F.mse_loss if name == "pixel MSE" else style.PerceptualLoss(
                layers=("relu2_2",), pixel_weight=0.1, extractor=vgg(["relu2_2"]))
            return SupervisedTask(net, lr=1e-3, loss_fn=loss)

        cost = measure_task(make, lambda n: [photos(n, sr_size // 4), photos(n, sr_size)])
        items += training(f"SR ({name}): {sr_epochs} epochs x {sr_steps // sr_epochs} steps, batch {sr_batch}",
                          cost, sr_batch, sr_steps, sr_epochs)
    # Scoring: the AdaIN model on the figure's and the judged pairs, four SR nets + the feature distance.
    torch.manual_seed(0)
    model = style.AdaINStyleTransfer(vgg(style.ADAIN_STYLE_LAYERS), residual=True).eval()
    x = photos(MEASURE_BATCH, size)
    score = measure_forward(lambda: model(x, x))
    distance = vgg(style.DISTANCE_LAYERS)
    d = measure_forward(lambda: distance(photos(MEASURE_BATCH, sr_size)))
    net = style.SRNet(scale=4, width=32, blocks=4).eval()
    sr = measure_forward(lambda: net(photos(MEASURE_BATCH, sr_size // 4)))
    items += [scored(f"AdaIN on {pairs + 9} pairs at {size} px", score, pairs + 9, 1),
              scored(f"SR scores, 4 nets x {n_sr_test} crops", sr, n_sr_test, 4),
              scored(f"VGG feature distance of 5 SR outputs x {n_sr_test} crops", d, n_sr_test, 10)]
    return row("06", items, cifar_bytes() + torchvision_bytes("vgg19"))


# --------------------------------------------------------------------------- notebook 7
def notebook_07() -> Row:
    from lessons_lib import registry, translation
    from lessons_lib.models.pix2pix import PatchDiscriminator, UNetGenerator

    p = notebook_picks("07")
    size, n_scenes, n_test = p.one("SIZE"), p.one("N_SCENES"), p.one("N_TEST")
    if p.all("colour_images.limit")[0] is not None:
        raise MissingCount("notebook 07: CycleGAN's scoring no longer uses every test photo; update the budget.")
    p2p_batch, val_batch = p.all("make_loader.batch_size")[:2]
    recipe = translation.CYCLEGAN_RECIPES[p.one("DOMAINS")]   # CycleGAN's settings follow its domains
    if recipe.exact_hue is not None:
        raise MissingCount("notebook 07: the full profile no longer trains CycleGAN on horse2zebra; update the budget.")
    p2p_epochs, p2p_steps_per_epoch = p.one("P2P_EPOCHS"), p.one("P2P_STEPS")
    ngf_p2p = p.all("UNetGenerator.ngf", 1)[0]
    levels = p.all("UNetGenerator.num_downs", 1)[0]
    ndf_p2p = p.all("PatchDiscriminator.ndf", 1)[0]
    layers_p2p = p.all("PatchDiscriminator.n_layers", 1)[0]
    epochs, decay, pool = p.one("EPOCHS"), p.one("DECAY"), p.one("CycleGANTask.pool_size")
    cycle_size, cycle_batch = recipe.size, recipe.batch_size

    def p2p_generator():
        return UNetGenerator(in_channels=3, out_channels=3, num_downs=levels, ngf=ngf_p2p)

    # pix2pix trains the same U-Net twice: on L1 alone (no discriminator) and on L1 + GAN.
    p2p_steps = (p2p_steps_per_epoch or batches(n_scenes, p2p_batch)) * p2p_epochs
    items = []
    for name, gan in (("L1 alone", False), ("L1 + GAN", True)):
        def p2p_task(gan=gan):
            d = PatchDiscriminator(6, ndf=ndf_p2p, n_layers=layers_p2p) if gan else None
            return translation.Pix2PixTask(p2p_generator(), d, lr=2e-4, lambda_l1=100.0)

        cost = measure_task(p2p_task, lambda n: [images(n, size), images(n, size)], validate=True)
        items += training(f"pix2pix ({name}): {p2p_epochs} epochs x {p2p_steps // p2p_epochs} steps, batch "
                          f"{p2p_batch}, {size} px", cost, p2p_batch, p2p_steps, p2p_epochs, checkpoints=True,
                          val_images=n_test, val_batch=val_batch)

    def cycle_task():
        return translation.CycleGANTask(recipe.generator(), recipe.generator(), recipe.discriminator(),
                                        recipe.discriminator(), lr=recipe.lr, lambda_cycle=10.0,
                                        lambda_identity=recipe.lambda_identity,
                                        lambda_luminance=recipe.lambda_luminance, pool_size=pool,
                                        n_epochs=epochs, n_epochs_decay=decay)

    def full_pools(task):   # the image pools fill to pool_size images each and are checkpointed
        image = 3 * cycle_size * cycle_size * 4
        return sum((pool - len(q)) * image for q in (task.pool_a, task.pool_b))

    cost = measure_task(cycle_task, lambda n: [images(n, cycle_size), images(n, cycle_size)],
                        extra_checkpoint_bytes=full_pools)
    per_epoch = batches(max(HORSE2ZEBRA_TRAIN_A, HORSE2ZEBRA_TRAIN_B), cycle_batch)
    items += training(f"CycleGAN {recipe.ngf} filters, {recipe.blocks} blocks, {cycle_size} px: {epochs}+{decay} "
                      f"epochs x {per_epoch} steps, batch {cycle_batch}", cost, cycle_batch,
                      per_epoch * (epochs + decay), epochs + decay, checkpoints=True)
    torch.manual_seed(0)
    g = p2p_generator().eval()
    fwd = measure_forward(lambda: g(images(MEASURE_BATCH, size)))
    items.append(scored(f"pix2pix scores: 6 passes over {n_test} scenes (4 generators; the 2 course ones again "
                        "for the claims)", fwd, n_test, 6))
    return row("07", items, cifar_bytes() + registry.get_source("horse2zebra").size)
