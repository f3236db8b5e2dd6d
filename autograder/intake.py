"""Intake: from what was handed in (a folder of students, or an LMS zip) to one Submission per
student, each with what is wrong with it said in words.

The grader may run as root, and every name here is a stranger's: only plain files count,
opened without following a link and checked through the descriptor; folders are searched to
a bounded depth and count; student ids are validated (after zip collection too) and printed
with their control characters escaped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

import nbformat

from autograder.paths import Course, GradingError
from autograder.pipeline import nbgrader_command

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MAX_NOTEBOOK_BYTES = 200 * 2**20
# How far intake looks for a misnamed notebook inside a student's folder, and how much it reads.
MAX_SEARCH_DEPTH = 6
MAX_SEARCH_ENTRIES = 10_000
# Blackboard-style names, nbgrader's documented example: <anything>_<student>_attempt_<time>_<file>.
# The id starts with a letter or digit: "..", "." or "-rf" would name no student (or a folder above).
DEFAULT_LMS_REGEXP = (r".*_(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@+-]*)_attempt_(?P<timestamp>[0-9\-]+)"
                      r"_(?P<file_id>\w+)")



def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (escape codes, carriage returns
    that would overwrite a summary line) written as escapes, and at most 120 characters."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= 120 else shown[:117] + "..."


@dataclasses.dataclass
class Submission:
    student: str
    path: Path | None
    problem: str | None = None  # why it cannot be graded (missing, invalid)
    notes: list[str] = dataclasses.field(default_factory=list)

    def digest(self) -> str:
        try:
            return hashlib.sha256(read_regular_file(self.path)).hexdigest() if self.path else "none"
        except (OSError, ValueError):
            return "none"


def regular_file_problem(path: Path) -> str | None:
    """None if ``path`` is a plain file; else what it is (a link, a FIFO, a device...), in words.
    Never follows a link: the grader may run as root, and a student may point anywhere."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if not stat.S_ISREG(mode):
        kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISDIR: "a folder", stat.S_ISSOCK: "a socket",
                 stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
        return next((kind for test, kind in kinds.items() if test(mode)), "not a regular file")
    return None


def read_regular_file(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of ``path``, opened without following a link and checked to be a plain file
    through the descriptor (no swap between the check and the read); ValueError if over ``limit``."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        if status.st_size > limit:
            raise ValueError(f"{status.st_size / 2**20:.0f} MiB, over the {limit // 2**20} MiB limit")
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"over the {limit // 2**20} MiB limit")
        return data
    finally:
        os.close(descriptor)



def collect_zip(archive: Path, course: Course, workspace: Path, regexp: str) -> tuple[Path, list[Submission]]:
    """Unpack an LMS export with nbgrader's zip_collect; returns a folder of students, and the
    entries refused before unpacking (an unusable student id such as "..", which zip_collect
    would place outside its folder; an entry over the size limit), each said in words."""
    downloaded = workspace / "downloaded"
    shutil.rmtree(downloaded, ignore_errors=True)
    (downloaded / course.chapter / "archive").mkdir(parents=True)
    refused = _copy_usable_entries(archive, downloaded / course.chapter / "archive" / "export.zip", regexp)
    collected = workspace / "collected"
    shutil.rmtree(collected, ignore_errors=True)
    completed = nbgrader_command(
        course.root, "zip_collect", course.chapter, "--force",
        # zip_collect glues these to the course root, so they must be relative to it.
        f"--ZipCollectApp.downloaded_directory={os.path.relpath(downloaded, course.root)}",
        f"--FileNameCollectorPlugin.named_regexp={regexp}",
        f"--CourseDirectory.submitted_directory={os.path.relpath(collected, course.root)}")
    if completed.returncode != 0:
        raise GradingError(f"nbgrader zip_collect could not read {archive}:\n{completed.stderr[-3000:]}")
    collected.mkdir(parents=True, exist_ok=True)
    return collected, refused


