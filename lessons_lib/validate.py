"""Checks at the boundary: every public entry point validates what it is given, once, before work starts.

Each check raises one clear error that says what is wrong (with the value) and what to
do, instead of a traceback from deep inside torch, PIL or the file system later on:

* numbers: :func:`number` (finite, in a range), :func:`count` (a whole number >= a minimum),
  :func:`optional_count`, :func:`fraction`, :func:`seed` (what ``torch.manual_seed`` takes),
  :func:`number_list` (a non-empty list of numbers, each checked);
* on/off and text: :func:`flag` (True or False, never a truthy string), :func:`text`;
* tensors: :func:`value_range` (the documented range of an image batch),
  :func:`image_side` (a documented minimum / maximum size with how to resize);
* names: :func:`choice` (one of a fixed set, with the nearest name suggested);
* paths: :func:`output_dir` (a folder that can be created and written to),
  :func:`input_file`;
* writing: :func:`writing` turns a full disk or a read-only folder during a save into
  :class:`WriteFailed`, whose message says that the earlier files are whole;
* the command line: argparse types (:func:`int_arg`, :func:`float_arg`) that say what
  is expected ("a whole number >= 1, e.g. 10") instead of "invalid int value".

Every check takes the argument's name first, then its value, and returns the value as it
should be used (an int for a count, a float for a number). Numbers may come as numpy
scalars or 0-d tensors (a slider, a metric); a bool is never a number.

Kept free of torch at import time (tensors are only inspected when given).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import math
import numbers
import os
import sys
from pathlib import Path
from typing import Iterator

__all__ = ["WriteFailed", "number", "count", "optional_count", "fraction", "seed", "MAX_SEED", "number_list", "flag",
           "text", "value_range", "image_side", "choice", "output_dir", "input_file", "writing", "int_arg",
           "float_arg", "fraction_arg"]


class WriteFailed(OSError):
    """A file could not be written (disk full, read-only folder...); the earlier files are whole."""

    def __str__(self) -> str:  # the plain message, without "[Errno 28]"
        return str(self.strerror)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _item(value):
    """A Python number from a 0-d tensor or numpy scalar; anything else unchanged."""
    if not _is_real(value) and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _as_int(value) -> int | None:
    """``value`` as an int when it is a whole number (3, 3.0, a numpy integer, a 0-d tensor
    holding one); None for anything else (2.5, nan, True, '3')."""
    value = _item(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if _is_real(value) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    return None


def number(name: str, value, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """``value`` as a float: a real, finite number in [low, high] (open ends when asked)."""
    value = _item(value)
    want = _range_text(low, high, low_open, high_open)
    bounds = "" if low is None and high is None else f" {want}"
    if not _is_real(value):
        raise TypeError(f"{name} must be a number{bounds}, got {value!r} ({type(value).__name__}).{_sp(hint)}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number{bounds}, got {v}.{_sp(hint)}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        raise ValueError(f"{name} must be {want}, got {v:g}.{_sp(hint)}")
    return v


def choice(what: str, value, choices, also: str = "", hint: str = ""):
    """``value`` when it is one of ``choices``; else the one "Unknown <what>" message, listing them
    (``also``: what else is accepted, e.g. "or 'all'") and naming the nearest one."""
    import difflib

    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return value
    listed = ", ".join(str(c) for c in choices) + (f" ({also})" if also else "")
    near = difflib.get_close_matches(value, [str(c) for c in choices], n=1) if isinstance(value, str) else []
    raise ValueError(f"Unknown {what} {value!r}. Choose one of: {listed}."
                     + (f" Did you mean {near[0]!r}?" if near else "") + _sp(hint))


def count(name: str, value, minimum: int = 1, maximum: int | None = None, hint: str = "", *,
          counts: str = "") -> int:
    """``value`` as an int: a whole number >= ``minimum`` (and <= ``maximum``); 3.0 counts, 2.5 does not.

    ``counts`` says what it counts ("pixels", "images per batch"), in the message.
    """
    n = _as_int(value)
    if n is None or n < minimum or (maximum is not None and n > maximum):
        span = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        unit = f" ({counts})" if counts else ""
        got = repr(_item(value)) if n is None else n
        raise ValueError(f"{name} must be a whole number {span}{unit}, got {got}.{_sp(hint)}")
    return n


def optional_count(name: str, value, minimum: int = 1, hint: str = "") -> int | None:
    """None (meaning "no limit"), or :func:`count`."""
    return None if value is None else count(name, value, minimum, hint=hint)


def fraction(name: str, value, hint: str = "") -> float:
    """A number strictly between 0 and 1 (a share, e.g. of images held out)."""
    return number(name, value, 0.0, 1.0, low_open=True, high_open=True, hint=hint)


# torch.Generator.manual_seed's range, for any integer type
MAX_SEED = 2**63 - 1


def seed(name: str, value, hint: str = "") -> int:
    """A random seed: a whole number from 0 to 2**63 - 1 (what ``torch.manual_seed`` takes)."""
    n = _as_int(value)
    if n is None or not 0 <= n <= MAX_SEED:
        raise ValueError(f"{name} must be a whole number from 0 to 2**63 - 1, got {_item(value)!r}.{_sp(hint)}")
    return n


def number_list(name: str, values, check, example: str, single: str = "") -> list:
    """A non-empty list (tuple, array...) of numbers, each passed through ``check`` (a function
    of one value, e.g. ``lambda v: number("strength", v, 0, 1)``), as a list.

    ``example`` shows a good list; ``single`` says what to do with one value instead of a list.
    """
    one = isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__") \
        or getattr(values, "ndim", 1) == 0  # a 0-d array or tensor is one number
    if one:
        raise TypeError(f"{name} must be a list of numbers, e.g. {example}, got {values!r}.{_sp(single)}")
    checked = [check(v) for v in values]
    if not checked:
        raise ValueError(f"The list of {name} is empty: give at least one, e.g. {example}.")
    return checked


def flag(name: str, value, hint: str = "") -> bool:
    """True or False (numpy's bool too). Anything else is refused: a string such as 'no' would count as True."""
    np = sys.modules.get("numpy")
    if not (isinstance(value, bool) or (np is not None and isinstance(value, np.bool_))):
        raise TypeError(f"{name} must be True or False, got {value!r}.{_sp(hint)}")
    return bool(value)


def text(name: str, value, what: str = "text", *, empty_ok: bool = False, hint: str = "") -> str:
    """A string (not empty or blank unless ``empty_ok``); ``what`` says what it holds,
    e.g. "a hub id such as 'org/name'"."""
    if isinstance(value, str):
        if empty_ok or value.strip():
            return value
        raise ValueError(f"{name} must be {what}, got {'an empty string' if not value else repr(value)}.{_sp(hint)}")
    raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).{_sp(hint)}")


