"""The Colab budget: what each notebook's full profile costs on a free T4, computed, not guessed.

``python -m course_tools.budget`` prints, per notebook 01..07, the estimated T4 minutes, the
gigabytes of checkpoints on disk and the peak GPU memory, and the course total.

Where the numbers come from
---------------------------
* **Counts from the notebooks.** Every epoch count, batch size, resolution, width and sampling
  step count is read from the notebook itself (:func:`read_picks`: the code cells parsed with
  ``ast``; the ``full=`` value of each ``pick(...)`` and the plain literal assignments and
  keyword arguments), so the budget cannot drift from what a student runs. A name the budget
  needs and the notebook lacks is an error (and a test). Dataset sizes the notebooks do not
  state are below, with their sources.
* **FLOPs measured, not estimated.** For every training run the real network is built with
  ``lessons_lib``'s own builders and the notebook's arguments, and one real training step
  (``task.training_step``, every network of the step: both generators and both
  discriminators for CycleGAN, the EMA copy of the DDPM...) runs under
  ``torch.utils.flop_counter.FlopCounterMode`` on the CPU at full resolution on a batch of
  :data:`MEASURE_BATCH` images; FLOPs and saved activations are linear in the batch, so they
  are scaled to the full batch. Sampling and evaluation calls (DDPM/DDIM steps x images,
  RePaint's denoising steps, LPIPS, Inception, VGG) are measured the same way, forward only.
  Notebooks 4 and 5 run pretrained Stable Diffusion pipelines: their UNet, VAE and text
  encoders are built from the published configurations (:data:`SD15_UNET`, ...) with random
  weights on the ``meta`` device (nothing is downloaded or allocated) and their FLOPs per
  call counted the same way, times the calls the notebook makes (``int(steps x strength)``
  denoising steps, classifier-free guidance doubling the UNet batch, InstructPix2Pix's
  tripling it).
* **Dispatch overhead counted too.** Small networks on 32x32 photos are not limited by FLOPs
  but by eager PyTorch launching one kernel per operation: the operations of each step are
  counted (a ``TorchDispatchMode``) and charged :data:`OP_SECONDS` each.
* **Memory.** Peak GPU memory of a training run = weights + gradients + Adam's two moments
  (+ frozen networks and EMA copies) + the activations saved for backward at the full batch
  (``torch.autograd.graph.saved_tensors_hooks``, counted in float32, an upper bound under
  autocast) + :data:`CUDA_CONTEXT_GB`. For the pipelines: the fp16 weights of every pipeline
  the notebook keeps loaded + the peak of live activations of the largest UNet/VAE call,
  tracked on the meta device (with attention materialised: an upper bound for PyTorch's
  memory-efficient attention).
* **Checkpoints.** The bytes of the task's real ``state_dict`` after one step (weights, Adam
  state, schedulers, image pools filled to their size) times the checkpoints
  ``training.fit`` keeps: its default ``KEEP`` most recent plus the best by validation loss
  when there is validation, plus one more while a new one is written and before the oldest
  is deleted.

Converting FLOPs to minutes (an **estimate**, not a measurement)
----------------------------------------------------------------
A T4 peaks at 65 TFLOPS in fp16 on its tensor cores and 8.1 TFLOPS in fp32 (NVIDIA's figures,
e.g. https://sysrqmts.com/en/gpus/nvidia/tesla/t4: 65.13 and 8.141 TFLOPS, 16 GB GDDR6 at
320 GB/s; Colab shows 15 GB of it). Real work reaches a fraction of that, so each workload gets
an effective rate (:data:`RATES`):

* ``sd``: 11 TFLOPS. Calibrated on Hugging Face's published T4 benchmark of diffusers with
  PyTorch 2 (docs/source/en/optimization/torch2.0.md in huggingface/diffusers, "T4 (batch size:
  1)": SD txt2img 6.9 iterations/s, fp16, SDPA, no compile). One iteration is one SD 1.5 UNet
  call at batch 2 (classifier-free guidance) on 64x64 latents, 1.61 TFLOP by our count:
  6.9 x 1.61 = 11.1 TFLOPS, i.e. 17 % of the fp16 peak (a test checks the two stay consistent).
* ``amp``: 4 TFLOPS for the course's own networks trained by ``training.fit`` (autocast fp16,
  channels_last on CUDA). They are narrow (16 to 256 channels, 32x32 photos; 64 to 256 channels
  at 128 px for CycleGAN), so their convolutions are much smaller GEMMs than SD's 320 to 1280
  channels at 64x64, and instance/batch norm, reflection padding and the losses are bound by
  the 320 GB/s memory: we take about a third of what SD reaches.
* ``fp32``: 3 TFLOPS for work without autocast (notebook 1's hand-written loop, every
  sampling loop and evaluation, which call the models directly, and the Gatys optimisation):
  about 37 % of the 8.1 TFLOPS fp32 peak (Turing has no TF32).
* :data:`OP_SECONDS` = 15 microseconds per dispatched PyTorch operation: eager mode launches
  one CUDA kernel per operation, a few microseconds each, plus the dispatcher and autograd
  bookkeeping on Colab's two slow vCPUs (Horace He, "Making Deep Learning Go Brrrr From First
  Principles", https://horace.io/brrr_intro.html: small models are overhead-bound).
  Operations are counted on the CPU with Adam's ``foreach`` path, which CUDA uses by default.

Each notebook also pays a fixed overhead: :data:`INSTALL_MINUTES` for the install cell, its
downloads at :data:`DOWNLOAD_BYTES_PER_S` (dataset archives at the registry's recorded sizes,
torchvision weights at their parameter count x 4 bytes, pipeline weights at their parameter
count x 2 or 4 bytes by the variants ``editing.specs.PUBLISHED`` records) and
:data:`PIPELINE_LOAD_MINUTES` per pipeline loaded. The time the CPU spends between steps
(data loading, Canny edges, metrics on the CPU) is not counted: the data path is meant to stay
under a tenth of a step (issue 21, item 3).

The estimate is an estimate: a T4 run may be faster or slower by tens of percent. The limits
it is checked against (40 minutes and 5 GB per notebook, 3 hours in all, 15 GB of GPU memory)
leave room for that.
"""
from __future__ import annotations

import ast
import functools
import io
import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "01": "01_cifar10_colorization.ipynb",
    "02": "02_colorization_zoo.ipynb",
    "03": "03_diffusion_inpainting.ipynb",
    "04": "04_stable_diffusion_editing.ipynb",
    "05": "05_instruct_pix2pix.ipynb",
    "06": "06_style_transfer.ipynb",
    "07": "07_pix2pix_cyclegan.ipynb",
}

