"""Where the course keeps everything: one module, so that no two parts disagree.

The grading root is nbgrader's course folder: the repository, or the folder named by
``EFFICIENT_DL_GRADING_ROOT`` (tests grade in scratch copies). Everything grading writes lives
in one folder, ``grading/``, that git ignores whole: the gradebook (it holds every hidden
test), submissions, autograded notebooks, feedback, exports, and the class grader's runs
(ledger, logs, backups of the gradebook).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SOLUTIONS = REPOSITORY / "solutions"
COURSE = REPOSITORY / "course"
GRADING_ROOT_ENV = "EFFICIENT_DL_GRADING_ROOT"
# Every file grading writes, in one folder that git ignores whole: the gradebook holds every
# hidden test, and students' work is theirs; `git add -A` must never publish either.
STATE_FOLDER = "grading"


class GradingError(RuntimeError):
    """The run cannot go on (a missing chapter, an unreadable export, no sandbox): said in words,
    raised to ``main``, which prints it and exits."""


def grading_root() -> Path:
    return Path(os.environ.get(GRADING_ROOT_ENV, REPOSITORY)).resolve()


@dataclasses.dataclass(frozen=True)
class Course:
    root: Path  # nbgrader's course root (the repository, or EFFICIENT_DL_GRADING_ROOT)
    chapter: str

    @property
    def state(self) -> Path:
        """The ignored folder of grading state."""
        return self.root / STATE_FOLDER

    @property
    def db_path(self) -> Path:
        return self.state / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def source_notebook(self) -> Path:
        return self.root / "solutions" / self.chapter / f"{self.chapter}.ipynb"

    @property
    def runs(self) -> Path:
        """The class grader's workspace for this chapter: ledger, logs, gradebook backups."""
        return self.state / "runs" / self.chapter

    def autograded(self, student: str) -> Path:
        return self.state / "autograded" / student / self.chapter

    def feedback(self, student: str) -> Path:
        return self.state / "feedback" / student / self.chapter

    @property
    def csv_path(self) -> Path:
        return self.state / "exports" / f"{self.chapter}.csv"

    def secrets(self) -> list[Path]:
        """What a kernel must never see (the weaker sandbox hides these; bubblewrap's allow-list
        never shows anything but what a kernel needs)."""
        return [self.root / "solutions", REPOSITORY / "solutions", REPOSITORY / ".git", self.db_path,
                self.state / "submitted", self.state / "autograded", self.state / "feedback", self.state / "exports"]
