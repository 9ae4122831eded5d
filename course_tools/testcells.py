"""The instructor's test cells, rewritten so the student's kernel never sees an expected value.

A graded test cell is plain Python whose checks are calls of
``expect(label, observed, expected[, rtol=..., atol=...])`` (``lessons_lib.expect``);
nbgrader's ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` markers may surround
some of them. Two rewritten forms exist, made from the syntax tree:

* for a student's run: every ``expect(...)`` becomes ``observe(label, observed, site=N)``:
  the expected value and the tolerances are gone, and comments (markers included) with them;
* for the reference run of the instructor's own notebook: ``observe(label, observed,
  expected, site=N, rtol=..., atol=...)``, which publishes the expected value and tolerances.

``N`` numbers the call sites in reading order, so the grader knows which observation a
check produced and whether that check is hidden (its result is then reported without its
label). Test cells with ``assert`` statements are refused: an ``assert`` would decide the
test inside the student's process and carry its expected value there.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from course_tools.exercises import BEGIN_HIDDEN, END_HIDDEN, MarkerError, _regions

__all__ = ["TestCell", "TestCellError", "parse_test_cell"]

CHECK_NAME = "expect"
OBSERVE_IMPORT = "from lessons_lib.expect import observe, raises\n"
_TOLERANCES = ("rtol", "atol")


class TestCellError(ValueError):
    """A test cell the grader cannot judge outside the student's kernel."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class TestCell:
    grade_id: str
    student_source: str          # what runs in a student's sandbox: no expected values
    reference_source: str        # what runs for the instructor's notebook: expected values published
    hidden_sites: frozenset      # site numbers of the checks inside hidden-test markers
    n_sites: int

    __test__ = False


class _Rewrite(ast.NodeTransformer):
    def __init__(self, reference: bool):
        self.reference = reference
        self.site = 0

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        if not (isinstance(node.func, ast.Name) and node.func.id == CHECK_NAME):
            return node
        self.site += 1
        label, observed, expected = node.args
        keywords = [ast.keyword("site", ast.Constant(self.site))]
        args = [label, observed]
        if self.reference:
            args.append(expected)
            keywords += [k for k in node.keywords if k.arg in _TOLERANCES]
        return ast.copy_location(ast.Call(ast.Name("observe", ast.Load()), args, keywords), node)


def _check_calls(tree: ast.Module, where: str) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            raise TestCellError(f"{where}, line {node.lineno}: an assert statement. The grader judges "
                                f"answers outside the student's kernel, so write the check as "
                                f"{CHECK_NAME}(label, observed, expected) (from lessons_lib.expect).")
        rebound = isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del))
        if rebound and node.id == CHECK_NAME:
            raise TestCellError(f"{where}, line {node.lineno}: the name {CHECK_NAME} is reassigned.")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == CHECK_NAME:
            if (len(node.args) != 3 or any(isinstance(a, ast.Starred) for a in node.args)
                    or any(k.arg not in _TOLERANCES for k in node.keywords)):
                raise TestCellError(f"{where}, line {node.lineno}: {CHECK_NAME}() takes exactly "
                                    "(label, observed, expected) and optional rtol=/atol= keywords.")
            calls.append(node)
    # every other use of the name (passing expect around) would escape the rewrite
    uses = sum(isinstance(n, ast.Name) and n.id == CHECK_NAME for n in ast.walk(tree))
    if uses != len(calls):
        raise TestCellError(f"{where}: {CHECK_NAME} is used other than by calling it directly.")
    if not calls:
        raise TestCellError(f"{where}: a graded test cell without any {CHECK_NAME}(...) check; "
                            "nothing could be judged.")
    return calls


def parse_test_cell(source: str, grade_id: str, where: str) -> TestCell:
    """Validate one instructor test cell and make its two rewritten forms."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise TestCellError(f"{where}: a test cell must be plain Python ({exc.msg}, line "
                            f"{exc.lineno}).") from None
    calls = sorted(_check_calls(tree, where), key=lambda n: (n.lineno, n.col_offset))
    try:
        regions = _regions(source.split("\n"), BEGIN_HIDDEN, END_HIDDEN, where)
        hidden_lines = [(a + 1, b + 1) for a, b in regions]
    except MarkerError as exc:
        raise TestCellError(str(exc)) from None
    student = _Rewrite(reference=False).visit(ast.parse(source))
    reference = _Rewrite(reference=True).visit(ast.parse(source))
    # Reading order of the rewrite equals ast.walk order only by accident; number by position.
    order = {(n.lineno, n.col_offset): i + 1 for i, n in enumerate(calls)}
    for tree_ in (student, reference):
        for node in ast.walk(tree_):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "observe":
                node.keywords[0].value = ast.Constant(order[(node.lineno, node.col_offset)])
    hidden = frozenset(order[(n.lineno, n.col_offset)] for n in calls
                       if any(a <= n.lineno <= b for a, b in hidden_lines))
    return TestCell(grade_id, OBSERVE_IMPORT + ast.unparse(ast.fix_missing_locations(student)) + "\n",
                    OBSERVE_IMPORT + ast.unparse(ast.fix_missing_locations(reference)) + "\n",
                    hidden, len(calls))
