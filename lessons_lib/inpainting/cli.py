"""``python -m lessons_lib.inpainting``: train the four inpainters on a folder of photos, or test
them (the course weights or a run's own) on centre-box holes beside the naive fill. Every
argument is checked before any work."""
from __future__ import annotations

import torch

from .. import course_weights
from .. import masks as M
from .. import validate as V
from ..training import Task
from .comparison import compare_methods, markdown_table, run_inpainters, train_inpainters
from .methods import METHODS, WIDTH, inference_network, make_task
from .weights import load_course_task

__all__ = ["build_parser", "run", "main"]


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
    from ..training import CheckpointError, load_weights

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
    from ..training import latest_checkpoint

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

    from ..data import load_photos
    from ..figures import save_rows
    from ..files import atomic_write_text

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
    from ..training import main_process

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
    from ..cli import cli_main

    return cli_main(run, argv)
