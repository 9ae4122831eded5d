"""Train the course weights that ship in ``lessons_lib/weights/`` (``make weights``).

    python -m course_tools.train_weights                 # everything not yet shipped
    python -m course_tools.train_weights --only zoo/     # one lesson's recipes (a name ending in /)
    python -m course_tools.train_weights --only 'zoo/unet*'            # a glob, said explicitly
    python -m course_tools.train_weights --only zoo/unet --overwrite   # retrain exactly that one

``--only`` is one exact recipe name, a lesson's prefix ending in ``/``, or a glob pattern
(``*``, ``?``, ``[...]``); never a bare prefix, since ``zoo/unet`` is also the start of
``zoo/unetgan`` and ``zoo/unetvae``. The recipes it selected are printed before anything trains.

Every recipe trains from the CIFAR-10 subset (``$LESSONS_DATA_DIR/cifar10-subset``, the
fixed 90/10 train/test split the fast profile uses) with fixed seeds, evaluates on the
held-out photos, and records in the manifest what it trained, with which command and
data, for how long, and the held-out metrics beside the baseline's. It prints the same.
Recipes live in ``course_tools/recipes/`` (one module per lesson), each a dict
``RECIPES = {name: function() -> Trained}``.

On several GPUs (or CPU processes) it runs under Accelerate, unchanged::

    accelerate launch -m course_tools.train_weights --only zoo/unet --overwrite

Every process trains (each recipe's ``training.fit`` splits the batches between them); the
main process alone writes the weights and the manifest and prints.
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

RECIPE_MODULES = ("zoo", "inpainting", "features", "style", "translation", "editing")


@dataclass
class Trained:
    """What a recipe returns: the weights to ship and what the manifest says of them."""

    state: dict
    config: dict                      # how to build the network (passed back at load time)
    epochs: float
    metrics: dict                     # held-out: {"what": ..., "model": x, "baseline": y, "better": ...}
    extra: dict = field(default_factory=dict)


def recipes() -> dict[str, Callable[[], Trained]]:
    found = {}
    for name in RECIPE_MODULES:
        try:
            module = importlib.import_module(f"course_tools.recipes.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"course_tools.recipes.{name}":
                raise
            continue
        found.update(module.RECIPES)
    return found


def select(names: Sequence[str], only: str | None) -> list[str]:
    """The recipe names ``--only`` selects (see the module's docstring); ValueError saying why none."""
    if only is None:
        return list(names)
    if not only.strip():
        raise ValueError(f"--only {only!r} is empty. Give a recipe name (--list shows them), e.g. --only "
                         "zoo/unet, or leave --only out to train every recipe not shipped yet.")
    if any(ch in only for ch in "*?["):
        found = [n for n in names if fnmatch.fnmatchcase(n, only)]
    elif only.endswith("/"):
        found = [n for n in names if n.startswith(only)]
    else:
        found = [n for n in names if n == only]
    if found:
        return found
    near = [n for n in names if n.startswith(only.rstrip("*?[/")) or only in n][:8]
    hint = (f" Names that contain it: {', '.join(near)}." if near else " --list shows the names.")
    raise ValueError(f"--only {only!r} matches no recipe (it takes one exact name, a lesson prefix ending "
                     f"in '/', e.g. zoo/, or a glob such as 'zoo/unet*').{hint}")


def _check_data() -> str:
    from lessons_lib.data import CIFAR_SUBSET, data_root

    root = data_root()
    if root is None or not (root / CIFAR_SUBSET / "train").is_dir():
        raise SystemExit(f"error: the course weights are trained from the CIFAR-10 subset; set LESSONS_DATA_DIR "
                         f"to the folder that holds '{CIFAR_SUBSET}/train' (make weights does this when "
                         f"../shared/data is there).")
    return f"{CIFAR_SUBSET} (fixed 90/10 train/test split)"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_tools.train_weights", description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None,
                   help="one recipe name (zoo/unet), a lesson prefix ending in / (zoo/), or a glob ('zoo/unet*')")
    p.add_argument("--overwrite", action="store_true", help="retrain and replace weights already shipped")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = p.parse_args(argv)
    os.environ.setdefault("LESSONS_PROFILE", "fast")  # the fast profile's data: the CIFAR subset
    from lessons_lib import course_weights

    found = recipes()
    try:
        todo = {name: found[name] for name in select(list(found), args.only)}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(todo))
        return 0
    data = _check_data()
    from lessons_lib.training import main_process, wait_for_main

    main = main_process()  # under accelerate launch: the process that writes and prints
    if args.only is not None and main:
        print(f"--only {args.only!r} selects {len(todo)} recipe{'s' if len(todo) > 1 else ''}: "
              f"{', '.join(todo)}", flush=True)
    shipped = course_weights.manifest()["weights"]
    command = "python -m course_tools.train_weights" + (f" --only {args.only}" if args.only else "")
    for name, recipe in todo.items():
        if name in shipped and not args.overwrite:
            if main:
                print(f"{name}: shipped already (pass --overwrite to retrain)")
            continue
        start = time.perf_counter()
        trained = recipe()
        seconds = time.perf_counter() - start
        if not main:
            wait_for_main()
            continue
        info = {"command": command, "data": data, "epochs": trained.epochs, "seconds": round(seconds, 1),
                "config": trained.config, "metrics": trained.metrics, **trained.extra}
        record = course_weights.save_state(name, trained.state, info, overwrite=args.overwrite)
        m = trained.metrics
        print(f"{name}: {trained.epochs} epochs in {seconds / 60:.1f} min; held-out {m['what']}: "
              f"{m['model']:.3f} vs baseline {m['baseline']:.3f} ({m['better']} is better); "
              f"{record['bytes'] / 1e6:.2f} MB", flush=True)
        wait_for_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