# --------------------------------------------------------------------------- limits (issue 21)
MAX_NOTEBOOK_MINUTES = 40.0
MAX_NOTEBOOK_CHECKPOINT_GB = 5.0
MAX_COURSE_MINUTES = 180.0
T4_MEMORY_GB = 15.0          # what Colab reports for its 16 GB T4

# --------------------------------------------------------------------------- dataset sizes
# CIFAR-10: 50,000 training and 10,000 test images (Krizhevsky 2009; TensorFlow Datasets'
# catalogue, https://www.tensorflow.org/datasets/catalog/cifar10: splits 'train' 50,000, 'test' 10,000).
CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000
# horse2zebra (CycleGAN's dataset): trainA (horses) 1,067, trainB (zebras) 1,334 images.
# Horses: the dataset card of huggingface.co/datasets/renumics/spotlight-gigant-horse2zebra-enrichment
# (config "horse", split train, num_examples 1067, test 120); zebras: the viewer of
# huggingface.co/datasets/huggan/horse2zebra (train 1.33k rows, test 140) and gigant/horse2zebra
# (zebra 1.47k rows in all = 1,334 + 140).
HORSE2ZEBRA_TRAIN_A, HORSE2ZEBRA_TRAIN_B = 1_067, 1_334

# --------------------------------------------------------------------------- throughput (see docstring)
T4_FP16_PEAK, T4_FP32_PEAK = 65e12, 8.1e12
SD_T4_ITERATIONS_PER_S = 6.9   # diffusers' T4 benchmark, SD txt2img, batch 1, torch 2.0, no compile
RATES = {"sd": 11e12, "amp": 4e12, "fp32": 3e12}
OP_SECONDS = 15e-6
INSTALL_MINUTES = 1.0
DOWNLOAD_BYTES_PER_S = 20e6
PIPELINE_LOAD_MINUTES = 0.5
CUDA_CONTEXT_GB = 0.5          # CUDA context, cuDNN/cuBLAS workspaces and allocator slack

#: The batch a step is measured at when one image will not do (FLOPs and saved activations are
#: scaled linearly to the full batch): BatchNorm in training mode needs more than one value per channel.
MEASURE_BATCH = 2

# --------------------------------------------------------------------------- published SD configs
# unet/config.json of stable-diffusion-v1-5 (also the inpainting UNet with in_channels 9 and
# InstructPix2Pix's with 8): the architecture of the original v1-inference.yaml (CompVis/
# stable-diffusion): model_channels 320, channel_mult [1, 2, 4, 4], 2 res blocks, attention at
# the first three levels, 8 heads, context 768.
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
# vae/config.json of stable-diffusion-v1-5 (ch 128, ch_mult [1, 2, 4, 4], 2 res blocks, z 4).
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
# text_encoder/config.json of stable-diffusion-v1-5: CLIP ViT-L/14's text tower.
SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu")
# stabilityai/stable-diffusion-x4-upscaler, from the model it was converted from,
# configs/stable-diffusion/x4-upscaling.yaml of Stability-AI/stablediffusion: UNet
# model_channels 256, channel_mult [1, 2, 2, 4], attention at 2, 4, 8 (levels 2-4), self-attention
# disabled where disable_self_attentions is True, 8 heads, context 1024, in 7, linear projections,
# 1000 class embeddings (the noise level); VAE ch 128, ch_mult [1, 2, 4] (4x downsampling);
# FrozenOpenCLIPEmbedder, penultimate layer: OpenCLIP ViT-H/14's text tower less its last layer.
X4_UNET = dict(sample_size=128, in_channels=7, out_channels=4, layers_per_block=2,
               block_out_channels=(256, 512, 512, 1024), cross_attention_dim=1024, attention_head_dim=8,
               down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
               up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
               only_cross_attention=(True, True, True, False), use_linear_projection=True, num_class_embeds=1000)
X4_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
              block_out_channels=(128, 256, 512), down_block_types=("DownEncoderBlock2D",) * 3,
              up_block_types=("UpDecoderBlock2D",) * 3, sample_size=256)
X4_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
               max_position_embeddings=77, vocab_size=49408, hidden_act="gelu")
TOKENS = 77   # CLIP's context: every prompt is padded to it


# =========================================================================== reading the notebooks
class MissingCount(KeyError):
    """A count the budget needs is not (or not once) in its notebook."""


@dataclass
class Picks:
    """What a notebook's code sets: ``values[name]`` lists every full-profile value in source order.

    Names are variables (``EPOCHS``) and ``callee.keyword`` for keyword arguments
    (``fit.epochs``, ``make_loader.batch_size``). A ``pick(...)`` contributes its ``full=``
    value; other literals their value; a ``full=`` that is not a literal its source text.
    """
    notebook: str
    values: dict[str, list] = field(default_factory=dict)

    def one(self, name: str):
        found = self.values.get(name, [])
        if len(found) != 1:
            raise MissingCount(f"notebook {self.notebook}: the budget needs exactly one value for {name!r}, "
                               f"found {found!r}. Update course_tools/budget.py with the notebook.")
        return found[0]

    def all(self, name: str, n: int | None = None) -> list:
        found = self.values.get(name, [])
        if not found or (n is not None and len(found) != n):
            raise MissingCount(f"notebook {self.notebook}: the budget needs {n or 'some'} value(s) for "
                               f"{name!r}, found {found!r}. Update course_tools/budget.py with the notebook.")
        return found


