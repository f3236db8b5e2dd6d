"""Check my work: grade one notebook of your own, hidden tests included, on your machine.

    python -m autograder.check course/ch01_compute_and_energy/ch01_compute_and_energy.ipynb
    make check NOTEBOOK=course/ch01_compute_and_energy/ch01_compute_and_energy.ipynb

or, from inside a notebook (save it first: the check reads the file on disk)::

    from efficient_dl.selfcheck import check_my_work
    check_my_work()

It runs exactly what the class grader runs (nbgrader autograde, the same sandbox where the
machine allows it) in a throw-away folder, and prints per exercise the points earned and
possible; for a failed test only its name and the one-line hint its author wrote, never the
hidden test itself. For people studying alone: it needs ``solutions/``, which classroom
deployments keep out of students' reach (they give students ``course/`` only).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

from autograder import feedback, grade_class, pipeline, sandbox
from autograder.paths import REPOSITORY, GradingError


def chapter_of(notebook: Path) -> str:
    chapters = sorted(p.name for p in (REPOSITORY / "solutions").iterdir() if p.is_dir())
    for candidate in (notebook.stem, notebook.parent.name):
        if candidate in chapters:
            return candidate
    raise GradingError(f"Cannot tell which chapter {notebook} is; pass --chapter (one of: {', '.join(chapters)}).")


def check(notebook: Path, chapter: str | None = None, out=print) -> dict[str, tuple[float, float]]:
    notebook = notebook.resolve()
    if not notebook.is_file():
        raise GradingError(f"No notebook at {notebook}.")
    chapter = chapter or chapter_of(notebook)
    if not (REPOSITORY / "solutions" / chapter).is_dir():
        raise GradingError("The self-check needs the course's solutions/ folder, which this copy does not have "
                           "(classroom copies leave it out on purpose): ask your instructor to grade it.")
    with tempfile.TemporaryDirectory(prefix="efficient-dl-check-") as scratch:
        root = Path(scratch) / "course"
        pipeline.scratch_course(root, [chapter])
        course = grade_class.Course(root, chapter)
        workspace = course.runs
        workspace.mkdir(parents=True)
        submission = grade_class.Submission("me", notebook)
        out(f"Checking {notebook.name} ({chapter}) with the hidden tests; this runs the whole notebook "
            f"in the fast profile ...")
        max_scores = grade_class.prepare(course, workspace, [submission])
        capabilities = sandbox.probe()
        grader = grade_class.Grader(course, workspace, sandbox.Limits(), capabilities,
                                    grade_class.warm_model_cache(course, workspace, out=lambda *_: None), max_scores)
        users = sandbox.SandboxUsers(1 if capabilities.separate_user else 0)
        grader.sandbox_uids = users.uids
        try:
            result = grader.grade(submission, slot=0)
        finally:
            users.release()
        hints = _hints(course.autograded("me") / f"{chapter}.ipynb")
    total, possible = result.total, sum(max_scores.values())
    out(f"{'test':40s} points")
    for grade_id, (score, max_score) in result.scores.items():
        mark = "ok" if score == max_score else "FAILED"
        out(f"{grade_id:40s} {score:g}/{max_score:g}  {mark}")
        if score != max_score and grade_id in hints:
            out(f"{'':40s} hint: {hints[grade_id]}")
    for note in result.tampered + [f"flagged for review: {reason}" for reason in result.flagged] + result.notes:
        out(f"note: {note}")
    out(f"Total: {total:g}/{possible:g} ({result.status})")
    return result.scores


def _hints(autograded: Path) -> dict[str, str]:
    if not autograded.is_file():
        return {}
    notebook = nbformat.read(str(autograded), as_version=4)
    hints = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        error = feedback.one_line_error(cell) if grade_id else None
        if error:
            hints[grade_id] = error
    return hints


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Grade your own notebook with the hidden tests.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--chapter", default=None)
    args = parser.parse_args(argv)
    try:
        scores = check(args.notebook, args.chapter)
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if scores and all(s == m for s, m in scores.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
