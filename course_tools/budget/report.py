"""The budget of every notebook, and the table ``python -m course_tools.budget`` prints."""
from __future__ import annotations

import functools

from lessons_lib.tables import markdown_table

from .items import Row
from .pipelines import notebook_04, notebook_05
from .workloads import notebook_01, notebook_02, notebook_03, notebook_06, notebook_07

WORKLOADS = {"01": notebook_01, "02": notebook_02, "03": notebook_03, "04": notebook_04, "05": notebook_05,
             "06": notebook_06, "07": notebook_07}


@functools.lru_cache(maxsize=None)
def budget() -> tuple[Row, ...]:
    """One row per notebook (cached: building and measuring takes a minute or more)."""
    return tuple(workload() for workload in WORKLOADS.values())


def table(rows=None, details: bool = False) -> str:
    rows = budget() if rows is None else rows
    cells = [[r.notebook, f"{r.minutes:.1f}", f"{r.checkpoint_gb:.2f}", f"{r.memory_gb:.1f}"] for r in rows]
    cells.append(["**total**", f"**{sum(r.minutes for r in rows):.1f}**", f"{sum(r.checkpoint_gb for r in rows):.2f}",
                  f"{max(r.memory_gb for r in rows):.1f} (largest)"])
    lines = [markdown_table(["notebook", "estimated T4 minutes", "checkpoint GB", "peak memory GB"], cells)]
    if details:
        for r in rows:
            lines += ["", f"notebook {r.notebook}: {r.overhead_minutes:.1f} min install, downloads and loading"]
            for i in r.items:
                lines.append(f"  {i.seconds / 60:7.2f} min  {i.flops / 1e12:10.1f} TFLOP  {i.ops:>11,} ops  "
                             f"[{i.rate}]  {i.what}")
    return "\n".join(lines)
