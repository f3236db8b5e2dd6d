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

from autograder.paths import COURSE, GRADING_ROOT_ENV, REPOSITORY, SOLUTIONS, STATE_FOLDER  # noqa: F401 -- used by the tests


class NbgraderFailed(RuntimeError):
    pass


def chapters() -> list[str]:
    """Chapter names in reading order: every folder of solutions/ holding its notebook."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())


def notebook_path(folder: Path, chapter: str) -> Path:
    return folder / chapter / f"{chapter}.ipynb"


def nbgrader(root: Path, *arguments: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run `nbgrader <arguments>` on the course folder ``root``; raise with its log on failure."""
    command = [sys.executable, "-m", "nbgrader", *arguments]
    # cwd=REPOSITORY so nbgrader finds nbgrader_config.py, which points it at ``root``.
    completed = subprocess.run(command, cwd=REPOSITORY, env=nbgrader_environment(root), capture_output=True,
                               text=True, timeout=timeout)
    if completed.returncode != 0:
        errors = "\n".join(error_lines(completed.stderr))[-12000:] or "(none logged)"
        raise NbgraderFailed(
            f"`nbgrader {' '.join(arguments)}` exited with {completed.returncode}.\n"
            f"Its errors:\n{errors}\n"
            f"The end of its log:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    return completed


def nbgrader_command(course_root: Path, *arguments: str, cwd: Path = REPOSITORY, env: dict | None = None,
                     timeout: float | None = None) -> subprocess.CompletedProcess:
    """`nbgrader <arguments>` on ``course_root`` as the class grader runs it: its own session
    (so that a timeout stops all of it), killed if the grader dies; the completed process is
    returned, failed or not."""
    from autograder.sandbox import die_with_parent

    return subprocess.run([sys.executable, "-m", "nbgrader", *arguments], cwd=cwd,
                          env=nbgrader_environment(course_root, env),
                          capture_output=True, text=True, timeout=timeout, start_new_session=True,
                          preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)


def nbgrader_environment(course_root: Path, env: dict | None = None) -> dict[str, str]:
    """nbgrader on ``course_root``: it runs `alembic` (for the gradebook) and kernels by name, so
    this environment's come first on PATH; kernels import the autograder package."""
    return {**os.environ, GRADING_ROOT_ENV: str(course_root),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
            **(env or {})}


# What nbgrader autograde imports: loaded once by the fork server, not once per student.
PRELOADED = ["nbgrader.apps.nbgraderapp", "nbgrader.apps.autogradeapp", "nbgrader.converters.autograde",
             "nbgrader.preprocessors", "nbgrader.api", "nbclient", "nbconvert", "jupyter_client", "autograder.execution"]


class NbgraderForks:
    """`nbgrader <arguments>` in a process forked from a server that has imported nbgrader
    already (multiprocessing's forkserver): a fresh interpreter spends about 3 s of CPU on
    imports before it grades anything, once per student. The server itself is a fresh process
    (never a fork of the grader's threads); each child gets its own session, environment,
    folder and log file, and is killed with everything it started after ``timeout``."""

    def __init__(self):
        import multiprocessing

        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOADED)

    def run(self, course_root: Path, *arguments: str, cwd: Path, log: Path, env: dict | None = None,
            timeout: float | None = None) -> int:
        """nbgrader's exit status (its output is in ``log``); TimeoutError after ``timeout``."""
        import signal

        child = self.context.Process(target=_nbgrader_in_this_process,
                                     args=(list(arguments), str(cwd), nbgrader_environment(course_root, env), str(log)))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.join()
            raise TimeoutError(f"nbgrader {' '.join(arguments[:2])} ran over {timeout} s")
        return child.exitcode


def _nbgrader_in_this_process(arguments: list[str], cwd: str, environment: dict, log: str) -> None:
    from autograder.sandbox import die_with_parent

    os.setsid()  # a timeout stops this process and every kernel it started
    if sys.platform.startswith("linux"):
        die_with_parent()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environment)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for stream in (1, 2):
        os.dup2(descriptor, stream)
    sys.argv = ["nbgrader", *arguments]
    from nbgrader.apps.nbgraderapp import NbGraderApp

    try:
        NbGraderApp.launch_instance()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    else:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    (root / STATE_FOLDER).mkdir(parents=True, exist_ok=True)
    return root


def generate_release(root: Path, chapter: str) -> Path:
    """nbgrader generate_assignment: solutions/<chapter> -> course/<chapter>, gradebook updated."""
    nbgrader(root, "generate_assignment", chapter, "--force")
    return notebook_path(root / "course", chapter)


def submit(root: Path, chapter: str, student: str, notebook: Path) -> Path:
    """Place a student's notebook where nbgrader autograde looks for it."""
    target = notebook_path(root / STATE_FOLDER / "submitted" / student, chapter)
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

    database = f"sqlite:///{root / STATE_FOLDER / 'gradebook.db'}"
    with Gradebook(database) as gradebook:
        submission = gradebook.find_submission_notebook(chapter, chapter, student)
        return {
            grade.name: CellScore(grade.name, float(grade.score), float(grade.max_score))
            for grade in submission.grades
        }
