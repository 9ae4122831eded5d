"""Every number the budget assumes rather than measures, with its source (see the package docstring)."""
from __future__ import annotations

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

# --------------------------------------------------------------------------- throughput
T4_FP16_PEAK, T4_FP32_PEAK = 65e12, 8.1e12
SD_T4_ITERATIONS_PER_S = 6.9   # diffusers' T4 benchmark, SD txt2img, batch 1, torch 2.0, no compile
RATES = {"sd": 11e12, "amp": 4e12, "fp32": 3e12}
OP_SECONDS = 15e-6
INSTALL_MINUTES = 1.0
DOWNLOAD_BYTES_PER_S = 20e6
PIPELINE_LOAD_MINUTES = 0.5
CUDA_CONTEXT_GB = 0.5          # CUDA context, cuDNN/cuBLAS workspaces and allocator slack
CUDA_CONTEXT_BYTES = CUDA_CONTEXT_GB * 1e9

#: The batch a step is measured at when one image will not do (FLOPs and saved activations are
#: scaled linearly to the full batch): BatchNorm in training mode needs more than one value per channel.
MEASURE_BATCH = 2

#: Closure evaluations per L-BFGS step (max_iter=1) in notebook 6: one at the start, then the
#: strong-Wolfe line search's, usually one or two once the first steps are past. An assumption:
#: a step may take more.
LBFGS_EVALS_PER_STEP = 3
