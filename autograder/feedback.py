"""Feedback a student may see: their notebook as graded, with every hidden test reduced
to its name, its points and passed/failed.

nbgrader's own feedback shows the autograded notebook, hidden tests and their tracebacks
included (nbgrader issues 917 and 1363). Here each grade cell keeps only what the
release showed (its visible tests), followed by one comment line for the hidden part, and
an error keeps only its first line (``AssertionError: <the hint the author wrote>``): a
traceback would quote the hidden test's source.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.utils import is_grade

HIDDEN_MARKER = "### BEGIN HIDDEN TESTS"


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def one_line_error(cell) -> str | None:
    """'ename: first line of evalue' of the cell's first error, or None if it passed."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            first = (output.get("evalue") or "").strip().splitlines()
            return f"{output.get('ename', 'Error')}: {first[0][:300]}" if first else output.get("ename", "Error")
    return None


def redacted(autograded, release, scores: dict[str, tuple[float, float]]):
    """A copy of ``autograded`` that a student may read."""
    visible = {_grade_id(cell): cell.source for cell in release.cells if _grade_id(cell)}
    notebook = nbformat.from_dict(nbformat.v4.new_notebook(metadata=autograded.metadata))
    total = sum(s for s, _ in scores.values())
    possible = sum(m for _, m in scores.values())
    lines = [f"# Feedback: {total:g} / {possible:g} points", "", "| test | points | result |", "|---|---|---|"]
    for grade_id, (score, max_score) in scores.items():
        lines.append(f"| `{grade_id}` | {score:g} / {max_score:g} | {'passed' if score == max_score else 'failed'} |")
    notebook.cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
    for cell in autograded.cells:
        cell = nbformat.from_dict(cell.copy())
        grade_id = _grade_id(cell)
        if cell.cell_type == "code" and is_grade(cell):
            score, max_score = scores.get(grade_id, (0.0, 0.0))
            shown = visible.get(grade_id, cell.source).split(HIDDEN_MARKER)[0].rstrip()
            verdict = "passed" if score == max_score else "failed"
            cell.source = f"{shown}\n# Hidden tests of {grade_id} are not shown. Result: {verdict}, {score:g}/{max_score:g} points."
            error = one_line_error(cell)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text=(f"{error}\n" if error else "") + f"{verdict}\n")]
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [line for line in output.get("traceback", [])][-1:]
        notebook.cells.append(cell)
    return notebook


def write_feedback(autograded_path: Path, release_path: Path, scores, folder: Path) -> Path:
    """Write ``<folder>/<name>.html`` (and the redacted ``.ipynb``); returns the HTML path."""
    import logging

    from nbconvert import HTMLExporter

    logging.getLogger("traitlets").setLevel(logging.ERROR)  # "alternative text missing" on every plot

    autograded = nbformat.read(str(autograded_path), as_version=4)
    release = nbformat.read(str(release_path), as_version=4)
    notebook = redacted(autograded, release, scores)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(folder / autograded_path.name))
    # Outputs are the student's: a <script> or an onload= printed as HTML must not run in the
    # browser of whoever opens the page (the student, or an instructor in formgrader).
    html, _ = HTMLExporter(sanitize_html=True).from_notebook_node(notebook)
    target = folder / (autograded_path.stem + ".html")
    target.write_text(html, encoding="utf-8")
    return target
