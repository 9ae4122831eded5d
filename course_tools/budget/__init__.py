"""The Colab budget: what each notebook's full profile costs on a free T4, computed, not guessed.

``python -m course_tools.budget`` prints, per notebook 01..07, the estimated T4 minutes, the
gigabytes of checkpoints on disk and the peak GPU memory, and the course total (``--details``:
every training run and sampling call).

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

The package, one module per concern
-----------------------------------
:mod:`.assumptions` (limits, dataset sizes, T4 rates), :mod:`.notebooks` (reading the counts),
:mod:`.measure` (FLOPs, operations and memory of one call or training step), :mod:`.items` (a
notebook's work as items and its row), :mod:`.workloads` (notebooks 1, 2, 3, 6, 7),
:mod:`.pipelines` (the Stable Diffusion notebooks 4 and 5), :mod:`.report` (the table),
:mod:`.cache` (the budget kept under ``/.cache/`` for the tests), ``__main__`` (the command line).
"""
from __future__ import annotations

from .assumptions import (
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    CUDA_CONTEXT_BYTES,
    CUDA_CONTEXT_GB,
    DOWNLOAD_BYTES_PER_S,
    HORSE2ZEBRA_TRAIN_A,
    HORSE2ZEBRA_TRAIN_B,
    INSTALL_MINUTES,
    LBFGS_EVALS_PER_STEP,
    MAX_COURSE_MINUTES,
    MAX_NOTEBOOK_CHECKPOINT_GB,
    MAX_NOTEBOOK_MINUTES,
    MEASURE_BATCH,
    OP_SECONDS,
    PIPELINE_LOAD_MINUTES,
    RATES,
    SD_T4_ITERATIONS_PER_S,
    T4_FP16_PEAK,
    T4_FP32_PEAK,
    T4_MEMORY_GB,
)
from .cache import cached_budget
from .items import Item, Row, inference, row, training
from .measure import Cost, TaskCost, measure, measure_task
from .notebooks import NOTEBOOKS, ROOT, MissingCount, Picks, notebook_picks, read_picks
from .pipelines import (
    SD15_TEXT,
    SD15_UNET,
    SD15_VAE,
    TOKENS,
    X4_TEXT,
    X4_UNET,
    X4_VAE,
    notebook_04,
    notebook_05,
    parameters,
    sd_call,
    vae_call,
)
from .report import WORKLOADS, budget, table
from .workloads import notebook_01, notebook_02, notebook_03, notebook_06, notebook_07

__all__ = [
    "CIFAR10_TEST", "CIFAR10_TRAIN", "CUDA_CONTEXT_BYTES", "CUDA_CONTEXT_GB", "DOWNLOAD_BYTES_PER_S",
    "HORSE2ZEBRA_TRAIN_A", "HORSE2ZEBRA_TRAIN_B", "INSTALL_MINUTES", "LBFGS_EVALS_PER_STEP", "MAX_COURSE_MINUTES",
    "MAX_NOTEBOOK_CHECKPOINT_GB", "MAX_NOTEBOOK_MINUTES", "MEASURE_BATCH", "OP_SECONDS", "PIPELINE_LOAD_MINUTES",
    "RATES", "SD_T4_ITERATIONS_PER_S", "T4_FP16_PEAK", "T4_FP32_PEAK", "T4_MEMORY_GB",
    "cached_budget", "Item", "Row", "inference", "row", "training", "Cost", "TaskCost", "measure", "measure_task",
    "NOTEBOOKS", "ROOT", "MissingCount", "Picks", "notebook_picks", "read_picks",
    "SD15_TEXT", "SD15_UNET", "SD15_VAE", "TOKENS", "X4_TEXT", "X4_UNET", "X4_VAE", "parameters", "sd_call",
    "vae_call", "WORKLOADS", "budget", "table",
    "notebook_01", "notebook_02", "notebook_03", "notebook_04", "notebook_05", "notebook_06", "notebook_07",
]