def _code(nb) -> str:
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            # IPython magics and shell lines are not Python: keep the line count, drop the text.
            stripped = line.lstrip()
            lines.append(line[:len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line)
        lines.append("")
    return "\n".join(lines)


def _is_pick(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "pick"


def _full(node):
    """The value an expression takes in the full profile: pick's full=, a literal, or its source."""
    if _is_pick(node):
        kw = {k.arg: k.value for k in node.keywords}
        if "full" not in kw:
            raise ValueError(f"pick(...) without full=: {ast.unparse(node)}")
        node = kw["full"]
    try:
        return ast.literal_eval(node)
    except ValueError:
        if isinstance(node, (ast.Tuple, ast.List)):   # e.g. (1.0, 1.5, IMAGE_STABILITY): its elements
            return tuple(_full(e) for e in node.elts)
        return ast.unparse(node)


def _literal_or_pick(node) -> bool:
    if _is_pick(node) or isinstance(node, (ast.Tuple, ast.List)):
        return True
    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False


def read_picks(notebook: str | Path) -> Picks:
    """The full-profile values a notebook's code sets (see :class:`Picks`)."""
    import nbformat

    path = Path(notebook)
    if not path.is_absolute() and not path.exists():
        path = ROOT / "notebooks" / path
    tree = ast.parse(_code(nbformat.read(path, as_version=4)))
    found: list[tuple[int, int, str, Any]] = []

    unset = object()

    def add(name, node, value=unset):
        found.append((node.lineno, node.col_offset, name, _full(node) if value is unset else value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and _literal_or_pick(value):
                add(target.id, value)
            elif isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
                names = [e.id for e in target.elts]
                if isinstance(value, ast.Tuple) and len(value.elts) == len(names):
                    for name, v in zip(names, value.elts):
                        if _literal_or_pick(v):
                            add(name, v)
                elif _is_pick(value):
                    full = _full(value)
                    if isinstance(full, tuple) and len(full) == len(names):
                        for name, v in zip(names, full):
                            add(name, value, v)
        elif isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            for kw in node.keywords:
                if callee and kw.arg and _literal_or_pick(kw.value):
                    add(f"{callee}.{kw.arg}", kw.value)
    picks = Picks(path.name)
    for _, _, name, value in sorted(found, key=lambda f: f[:2]):   # source order (ast.walk is breadth-first)
        picks.values.setdefault(name, []).append(value)
    return picks


@functools.lru_cache(maxsize=None)
def notebook_picks(key: str) -> Picks:
    return read_picks(ROOT / "notebooks" / NOTEBOOKS[key])


# =========================================================================== measuring
class _OpCounter(TorchDispatchMode):
    """Counts the PyTorch operations dispatched (each one a kernel launch on a GPU)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class _LivePeak(TorchDispatchMode):
    """Peak bytes of tensors alive at once (no_grad inference), tracked on any device, meta included."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, n):
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            inputs = {id(a) for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor) and id(o) not in inputs:
                    n = o.untyped_storage().nbytes()
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(o, self._free, n)
        return out


@dataclass(frozen=True)
class Cost:
    """One measured call: FLOPs and saved bytes per image, dispatched operations per call."""
    flops: float          # per image
    ops: int              # per call (independent of the batch)
    saved: float = 0.0    # activation bytes saved for backward, per image


def measure(fn: Callable[[], Any], images: int, modules=()) -> Cost:
    """FLOPs, operations and saved activations of ``fn()``, which processes ``images`` images."""
    params = {p.untyped_storage().data_ptr() for m in modules for p in m.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and t.device.type != "meta":
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    ops = _OpCounter()
    with FlopCounterMode(display=False) as flops, ops, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return Cost(flops.get_total_flops() / images, ops.count, sum(saved.values()) / images)


def _foreach(task) -> None:
    """Adam's multi-tensor path, the default on CUDA (the CPU default loops per parameter)."""
    for opt in task.optimizers.values():
        for group in opt.param_groups:
            group["foreach"] = True


def _state_bytes(task) -> int:
    """GPU bytes of a task's state: every model's weights and buffers, the gradients and Adam's
    two moments of what is trained."""
    total = sum(t.numel() * t.element_size() for m in task.models.values()
                for t in (*m.parameters(), *m.buffers()))
    trained = sum(p.numel() * p.element_size() for opt in task.optimizers.values()
                  for g in opt.param_groups for p in g["params"])
    return total + 3 * trained


def _checkpoint_bytes(task) -> int:
    buf = io.BytesIO()
    torch.save(task.state_dict(), buf)
    return buf.tell()


@dataclass(frozen=True)
class TaskCost:
    step: Cost
    val: Cost | None
    state_bytes: int
    checkpoint_bytes: int


def measure_task(make_task: Callable, make_batch: Callable[[int], Any], validate: bool = False,
                 extra_checkpoint_bytes: Callable[[Any], int] = lambda task: 0) -> TaskCost:
    """One real ``training_step`` (and ``validation_step``) of a fresh task on ``MEASURE_BATCH`` images."""
    torch.manual_seed(0)
    task = make_task()
    _foreach(task)
    task.train()
    modules = list(task.models.values())
    n = MEASURE_BATCH
    try:   # one image where the networks allow it (half the CPU time), else MEASURE_BATCH
        step = measure(lambda: task.training_step(make_batch(1)), 1, modules)
        n = 1
    except ValueError:   # BatchNorm in training mode on a single value per channel
        torch.manual_seed(0)
        task = make_task()
        _foreach(task)
        task.train()
        modules = list(task.models.values())
        step = measure(lambda: task.training_step(make_batch(n)), n, modules)
    val = None
    if validate:
        task.eval()
        with torch.no_grad():
            val = measure(lambda: task.validation_step(make_batch(n)), n, modules)
    return TaskCost(step, val, _state_bytes(task), _checkpoint_bytes(task) + extra_checkpoint_bytes(task))


# =========================================================================== the budget's parts
@dataclass
class Item:
    """One piece of a notebook's work."""
    what: str
    flops: float
    ops: int
    rate: str
    memory: float = 0.0             # peak GPU bytes while it runs
    checkpoints_kept: float = 0.0   # bytes left on disk after it
    checkpoint_writing: float = 0.0  # one more checkpoint while the next is written

    @property
    def seconds(self) -> float:
        return self.flops / RATES[self.rate] + self.ops * OP_SECONDS


def training(what: str, cost: TaskCost, batch: int, steps: int, epochs: int, rate: str = "amp",
             checkpoints: bool = False, val_images: int = 0, val_batch: int = 1,
             frozen_bytes: int = 0) -> list[Item]:
    """A training run of ``steps`` steps at ``batch`` (plus validation each epoch), as items."""
    from lessons_lib.training import KEEP

    memory = cost.state_bytes + frozen_bytes + cost.step.saved * batch + CUDA_CONTEXT_GB * 1e9
    kept = 0.0
    if checkpoints:
        kept = min(epochs, KEEP + (1 if val_images else 0)) * cost.checkpoint_bytes
    items = [Item(what, cost.step.flops * batch * steps, cost.step.ops * steps, rate, memory,
                  kept, cost.checkpoint_bytes if checkpoints and epochs > KEEP else 0.0)]
    if val_images:
        items.append(Item(f"{what}: validation", cost.val.flops * val_images * epochs,
                          cost.val.ops * math.ceil(val_images / val_batch) * epochs, rate))
    return items


def inference(what: str, cost: Cost, images: int, calls: int, rate: str = "fp32", memory: float = 0.0) -> Item:
    """``calls`` forward calls covering ``images`` images in all."""
    return Item(what, cost.flops * images, cost.ops * calls, rate, memory)


def _steps(n: int, batch: int, drop_last: bool = False) -> int:
    return n // batch if drop_last else math.ceil(n / batch)


def _images(shape_batch: int, size: int, channels: int = 3, low: float = -1.0, high: float = 1.0):
    g = torch.Generator().manual_seed(0)
    return torch.rand((shape_batch, channels, size, size), generator=g) * (high - low) + low


# --------------------------------------------------------------------------- notebook 1
def notebook_01() -> list[Item]:
    from lessons_lib.images import luma_chroma_to_rgb
    from lessons_lib.models.encoder_decoder import EncoderDecoder

    p = notebook_picks("01")
    epochs, batch, test_images = p.one("EPOCHS"), p.all("make_loader.batch_size")[0], p.one("TEST_IMAGES")
    if p.one("TRAIN_IMAGES") is not None:
        raise MissingCount("notebook 01: TRAIN_IMAGES is no longer None (all of CIFAR-10); update the budget.")
    test_batch = p.all("make_loader.batch_size")[1]
    steps = _steps(CIFAR10_TRAIN, batch) * epochs

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
        gray, colour = _images(MEASURE_BATCH, 32, 1), _images(MEASURE_BATCH, 32, 3)

        def step(model=model, opt=opt, gray=gray, colour=colour):
            loss = F.mse_loss(model(gray), colour)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()

        cost = measure(step, MEASURE_BATCH, [model])
        with torch.no_grad():
            fwd = measure(lambda model=model, gray=gray: model(gray), MEASURE_BATCH, [model])
        params = sum(q.numel() * 4 for q in model.parameters())
        memory = 4 * params + cost.saved * batch + CUDA_CONTEXT_GB * 1e9
        items += [Item(f"{name}: {epochs} epochs x {steps // epochs} steps, batch {batch} (fp32)",
                       cost.flops * batch * steps, cost.ops * steps, "fp32", memory),
                  inference(f"{name}: test loss each epoch + colorized test set", fwd,
                            test_images * (epochs + 1), _steps(test_images, test_batch) * (epochs + 1))]
    lp = _lpips_cost()
    items.append(inference("LPIPS of 3 result sets", lp, 3 * test_images, 3 * _steps(test_images, 256)))
    return items


@functools.lru_cache(maxsize=None)
def _lpips_cost() -> Cost:
    import lpips

    model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).eval()
    x, y = _images(MEASURE_BATCH, 32), _images(MEASURE_BATCH, 32)
    with torch.no_grad():
        return measure(lambda: model(x, y), MEASURE_BATCH)


# --------------------------------------------------------------------------- notebook 2
def notebook_02() -> list[Item]:
    from lessons_lib import evaluation, zoo
    from lessons_lib.models.colorizers import MODELS, build_model

    p = notebook_picks("02")
    size, epochs, batch = p.one("SIZE"), p.one("EPOCHS"), p.one("BATCH_SIZE")
    width, latent, steps_sampling = p.one("WIDTH"), p.one("LATENT_DIM"), p.one("STEPS")
    test_images, lr = p.one("TEST_IMAGES"), p.one("LEARNING_RATE")
    if p.one("STEPS_PER_EPOCH") is not None or p.one("TRAIN_IMAGES") is not None:
        raise MissingCount("notebook 02 no longer trains full epochs on all of CIFAR-10; update the budget.")
    steps = _steps(CIFAR10_TRAIN, batch) * epochs

    def batch_of(n):
        photos = _images(n, size, low=0.0, high=1.0)
        return list(zoo.colorization_pairs(photos).tensors)

    items, diffusion_eval = [], None
    for name in MODELS:
        if name == "unetddpm":  # the notebook copies unetddim's network: trained once
            continue
        def make(name=name):
            return zoo.make_task(name, build_model(name, latent_dim=latent, width=width), lr)

        cost = measure_task(make, batch_of, validate=True)
        items += training(f"zoo {name}: {epochs} epochs x {steps // epochs} steps, batch {batch}", cost, batch, steps,
                          epochs, checkpoints=True, val_images=test_images, val_batch=batch)
    # Evaluation: every model trained here and every course model (same networks) on the test photos.
    gray = _images(MEASURE_BATCH, size, 1)
    for name in MODELS:
        torch.manual_seed(0)
        model = build_model(name, latent_dim=latent, width=width).eval()
        with torch.no_grad():
            cost = measure(lambda model=model: evaluation.colorize(model, gray, 256, steps_sampling,
                                                                   torch.Generator().manual_seed(0)),
                           MEASURE_BATCH)
        calls = _steps(test_images, 256)
        items.append(inference(f"evaluate {name} (trained here and course weights)", cost, 2 * test_images,
                               2 * calls))
        if name == "unetddim":
            diffusion_eval = cost
    items.append(inference("temperature curve: 5 x unetddim on the test photos", diffusion_eval,
                           5 * test_images, 5 * _steps(test_images, 256)))
    items.append(inference("DDPM draws: 4 x 8 photos", diffusion_eval, 4 * 8, 4))
    lp = _lpips_cost()
    n_models = 2 * len(MODELS)
    items.append(inference("LPIPS of every evaluation (model and gray)", lp, 2 * n_models * test_images,
                           2 * n_models * _steps(test_images, 256)))
    return items


# --------------------------------------------------------------------------- notebook 3
def notebook_03() -> list[Item]:
    from lessons_lib import diffusion, inpainting

    p = notebook_picks("03")
    size, width, batch, n_test = p.one("SIZE"), p.one("WIDTH"), p.one("BATCH"), p.one("N_TEST")
    ddpm_epochs, inpaint_epochs = p.one("DDPM_EPOCHS"), p.one("INPAINT_EPOCHS")
    if p.one("DDPM_STEPS_PER_EPOCH") is not None or p.one("INPAINT_STEPS_PER_EPOCH") is not None:
        raise MissingCount("notebook 03 no longer trains full epochs; update the budget.")
    checkpoints = p.one("CKPT") is not None
    ddpm_steps, ddim_steps = p.one("DDPM_SAMPLE_STEPS"), p.one("DDIM_SAMPLE_STEPS")
    repaint_steps, jump, resample = p.one("REPAINT_STEPS"), p.one("JUMP_LENGTH"), p.one("JUMP_N_SAMPLE")
    per_epoch = _steps(CIFAR10_TRAIN, batch, drop_last=True)   # train_inpainters: drop_last=True

    def images(n):
        return _images(n, size, low=0.0, high=1.0)

    items = []
    tasks = {}
    for method, epochs in (("ddpm", ddpm_epochs), ("unet", inpaint_epochs), ("unet-gan", inpaint_epochs),
                           ("transformer", inpaint_epochs)):
        cost = measure_task(lambda method=method: inpainting.make_task(method, image_size=size, width=width, seed=0),
                            images)
        tasks[method] = cost
        items += training(f"{method}: {epochs} epochs x {per_epoch} steps, batch {batch}", cost, batch,
                          epochs * per_epoch, epochs, checkpoints=checkpoints)
    torch.manual_seed(0)
    denoiser = inpainting.make_task("ddpm", image_size=size, width=width).inference_model().eval()
    x = _images(MEASURE_BATCH, size)
    t = torch.full((MEASURE_BATCH,), 500)
    with torch.no_grad():
        call = measure(lambda: denoiser(x, t), MEASURE_BATCH)
    saved = tasks["ddpm"].step.saved
    walk = diffusion.repaint_schedule(repaint_steps, jump, resample)
    down = sum(1 for a, b in zip([repaint_steps] + walk, walk) if b < a)   # denoising steps: one model call each
    items += [
        inference(f"DDPM sampling: {ddpm_steps} steps x 4 images", call, 4 * ddpm_steps, ddpm_steps),
        inference(f"DDIM sampling: {ddim_steps} steps x 4 images", call, 4 * ddim_steps, ddim_steps),
        inference(f"RePaint: {down} denoising steps x {n_test} held-out images", call, down * n_test, down,
                  memory=saved * n_test + CUDA_CONTEXT_GB * 1e9),
        inference(f"RePaint again: {down} steps x 4 images, twice, and the mixed masks", call, 3 * down * 4,
                  3 * down),
    ]
    for method in ("unet", "unet-gan", "transformer"):
        task = inpainting.make_task(method, image_size=size, width=width, seed=0)
        net = inpainting.inference_network(task).eval()
        m = torch.ones(MEASURE_BATCH, 1, size, size)
        with torch.no_grad():
            c = measure(lambda net=net, m=m: net(x, m), MEASURE_BATCH)
        items.append(inference(f"{method} fills {n_test} + 4 images", c, n_test + 4, 2))
    inception = _inception_cost()
    items.append(inference(f"Inception features of 6 x {n_test} images (Frechet distance)", inception, 6 * n_test,
                           6 * _steps(n_test, 64)))
    return items


@functools.lru_cache(maxsize=None)
def _inception_cost() -> Cost:
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
        x = torch.empty(MEASURE_BATCH, 3, 299, 299)
    with torch.no_grad():
        return measure(lambda: model(x), MEASURE_BATCH)


# --------------------------------------------------------------------------- notebooks 4 and 5: SD pipelines
@functools.lru_cache(maxsize=None)
def _meta_model(kind: str):
    """A published architecture with random weights on the meta device, in fp16."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = {"sd15-unet": SD15_UNET, "sd15-inpaint-unet": {**SD15_UNET, "in_channels": 9},
              "ip2p-unet": {**SD15_UNET, "in_channels": 8}, "x4-unet": X4_UNET, "sd15-vae": SD15_VAE,
              "x4-vae": X4_VAE, "sd15-text": SD15_TEXT, "x4-text": X4_TEXT}[kind]
    with torch.device("meta"):
        if kind.endswith("unet"):
            model = UNet2DConditionModel(**config)
        elif kind.endswith("vae"):
            model = AutoencoderKL(**config)
        else:
            model = CLIPTextModel(CLIPTextConfig(**config))
    return model.half().eval()


def parameters(kind: str) -> int:
    return sum(p.numel() for p in _meta_model(kind).parameters())


@functools.lru_cache(maxsize=None)
def sd_call(kind: str, batch: int, height: int, width: int) -> tuple[float, float]:
    """(FLOPs, peak live activation bytes) of one call of a pipeline part at ``batch`` x latent size."""
    model = _meta_model(kind)
    meta = dict(device="meta", dtype=torch.float16)
    live = _LivePeak()
    with torch.no_grad(), FlopCounterMode(display=False) as flops, live:
        if kind.endswith("unet"):
            cfg = model.config
            x = torch.empty(batch, cfg.in_channels, height, width, **meta)
            context = torch.empty(batch, TOKENS, cfg.cross_attention_dim, **meta)
            t = torch.full((batch,), 10, device="meta")
            labels = t if cfg.num_class_embeds else None
            model(x, t, encoder_hidden_states=context, class_labels=labels)
        else:
            model(torch.zeros(batch, TOKENS, dtype=torch.long, device="meta"))
    return flops.get_total_flops(), live.peak


@functools.lru_cache(maxsize=None)
def vae_call(kind: str, direction: str, height: int, width: int) -> tuple[float, float]:
    """(FLOPs, peak live bytes) of one VAE encode of an image / decode of a latent (batch 1)."""
    model = _meta_model(kind)
    meta = dict(device="meta", dtype=torch.float16)
    live = _LivePeak()
    with torch.no_grad(), FlopCounterMode(display=False) as flops, live:
        if direction == "encode":
            model.encode(torch.empty(1, 3, height, width, **meta))
        else:
            model.decode(torch.empty(1, 4, height, width, **meta))
    return flops.get_total_flops(), live.peak


def _sd_call_item(what: str, unet: str, vae: str, text: str, steps: int, copies: int, latent: tuple[int, int],
                  images: int = 1, encodes: int = 1, vae_factor: int = 8) -> Item:
    """One pipeline call: ``steps`` UNet calls at batch ``copies`` x ``images`` (CFG copies), VAE
    encodes of the input, a decode per image, the text encoder on each prompt copy."""
    h, w = latent
    unet_flops, unet_peak = sd_call(unet, copies * images, h, w)
    dec_flops, dec_peak = vae_call(vae, "decode", h, w)
    enc_flops, enc_peak = vae_call(vae, "encode", h * vae_factor, w * vae_factor)
    text_flops, _ = sd_call(text, 2 * images, 0, 0)
    flops = steps * unet_flops + images * (dec_flops + encodes * enc_flops) + text_flops
    # Per UNet call roughly a thousand operations dispatched: count them once for each call.
    return Item(what, flops, steps * _unet_ops(unet), "sd", max(unet_peak, dec_peak, enc_peak))


@functools.lru_cache(maxsize=None)
def _unet_ops(kind: str) -> int:
    model = _meta_model(kind)
    cfg = model.config
    ops = _OpCounter()
    meta = dict(device="meta", dtype=torch.float16)
    with torch.no_grad(), ops:
        t = torch.full((1,), 10, device="meta")
        model(torch.empty(1, cfg.in_channels, 8, 8, **meta), t,
              encoder_hidden_states=torch.empty(1, TOKENS, cfg.cross_attention_dim, **meta),
              class_labels=t if cfg.num_class_embeds else None)
    return ops.count


def _pipeline_bytes(parts: dict[str, int]) -> float:
    """GPU bytes of a pipeline's weights in fp16."""
    return sum(2 * parameters(kind) for kind in parts)


def _download_bytes(parts: dict[str, bool]) -> float:
    """Bytes downloaded for a pipeline: fp16 files where the repository publishes them, else fp32."""
    return sum((2 if fp16 else 4) * parameters(kind) for kind, fp16 in parts.items())


def notebook_04() -> tuple[list[Item], float, float]:
    """Items, extra download bytes, pipeline GPU bytes."""
    from lessons_lib import editing as E
    from lessons_lib import photos
    from lessons_lib.editing.specs import PUBLISHED
    from lessons_lib.editing.upscale import _tile_starts

    p = notebook_picks("04")
    size, steps, border, low = p.one("SIZE"), p.one("STEPS"), p.one("BORDER"), p.one("LOW")
    up_steps, tiled_steps = p.all("upscale.num_inference_steps", 2)
    overlap = p.one("upscale.overlap")
    w, h = photos.demo_image("chelsea", size).size
    latent = (h // 8, w // 8)
    sd = ("sd15-unet", "sd15-vae", "sd15-text")
    inp = ("sd15-inpaint-unet", "sd15-vae", "sd15-text")
    items = [_sd_call_item("img2img, strength 0.6", *sd, E.steps_that_run(steps, 0.6), 2, latent)]
    for s in E.STRENGTHS:
        items.append(_sd_call_item(f"strength sweep {s}", *sd, E.steps_that_run(steps, s), 2, latent))
    items.append(_sd_call_item("inpaint (strength 1)", *inp, steps, 2, latent, encodes=2))
    items.append(_sd_call_item(f"outpaint by {border} px left and right", *inp, steps, 2,
                               (h // 8, (w + 2 * border) // 8), encodes=2))
    for kind in ("colour", "replace"):
        items.append(_sd_call_item(f"edit_region ({kind})", *inp,
                                   E.steps_that_run(steps, E.SUGGESTED_STRENGTH[kind]), 2, latent, encodes=2))
    items.append(_sd_call_item(f"x4 upscale of {low} px", "x4-unet", "x4-vae", "x4-text", up_steps, 2,
                               (low, low), encodes=0, vae_factor=4))
    tiles = len(_tile_starts(low + 16, low, overlap)) ** 2
    items.append(_sd_call_item(f"x4 upscale, {tiles} tiles of {low} px", "x4-unet", "x4-vae", "x4-text",
                               tiled_steps, 2, (low, low), images=tiles, encodes=0, vae_factor=4))
    published = {t: set(PUBLISHED[t].fp16) for t in ("img2img", "inpaint", "upscale")}
    download = (_download_bytes({"sd15-unet": "unet" in published["img2img"], "sd15-vae": "vae" in published["img2img"],
                                 "sd15-text": "text_encoder" in published["img2img"]})
                + _download_bytes({"sd15-inpaint-unet": "unet" in published["inpaint"],
                                   "sd15-vae": "vae" in published["inpaint"],
                                   "sd15-text": "text_encoder" in published["inpaint"]})
                + _download_bytes({"x4-unet": "unet" in published["upscale"], "x4-vae": "vae" in published["upscale"],
                                   "x4-text": "text_encoder" in published["upscale"]}))
    # The notebook keeps all three pipelines (pipe, inpaint_pipe, upscaler) loaded.
    weights = sum(_pipeline_bytes({k: 1 for k in parts}) for parts in
                  (sd, inp, ("x4-unet", "x4-vae", "x4-text")))
    return items, download, weights


def notebook_05() -> tuple[list[Item], float, float]:
    from lessons_lib import editing as E
    from lessons_lib.editing.specs import PUBLISHED

    p = notebook_picks("05")
    steps, size = p.one("STEPS"), p.one("SIZE")
    if steps == "E.PIX2PIX_STEPS":
        steps = E.PIX2PIX_STEPS
    instructions = p.one("INSTRUCTIONS")
    edits = len(instructions)
    grid = len(p.one("guidance_grid.image_guidance_scales")) * len(p.one("guidance_grid.guidance_scales"))
    again = 2   # instruct_edits(INSTRUCTIONS[:2]) run again
    latent = (size // 8, size // 8)
    parts = ("ip2p-unet", "sd15-vae", "sd15-text")
    chunk = p.one("instruct_edits.batch_size")   # instructions per pipeline call
    items = [_sd_call_item(f"{edits} instructions, {chunk} at a time", *parts, steps, 3, latent, images=n)
             for n in [chunk] * (edits // chunk) + ([edits % chunk] if edits % chunk else [])]
    items += [_sd_call_item(f"{again} instructions again", *parts, steps, 3, latent, images=again),
             _sd_call_item(f"guidance grid of {grid}", *parts, steps * grid, 3, latent),
             _sd_call_item("widget panel, one edit", *parts, steps, 3, latent)]
    fp16 = set(PUBLISHED["instruct-pix2pix"].fp16)
    download = _download_bytes({"ip2p-unet": "unet" in fp16, "sd15-vae": "vae" in fp16,
                                "sd15-text": "text_encoder" in fp16})
    return items, download, _pipeline_bytes({k: 1 for k in parts})


# --------------------------------------------------------------------------- notebook 6
#: Closure evaluations per L-BFGS step (max_iter=1): one at the start, then the strong-Wolfe line
#: search's, usually one or two once the first steps are past. An assumption: a step may take more.
LBFGS_EVALS_PER_STEP = 3


def notebook_06() -> list[Item]:
    from lessons_lib import style
    from lessons_lib.models.vgg import FULL_WIDTH, VGGFeatures

    p = notebook_picks("06")
    size, steps = p.one("SIZE"), p.one("STEPS")
    grid_size, grid_steps, betas = p.one("GRID_SIZE"), p.one("GRID_STEPS"), p.one("BETAS")
    styles = 2   # the grid's two textures, "waves" and "checker"
    adain_size, n_content, adain_epochs = p.one("ADAIN_SIZE"), p.one("N_CONTENT"), p.one("ADAIN_EPOCHS")
    sr_size = p.one("SR_SIZE")
    adain_batch, sr_batch = p.all("make_loader.batch_size", 2)
    sr_epochs = p.one("fit.epochs")
    if p.one("colour_images.limit") is not None:
        raise MissingCount("notebook 06: the SR training no longer uses every training photo; update the budget.")

    def vgg(layers):
        return VGGFeatures(layers, pretrained=False, width=FULL_WIDTH, verbose=False)

    # Gatys: one closure evaluation (features, content + style loss, backward to the pixels), measured
    # at 64 px and scaled by the pixel count (every layer's work is proportional to it).
    extractor = vgg(style.STYLE_LAYERS + style.CONTENT_LAYERS)
    ref = 64
    image = _images(1, ref, low=0.0, high=1.0).requires_grad_(True)
    with torch.no_grad():
        feats = extractor(_images(1, ref, low=0.0, high=1.0))
        grams = {k: style.gram_matrix(feats[k]) for k in style.STYLE_LAYERS}
        content = feats["relu4_2"]

    def closure():
        f = extractor(image)
        loss = style.content_loss(f["relu4_2"], content) + 1e5 * style.style_loss(f, grams)
        loss.backward()
        loss.item()

    c = measure(closure, 1, [extractor])
    frozen = sum(t.numel() * 4 for t in extractor.parameters())
    items = []
    for what, side, n_steps, runs in ((f"Gatys {steps} L-BFGS steps at {size} px", size, steps, 1),
                                      (f"alpha/beta grid: {styles} x {len(betas)} runs of {grid_steps} steps at "
                                       f"{grid_size} px", grid_size, grid_steps, styles * len(betas))):
        scale = (side / ref) ** 2
        evals = LBFGS_EVALS_PER_STEP * n_steps * runs
        items.append(Item(what, c.flops * scale * evals, c.ops * evals, "fp32",
                          frozen + c.saved * scale + CUDA_CONTEXT_GB * 1e9))

    adain_steps = _steps(n_content, adain_batch) * adain_epochs
    cost = measure_task(lambda: style.AdaINTask(style.AdaINStyleTransfer(vgg(style.ADAIN_STYLE_LAYERS),
                                                                         residual=True), lr=1e-3),
                        lambda n: [_images(n, adain_size, low=0.0, high=1.0), _images(n, adain_size, low=0.0,
                                                                                      high=1.0)])
    items += training(f"AdaIN decoder: {adain_epochs} epochs x {adain_steps // adain_epochs} steps, batch "
                      f"{adain_batch}", cost, adain_batch, adain_steps, adain_epochs, checkpoints=True)
    sr_steps = _steps(CIFAR10_TRAIN, sr_batch) * sr_epochs
    for name in ("pixel MSE", "perceptual"):
        def make(name=name):
            net = style.SRNet(scale=4, width=32, blocks=4)
            loss = F.mse_loss if name == "pixel MSE" else style.PerceptualLoss(
                layers=("relu2_2",), pixel_weight=0.1, extractor=vgg(["relu2_2"]))
            from lessons_lib.training import SupervisedTask

            return SupervisedTask(net, lr=1e-3, loss_fn=loss)

        cost = measure_task(make, lambda n: [_images(n, sr_size // 4, low=0.0, high=1.0),
                                             _images(n, sr_size, low=0.0, high=1.0)])
        items += training(f"SR ({name}): {sr_epochs} epochs x {sr_steps // sr_epochs} steps, batch {sr_batch}",
                          cost, sr_batch, sr_steps, sr_epochs)
    # Scoring on every held-out photo: two AdaIN models (decoder + objective), four SR nets + VGG distance.
    torch.manual_seed(0)
    model = style.AdaINStyleTransfer(vgg(style.ADAIN_STYLE_LAYERS), residual=True).eval()
    x = _images(MEASURE_BATCH, adain_size, low=0.0, high=1.0)
    with torch.no_grad():
        score = measure(lambda: style.adain_losses(model, x, x), MEASURE_BATCH)
        distance = vgg(style.DISTANCE_LAYERS)
        d = measure(lambda: distance(x), MEASURE_BATCH)
        net = style.SRNet(scale=4, width=32, blocks=4).eval()
        sr = measure(lambda: net(_images(MEASURE_BATCH, sr_size // 4, low=0.0, high=1.0)), MEASURE_BATCH)
    items += [inference(f"AdaIN scores, 2 models x {CIFAR10_TEST} photos", score, 2 * CIFAR10_TEST,
                        2 * _steps(CIFAR10_TEST, 256)),
              inference(f"SR scores, 4 nets x {CIFAR10_TEST} photos", sr, 4 * CIFAR10_TEST, 4 * _steps(CIFAR10_TEST,
                                                                                                     256)),
              inference("VGG feature distance of 5 SR outputs", d, 10 * CIFAR10_TEST, 10 * _steps(CIFAR10_TEST, 256))]
    return items


# --------------------------------------------------------------------------- notebook 7
def notebook_07() -> list[Item]:
    from lessons_lib import translation
    from lessons_lib.models.cyclegan import ResnetGenerator
    from lessons_lib.models.pix2pix import PatchDiscriminator, UNetGenerator

    p = notebook_picks("07")
    size = p.one("SIZE")
    if p.all("colour_images.limit")[0] is not None:
        raise MissingCount("notebook 07: pix2pix no longer trains on every photo; update the budget.")
    p2p_batch = p.all("make_loader.batch_size")[0]
    val_batch = p.all("make_loader.batch_size")[1]
    p2p_epochs = p.all("fit.epochs")[0]
    ngf_p2p = p.all("UNetGenerator.ngf", 1)[0]
    ndf_p2p, ndf = p.all("PatchDiscriminator.ndf", 2)
    layers_p2p, layers = p.all("PatchDiscriminator.n_layers", 2)
    cycle_size = p.all("unpaired_domains.size", 1)[0]
    ngf, blocks, epochs, decay = p.one("NGF"), p.one("BLOCKS"), p.one("EPOCHS"), p.one("DECAY")
    cycle_batch = p.all("make_loader.batch_size")[2]
    lam_idt, lam_lum = p.one("LAMBDA_IDENTITY"), p.one("LAMBDA_LUMINANCE")
    colour_path = p.one("COLOUR_PATH")
    lr = p.one("CycleGANTask.lr")
    pool = p.one("CycleGANTask.pool_size")

    def p2p_task():
        g = UNetGenerator(in_channels=1, out_channels=3, num_downs=int(math.log2(size)), ngf=ngf_p2p, residual=True)
        g.set_base(torch.zeros(3, size, size))
        return translation.Pix2PixTask(g, PatchDiscriminator(4, ndf=ndf_p2p, n_layers=layers_p2p), lr=2e-4,
                                       lambda_l1=100.0)

    cost = measure_task(p2p_task, lambda n: [_images(n, size, 1), _images(n, size)], validate=True)
    p2p_steps = _steps(CIFAR10_TRAIN, p2p_batch) * p2p_epochs
    items = training(f"pix2pix: {p2p_epochs} epochs x {p2p_steps // p2p_epochs} steps, batch {p2p_batch}", cost,
                     p2p_batch, p2p_steps, p2p_epochs, checkpoints=True, val_images=CIFAR10_TEST, val_batch=val_batch)

    def cycle_task():
        def gen():
            return ResnetGenerator(3, 3, ngf, blocks, colour_path=colour_path)

        def disc():
            return PatchDiscriminator(3, ndf=ndf, n_layers=layers, norm="instance")

        return translation.CycleGANTask(gen(), gen(), disc(), disc(), lr=lr, lambda_cycle=10.0,
                                        lambda_identity=lam_idt, lambda_luminance=lam_lum, pool_size=pool,
                                        n_epochs=epochs, n_epochs_decay=decay)

    def full_pools(task):   # the image pools fill to pool_size images each and are checkpointed
        image = 3 * cycle_size * cycle_size * 4
        return sum((pool - len(q)) * image for q in (task.pool_a, task.pool_b))

    cost = measure_task(cycle_task, lambda n: [_images(n, cycle_size), _images(n, cycle_size)],
                        extra_checkpoint_bytes=full_pools)
    per_epoch = _steps(max(HORSE2ZEBRA_TRAIN_A, HORSE2ZEBRA_TRAIN_B), cycle_batch)
    items += training(f"CycleGAN {ngf} filters, {blocks} blocks, {cycle_size} px: {epochs}+{decay} epochs x "
                      f"{per_epoch} steps, batch {cycle_batch}", cost, cycle_batch, per_epoch * (epochs + decay),
                      epochs + decay, checkpoints=True)
    torch.manual_seed(0)
    g = UNetGenerator(in_channels=1, out_channels=3, num_downs=int(math.log2(size)), ngf=ngf_p2p, residual=True)
    g.set_base(torch.zeros(3, size, size))
    g.eval()
    with torch.no_grad():
        fwd = measure(lambda: g(_images(MEASURE_BATCH, size, 1)), MEASURE_BATCH)
    items.append(inference(f"pix2pix scores: 2 generators x {CIFAR10_TEST} photos", fwd, 2 * CIFAR10_TEST,
                           2 * _steps(CIFAR10_TEST, 256)))
    return items


# =========================================================================== the table
@dataclass
class Row:
    notebook: str
    items: list[Item]
    overhead_minutes: float
    checkpoint_gb: float
    memory_gb: float

    @property
    def minutes(self) -> float:
        return sum(i.seconds for i in self.items) / 60 + self.overhead_minutes


def _cifar_bytes() -> int:
    from lessons_lib import registry

    return registry.get_source("cifar10").size


def _torchvision_bytes(name: str) -> float:
    import torchvision

    with torch.device("meta"):
        model = {"vgg19": lambda: torchvision.models.vgg19(weights=None),
                 "inception": lambda: torchvision.models.inception_v3(weights=None, init_weights=False),
                 "alexnet": lambda: torchvision.models.alexnet(weights=None)}[name]()
    return 4 * sum(t.numel() for t in model.parameters())


def _row(key: str, items: list[Item], download: float = 0.0, pipelines: int = 0,
         weights: float = 0.0) -> Row:
    overhead = INSTALL_MINUTES + download / DOWNLOAD_BYTES_PER_S / 60 + PIPELINE_LOAD_MINUTES * pipelines
    kept = sum(i.checkpoints_kept for i in items)
    writing = max((i.checkpoint_writing for i in items), default=0.0)
    memory = max(i.memory for i in items) + weights
    return Row(key, items, overhead, (kept + writing) / 1e9, memory / 1e9)


@functools.lru_cache(maxsize=None)
def budget() -> tuple[Row, ...]:
    """One row per notebook (cached: building and measuring takes a little while)."""
    from lessons_lib import registry

    lpips = _torchvision_bytes("alexnet")
    rows = [
        _row("01", notebook_01(), _cifar_bytes() + lpips),
        _row("02", notebook_02(), _cifar_bytes() + lpips),
        _row("03", notebook_03(), _cifar_bytes() + _torchvision_bytes("inception")),
    ]
    items, download, weights = notebook_04()
    rows.append(_row("04", items, download, pipelines=3, weights=weights + CUDA_CONTEXT_GB * 1e9))
    items, download, weights = notebook_05()
    rows.append(_row("05", items, download, pipelines=1, weights=weights + CUDA_CONTEXT_GB * 1e9))
    rows.append(_row("06", notebook_06(), _cifar_bytes() + _torchvision_bytes("vgg19")))
    rows.append(_row("07", notebook_07(), _cifar_bytes() + registry.get_source("horse2zebra").size))
    return tuple(rows)


def table(rows=None, details: bool = False) -> str:
    rows = budget() if rows is None else rows
    lines = ["| notebook | estimated T4 minutes | checkpoint GB | peak memory GB |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.notebook} | {r.minutes:.1f} | {r.checkpoint_gb:.2f} | {r.memory_gb:.1f} |")
    lines.append(f"| **total** | **{sum(r.minutes for r in rows):.1f}** | "
                 f"{sum(r.checkpoint_gb for r in rows):.2f} | {max(r.memory_gb for r in rows):.1f} (largest) |")
    if details:
        for r in rows:
            lines += ["", f"notebook {r.notebook}: {r.overhead_minutes:.1f} min install, downloads and loading"]
            for i in r.items:
                lines.append(f"  {i.seconds / 60:7.2f} min  {i.flops / 1e12:10.1f} TFLOP  {i.ops:>11,} ops  "
                             f"[{i.rate}]  {i.what}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_tools.budget",
                                     description="The full profile's estimated cost on a Colab T4, per notebook, "
                                                 "from counts and measured FLOPs (see the module docstring).")
    parser.add_argument("--details", action="store_true", help="list every training run and sampling call")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(table(details=args.details))
    print("\nEffective T4 rates assumed: " + ", ".join(f"{k} {v / 1e12:g} TFLOPS" for k, v in RATES.items())
          + f"; {OP_SECONDS * 1e6:g} us per dispatched operation. An estimate, not a measurement.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
