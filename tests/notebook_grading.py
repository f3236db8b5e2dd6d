"""Score a notebook the way nbgrader does, without a gradebook.

The mutant tests execute only some of a chapter's cells (setup, answers and grade cells;
not the slow demonstrations) with nbclient, then apply nbgrader's own IgnorePattern and
``determine_grade`` to each grade cell: the same rules `nbgrader autograde` uses.
"""
from __future__ import annotations

import ast
import copy
import logging
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.preprocessors import IgnorePattern
from nbgrader.utils import determine_grade, is_grade, is_solution

from autograder.kernels import PrivateSocketKernelManager
from efficient_dl.quiet import STDERR_NOISE_PATTERN

LOG = logging.getLogger(__name__)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_setup(cell) -> bool:
    return "setup" in cell.get("metadata", {}).get("tags", [])


def answer_cell(notebook, answer_id: str):
    matches = [cell for cell in notebook.cells if grade_id(cell) == answer_id and is_solution(cell)]
    assert len(matches) == 1, f"expected one answer cell {answer_id!r}, found {len(matches)}"
    return matches[0]


def release_filled_in(release, solution, answers: dict[str, str]):
    """What nbgrader grades when a student submits the release with answers: the release's
    cells, each answer cell holding ``answers[grade_id]`` (or else the solution's answer),
    and every grade cell restored from the solution, hidden tests included, as nbgrader's
    OverwriteCells does."""
    source_cells = {grade_id(cell): cell for cell in solution.cells if grade_id(cell)}
    unknown = set(answers) - {name for name, cell in source_cells.items() if is_solution(cell)}
    assert not unknown, f"no answer cells named {sorted(unknown)}"
    filled = copy.deepcopy(release)
    for cell in filled.cells:
        name = grade_id(cell)
        if name is None:
            continue
        if is_solution(cell):
            cell.source = answers.get(name, source_cells[name].source)
        elif is_grade(cell):
            cell.source = source_cells[name].source
    return filled


def answered_release(release, solution, answers: dict[str, str] | None = None):
    """What a student submits: the release with every answer cell filled in (``answers``, or
    the solution's), every other cell exactly as released."""
    filled = release_filled_in(release, solution, answers or {})
    released = {grade_id(cell): cell.source for cell in release.cells if grade_id(cell)}
    for cell in filled.cells:
        if grade_id(cell) and not is_solution(cell):
            cell.source = released[grade_id(cell)]
    return filled


def graded_cells_only(notebook):
    """The notebook with just what grading depends on: setup, answer and grade cells."""
    pruned = copy.deepcopy(notebook)
    pruned.cells = [cell for cell in pruned.cells
                    if cell.cell_type == "code" and (is_setup(cell) or is_solution(cell) or is_grade(cell))]
    return pruned


