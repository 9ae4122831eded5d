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
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import course_weights, tables
from . import diffusion as D
from . import masks as M
from . import validate as V
from .adversarial import AdversarialTask, discriminator_loss, gan_adam
from .images import to_signed, to_unit
from .models.inpainting import ConvDiscriminator, InpaintUNet, PatchTransformer
from .models.time_unet import TimeUNet
from .training import DiffusionTask, Task

__all__ = ["METHODS", "InpaintUNet", "ConvDiscriminator", "PatchTransformer", "composite",
           "masked_mse", "masked_psnr", "naive_fill", "InpaintTask", "AdversarialInpaintTask",
           "make_task", "inpaint", "repaint_inpaint", "compare_methods",
           "train_inpainters", "run_inpainters", "markdown_table", "WIDTH"]

METHODS = ("unet", "unet-gan", "transformer", "ddpm")


# --------------------------------------------------------------------------- losses, metrics
def composite(prediction: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, holes from ``prediction``."""
    return mask * image + (1 - mask) * prediction


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hole pixels only (mask 0), averaged over those pixels."""
    hole = (1 - mask).expand_as(target)
    return ((prediction - target) ** 2 * hole).sum() / hole.sum().clamp_min(1)


def masked_psnr(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                data_range: float = 1.0) -> torch.Tensor:
    """PSNR (dB) of each image over its hole pixels only, (N,). Images in [0, data_range]."""
    V.number("data_range", data_range, 0.0, low_open=True, hint="Use 1 for [0, 1] images, 255 for 0..255.")
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape.")
    hole = (1 - mask.to(output)).expand_as(output)
    n = hole.flatten(1).sum(1)
    if (n == 0).any():
        raise ValueError("A mask has no hole pixels: the masked-region PSNR is undefined for it.")
    mse = ((output - target) ** 2 * hole).flatten(1).sum(1) / n
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-12))


def naive_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The baseline: each hole pixel is the mean colour of that image's known pixels."""
    _check_images(images)
    mask = D.check_mask(mask, images).to(images)
    mean = (images * mask).flatten(2).sum(2) / mask.flatten(2).sum(2)
    return composite(mean[..., None, None].expand_as(images), images, mask)


def _check_images(images, name: str = "images") -> None:
    """A (N, 3, H, W) batch in [0, 1], the interface of this module."""
    if not torch.is_tensor(images) or images.dim() != 4:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"{name} must be a (N, C, H, W) batch in [0, 1], got {got}.")
    V.value_range(name, images, 0.0, 1.0, hint="Inpainting takes [0, 1] images (what datasets and "
                  "metrics use); it converts to the models' [-1, 1] itself.")


# --------------------------------------------------------------------------- training tasks
class _MaskRNG:
    """A seeded generator for training masks, saved in checkpoints so a resumed run
    sees the same masks as an uninterrupted one.

    It lives on the training device, where each batch's masks are drawn in one call (a
    per-image loop on the CPU cannot keep up with a GPU). CPU and CUDA generators are
    different algorithms: moved to another kind of device, the generator is reseeded from
    its own state, so the masks stay fixed by the seed (and by the checkpoint resumed).
    """

    def _init_masks(self, mask_kind: str, seed: int):
        M.make_masks(mask_kind, 1, 8, seed=0)  # fails early on an unknown kind
        self.mask_kind = mask_kind
        self.mask_generator = torch.Generator().manual_seed(seed)

    def _mask_generator_on(self, device) -> torch.Generator:
        device, g = torch.device(device), self.mask_generator
        other_index = None not in (device.index, g.device.index) and device.index != g.device.index
        if g.device.type != device.type or other_index:
            self.mask_generator = g = _reseeded(g.get_state(), device)
        return g

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        self._mask_generator_on(self.device)  # before fit loads a checkpoint's state into it
        return out

    def _batch(self, batch):
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        x = to_signed(images)
        g = self._mask_generator_on(x.device)
        mask = M.make_masks(self.mask_kind, x.shape[0], tuple(x.shape[-2:]), seed=g).to(x.dtype)
        return x, mask

    def extra_state(self) -> dict:
        # get_state() is a CPU tensor on every device; the device type says how to read it.
        return {"mask_rng": self.mask_generator.get_state().cpu(),
                "mask_rng_device": self.mask_generator.device.type}

    def load_extra_state(self, state: dict) -> None:
        if "mask_rng" not in state:
            return
        saved = state["mask_rng"].cpu()
        # Checkpoints written before the masks moved to the training device drew them on the CPU.
        if state.get("mask_rng_device", "cpu") == self.mask_generator.device.type:
            self.mask_generator.set_state(saved)
        else:  # written on another kind of device: its state cannot be set here
            self.mask_generator = _reseeded(saved, self.mask_generator.device)


