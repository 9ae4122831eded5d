"""Course weights for lesson 3's four inpainters.

Each method trains with ``lessons_lib.inpainting.train_inpainters`` (the notebook's and
the CLI's code) on the CIFAR-10 subset's training split with mixed random masks, and is
scored on the held-out split with centre-box holes (half the side) beside the naive fill.
"""
from __future__ import annotations

import functools

import torch

from course_tools.train_weights import Trained
from lessons_lib import data, inpainting, masks

WIDTH = inpainting.WIDTH
BATCH_SIZE = 64
SEED = 0
# Epochs per method: where the held-out masked PSNR stops improving within a few CPU minutes.
EPOCHS = {"unet": 5, "unet-gan": 5, "transformer": 6, "ddpm": 8}
REPAINT = {"num_inference_steps": 25, "jump_length": 5, "jump_n_sample": 2}


@functools.lru_cache(maxsize=None)  # loaded once for all four recipes
def _photos(split: str) -> torch.Tensor:
    return data.stack(data.colour_images(split, size=32))


def _recipe(method: str):
    def run() -> Trained:
        results = inpainting.train_inpainters(_photos("train"), [method], epochs=EPOCHS[method],
                                              batch_size=BATCH_SIZE, width=WIDTH, seed=SEED, device="cpu")
        task, history, _ = results[method]
        test = _photos("test")
        mask = masks.center_box(len(test), 32)
        outputs = inpainting.run_inpainters({method: task}, test, mask, seed=SEED, progress=False, **REPAINT)
        rows = {r["method"]: r for r in inpainting.compare_methods(outputs, test, mask)}
        return Trained(
            state=inpainting.inference_network(task).state_dict(),
            config={"width": WIDTH, "image_size": 32},
            epochs=len(history.epochs),
            metrics={"what": f"{method}: masked PSNR (dB) in centre holes of held-out photos",
                     "model": rows[method]["masked_psnr"], "baseline": rows["naive"]["masked_psnr"],
                     "better": "higher"},
            extra={"held_out": {"photos": len(test), "mask": "center box, half the side",
                                "repaint": REPAINT if method == "ddpm" else None}})
    return run


RECIPES = {f"inpainting/{method}": _recipe(method) for method in inpainting.METHODS}
