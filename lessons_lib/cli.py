"""What the course's command lines (``python -m lessons_lib.zoo``, ``lessons_lib.inpainting``)
share: a known error is one line and exit status 2, Ctrl-C says how to resume (130), a bug
keeps its traceback."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from . import course_weights, registry, training
from . import validate as V
from .runtime import DeviceUnavailable

__all__ = ["cli_main"]

# Errors whose message already says what to do: printed as one line. Anything else
# (a bug, a CUDA failure) keeps its traceback.
KNOWN_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError, ImportError,
                training.CheckpointError, training.TrainingDiverged, registry.DownloadUnavailable,
                course_weights.WeightsError,
                DeviceUnavailable, PermissionError, IsADirectoryError, TypeError, V.WriteFailed)


def cli_main(run_cli: Callable, argv: Sequence[str] | None = None) -> int:
    """Runs ``run_cli(argv)`` and returns the exit status."""
    try:
        run_cli(argv)
    except KeyboardInterrupt:
        print("Interrupted. Checkpoints written so far are complete; run the same command to resume.",
              file=sys.stderr)
        return 130
    except KNOWN_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        print("error: out of memory (" + (str(err).splitlines() or ["no details"])[0][:200] + "). The model "
              "or a batch is too large for this device: use a smaller --batch_size or --width (or --image_size), "
              "or a device with more memory. Checkpoints written so far are complete (a run with other sizes "
              "needs another --out folder).", file=sys.stderr)
        return 2
    return 0


def _out_of_memory(err: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), MemoryError, or the CPU allocator's RuntimeError."""
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text
