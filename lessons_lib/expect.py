"""What the graded exercise notebooks check with: ``expect(label, observed, expected)``.

Not input checking (that is :mod:`lessons_lib.validate`): this is the graded test cells' one check.

In a student's notebook (and under nbgrader) ``expect`` compares the two values and
raises ``AssertionError`` with a readable message when they differ, like an ``assert``.

The course grader never lets the student's kernel decide whether a check passed: it
rewrites every ``expect(label, observed, expected, ...)`` of a test cell into
``observe(label, observed, site=N)`` before the notebook enters its sandbox, so the
expected value never reaches the student's process. ``observe`` publishes the observed
value as plain JSON data (MIME type :data:`CHECK_MIME`); the grader compares it with the
instructor's expected value in its own process (:func:`compare` on plain data only).

Plain data (:func:`to_plain`): ``None``, ``bool``, ``int``, finite ``float``, ``str``,
lists, ``{"$dict": [[key, value], ...]}`` for mappings and ``{"$float": "nan"|"inf"|"-inf"}``
for non-finite floats. numpy and torch values become lists and numbers; any other
object becomes ``{"$unsupported": type name}``, which never equals anything, so an
object whose ``__eq__`` says yes to everything scores nothing.
"""
from __future__ import annotations

import json
import math
import sys

__all__ = ["CHECK_MIME", "DEFAULT_RTOL", "DEFAULT_ATOL", "expect", "observe", "raises", "to_plain",
           "compare", "describe"]

CHECK_MIME = "application/vnd.lessons-check+json"
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-9
MAX_DEPTH = 32
_MISSING = object()


def to_plain(value, _depth: int = 0):
    """``value`` as plain JSON-able data (see the module docstring); never calls the value's ``__eq__``."""
    if _depth > MAX_DEPTH:
        return {"$unsupported": "nesting deeper than 32 levels"}
    if value is None or type(value) in (bool, str, int):
        return value
    if type(value) is float:
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return to_plain(value.tolist(), _depth + 1)
        if isinstance(value, np.generic):
            return to_plain(value.item(), _depth + 1)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return to_plain(value.detach().cpu().tolist(), _depth + 1)
    if type(value) in (list, tuple):
        return [to_plain(v, _depth + 1) for v in value]
    if type(value) is dict:
        return {"$dict": [[to_plain(k, _depth + 1), to_plain(v, _depth + 1)] for k, v in value.items()]}
    # Subclasses of the plain types (IntEnum, str subclasses...) count by their base value,
    # read through the base type's own method so an overridden __eq__/__int__ plays no part.
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return to_plain(float.__float__(value), _depth + 1)
    if isinstance(value, str):
        return str.__str__(value)
    return {"$unsupported": type(value).__qualname__[:80]}


def _tag(value):
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    return None


def _number(value):
    """A float for a plain number (tagged non-finite floats included); None for anything else."""
    if type(value) in (int, float):
        return float(value)
    if _tag(value) == "$float" and value["$float"] in ("nan", "inf", "-inf"):
        return float(value["$float"])
    return None


def _key(plain) -> str:
    return json.dumps(plain, sort_keys=True)


def compare(observed, expected, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> bool:
    """Whether plain ``observed`` matches plain ``expected``: same kinds, numbers within
    ``atol + rtol * |expected|`` (an int expected is matched exactly), same length, same keys.
    Works on plain data only."""
    if type(expected) is bool or type(observed) is bool:
        return type(expected) is bool and type(observed) is bool and expected == observed
    e_num, o_num = _number(expected), _number(observed)
    if e_num is not None or o_num is not None:
        if e_num is None or o_num is None:
            return False
        if type(expected) is int:  # counts, sizes, indexes: exact (a float must equal it within atol)
            return observed == expected if type(observed) is int else abs(o_num - e_num) <= atol
        if math.isnan(e_num) or math.isnan(o_num):
            return math.isnan(e_num) and math.isnan(o_num)
        if math.isinf(e_num) or math.isinf(o_num):
            return e_num == o_num
        return abs(o_num - e_num) <= atol + rtol * abs(e_num)
    if expected is None or observed is None:
        return expected is None and observed is None
    if type(expected) is str or type(observed) is str:
        return type(expected) is str and type(observed) is str and expected == observed
    if type(expected) is list or type(observed) is list:
        return (type(expected) is list and type(observed) is list and len(expected) == len(observed)
                and all(compare(o, e, rtol, atol) for o, e in zip(observed, expected, strict=False)))
    if _tag(expected) == "$dict" and _tag(observed) == "$dict":
        try:
            exp = {_key(k): v for k, v in expected["$dict"]}
            obs = {_key(k): v for k, v in observed["$dict"]}
        except (TypeError, ValueError):
            return False
        return exp.keys() == obs.keys() and all(compare(obs[k], exp[k], rtol, atol) for k in exp)
    return False  # $unsupported, or anything that is not plain data


def describe(plain, limit: int = 120) -> str:
    """A short, readable rendering of a plain value (for the student's own messages)."""
    text = json.dumps(plain, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expect(label: str, observed, expected, *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> None:
    """Check that ``observed`` matches ``expected`` (numbers within the tolerances);
    raise AssertionError if not."""
    got, want = to_plain(observed), to_plain(expected)
    if not compare(got, want, rtol, atol):
        raise AssertionError(f"{label}: got {describe(got)}, expected {describe(want)}")


def observe(label: str, observed, expected=_MISSING, *, site: int = 0, rtol: float = DEFAULT_RTOL,
            atol: float = DEFAULT_ATOL) -> None:
    """Publish an observed value for the grader (used by the grader's rewritten test cells).

    With ``expected`` (the grader's run of the instructor's own notebook) the expected value
    and tolerances are published too; nothing is compared or raised here.
    """
    payload = {"site": site, "label": str(label)[:500], "value": to_plain(observed)}
    if expected is not _MISSING:
        payload.update(expected=to_plain(expected), rtol=float(rtol), atol=float(atol))
    try:
        from IPython.display import display
    except ImportError:  # outside IPython: one JSON line on stdout
        print(json.dumps({CHECK_MIME: payload}))
        return
    display({CHECK_MIME: payload}, raw=True)


def raises(exception: type, function, *args, **kwargs) -> bool:
    """True when ``function(*args, **kwargs)`` raises ``exception``; False when it returns.
    Any other exception goes on up (the test then reports it)."""
    try:
        function(*args, **kwargs)
    except exception:
        return True
    return False
