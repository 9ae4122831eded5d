"""Overhead of lessons_lib.training.fit against a bare hand-written PyTorch loop.

Both train the same zoo model (same initial weights) on the same batches for one epoch;
they run interleaved in rounds, each round in a rotated order, and the overhead is the
median over rounds of fit's time divided by the bare loop's in the same round. fit runs
with everything on: its Accelerator (created per run, with Accelerate's data loader,
autocast and accumulation contexts), progress bar, history, per-epoch checkpoint written
atomically, RNG state capture; it is also timed without a checkpoint folder, which
separates the loop's per-step cost from the checkpoint's fixed cost per epoch.

    PYTHONPATH=. python benchmarks/training.py [--reps 11] [--steps 20] [--model unet] [--width 16]
    PYTHONPATH=. python benchmarks/training.py --before ca6ed23   # also fit as of that commit

``--before REV`` loads ``lessons_lib/training.py`` as it was at git revision REV (e.g. the
hand-written loop before Accelerate) and times it in the same interleaved rounds.

Prints the median wall and CPU seconds per epoch of each and the overheads (target: <= 5 %).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lessons_lib import data, training, zoo  # noqa: E402
from lessons_lib.models.colorizers import build_model  # noqa: E402


def bare_epoch(model, loader, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    total = 0.0
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        total += loss.item()
    return total


def fit_epoch(model, loader, lr, ckpt_dir, module=training):
    task = training.SupervisedTask(model, lr=lr)  # ckpt_dir None: no checkpoint, the loop's own cost alone
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        module.fit(task, loader, 1, ckpt_dir=ckpt_dir, progress=True)


def training_at(rev: str):
    """lessons_lib/training.py as of git revision ``rev``, imported beside today's lessons_lib."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{rev}:lessons_lib/training.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "training_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("lessons_lib._training_before", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "lessons_lib"
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=11)
    p.add_argument("--steps", type=int, default=20, help="batches per epoch")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--model", default="unet")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--before", default=None, metavar="REV", help="also time fit as of this git revision")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = zoo.load_photos(None, 32, "train", limit=args.steps * args.batch_size, seed=0)
    pairs = zoo.colorization_pairs(photos)
    torch.manual_seed(0)
    initial = build_model(args.model, width=args.width)
    before = training_at(args.before) if args.before else None
    kinds = ["bare", "fit", "loop"] + (["before"] if before else [])
    times = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps + 1):  # rep 0 warms up every one and is not counted
            order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
            for which in order:
                model = copy.deepcopy(initial)
                loader = data.make_loader(pairs, args.batch_size, seed=rep)
                t0, c0 = time.perf_counter(), time.process_time()
                if which == "bare":
                    bare_epoch(model, loader, 1e-3)
                else:
                    fit_epoch(model, loader, 1e-3, None if which == "loop" else Path(tmp) / f"{which}{rep}",
                              before if which == "before" else training)
                if rep:
                    times[which].append(time.perf_counter() - t0)
                    cpu[which].append(time.process_time() - c0)
    print(f"model {args.model} (width {args.width}), {len(pairs)} images, batch {args.batch_size}, "
          f"{args.reps} interleaved repetitions, {torch.get_num_threads()} threads")
    names = {"fit": "training.fit (Accelerate)", "loop": "the same, no checkpoint",
             "before": f"training.fit at {args.before}"}
    for label, t in (("wall", times), ("CPU", cpu)):
        bare = statistics.median(t["bare"])
        for which in kinds[1:]:
            fit = statistics.median(t[which])
            ratios = [f / b for f, b in zip(t[which], t["bare"])]
            q1, paired, q3 = statistics.quantiles(ratios, n=4)
            print(f"{label:4} time  bare loop {bare:7.3f} s/epoch   {names[which]:27} {fit:7.3f} s/epoch   "
                  f"overhead {100 * (paired - 1):+5.1f} % (middle half of rounds {100 * (q1 - 1):+5.1f} to "
                  f"{100 * (q3 - 1):+5.1f} %; ratio of medians {100 * (fit / bare - 1):+5.1f} %)")
    print("overhead: the median of the per-round ratios, each taken side by side, so that a slower stretch of a "
          "shared machine\nslows both sides of a ratio; target: <= 5 %. A per-epoch checkpoint costs the same "
          "fixed time in any loop,\nso its share shrinks as epochs get longer than these short ones.")
    return statistics.median(f / b for f, b in zip(cpu["fit"], cpu["bare"]))


if __name__ == "__main__":
    main()
