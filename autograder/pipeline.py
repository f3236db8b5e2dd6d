"""Run nbgrader's own commands on a course folder and read back what they recorded.

Everything goes through the real nbgrader command line with this repository's
configuration (autograder/nbgrader_config.py); ``root`` picks the folder nbgrader works in
(the repository, or a scratch copy in tests), through ``EFFICIENT_DL_GRADING_ROOT``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SOLUTIONS = REPOSITORY / "solutions"
COURSE = REPOSITORY / "course"


class NbgraderFailed(RuntimeError):
    pass


def chapters() -> list[str]:
    """Chapter names in reading order: every folder of solutions/ holding its notebook."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())


def notebook_path(folder: Path, chapter: str) -> Path:
    return folder / chapter / f"{chapter}.ipynb"


def nbgrader(root: Path, *arguments: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run `nbgrader <arguments>` on the course folder ``root``; raise with its log on failure."""
    environment = {
        **os.environ,
        "EFFICIENT_DL_GRADING_ROOT": str(root),
        # nbgrader runs `alembic` (for the gradebook) and kernels by name: find this environment's.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    command = [sys.executable, "-m", "nbgrader", *arguments]
    # cwd=REPOSITORY so nbgrader finds nbgrader_config.py, which points it at ``root``.
    completed = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True,
                               text=True, timeout=timeout)
    if completed.returncode != 0:
        errors = "\n".join(error_lines(completed.stderr))[-12000:] or "(none logged)"
        raise NbgraderFailed(
            f"`nbgrader {' '.join(arguments)}` exited with {completed.returncode}.\n"
            f"Its errors:\n{errors}\n"
            f"The end of its log:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    return completed


def error_lines(log: str) -> list[str]:
    """Every traceback (up to its exception line) and every error line of an nbgrader log.
    They come long before its end, which is all a CI log keeps when other students were
    processed after the failure."""
    kept, in_traceback = [], False
    for line in log.splitlines():
        if line.startswith("Traceback"):
            in_traceback = True
        if in_traceback or "Error" in line or "| ERROR]" in line:
            kept.append(line)
        if in_traceback and line and not line[0].isspace() and not line.startswith("Traceback"):
            in_traceback = False  # the exception line ends it
    return kept


def scratch_course(root: Path, chapter_names: list[str]) -> Path:
    """A fresh course folder under ``root`` holding copies of the given chapters' sources."""
    for chapter in chapter_names:
        shutil.copytree(SOLUTIONS / chapter, root / "solutions" / chapter,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    (root / "autograder").mkdir(parents=True, exist_ok=True)
    return root


def generate_release(root: Path, chapter: str) -> Path:
    """nbgrader generate_assignment: solutions/<chapter> -> course/<chapter>, gradebook updated."""
    nbgrader(root, "generate_assignment", chapter, "--force")
    return notebook_path(root / "course", chapter)


def submit(root: Path, chapter: str, student: str, notebook: Path) -> Path:
    """Place a student's notebook where nbgrader autograde looks for it."""
    target = notebook_path(root / "autograder" / "submitted" / student, chapter)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    return target


@dataclass(frozen=True)
class CellScore:
    grade_id: str
    score: float
    max_score: float


def autograde(root: Path, chapter: str, student: str | None = None) -> None:
    arguments = ["autograde", chapter, "--force"]
    if student is not None:
        arguments.append(f"--student={student}")
    nbgrader(root, *arguments)


def recorded_scores(root: Path, chapter: str, student: str) -> dict[str, CellScore]:
    """The score of every graded cell of one student's submission, as the gradebook holds it."""
    from nbgrader.api import Gradebook

    database = f"sqlite:///{root / 'autograder' / 'gradebook.db'}"
    with Gradebook(database) as gradebook:
        submission = gradebook.find_submission_notebook(chapter, chapter, student)
        return {
            grade.name: CellScore(grade.name, float(grade.score), float(grade.max_score))
            for grade in submission.grades
        }
