"""Plain-text tables for printed results (the exercise notebooks print theirs with it)."""
from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["format_table"]


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
