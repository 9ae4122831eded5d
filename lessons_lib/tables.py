"""Tables: plain text for printed results (the exercises), and a lesson's results rows.

``show_results`` is how a lesson reports what it achieved: one row per trained model,
its number beside its trivial baseline's. The notebook shows them as a Markdown table,
and the course runner (``make course``) reads the same rows from the executed
notebook into ``results.json`` and ``index.html``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from . import validate as V

__all__ = ["ClaimFailed", "claim", "format_table", "markdown_table", "paired_row", "RESULTS_MIME", "result_row",
           "results_markdown", "show_results", "significant"]

# The MIME type the course runner looks for in a notebook's outputs.
RESULTS_MIME = "application/vnd.lessons-results+json"


def _cell(value, fmt: str | None) -> str:
    if value is None:
        return "-"
    if fmt is not None:
        return format(value, fmt)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_cell(v, None) for v in value) + ")"
    return str(value)


def format_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None,
                 formats: Mapping[str, str] | None = None) -> str:
    """Rows of dicts as an aligned text table; ``columns`` picks and orders the keys.

    ``formats`` maps a column to a format spec (``{"ratio": ".1f"}``); floats default
    to 4 significant digits, booleans to yes/no, None to "-".
    """
    rows = list(rows)
    if not rows:
        raise ValueError("format_table got no rows: compute the results first, then print them.")
    columns = list(columns) if columns is not None else list(rows[0].keys())
    missing = [c for c in columns if any(c not in row for row in rows)]
    if missing:
        raise KeyError(f"format_table: column(s) {missing} are missing from some rows; "
                       f"the first row has {list(rows[0].keys())}.")
    formats = dict(formats or {})
    body = [[_cell(row[c], formats.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(s.rjust(w) for s, w in zip(cells, widths))  # noqa: E731
    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    return "\n".join(out)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None,
                   escape: bool = True) -> str:
    """The one Markdown table renderer of the course (the lessons' tables, the zoo's and the
    inpainting command lines', the grader's summary).

    ``align``: one letter per column, ``"l"`` or ``"r"`` (default: the first column left, the
    others right, as numbers read best). Cells are ``str()`` of each value; with ``escape`` a
    ``|`` or a line break inside a cell cannot break the table (pass ``escape=False`` for cells
    that are Markdown already, escaped by their caller).
    """
    header = [str(h) for h in header]
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align needs one 'l' or 'r' per column ({len(header)}), got {align!r}.")

    def cell(value) -> str:
        text = str(value)
        return " ".join(text.replace("|", "\\|").split()) if escape else text

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "".join("---|" if a == "l" else "---:|" for a in align)]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"A table row has {len(row)} cells for {len(header)} columns: {row!r}.")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def result_row(what: str, model: float, baseline: float, better: str = "lower", *,
               spread: float | None = None, expected: str = "beats") -> dict:
    """One results row: ``what`` was measured, the trained ``model``'s value, the trivial
    ``baseline``'s value on the same images, and which direction is ``better``.

    ``spread`` is the model value's uncertainty (for example the standard error over the
    held-out photos), shown as "value ± spread". ``expected="loses"`` marks a row that the
    lesson means to lose (a model shown failing on purpose): the table says so instead of
    changing the baseline to one it can beat.
    """
    V.choice("direction (better=)", better, ("lower", "higher"))
    V.choice("outcome (expected=)", expected, ("beats", "loses"))
    if not isinstance(what, str) or not what.strip():
        raise ValueError("A results row needs a non-empty description ('what').")
    model, baseline = float(model), float(baseline)
    if not (math.isfinite(model) and math.isfinite(baseline)):
        raise ValueError(f"{what}: the model ({model}) and baseline ({baseline}) must be finite numbers.")
    if spread is not None:
        spread = float(spread)
        if not (math.isfinite(spread) and spread >= 0):
            raise ValueError(f"{what}: the spread must be a finite number >= 0, got {spread}.")
    return {"what": what, "model": model, "baseline": baseline, "better": better,
            "spread": spread, "expected": expected}


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-photo values (a 1-D tensor or a list of numbers)."""
    import torch  # here, so that reading rows (the course runner) never needs torch

    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    se = float(v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def paired_row(what: str, model_values, baseline_values, better: str = "lower", *,
               expected: str = "beats") -> dict:
    """A results row from per-photo values of the model and of the baseline on the same photos.

    ``model`` and ``baseline`` are the means; ``spread`` is the half-width of the 95 % interval of
    the mean per-photo difference (1.96 standard errors), so a margin smaller than the spread is
    a win the held-out photos cannot tell from luck.
    """
    import torch  # here, so that reading rows (the course runner) never needs torch

    m = torch.as_tensor(model_values, dtype=torch.float64).flatten()
    b = torch.as_tensor(baseline_values, dtype=torch.float64).flatten()
    if m.numel() != b.numel() or m.numel() < 2:
        raise ValueError(f"{what}: paired_row needs the same photos for the model and the baseline, at least 2 "
                         f"(got {m.numel()} and {b.numel()} values).")
    spread = 1.96 * mean_se(m - b)[1]
    return result_row(what, m.mean().item(), b.mean().item(), better, spread=spread, expected=expected)


def beats(row: Mapping) -> bool:
    return row["model"] < row["baseline"] if row["better"] == "lower" else row["model"] > row["baseline"]


def significant(row: Mapping) -> bool:
    """Whether the margin is larger than the row's spread (True for rows without one)."""
    return row.get("spread") is None or abs(row["model"] - row["baseline"]) > row["spread"]


class ClaimFailed(AssertionError):
    """A sentence of a lesson that this run's numbers do not support."""


def claim(statement: str, holds: bool, evidence: str = "") -> str:
    """Checks a sentence the lesson states against this run's numbers.

    When it holds, prints it with a tick. When it does not, the run contradicts the text: with
    ``LESSONS_CLAIMS=strict`` (set by ``make course`` and ``make test``, so a lesson is never
    published with a sentence its run contradicts) this raises ``ClaimFailed``; otherwise (a
    student's own run, perhaps on other photos) it prints the sentence with a cross and a warning,
    and the notebook goes on.
    """
    import os
    import warnings

    evidence = f" ({evidence})" if evidence else ""
    if bool(holds):
        line = f"\u2713 {statement}{evidence}"
        print(line)
        return line
    message = f"The lesson says: \"{statement}\", but this run does not show it{evidence}."
    if os.environ.get("LESSONS_CLAIMS", "").strip().lower() == "strict":
        raise ClaimFailed(message + " The text and the recipe must be brought back in line before the lesson "
                          "is published.")
    line = f"\u2717 {statement}{evidence}: not in this run"
    print(line)
    warnings.warn(message + " Your photos, device or settings may differ from the course's; the numbers above "
                  "are what this run measured.", stacklevel=2)
    return line


def _distinct(model: float, baseline: float, digits: int) -> tuple[str, str]:
    """Both values with ``digits`` decimals, or as many more (up to 6) as it takes to show that
    they differ: a row that beats its baseline must not read "0.21 | 0.21"."""
    while True:
        m, b = f"{model:.{digits}f}", f"{baseline:.{digits}f}"
        if m != b or model == baseline or digits >= 6:
            return m, b
        digits += 1


def _verdict_text(row: Mapping) -> str:
    won = beats(row)
    if row.get("expected", "beats") == "loses":
        return "loses, as the lesson expects" if not won else "**beats the baseline** (the lesson expected a loss)"
    if won and not significant(row):
        return "beats the baseline by less than the spread (not significant)"
    return "**beats the baseline**" if won else "loses to the baseline"


def results_markdown(rows: Sequence[Mapping], digits: int = 2) -> str:
    """The rows as a Markdown table with a verdict column (a spread shows as "value ± spread": the
    95 % interval of the margin, see ``paired_row``)."""
    cells = []
    for r in rows:
        model, baseline = _distinct(r["model"], r["baseline"], digits)
        if r.get("spread") is not None:
            decimals = len(model.split(".")[1]) if "." in model else 0
            model += f" ± {r['spread']:.{decimals}f}"
        cells.append([r["what"], model, baseline, r["better"], _verdict_text(r)])
    return markdown_table(["result", "model", "baseline", "better", "verdict"], cells, align="lrrll")


def show_results(rows: Sequence[Mapping], digits: int = 2) -> list[dict]:
    """Displays the results rows as a table and publishes them for the course runner."""
    from IPython.display import Markdown, display

    rows = [result_row(r["what"], r["model"], r["baseline"], r.get("better", "lower"),
                       spread=r.get("spread"), expected=r.get("expected", "beats")) for r in rows]
    display(Markdown(results_markdown(rows, digits)))
    display({RESULTS_MIME: {"results": rows}, "text/plain": f"<{len(rows)} results rows>"}, raw=True)
    return rows