class _CellNames(ast.NodeVisitor):
    """The names a cell binds at top level, and the names it reads before binding them
    itself (its free names), visiting statements in the order Python evaluates them."""

    def __init__(self):
        self.bound: set[str] = set()
        self.free: set[str] = set()

    def _read(self, name):
        if name not in self.bound:
            self.free.add(name)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        else:
            self.bound.add(node.id)

    def visit_alias(self, node):
        self.bound.add((node.asname or node.name).split(".")[0])

    def visit_Assign(self, node):
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._read(node.target.id)
        self.visit(node.target)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node):
        self.visit(node.iter)
        self.visit(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    def _inner_scope(self, node, own: set[str]):
        # A function body, lambda or comprehension reads what it neither binds nor takes.
        local = set(own)
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
                local.add(child.id)
            elif isinstance(child, ast.arg):
                local.add(child.arg)
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id not in local:
                self._read(child.id)

    def visit_FunctionDef(self, node):
        for expression in node.decorator_list + node.args.defaults + node.args.kw_defaults:
            if expression is not None:
                self.visit(expression)
        self._inner_scope(ast.Module(body=node.body, type_ignores=[]), {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)})
        self.bound.add(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._inner_scope(node, set())
        self.bound.add(node.name)

    def visit_Lambda(self, node):
        self._inner_scope(node, set())

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = visit_Lambda


def _names(source: str) -> tuple[set[str], set[str]] | None:
    """(names a cell binds at top level, names it reads that it did not bind first),
    or None if the cell is not plain Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    visitor = _CellNames()
    visitor.visit(tree)
    return visitor.bound, visitor.free


def observers_and_kept(notebook, answer_id: str, variants: dict[str, list[str]] | None = None
                       ) -> tuple[frozenset[int], frozenset[int]]:
    """Where a change to one answer cell can reach, as indices into
    ``graded_cells_only(notebook).cells``: (the cells that can observe it, the answer cell
    included; the cells a run that checks it must keep).

    A cell observes the change if it reads a name the answer cell binds, directly or through
    another observing cell or a function that reads one; a grade cell observes it only if it
    comes after the answer. Kept: setup and answer cells, the observing grade cells, and the
    grade cells that bind names those need (a visible test's data).

    ``variants`` ({answer_id: [other sources]}) are other texts answer cells may hold in the
    same run (mutants): each answer cell's names are merged with theirs, so the result holds
    whichever of them the cells hold. A cell (or variant) that is not plain Python means we
    cannot tell: everything observes, everything is kept.
    """
    cells = graded_cells_only(notebook).cells
    changed_at = next(i for i, cell in enumerate(cells) if grade_id(cell) == answer_id and is_solution(cell))
    names = []
    for cell in cells:
        sources = [cell.source] + (list((variants or {}).get(grade_id(cell), [])) if is_solution(cell) else [])
        parsed = [_names(source) for source in sources]
        names.append(None if None in parsed else (set().union(*(b for b, _ in parsed)),
                                                   set().union(*(f for _, f in parsed))))
    if any(entry is None for entry in names):
        everything = frozenset(range(len(cells)))
        return everything, everything
    tainted = set(names[changed_at][0])
    observing = {changed_at}
    grown = True
    while grown:
        grown = False
        for index, (bound, read_) in enumerate(names):
            may_observe = not is_grade(cells[index]) or index > changed_at
            if index not in observing and may_observe and read_ & tainted:
                observing.add(index)
                tainted |= bound
                grown = True
    kept = {index for index, cell in enumerate(cells) if not is_grade(cell) or index in observing}
    # A kept cell may need a name that only a left-out grade cell binds (a visible test's data).
    for index in range(len(cells) - 1, -1, -1):
        if index in kept:
            continue
        needed = set().union(*(names[later][1] for later in kept if later > index))
        if names[index][0] & needed:
            kept.add(index)
    return frozenset(observing), frozenset(kept)


def keep_cells(notebook, indices):
    """``graded_cells_only(notebook)`` with only the cells at ``indices`` (of its cells)."""
    pruned = graded_cells_only(notebook)
    pruned.cells = [cell for index, cell in enumerate(pruned.cells) if index in indices]
    return pruned


def cells_that_can_observe(notebook, answer_id: str):
    """The notebook pruned to what can see a change to one answer cell: setup and answer
    cells, and the grade cells after it that read a name it binds (directly, or through
    another cell or function that reads one); plus the cells that bind names those need
    (observers_and_kept).

    A grade cell left out ran before the change or reads nothing it touched, so it scores
    what it scores on the reference solution (tested on its own). Python binds globals late,
    so a function defined anywhere that reads a changed name counts as changed.
    """
    return keep_cells(notebook, observers_and_kept(notebook, answer_id)[1])


def execute(notebook, working_directory: Path, timeout: int = 300):
    environment = {
        **os.environ,
        "EFFICIENT_DL_PROFILE": "fast",
        "EFFICIENT_DL_DATA_SOURCE": "sample",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                            kernel_manager_class=PrivateSocketKernelManager,
                            resources={"metadata": {"path": str(working_directory)}})
    # nbclient passes extra keyword arguments on to the kernel manager's start_kernel.
    client.execute(env=environment)
    return notebook


def grade_cell_scores(executed_notebook) -> dict[str, tuple[float, float]]:
    """{grade_id: (score, max_score)} for every grade cell, by nbgrader's rules."""
    cleaned = copy.deepcopy(executed_notebook)
    IgnorePattern(enabled=True, pattern=STDERR_NOISE_PATTERN).preprocess(cleaned, {})
    scores = {}
    for cell in cleaned.cells:
        if is_grade(cell) and cell.cell_type == "code":
            score, max_score = determine_grade(cell, LOG)
            scores[grade_id(cell)] = (float(score), float(max_score))
    return scores


def small_notebook(*cells, trailing_demo: bool = False):
    """A notebook for the tests of this module's analysis: ``(kind, grade_id, source)`` per code
    cell, kind "setup", "answer" or "test"; ``trailing_demo`` adds a last cell that is neither
    graded nor setup."""
    notebook = nbformat.v4.new_notebook()
    for kind, name, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        if kind == "setup":
            cell.metadata["tags"] = ["setup"]
        else:
            cell.metadata["nbgrader"] = {"grade_id": name, "solution": kind == "answer", "grade": kind == "test",
                                         "locked": kind == "test", "points": 1 if kind == "test" else None}
        notebook.cells.append(cell)
    if trailing_demo:
        notebook.cells.append(nbformat.v4.new_code_cell("expensive_demo()"))
    return notebook


def read(path: Path):
    return nbformat.read(str(path), as_version=4)
