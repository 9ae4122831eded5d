"""Judging in the grader's own process: strict parsing of what a sandbox reported, and the verdicts.

Everything a sandbox reports is untrusted (the student's code ran there as the same user as
the worker that wrote it). So the report is read with caps on size, line length, nesting
and node count; only plain data (see ``lessons_lib.expect``) counts as a check value; and a
test passes only when every check value the student's run published equals, within the
instructor's tolerance, the expected value the instructor's notebook produced in its own
run: values that never entered the student's sandbox. The kernel's "ok", IPython's hooks
and the objects' own ``==`` play no part.

Reasons shown in the results are built here: the check's number (and its label when the
check is visible in the exercise), or the exception's type and a short message, escaped,
with paths and any quoted test or solution code removed.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass

from lessons_lib.expect import compare

__all__ = ["Expected", "ReferenceError_", "parse_records", "is_plain", "reference_checks", "judge_test",
           "sanitize", "exception_name"]

MAX_LINE = 16 * 2**20
MAX_DEPTH = 40
MAX_NODES = 2_000_000
MAX_REASON = 200
_PATH = re.compile(r"(?<![\w.~-])/[^\s'\"()<>,;:]+")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,79}$")


class ReferenceError_(ValueError):
    """The instructor's own notebook did not produce usable expected values."""


@dataclass(frozen=True)
class Expected:
    site: int
    label: str
    value: object
    rtol: float
    atol: float


def parse_records(data: bytes) -> list[dict]:
    """The worker's JSON lines; anything malformed, oversized or absurdly nested is dropped."""
    records = []
    for line in data.split(b"\n"):
        if not line.strip() or len(line) > MAX_LINE:
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            records.append(record)
    return records


def is_plain(value) -> bool:
    """Whether ``value`` (parsed JSON) is plain check data within the caps; walked without recursion."""
    stack, nodes = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            return False
        if item is None or type(item) in (bool, int, str):
            continue
        if type(item) is float:
            if not math.isfinite(item):
                return False
            continue
        if type(item) is list:
            stack.extend((v, depth + 1) for v in item)
            continue
        if type(item) is dict and len(item) == 1:
            tag, body = next(iter(item.items()))
            if tag == "$float" and body in ("nan", "inf", "-inf"):
                continue
            if tag == "$unsupported" and type(body) is str:
                continue
            if tag == "$dict" and type(body) is list and all(type(p) is list and len(p) == 2 for p in body):
                stack.extend((v, depth + 1) for p in body for v in p)
                continue
        return False
    return True


def _number(x) -> bool:
    return type(x) in (int, float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _observations(record: dict | None) -> list[tuple[int, str, object]] | None:
    """(site, label, value) of a cell record's checks; None when the record is malformed."""
    if record is None:
        return []
    checks = record.get("checks", [])
    if type(checks) is not list:
        return None
    out = []
    for check in checks:
        if (type(check) is not dict or type(check.get("site")) is not int
                or type(check.get("label")) is not str or "value" not in check
                or not is_plain(check["value"])):
            return None
        out.append((check["site"], check["label"], check["value"]))
    return out


def reference_checks(record: dict | None, where: str) -> list[Expected]:
    """The expected values of one test cell from the instructor's run (which must pass its own checks)."""
    if record is None:
        raise ReferenceError_(f"{where} did not run in the instructor's notebook")
    if record.get("status") != "ok":
        raise ReferenceError_(f"{where} raised {exception_name(record.get('ename'))}: "
                              f"{sanitize(record.get('evalue', ''), redact=())} in the instructor's notebook")
    expected = []
    for check in record.get("checks", []) if type(record.get("checks")) is list else []:
        ok = (type(check) is dict and type(check.get("site")) is int and type(check.get("label")) is str
              and is_plain(check.get("value")) and is_plain(check.get("expected"))
              and _number(check.get("rtol")) and _number(check.get("atol")))
        if not ok:
            raise ReferenceError_(f"{where}: a check published unusable data (values must be numbers, "
                                  "strings, lists, dicts, numpy arrays or tensors)")
        if "$unsupported" in json.dumps(check["expected"]):
            raise ReferenceError_(f"{where}, check {check['label']!r}: its expected value is of a type the "
                                  "grader cannot compare (use numbers, strings, lists, dicts, arrays)")
        if not compare(check["value"], check["expected"], check["rtol"], check["atol"]):
            raise ReferenceError_(f"{where}, check {check['label']!r}: the instructor's own answer does not "
                                  "give the expected value")
        expected.append(Expected(check["site"], check["label"], check["expected"], check["rtol"],
                                 check["atol"]))
    if not expected:
        raise ReferenceError_(f"{where} published no check values in the instructor's notebook")
    return expected


def judge_test(expected: list[Expected], record: dict | None, hidden: frozenset,
               redact: tuple[str, ...]) -> tuple[str, str] | None:
    """(status, reason) of one test cell, or None when the cell never ran (the caller says why)."""
    if record is None:
        return None
    observed = _observations(record)
    if observed is None:
        return "failed", "the test's check values were not plain data"
    n = len(expected)
    for i, want in enumerate(expected):
        which = f"hidden check {i + 1} of {n}" if want.site in hidden else \
            f"check {i + 1} of {n} ({sanitize(want.label, redact=())})"
        if i >= len(observed):
            if record.get("status") == "error":
                name = exception_name(record.get("ename"))
                status = "failed" if name == "AssertionError" else "error"
                message = sanitize(record.get("evalue", ""), redact=redact)
                return status, f"{name}: {message}" if message else name
            return "failed", f"{which} gave no value: the test stopped early"
        site, label, value = observed[i]
        if site != want.site or label != want.label or not compare(value, want.value, want.rtol, want.atol):
            return "failed", f"{which} gave a wrong value"
    if len(observed) > n:
        return "failed", f"the test published {len(observed)} check values where it has {n}"
    if record.get("status") != "ok":
        name = exception_name(record.get("ename"))
        return "error", f"{name} after the checks: {sanitize(record.get('evalue', ''), redact=redact)}"
    return "passed", ""


def exception_name(name) -> str:
    """An exception's class name as reported, if it looks like one; else 'Exception'."""
    return name if isinstance(name, str) and _NAME.match(name) else "Exception"


def sanitize(text, limit: int = MAX_REASON, redact: tuple[str, ...] = ()) -> str:
    """A short, single-line, escaped message: no paths, no control characters, no quoted code."""
    if not isinstance(text, str):
        return ""
    text = text[:20_000]
    flat = " ".join(text.split())
    for line in redact:
        if line in flat:
            return "(message withheld: it quotes the test or solution code)"
    text = _PATH.sub("<path>", flat)
    out = []
    for ch in text:
        if unicodedata.category(ch)[0] == "C":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."
