"""Lesson 3's experiment: every method trained on the same photos (:func:`train_inpainters`), run
on the same masks beside the naive fill (:func:`run_inpainters`), and scored by masked-region
PSNR (:func:`compare_methods`, :func:`markdown_table`)."""
from __future__ import annotations

import torch

from .. import diffusion as D
from .. import tables
from ..training import DiffusionTask
from .measures import _check_finite_output, _check_images, masked_psnr, naive_fill
from .methods import METHODS, WIDTH, inpaint, make_task, repaint_inpaint

__all__ = ["compare_methods", "train_inpainters", "run_inpainters", "markdown_table"]


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

    from ..data import make_loader
    from ..training import fit

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