def value_range(name: str, x, low: float, high: float, hint: str = "", tol: float = 1e-3):
    """Refuses a tensor whose values leave [low, high] (or are NaN/inf): says the range found."""
    import torch

    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}.")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}).")
    xf = x.detach().float()
    if not bool(torch.isfinite(xf).all()):
        raise ValueError(f"{name} holds NaN or infinite values; it must hold numbers in "
                         f"[{low:g}, {high:g}].{_sp(hint)}")
    lo, hi = float(xf.min()), float(xf.max())
    if lo < low - tol or hi > high + tol:
        if hi > 2:
            how = "divide by 255" if low >= 0 else "use x / 127.5 - 1"
            guess = f" It looks like 0..255 pixel values: {how} first."
        elif lo < -tol and low >= 0:
            guess = " It looks like [-1, 1] values: convert with lessons_lib.images.to_unit first."
        else:
            guess = ""
        raise ValueError(f"{name}: the values span [{lo:.4g}, {hi:.4g}], but they must lie in "
                         f"[{low:g}, {high:g}].{guess}{_sp(hint)}")
    return x


def image_side(name: str, height: int, width: int, minimum: int | None = None, maximum: int | None = None,
               hint_small: str = "", hint_large: str = "") -> None:
    """Refuses an image smaller than ``minimum`` or larger than ``maximum`` pixels on a side."""
    if minimum is not None and min(height, width) < minimum:
        raise ValueError(f"The {name} is {width}x{height} pixels; it must be at least {minimum} pixels "
                         f"on each side.{_sp(hint_small)}")
    if maximum is not None and max(height, width) > maximum:
        raise ValueError(f"The {name} is {width}x{height} pixels; the largest supported is {maximum} "
                         f"pixels on the longer side.{_sp(hint_large)}")


def _first_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return p
    return Path(".")


def output_dir(path, flag: str = "output folder") -> Path:
    """Checks (before any work) that ``path`` is, or can become, a folder this process can write to.

    Nothing is created: a missing folder is made later by the writer.
    """
    if path is None or str(path) == "":
        raise ValueError(f"The {flag} is empty: give a folder path.")
    path = Path(path).expanduser()
    found = _first_existing(path)
    if found.exists() and not found.is_dir():
        if found == path:
            raise NotADirectoryError(f"The {flag} '{path}' is a file, not a folder. Choose a folder path "
                                     f"(an existing folder, or one to be created).")
        raise NotADirectoryError(f"The {flag} '{path}' cannot be created: '{found}' on its way is a file. "
                                 f"Choose another folder path.")
    if found.is_symlink() and not found.exists():
        raise NotADirectoryError(f"The {flag} '{path}' goes through a broken link ('{found}'). "
                                 f"Choose another folder path.")
    if not os.access(found, os.W_OK | os.X_OK):
        raise PermissionError(f"The {flag} '{path}' is not writable ('{found}' belongs to someone else or "
                              f"is read-only). Choose a folder you can write to.")
    return path


