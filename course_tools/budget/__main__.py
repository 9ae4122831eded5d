"""``python -m course_tools.budget [--details]``: the full profile's estimated cost on a Colab T4."""
from __future__ import annotations

import argparse

import torch

from .assumptions import OP_SECONDS, RATES
from .report import table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.budget",
                                     description="The full profile's estimated cost on a Colab T4, per notebook, "
                                                 "from counts and measured FLOPs (see the package docstring).")
    parser.add_argument("--details", action="store_true", help="list every training run and sampling call")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(table(details=args.details))
    print("\nEffective T4 rates assumed: " + ", ".join(f"{k} {v / 1e12:g} TFLOPS" for k, v in RATES.items())
          + f"; {OP_SECONDS * 1e6:g} us per dispatched operation. An estimate, not a measurement.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