def _reseeded(state: torch.Tensor, device) -> torch.Generator:
    """A generator on ``device`` whose seed is fixed by another generator's ``state``."""
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    return torch.Generator(device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class InpaintTask(_MaskRNG, Task):
    """Masked-MSE training of ``model(masked, mask) -> image`` on random masks of ``mask_kind``.

    Batches are [0, 1] image tensors (or (images, ...) tuples); masks are drawn per batch.
    """

    def __init__(self, model: nn.Module, lr: float = 2e-3, mask_kind: str = "mixed", seed: int = 0):
        super().__init__({"model": model}, {"model": torch.optim.Adam(model.parameters(), lr=lr)})
        self._init_masks(mask_kind, seed)

    def _loss(self, batch):
        x, mask = self._batch(batch)
        pred = self.models["model"](M.apply_mask(x, mask), mask)
        return masked_mse(pred, x, mask)

    def training_step(self, batch):
        return {"loss": self.optimize(self._loss(batch), "model")}

    def validation_step(self, batch):
        return {"loss": float(self._loss(batch))}


class AdversarialInpaintTask(_MaskRNG, AdversarialTask):
    """Masked MSE plus an adversarial term for the generator: ``masked MSE - lambda log D(G)``.

    The discriminator learns real image vs. composite (known pixels + generated hole)
    with binary cross-entropy; ``adv_weight`` is lambda (Context Encoders used 0.001
    beside 0.999 for the reconstruction; 0.01 here, so that the term still shows in
    short training runs). -log D(G) is computed as softplus(-logit), the same value
    without overflow. The update is :class:`lessons_lib.adversarial.AdversarialTask`'s.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, lr: float = 2e-3,
                 d_lr: float = 2e-4, adv_weight: float = 1e-2, mask_kind: str = "mixed", seed: int = 0):
        super().__init__({"generator": generator, "discriminator": discriminator},
                         {"generator": torch.optim.Adam(generator.parameters(), lr=lr),
                          "discriminator": gan_adam(discriminator.parameters(), d_lr)})
        self.adv_weight = adv_weight
        self._init_masks(mask_kind, seed)

    def generate(self, batch):
        x, mask = self._batch(batch)
        return x, mask, composite(self.models["generator"](M.apply_mask(x, mask), mask), x, mask)

    def discriminator_loss(self, batch, fakes):
        x, mask, fake = fakes
        d = self.models["discriminator"]
        return discriminator_loss(d(x, mask), d(fake.detach(), mask), "vanilla")

    def generator_losses(self, batch, fakes):
        x, mask, fake = fakes
        mse = masked_mse(fake, x, mask)
        adv = F.softplus(-self.models["discriminator"](fake, mask)).mean()  # = -log D(fake)
        return {"loss": mse + self.adv_weight * adv, "masked_mse": mse, "g_adv": adv}

    def validation_step(self, batch):
        x, mask = self._batch(batch)
        pred = self.models["generator"](M.apply_mask(x, mask), mask)
        return {"loss": float(masked_mse(pred, x, mask))}


#: Every inpainting network's channel width unless told otherwise: the course weights' (and notebook 3's).
WIDTH = 32


def make_task(method: str, image_size: int = 32, width: int = WIDTH, lr: float | None = None,
              seed: int = 0, schedule=None, loss: str = "mse", **kwargs) -> Task:
    """A fresh, seeded model and its training task for one of :data:`METHODS`.

    ``width`` scales every network (:data:`WIDTH`, the course weights', by default).
    Extra keyword arguments go to the model (e.g. ``depth`` for the transformer,
    ``channel_mults`` for the DDPM UNet).
    """
    V.choice("inpainting method", method, METHODS)
    torch.manual_seed(seed)
    if method == "unet":
        return InpaintTask(InpaintUNet(width=width, **kwargs), lr=lr or 2e-3, seed=seed)
    if method == "unet-gan":
        return AdversarialInpaintTask(InpaintUNet(width=width, **kwargs),
                                      ConvDiscriminator(width=width, image_size=image_size),
                                      lr=lr or 2e-3, seed=seed)
    if method == "transformer":
        kwargs.setdefault("dim", 4 * width)
        return InpaintTask(PatchTransformer(image_size=image_size, **kwargs), lr=lr or 1e-3, seed=seed)
    kwargs.setdefault("channel_mults", (1, 2, 2))
    # The DDPM: v-prediction on a cosine schedule with averaged weights, the recipe that
    # learns in minutes (see lessons_lib.diffusion); the images are diffused in [-1, 1].
    return DiffusionTask(TimeUNet(width=width, **kwargs), schedule=schedule or default_schedule(),
                         lr=lr or 2e-3, loss=loss, target=_signed_images, ema_decay=0.999)


def default_schedule() -> D.NoiseSchedule:
    """The DDPM inpainter's schedule: cosine, T = 1000, v-prediction."""
    return D.make_schedule("cosine", 1000, "v_prediction")


def _signed_images(cond, images: torch.Tensor) -> torch.Tensor:
    return to_signed(images)


# --------------------------------------------------------------------------- inference
@torch.no_grad()
def inpaint(model: nn.Module, images: torch.Tensor, mask: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Fills the holes of [0, 1] ``images`` with a trained ``model(masked, mask)``; returns
    [0, 1] composites (known pixels exactly the input's)."""
    _check_images(images)
    V.count("batch_size", batch_size, hint="It is the number of images per forward pass, e.g. 64.")
    mask = D.check_mask(mask, images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_signed(images[i:i + batch_size].to(device))
        m = (mask[i:i + batch_size] if mask.shape[0] > 1 else mask).to(device)
        pred = model(M.apply_mask(x, m), m)
        out.append(to_unit(pred).clamp(0, 1).cpu())
    model.train(was_training)
    return composite(torch.cat(out), images.cpu(), mask.cpu())


def repaint_inpaint(model: nn.Module, images: torch.Tensor, mask: torch.Tensor, schedule=None,
                    num_inference_steps: int = 50, jump_length: int = 5, jump_n_sample: int = 2,
                    generator: torch.Generator | None = None, progress: bool = True) -> torch.Tensor:
    """RePaint with an unconditional denoiser on [0, 1] ``images``; returns [0, 1] composites."""
    _check_images(images)
    schedule = schedule if schedule is not None else default_schedule()
    mask = D.check_mask(mask, images)
    was_training = model.training
    model.eval()
    out = D.repaint_sample(model, to_signed(images), mask, schedule, num_inference_steps=num_inference_steps,
                           jump_length=jump_length, jump_n_sample=jump_n_sample, generator=generator,
                           progress=progress)
    model.train(was_training)
    # RePaint already ends on the known pixels; pasting the [0, 1] originals back also
    # removes the rounding of the [-1, 1] round trip.
    return composite(to_unit(out).clamp(0, 1).cpu(), images.cpu(), mask.cpu())


def compare_methods(outputs: dict[str, torch.Tensor], target: torch.Tensor,
                    mask: torch.Tensor) -> list[dict]:
    """Rows {method, masked_psnr, masked_psnr_std, gain_over_naive} for each method's [0, 1]
    outputs, best first; "naive" is computed here when not given. The std is None for one image."""
    _check_images(target, "target")
    for name, out in dict(outputs).items():
        if not torch.is_tensor(out) or out.shape != target.shape:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"The output of {name!r} is {got}; every output must have the target's "
                             f"shape {tuple(target.shape)}.")
        _check_finite_output(name, out)
        _check_images(out, f"the output of {name!r}")
    outputs = dict(outputs)
    mask = D.check_mask(mask, target)
    outputs.setdefault("naive", naive_fill(target, mask))
    naive = float(masked_psnr(outputs["naive"], target, mask).mean())
    rows = []
    for name, out in outputs.items():
        p = masked_psnr(out.cpu(), target, mask)
        # The spread of a single image's PSNR is undefined: None (null in JSON), never NaN.
        std = float(p.std()) if len(p) > 1 else None
        rows.append({"method": name, "masked_psnr": float(p.mean()), "masked_psnr_std": std,
                     "gain_over_naive": float(p.mean()) - naive})
    return sorted(rows, key=lambda r: -r["masked_psnr"])


# --------------------------------------------------------------------------- the whole comparison
def train_inpainters(train_images, methods=METHODS, epochs: int | dict = 1,
                     steps_per_epoch: int | dict | None = None, batch_size: int = 32, width: int = WIDTH,
                     seed: int = 0, ckpt_root=None, progress: bool = True,
                     task_kwargs: dict | None = None, device=None) -> dict:
    """Trains each method of ``methods`` on the same [0, 1] image dataset through
    :func:`lessons_lib.training.fit`; returns {method: (task, history, step_losses)}.

    ``epochs`` and ``steps_per_epoch`` may be dicts per method (the DDPM needs more);
    ``ckpt_root``: checkpoints under ``ckpt_root/<method>`` (and resume from there).
    ``task_kwargs``: {method: extra keyword arguments for :func:`make_task`}.
    ``step_losses`` holds every step's loss (the masked MSE for every method but the DDPM,
    whose loss is its noise-prediction loss).
    """
    from pathlib import Path

    from .data import make_loader
    from .training import fit

    def per(value, method):
        return value.get(method) if isinstance(value, dict) else value

    results = {}
    for method in methods:
        task = make_task(method, width=width, seed=seed, **(task_kwargs or {}).get(method, {}))
        loader = make_loader(train_images, batch_size=batch_size, shuffle=True, seed=seed, drop_last=True)
        steps: list[float] = []
        history = fit(task, loader, epochs=per(epochs, method), steps_per_epoch=per(steps_per_epoch, method),
                      ckpt_dir=Path(ckpt_root) / method if ckpt_root is not None else None,
                      progress=progress, desc=method, device=device,
                      # the GAN's masked MSE, so its curve is comparable with the others
                      on_step=lambda e, s, logs, steps=steps: steps.append(logs.get("masked_mse", logs.get("loss"))))
        results[method] = (task, history, steps)
    return results


def run_inpainters(tasks: dict, images: torch.Tensor, mask: torch.Tensor, schedule=None,
                   num_inference_steps: int = 50, jump_length: int = 5, jump_n_sample: int = 2,
                   seed: int = 0, progress: bool = True) -> dict[str, torch.Tensor]:
    """Each trained method's [0, 1] inpainting of ``images`` with ``mask``, plus "naive".

    ``tasks``: {method: Task} (or the (task, ...) tuples :func:`train_inpainters` returns).
    The DDPM goes through RePaint with the given step count, jump length and resample count.
    """
    mask = D.check_mask(mask, images)
    outputs = {"naive": naive_fill(images, mask)}
    for method, task in tasks.items():
        task = task[0] if isinstance(task, tuple) else task
        if isinstance(task, DiffusionTask):
            outputs[method] = repaint_inpaint(task.inference_model(), images, mask,
                                              schedule if schedule is not None else task.schedule,
                                              num_inference_steps, jump_length, jump_n_sample,
                                              generator=torch.Generator().manual_seed(seed), progress=progress)
        else:
            model = task.models["generator"] if "generator" in task.models else task.models["model"]
            outputs[method] = inpaint(model, images, mask)
        _check_finite_output(method, outputs[method])  # before the next method's minutes of RePaint
    return outputs


def _check_finite_output(method: str, out: torch.Tensor) -> None:
    bad = ~torch.isfinite(out.detach()).flatten(1).all(1)
    if bad.any():
        raise ValueError(f"The {method} inpainter produced NaN or infinite pixels in {int(bad.sum())} of "
                         f"{len(out)} images: its weights are broken (a diverged training run?). Retrain it "
                         f"or load other weights; nothing was scored.")


def markdown_table(rows: list[dict]) -> str:
    """The rows of :func:`compare_methods` as a Markdown table, best PSNR in bold."""
    best = max(r["masked_psnr"] for r in rows)
    cells = []
    for r in rows:
        psnr = f"{r['masked_psnr']:.2f}"
        if r["masked_psnr"] == best:
            psnr = f"**{psnr}**"
        std = "n/a" if r["masked_psnr_std"] is None else f"{r['masked_psnr_std']:.2f}"  # one image: no spread
        cells.append([r["method"], psnr, std, f"{r['gain_over_naive']:+.2f}"])
    return tables.markdown_table(["method", "masked-region PSNR (dB)", "std", "vs naive fill (dB)"], cells)


# --------------------------------------------------------------------------- weights
def inference_network(task: Task) -> nn.Module:
    """The network that inpaints: the generator, the model, or the DDPM's averaged weights."""
    if isinstance(task, DiffusionTask):
        return task.inference_model()
    return task.models["generator"] if "generator" in task.models else task.models["model"]


def _course_task(name: str, state: dict, info: dict) -> Task:
    config = dict(info["config"])
    task = make_task(name.split("/", 1)[1], image_size=config.pop("image_size", 32), width=config.pop("width"),
                     **config)
    course_weights.load_into(inference_network(task), state, name)
    return task


# course_weights.load("inpainting/<method>") gives the network that inpaints; load_course_task its task.
course_weights.register("inpainting/", lambda name, state, info: inference_network(_course_task(name, state, info)))


def load_course_task(method: str, device=None) -> Task:
    """The task of ``method`` holding the course weights shipped in ``lessons_lib/weights``."""
    V.choice("inpainting method", method, METHODS)
    task = _course_task(f"inpainting/{method}", *course_weights.load_state(f"inpainting/{method}"))
    task.to(torch.device(device) if device is not None else torch.device("cpu"))
    return task.eval()


# --------------------------------------------------------------------------- command line
def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m lessons_lib.inpainting",
        description="Train the four inpainters on a folder of photos, or test them (with the course "
                    "weights or your own) on centre-box holes beside the naive fill.")
    p.add_argument("--mode", choices=["train", "test"], default="test")
    p.add_argument("--methods", default="all", help=f"comma-separated, from {', '.join(METHODS)} (default all)")
    p.add_argument("--data", default=None, help="folder of colour images, or 'cifar10' (default: by profile)")
    p.add_argument("--out", default="runs/inpainting", help="output folder (checkpoints, metrics, samples)")
    p.add_argument("--weights", type=_weights_arg, default=None,
                   help="test: 'course' (the shipped weights), an epoch number, or the latest epoch (default)")
    # Number flags say what they accept ("a whole number >= 1 (e.g. 10)") instead of argparse's
    # "invalid int value", and refuse 0, negatives and 2.5 before anything runs.
    p.add_argument("--epochs", type=V.int_arg(1, 10), default=10)
    p.add_argument("--batch_size", type=V.int_arg(1, 64), default=64)
    p.add_argument("--width", type=V.int_arg(1, WIDTH), default=WIDTH)
    p.add_argument("--image_size", type=V.int_arg(8, 32), default=32)
    p.add_argument("--limit", type=V.int_arg(1, 64), default=None, help="use at most this many images")
    p.add_argument("--steps", type=V.int_arg(1, 25), default=25, help="RePaint denoising steps (the DDPM)")
    p.add_argument("--seed", type=V.int_arg(0, 0), default=0)
    p.add_argument("--overwrite", action="store_true", help="replace earlier metrics and samples")
    return p


def _weights_arg(value: str):
    if value == "course":
        return value
    if not value.isdigit() or int(value) < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"expected 'course' or an epoch number (1, 2, ...), got {value!r}")
    return int(value)


def _methods(text: str) -> list[str]:
    names = list(METHODS) if text == "all" else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"Unknown inpainting method(s) {unknown or text!r}. Use 'all' or some of: "
                         f"{', '.join(METHODS)}.")
    return names


def _check_args(args, methods: list[str]):
    """Every argument, before any work (the evaluation runs RePaint: minutes)."""
    from pathlib import Path

    if args.mode == "train" and args.weights is not None:
        raise ValueError(f"--weights {args.weights} chooses the weights that --mode test evaluates; training "
                         f"always starts from new weights (or resumes from the checkpoints in --out). "
                         f"Leave --weights out to train, or use --mode test.")
    if args.image_size % 8:
        raise ValueError(f"--image_size must be a multiple of 8 (the networks halve the photos), got "
                         f"{args.image_size}. Try 32.")
    if args.weights == "course":
        for m in methods:
            size = course_weights.entry(f"inpainting/{m}").get("config", {}).get("image_size", 32)
            if args.image_size != size:
                raise ValueError(f"The course weights of {m} inpaint {size}x{size} photos, not "
                                 f"--image_size {args.image_size}: leave --image_size out with --weights course.")
    if args.data is not None and str(args.data).lower() != "cifar10" and not Path(args.data).exists():
        raise FileNotFoundError(f"--data '{args.data}' does not exist. Pass a folder of colour images "
                                f"(flat, or one sub-folder per class), or 'cifar10'.")
    out = V.output_dir(args.out, "output folder (--out)")
    if args.mode == "test" and not args.overwrite:
        for name in ("metrics_inpainting.json", "samples_inpainting.png"):
            if (out / name).exists():
                raise FileExistsError(f"'{out / name}' already exists and is kept. Pass --overwrite to "
                                      f"replace it, or choose another --out folder.")
    return out


def _load_weights(task: Task, method: str, args, folder, epoch: int | None = None) -> None:
    """Loads a run's checkpoint into ``task``, saying which flags must match the training run's."""
    from .training import CheckpointError, load_weights

    try:
        load_weights(task, folder, epoch)
    except CheckpointError as err:
        if "do not fit" not in str(err):
            raise
        raise CheckpointError(f"The checkpoints in '{folder}' do not fit a {method} of --width {args.width} "
                              f"for --image_size {args.image_size}: pass the --width and --image_size it was "
                              f"trained with (or another --out folder).") from None


def _load_task(method: str, args, out) -> Task:
    from pathlib import Path

    if args.weights == "course":
        task, source = load_course_task(method), "the course weights"
    else:
        task = make_task(method, image_size=args.image_size, width=args.width, seed=args.seed)
        _load_weights(task, method, args, Path(out) / method, args.weights)
        source = f"'{Path(out) / method}', epoch {args.weights or 'latest'}"
    broken = [k for k, v in inference_network(task).state_dict().items()
              if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ValueError(f"The {method} weights ({source}) hold NaN or infinite values ({broken[0]}"
                         f"{' and more' if len(broken) > 1 else ''}): their training diverged. Retrain "
                         f"{method}, choose another --weights epoch, or leave it out of --methods.")
    return task.eval()


def _check_resumable(methods, args, out) -> None:
    """Training resumes from ``out/<method>``: checkpoints of another size stop it before any training."""
    from .training import latest_checkpoint

    for m in methods:
        if latest_checkpoint(out / m) is not None:
            _load_weights(make_task(m, image_size=args.image_size, width=args.width, seed=args.seed), m, args,
                          out / m)


def _finite_record(record: dict, path) -> None:
    """Metrics are never written as NaN: says which method's which number is not finite."""
    import math

    bad = [f"{m}: {k}" for m, row in record.items() if isinstance(row, dict)
           for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"Not writing '{path}': {'; '.join(bad)} came out NaN or infinite. Those weights "
                         f"are broken (diverged training?): retrain them or leave them out of --methods.")


def run(argv=None) -> dict:
    """The command line without the exit-code handling (raises on bad input)."""
    import json

    from .data import load_photos
    from .figures import save_rows
    from .files import atomic_write_text

    args = build_parser().parse_args(argv)
    methods = _methods(args.methods)
    out = _check_args(args, methods)
    split = "train" if args.mode == "train" else "test"
    if args.mode == "train":
        _check_resumable(methods, args, out)
        photos = load_photos(args.data, args.image_size, split, args.limit, args.seed, multiple_of=8)
        if args.batch_size > len(photos):  # every epoch drops the incomplete last batch
            raise ValueError(f"--batch_size {args.batch_size} is more than the {len(photos)} photos to train on: "
                             f"lower --batch_size (or use more photos).")
        results = train_inpainters(photos, methods, epochs=args.epochs, batch_size=args.batch_size,
                                   width=args.width, seed=args.seed, ckpt_root=out)
        return {m: dict(r[1]) for m, r in results.items()}
    from .training import main_process

    if not main_process():  # under accelerate launch, testing is the main process's alone
        return {}
    tasks = {m: _load_task(m, args, out) for m in methods}  # weights first: a wrong epoch fails at once
    photos = load_photos(args.data, args.image_size, split, args.limit, args.seed, multiple_of=8)
    mask = M.center_box(len(photos), tuple(photos.shape[-2:]))
    outputs = run_inpainters(tasks, photos, mask, num_inference_steps=args.steps, seed=args.seed)
    rows = compare_methods(outputs, photos, mask)
    record = {r["method"]: {k: v for k, v in r.items() if k != "method"} for r in rows}
    metrics_path = out / "metrics_inpainting.json"
    _finite_record(record, metrics_path)
    notes = {"note": "masked_psnr_std is null: one photo has no spread (use more photos)"} if len(photos) == 1 else {}
    n = min(8, len(photos))
    with V.writing(out / "samples_inpainting.png"):
        save_rows({"input": M.apply_mask(photos[:n], mask[:n], fill=0.5), **{k: v[:n] for k, v in outputs.items()},
                   "original": photos[:n]}, out / "samples_inpainting.png", overwrite=args.overwrite)
    with V.writing(metrics_path):
        atomic_write_text(metrics_path, json.dumps({"weights": str(args.weights or "latest"), "photos": len(photos),
                                                    "mask": "center box, half the side", **notes, **record},
                                                   indent=1, allow_nan=False))
    print(markdown_table(rows))
    return record


def main(argv=None) -> int:
    """Entry point: bad input prints one clear message and exits with status 2."""
    from .cli import cli_main

    return cli_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
