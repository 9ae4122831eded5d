"""The functions a lesson notebook defines in its own cells, for tests that compare them with lessons_lib."""
import ast
import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_functions(notebook: str, names, namespace=None) -> dict:
    """{name: function} for the top-level ``def`` of each of ``names`` in ``notebooks/<notebook>``.

    Only the definitions are executed (not the rest of their cells), in ``namespace``
    (the modules they use, e.g. ``{"torch": torch}``). Each name must be defined exactly once.
    """
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    found: dict[str, list[ast.FunctionDef]] = {}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # IPython magics (%pip) in the setup cell
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                found.setdefault(node.name, []).append(node)
    wrong = {n: len(found.get(n, [])) for n in names if len(found.get(n, [])) != 1}
    assert not wrong, f"{notebook}: each function must be defined once in the notebook's cells, found {wrong}"
    ns = dict(namespace or {})
    exec(compile(ast.Module(body=[found[n][0] for n in names], type_ignores=[]), notebook, "exec"), ns)
    return {n: ns[n] for n in names}
