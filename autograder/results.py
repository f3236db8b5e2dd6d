"""Results: what one student earned, kept where a killed run cannot lose it (the ledger),
merged into the course's gradebook, and reported (CSV, summary).

The gradebook is copied aside before a run touches it, and only ever opened at the course's
own path, never at one a student could influence.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
import threading
import time
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from autograder.intake import STUDENT_ID
from autograder.paths import Course

GRADED, FAILED, TIMED_OUT, MISSING, INVALID = "graded", "failed", "timed out", "missing", "invalid"


@dataclasses.dataclass
class Result:
    student: str
    status: str
    scores: dict[str, tuple[float, float]]  # grade_id -> (score, max)
    tampered: list[str]
    notes: list[str]
    seconds: float = 0.0
    flagged: list[str] = dataclasses.field(default_factory=list)  # code that needs a person's review
    # Where a student's seconds went: the kernel's run (started, every cell, the integrity checks,
    # shut down) and, within it, the notebook's own cells; the rest is the grader's overhead.
    kernel_seconds: float = 0.0
    cell_seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(score for score, _ in self.scores.values())



class Ledger:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("CREATE TABLE IF NOT EXISTS results (student TEXT PRIMARY KEY, digest TEXT, "
                                "record TEXT)")
        self.lock = threading.Lock()

    def done(self, student: str, digest: str) -> Result | None:
        with self.lock:
            row = self.connection.execute("SELECT digest, record FROM results WHERE student = ?", (student,)).fetchone()
        if row and row[0] == digest:
            record = json.loads(row[1])
            record["scores"] = {k: tuple(v) for k, v in record["scores"].items()}
            return Result(**record)
        return None

    def record(self, result: Result, digest: str) -> None:
        with self.lock:
            self.connection.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                                    (result.student, digest, json.dumps(dataclasses.asdict(result))))



def backup_gradebook(course: Course, folder: Path) -> Path | None:
    """A consistent copy of the class gradebook (SQLite's backup API), before a run changes it."""
    if not course.db_path.is_file():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"gradebook-before-{time.strftime('%Y%m%d-%H%M%S')}.db"
    with sqlite3.connect(course.db_path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


def recorded_scores(db_path: Path, chapter: str, student: str) -> dict[str, tuple[float, float]]:
    """{grade_id: (score, max)} of one student in a gradebook; empty if not graded there."""
    try:
        with Gradebook(f"sqlite:///{db_path}") as gb:
            submission = gb.find_submission_notebook(chapter, chapter, student)
            return {g.name: (float(g.score), float(g.max_score)) for g in submission.grades}
    except MissingEntry:
        return {}


def merge(course: Course, result: Result, lock: threading.Lock) -> None:
    """Into the course gradebook: one short transaction per student (never for a name that is
    no usable student id: it is reported, not registered)."""
    if not STUDENT_ID.match(result.student):
        return
    chapter = course.chapter
    with lock, Gradebook(course.db_url) as gb:
        gb.update_or_create_student(result.student)
        gb.update_or_create_submission(chapter, result.student)
        for grade_id, (score, _) in result.scores.items():
            grade = gb.find_grade(grade_id, chapter, chapter, result.student)
            grade.auto_score = score
            grade.needs_manual_grade = False
        gb.db.commit()


def write_csv(path: Path, results: list[Result], max_scores: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(max_scores)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "status", *columns, "total", "max", "tampered", "flagged for review", "notes"])
        writer.writerow(["(max)", "", *[max_scores[c] for c in columns], sum(max_scores.values()),
                         sum(max_scores.values()), "", "", ""])
        for result in sorted(results, key=lambda r: r.student):
            writer.writerow([result.student, result.status, *[result.scores.get(c, (0.0, 0.0))[0] for c in columns],
                             result.total, sum(max_scores.values()), "; ".join(result.tampered),
                             "; ".join(result.flagged), "; ".join(result.notes)])


def summary_lines(results: list[Result], max_total: float) -> list[str]:
    counts = {status: sum(r.status == status for r in results) for status in (GRADED, FAILED, TIMED_OUT, MISSING, INVALID)}
    tampered = [r for r in results if r.tampered]
    flagged = [r for r in results if r.flagged]
    lines = [f"{len(results)} students: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
             + f"; {len(tampered)} tampered; {len(flagged)} flagged for review"]
    for result in sorted(results, key=lambda r: r.student):
        remarks = result.tampered + [f"FLAGGED: {reason}" for reason in result.flagged] + result.notes
        if result.status != GRADED or remarks:
            lines.append(f"  {result.student}: {result.status}, {result.total:g}/{max_total:g}"
                         + (f" | {'; '.join(remarks)}" if remarks else ""))
    return lines
