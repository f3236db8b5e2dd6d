"""Score a notebook the way nbgrader does, without a gradebook.

The mutant tests execute only some of a chapter's cells (setup, answers and grade cells;
not the slow demonstrations) with nbclient, then apply nbgrader's own IgnorePattern and
``determine_grade`` to each grade cell: the same rules `nbgrader autograde` uses.
"""
from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.preprocessors import IgnorePattern
from nbgrader.utils import determine_grade, is_grade, is_solution

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


def graded_cells_only(notebook):
    """The notebook with just what grading depends on: setup, answer and grade cells."""
    pruned = copy.deepcopy(notebook)
    pruned.cells = [cell for cell in pruned.cells
                    if cell.cell_type == "code" and (is_setup(cell) or is_solution(cell) or is_grade(cell))]
    return pruned


def execute(notebook, working_directory: Path, timeout: int = 300):
    environment = {
        **os.environ,
        "EFFICIENT_DL_PROFILE": "fast",
        "EFFICIENT_DL_DATA_SOURCE": "sample",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
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


def read(path: Path):
    return nbformat.read(str(path), as_version=4)
