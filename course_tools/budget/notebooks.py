"""The counts the budget reads from the notebooks: each ``pick(full=...)`` and plain literal, by ``ast``."""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = {
    "01": "01_cifar10_colorization.ipynb",
    "02": "02_colorization_zoo.ipynb",
    "03": "03_diffusion_inpainting.ipynb",
    "04": "04_stable_diffusion_editing.ipynb",
    "05": "05_instruct_pix2pix.ipynb",
    "06": "06_style_transfer.ipynb",
    "07": "07_pix2pix_cyclegan.ipynb",
}


class MissingCount(KeyError):
    """A count the budget needs is not (or not once) in its notebook."""


@dataclass
class Picks:
    """What a notebook's code sets: ``values[name]`` lists every full-profile value in source order.

    Names are variables (``EPOCHS``) and ``callee.keyword`` for keyword arguments
    (``fit.epochs``, ``make_loader.batch_size``). A ``pick(...)`` contributes its ``full=``
    value; other literals their value; a ``full=`` that is not a literal its source text.
    """
    notebook: str
    values: dict[str, list] = field(default_factory=dict)

    def _missing(self, needs: str, name: str, found: list) -> MissingCount:
        return MissingCount(f"notebook {self.notebook}: the budget needs {needs} for {name!r}, found {found!r}. "
                            f"Update course_tools/budget/ with the notebook.")

    def one(self, name: str):
        found = self.values.get(name, [])
        if len(found) != 1:
            raise self._missing("exactly one value", name, found)
        return found[0]

    def all(self, name: str, n: int | None = None) -> list:
        found = self.values.get(name, [])
        if not found or (n is not None and len(found) != n):
            raise self._missing(f"{n or 'some'} value(s)", name, found)
        return found


def _code(nb) -> str:
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            # IPython magics and shell lines are not Python: keep the line count, drop the text.
            stripped = line.lstrip()
            lines.append(line[:len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line)
        lines.append("")
    return "\n".join(lines)


def _is_pick(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "pick"


def _full(node):
    """The value an expression takes in the full profile: pick's full=, a literal, or its source."""
    if _is_pick(node):
        kw = {k.arg: k.value for k in node.keywords}
        if "full" not in kw:
            raise ValueError(f"pick(...) without full=: {ast.unparse(node)}")
        node = kw["full"]
    try:
        return ast.literal_eval(node)
    except ValueError:
        if isinstance(node, (ast.Tuple, ast.List)):   # e.g. (1.0, 1.5, IMAGE_STABILITY): its elements
            return tuple(_full(e) for e in node.elts)
        return ast.unparse(node)


def _literal_or_pick(node) -> bool:
    if _is_pick(node) or isinstance(node, (ast.Tuple, ast.List)):
        return True
    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False


def read_picks(notebook: str | Path) -> Picks:
    """The full-profile values a notebook's code sets (see :class:`Picks`)."""
    import nbformat

    path = Path(notebook)
    if not path.is_absolute() and not path.exists():
        path = ROOT / "notebooks" / path
    tree = ast.parse(_code(nbformat.read(path, as_version=4)))
    found: list[tuple[int, int, str, Any]] = []

    unset = object()

    def add(name, node, value=unset):
        found.append((node.lineno, node.col_offset, name, _full(node) if value is unset else value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and _literal_or_pick(value):
                add(target.id, value)
            elif isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
                names = [e.id for e in target.elts]
                if isinstance(value, ast.Tuple) and len(value.elts) == len(names):
                    for name, v in zip(names, value.elts):
                        if _literal_or_pick(v):
                            add(name, v)
                elif _is_pick(value):
                    full = _full(value)
                    if isinstance(full, tuple) and len(full) == len(names):
                        for name, v in zip(names, full):
                            add(name, value, v)
        elif isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            for kw in node.keywords:
                if callee and kw.arg and _literal_or_pick(kw.value):
                    add(f"{callee}.{kw.arg}", kw.value)
    picks = Picks(path.name)
    for _, _, name, value in sorted(found, key=lambda f: f[:2]):   # source order (ast.walk is breadth-first)
        picks.values.setdefault(name, []).append(value)
    return picks


@functools.lru_cache(maxsize=None)
def notebook_picks(key: str) -> Picks:
    return read_picks(ROOT / "notebooks" / NOTEBOOKS[key])