def _copy_usable_entries(archive: Path, target: Path, regexp: str) -> list[Submission]:
    pattern = re.compile(regexp)
    refused = []
    try:
        with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as kept:
            for info in source.infolist():
                if info.is_dir():
                    continue
                match = pattern.match(Path(info.filename).name)
                student = match.groupdict().get("student_id") if match else None
                if match is None and info.filename.endswith(".ipynb"):
                    refused.append(Submission(printable(Path(info.filename).name), None,
                                              f"zip entry {printable(info.filename)!r} does not match the LMS file name "
                                              f"pattern (--lms-regexp): not collected"))
                elif student is not None and not STUDENT_ID.match(student):
                    refused.append(Submission(printable(student), None, f"zip entry {printable(info.filename)!r} names "
                                              f"no usable student id: not unpacked"))
                elif info.file_size > MAX_NOTEBOOK_BYTES:
                    refused.append(Submission(printable(student or info.filename), None,
                                              f"zip entry {printable(info.filename)!r} is {info.file_size / 2**20:.0f} MiB, "
                                              f"over the {MAX_NOTEBOOK_BYTES // 2**20} MiB limit: not unpacked"))
                else:
                    kept.writestr(info.filename, source.read(info))
    except zipfile.BadZipFile as error:
        raise GradingError(f"{archive} is not a readable zip file ({error}).") from error
    return refused



def find_submissions(folder: Path, chapter: str) -> list[Submission]:
    """One Submission per student folder, with what is wrong with it said in words.

    Only plain files count: a link, a FIFO or a device named like the notebook is refused, not
    opened. A misnamed notebook is looked for at most MAX_SEARCH_DEPTH folders down."""
    wanted = f"{chapter}.ipynb"
    submissions = []
    with os.scandir(folder) as entries:
        student_dirs = sorted((entry for entry in entries if not entry.name.startswith(".")), key=lambda e: e.name)
    for entry in student_dirs:
        student, student_dir = entry.name, Path(entry.path)
        if not STUDENT_ID.match(student):
            if entry.is_dir(follow_symlinks=False):
                submissions.append(Submission(printable(student), None,
                                              f"folder name {printable(repr(student))} is not a usable student id"))
            continue
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            if entry.is_symlink():
                submissions.append(Submission(student, None, "the student folder is a symbolic link: not followed"))
            continue
        for candidate in (student_dir / wanted, student_dir / chapter / wanted):
            problem = regular_file_problem(candidate)
            if problem is None:
                submissions.append(Submission(student, candidate))
                break
            if problem != "missing":
                submissions.append(Submission(student, None, f"{candidate.relative_to(student_dir)} is {problem}: not opened"))
                break
        else:
            others, truncated = _notebooks_below(student_dir)
            if len(others) == 1:
                submissions.append(Submission(student, others[0], notes=[
                    f"submitted as {printable(str(others[0].relative_to(student_dir)))}, graded as {wanted}"]))
            elif others:
                names = ", ".join(printable(str(p.relative_to(student_dir))) for p in others[:5])
                submissions.append(Submission(student, None, f"no {wanted}, and several other notebooks: {names}"))
            else:
                where = f" in the first {MAX_SEARCH_ENTRIES:,} entries" if truncated else ""
                submissions.append(Submission(student, None, f"no notebook submitted{where} (expected {wanted})"))
    return submissions


def _notebooks_below(folder: Path) -> tuple[list[Path], bool]:
    """Plain ``.ipynb`` files under ``folder``, never through links, at most MAX_SEARCH_DEPTH
    folders down and MAX_SEARCH_ENTRIES entries seen (a folder nested 1,200 deep, or a million
    files, ends the search instead of the run); and whether the search stopped early."""
    found, seen, pending = [], 0, [(folder, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            seen += 1
            if seen > MAX_SEARCH_ENTRIES:
                return sorted(found), True
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_SEARCH_DEPTH and entry.name != ".ipynb_checkpoints":
                    pending.append((Path(entry.path), depth + 1))
            elif entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
    return sorted(found), False


def read_submission(submission: Submission):
    """The notebook, or None with ``submission.problem`` set."""
    try:
        data = read_regular_file(submission.path)
    except ValueError as error:
        submission.problem = f"notebook is {error}"
        return None
    except OSError as error:
        submission.problem = f"notebook cannot be opened ({error.strerror or error})"
        return None
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as error:  # JSON errors, wrong schema, binary garbage
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        submission.problem = f"not a valid notebook ({printable(first_line[:200])})"
        return None
    if len(data) > 20 * 2**20:
        submission.notes.append(f"{len(data) / 2**20:.0f} MiB of outputs (cleared before grading)")
    return notebook


def without_duplicate_ids(notebook):
    """Copied cells keep their grade_id: the first one keeps it, copies become plain cells
    (what nbgrader's DeduplicateIds means to do; its add_missing_cells then trips on them)."""
    seen = set()
    for cell in notebook.cells:
        metadata = cell.get("metadata", {})
        grade_id = metadata.get("nbgrader", {}).get("grade_id")
        if "nbgrader" in metadata and (grade_id is None or grade_id in seen):
            del metadata["nbgrader"]
        elif grade_id is not None:
            seen.add(grade_id)
    return notebook