def input_file(path, what: str = "file") -> Path:
    """An existing regular file (not a folder): says which of the two is wrong."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"The {what} '{p}' does not exist. Check the path (relative paths start "
                                f"from {Path.cwd()}).")
    if p.is_dir():
        raise IsADirectoryError(f"The {what} '{p}' is a folder; give the path of a file inside it.")
    return p


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


@contextlib.contextmanager
def writing(path, kept: str = "") -> Iterator[None]:
    """Turns an OSError while writing ``path`` into :class:`WriteFailed` with a plain message.

    So does the RuntimeError that ``torch.save`` raises when its file cannot be written.

    ``kept`` says which earlier files are whole, in the plural (e.g. "the checkpoints of epochs 1-3").
    The writers of :mod:`lessons_lib.files` never leave a partial file under the real name.
    """
    try:
        yield
    except WriteFailed:
        raise
    except RuntimeError as err:
        # torch.save's zip writer answers a failed write (disk full) with its own
        # RuntimeError ("[enforce fail at inline_container.cc:...] unexpected pos"),
        # raised while handling the OSError: the OSError says what happened.
        cause = _os_error_in_chain(err)
        if cause is None and "inline_container" not in str(err):
            raise
        if cause is not None:
            _raise_write_failed(path, kept, cause)
        said = str(err).splitlines()[0][:200]
        _raise_write_failed(path, kept, err, why=f"torch could not write the file out ({said}), most "
                            "often because the disk is full", todo="Free some disk space (or choose another "
                            "output folder) and run again")
    except OSError as err:
        if isinstance(err, (FileExistsError, FileNotFoundError)) and err.errno not in _DISK_FULL:
            raise
        _raise_write_failed(path, kept, err)


def _os_error_in_chain(err: BaseException) -> OSError | None:
    """The first OSError among the errors that ``err`` was raised from or while handling."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__
    return None


def _raise_write_failed(path, kept: str, err: BaseException, why: str = "", todo: str = ""):
    code = getattr(err, "errno", None)
    if not why:
        if code in _DISK_FULL:
            why = "the disk is full (no space left on the device)"
            todo = "Free some disk space (or choose another output folder) and run again"
        elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "the folder is read-only or not yours"
            todo = "Choose a folder you can write to and run again"
        else:
            why = err.strerror or str(err)
            todo = "Fix that and run again"
    still = (f" Nothing was replaced: {kept} are whole." if kept
             else " Nothing was replaced and no partial file was left behind.")
    raise WriteFailed(code, f"Could not write '{path}': {why}.{still} {todo}.") from None


def _sp(hint: str) -> str:
    return f" {hint}" if hint else ""


def _range_text(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        return f"in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "a number"


# --------------------------------------------------------------------------- argparse types
def int_arg(minimum: int = 1, example: int | None = None, maximum: int | None = None):
    """An argparse ``type``: a whole number >= ``minimum`` (and <= ``maximum``), with a message that says so."""
    example = minimum if example is None else example
    want = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            value = None
        if (value is None or not math.isfinite(value) or not value.is_integer() or value < minimum
                or (maximum is not None and value > maximum)):
            raise argparse.ArgumentTypeError(f"expected a whole number {want} (e.g. {example}), got '{text}'")
        return int(value)

    parse.__name__ = f"whole number {want}"
    return parse


def float_arg(low: float | None = None, high: float | None = None, *, low_open: bool = False,
              high_open: bool = False, example: str = ""):
    """An argparse ``type``: a finite number in the range, with a message that says so."""
    want = _range_text(low, high, low_open, high_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        ok = value is not None and math.isfinite(value) and not (
            (low is not None and (value <= low if low_open else value < low))
            or (high is not None and (value >= high if high_open else value > high)))
        if not ok:
            eg = f" (e.g. {example})" if example else ""
            raise argparse.ArgumentTypeError(f"expected a finite number {want}{eg}, got '{text}'")
        return value

    parse.__name__ = f"number {want}"
    return parse


def fraction_arg(example: str = "0.1"):
    return float_arg(0.0, 1.0, low_open=True, high_open=True, example=example)
