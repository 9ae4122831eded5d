"""``python -m lessons_lib.inpainting ...``: the command line of :mod:`lessons_lib.inpainting.cli`."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
