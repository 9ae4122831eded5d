"""What tests/test_accelerate.py runs under ``accelerate launch`` on two CPU processes (gloo, 127.0.0.1).

One launch serves every check (a launch costs seconds): the zoo's command line, an uninterrupted
run, the same run interrupted and resumed, a one-process checkpoint resumed on two, and a bf16
run. The main process saves what the test compares in ``OUT/result.pt``.

    accelerate launch --multi_gpu --num_processes 2 tests/accelerate_job.py OUT
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lessons_lib import data, training, zoo  # noqa: E402
from lessons_lib.models.colorizers import build_model  # noqa: E402

SIZE, BATCH, STEPS, WIDTH = 16, 8, 3, 8   # a global batch of 8: 4 images per process on two


def photos(split: str) -> torch.Tensor:
    return zoo.load_photos(None, SIZE, split, limit=BATCH * STEPS, seed=0)


def run(ckpt_dir, epochs: int, interrupt_at=None, **kw) -> tuple[training.Task, training.History]:
    """The zoo's U-Net colorizer, trained as zoo.train does it (same seed, same loaders)."""
    torch.manual_seed(0)
    task = zoo.make_task("unet", build_model("unet", width=WIDTH), lr=1e-3)
    loader = data.make_loader(zoo.colorization_pairs(photos("train")), BATCH, seed=1)
    val = data.make_loader(zoo.colorization_pairs(photos("test")[:BATCH * 2]), BATCH, shuffle=False)

    def stop(epoch, step, logs):
        if (epoch, step) == interrupt_at:
            raise KeyboardInterrupt

    history = training.fit(task, loader, epochs, val_loader=val, ckpt_dir=ckpt_dir, progress=False,
                           on_step=stop if interrupt_at else None, **kw)
    return task, history


def weights(task) -> dict:
    return {k: v.detach().clone() for k, v in task.models["model"].state_dict().items()}


def main(out: Path) -> None:
    zoo.main(["--model", "unet", "--mode", "train", "--epochs", "2", "--steps_per_epoch", "2",
              "--batch_size", str(BATCH), "--width", str(WIDTH), "--image_size", str(SIZE),
              "--limit", str(BATCH * STEPS), "--out", str(out / "cli")])
    straight, hist = run(out / "straight", 2)
    try:
        run(out / "resumed", 2, interrupt_at=(2, 2))
    except KeyboardInterrupt:
        pass
    resumed, resumed_hist = run(out / "resumed", 2)
    one_then_two, _ = run(out / "one", 2)   # the test wrote epoch 1 there on one process
    torch.manual_seed(0)
    bf16 = zoo.make_task("unet", build_model("unet", width=WIDTH), lr=1e-3)
    before = weights(bf16)
    bf16_hist = training.fit(bf16, data.make_loader(zoo.colorization_pairs(photos("train")), BATCH, seed=1), 1,
                             steps_per_epoch=2, mixed_precision="bf16", progress=False)
    accelerator_processes = int(torch.distributed.get_world_size())
    if torch.distributed.get_rank() == 0:
        torch.save({"processes": accelerator_processes, "straight": weights(straight), "history": hist.rows,
                    "resumed": weights(resumed), "resumed_history": resumed_hist.rows,
                    "one_then_two": weights(one_then_two), "bf16_before": before, "bf16": weights(bf16),
                    "bf16_history": bf16_hist.rows}, out / "result.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
