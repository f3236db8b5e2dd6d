"""Grade a whole class for one chapter, in parallel, each notebook in its own sandbox.

    python -m autograder.grade_class CHAPTER SUBMISSIONS [--workers N] [--regrade] ...
    make grade-class CHAPTER=ch01_compute_and_energy SUBMISSIONS=path/to/folder-or.zip

SUBMISSIONS is a folder with one sub-folder per student (holding ``<chapter>.ipynb``, or
``<chapter>/<chapter>.ipynb`` as nbgrader's submitted/ does), or the zip an LMS exports,
collected with nbgrader's own ``zip_collect`` (file names matched by ``--lms-regexp``).

Each student is graded by nbgrader's own ``autograde``, in a private copy of the course
(its own gradebook copy, so workers never fight over one SQLite file), with the kernel
sandboxed by ``autograder.isolation`` and executed by ``autograder.execution``. Results go
into the course's gradebook one student at a time, and into a ledger in the workspace:
a student already graded from the same file is skipped next time, so a run killed half-way
loses nothing and the next run finishes the rest.

Outputs: the gradebook (``autograder/gradebook.db``), feedback that never shows hidden
tests (``autograder/feedback/<student>/<chapter>/<chapter>.html``), a CSV with one row per
student (``autograder/exports/<chapter>.csv``) and a summary on stdout.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import queue
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder import feedback, integrity, isolation, pipeline

# nbgrader's gradebook API trips SQLAlchemy's autoflush warnings on every new submission.
warnings.filterwarnings("ignore", module="nbgrader.api")
warnings.filterwarnings("ignore", message=".*not in session.*")

REPOSITORY = Path(__file__).resolve().parents[1]
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MAX_NOTEBOOK_BYTES = 200 * 2**20
# How far intake looks for a misnamed notebook inside a student's folder, and how much it reads.
MAX_SEARCH_DEPTH = 6
MAX_SEARCH_ENTRIES = 10_000
# Blackboard-style names, nbgrader's documented example: <anything>_<student>_attempt_<time>_<file>.
# The id starts with a letter or digit: "..", "." or "-rf" would name no student (or a folder above).
DEFAULT_LMS_REGEXP = (r".*_(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@+-]*)_attempt_(?P<timestamp>[0-9\-]+)"
                      r"_(?P<file_id>\w+)")

GRADED, FAILED, TIMED_OUT, MISSING, INVALID = "graded", "failed", "timed out", "missing", "invalid"


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


@dataclasses.dataclass
class Result:
    student: str
    status: str
    scores: dict[str, tuple[float, float]]  # grade_id -> (score, max)
    tampered: list[str]
    notes: list[str]
    seconds: float = 0.0
    flagged: list[str] = dataclasses.field(default_factory=list)  # code that needs a person's review

    @property
    def total(self) -> float:
        return sum(score for score, _ in self.scores.values())


# --- settings ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Course:
    root: Path  # nbgrader's course root (repository, or EFFICIENT_DL_GRADING_ROOT)
    chapter: str

    @property
    def db_path(self) -> Path:
        return self.root / "autograder" / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def secrets(self) -> list[Path]:
        """What a kernel must not see."""
        return [self.root / "solutions", REPOSITORY / "solutions", REPOSITORY / ".git", self.db_path,
                self.root / "autograder" / "submitted", self.root / "autograder" / "autograded",
                self.root / "autograder" / "feedback", self.root / "autograder" / "exports"]


def grading_root() -> Path:
    return Path(os.environ.get("EFFICIENT_DL_GRADING_ROOT", REPOSITORY)).resolve()


def nbgrader_command(course_root: Path, *arguments: str, cwd: Path = REPOSITORY, env: dict | None = None,
                     timeout: float | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "EFFICIENT_DL_GRADING_ROOT": str(course_root),
                   "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
                   **(env or {})}
    return subprocess.run([sys.executable, "-m", "nbgrader", *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout, start_new_session=True,
                          preexec_fn=isolation.die_with_parent if sys.platform.startswith("linux") else None)


# --- intake --------------------------------------------------------------------------------


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


class GradingError(RuntimeError):
    """The run cannot go on (a missing chapter, an unreadable export): said in words, raised to main."""


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


# --- the ledger: what is done survives a kill ----------------------------------------------


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


# --- one student ---------------------------------------------------------------------------


@dataclasses.dataclass
class Grader:
    course: Course
    workspace: Path
    limits: isolation.Limits
    capabilities: isolation.Capabilities
    model_cache: Path
    max_scores: dict[str, float]
    sandbox_uids: list[int] = dataclasses.field(default_factory=list)  # one per worker slot
    submissions: list[Path] = dataclasses.field(default_factory=list)  # the class's work, hidden from kernels
    # Each kernel's share of the cores: TensorFlow and oneDNN would otherwise each start a
    # thread per core in every kernel, and the workers' threads would fight over the cores.
    threads_per_kernel: dict[str, str] = dataclasses.field(default_factory=dict)
    merge_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def grade(self, submission: Submission, slot: int) -> Result:
        started = time.perf_counter()
        notebook = read_submission(submission) if submission.problem is None else None
        if notebook is None:
            status = MISSING if submission.problem.startswith("no notebook") else INVALID
            result = Result(submission.student, status, {k: (0.0, v) for k, v in self.max_scores.items()}, [],
                            submission.notes + [submission.problem])
            self.merge(result)
            return result
        release = nbformat.read(str(self.release_notebook()), as_version=4)
        tampered = integrity.tampering(notebook, release)
        flagged = integrity.suspicious_code(notebook, release)
        try:
            result = self._autograde(submission, notebook, slot)
        finally:
            if self.capabilities.separate_user:
                isolation.kill_user_processes(self.sandbox_uids[slot])
        result.tampered = tampered
        result.flagged = flagged + result.flagged
        result.notes = submission.notes + result.notes
        result.seconds = time.perf_counter() - started
        self.merge(result)
        return result

    def _autograde(self, submission: Submission, notebook, slot: int) -> Result:
        uid = self.sandbox_uids[slot] if self.capabilities.separate_user else None
        # The kernel's Unix sockets live in a short folder of their own, whatever the course's
        # path: a socket path over 108 bytes fails every student ("File name too long").
        sockets = Path(tempfile.mkdtemp(prefix="edl-", dir="/tmp" if os.path.isdir("/tmp") else None))
        try:
            if uid is not None:
                os.chown(sockets, uid, uid)
            return self._autograde_with(submission, notebook, uid, sockets / "k")
        finally:
            shutil.rmtree(sockets, ignore_errors=True)

    def _autograde_with(self, submission: Submission, notebook, uid: int | None, socket_prefix: Path) -> Result:
        student, chapter = submission.student, self.course.chapter
        private = self.workspace / "private" / student
        kernel_home = self.kernels_base() / student
        for folder in (private, kernel_home):
            shutil.rmtree(folder, ignore_errors=True)
        (private / "autograder").mkdir(parents=True)
        os.chmod(private, 0o700)
        (private / "solutions" / chapter).mkdir(parents=True)
        shutil.copyfile(self.workspace / "gradebook-snapshot.db", private / "autograder" / "gradebook.db")
        submitted = private / "autograder" / "submitted" / student / chapter / f"{chapter}.ipynb"
        submitted.parent.mkdir(parents=True)
        nbformat.write(without_duplicate_ids(notebook), str(submitted))
        autograded = kernel_home / "autograded"
        for folder in (autograded, kernel_home / "runtime", kernel_home / "home"):
            folder.mkdir(parents=True)
        if uid is not None:
            # autograded/ stays root's: nbgrader (root) makes <student>/<chapter> in it, and a kernel
            # that could rename those could point root's writes anywhere.
            for folder in (kernel_home, kernel_home / "runtime", kernel_home / "home"):
                os.chown(folder, uid, uid)
            os.chmod(kernel_home, 0o700)
            os.chmod(autograded, 0o755)
        report = private / "execution.json"
        plan = isolation.SandboxPlan(
            limits=dataclasses.asdict(self.limits), uid=uid,
            hide=[str(p) for p in self.course.secrets() + self.run_secrets()] if self.capabilities.hidden_paths else [],
            no_network=self.capabilities.no_network,
            home=str(kernel_home / "home"))
        isolation.write_kernel_spec(private / "jupyter", plan)
        (private / "nbgrader_config.py").write_text(
            _private_config(autograded, report, self.limits, uid, socket_prefix))
        env = {"JUPYTER_PATH": str(private / "jupyter"), "JUPYTER_RUNTIME_DIR": str(kernel_home / "runtime"),
               "EFFICIENT_DL_CACHE": str(self.model_cache), "EFFICIENT_DL_PROFILE": "fast",
               **self.threads_per_kernel}
        log = self.workspace / "logs" / f"{student}.log"
        log.parent.mkdir(exist_ok=True)
        try:
            completed = nbgrader_command(private, "autograde", chapter, f"--student={student}", "--force",
                                         cwd=private, env=env, timeout=self.limits.notebook_seconds)
            log.write_text(completed.stdout + completed.stderr)
            if uid is not None:  # nothing of the student runs while their results are read back
                isolation.kill_user_processes(uid)
        except subprocess.TimeoutExpired as expired:
            log.write_text(f"{expired.stdout or ''}{expired.stderr or ''}\n[killed after {self.limits.notebook_seconds} s]")
            if uid is not None:
                isolation.kill_user_processes(uid)
            return Result(student, TIMED_OUT, {k: (0.0, v) for k, v in self.max_scores.items()}, [],
                          [f"the whole notebook ran over {self.limits.notebook_seconds} s and was stopped"])
        scores = self._scores(private / "autograder" / "gradebook.db", student)
        executed = autograded / student / chapter / f"{chapter}.ipynb"
        if completed.returncode != 0 or not scores or not executed.is_file():
            return Result(student, FAILED, {k: (0.0, v) for k, v in self.max_scores.items()}, [],
                          [f"nbgrader autograde failed: {_last_error(completed.stdout + completed.stderr)}"])
        notes = _execution_notes(report)
        flagged = _execution_flags(report)
        target = self.course.root / "autograder" / "autograded" / student / chapter
        target.mkdir(parents=True, exist_ok=True)
        try:  # read through a descriptor, never following a link: the kernel could write in that folder
            graded_bytes = read_regular_file(executed)
        except (OSError, ValueError) as error:
            return Result(student, FAILED, {k: (0.0, v) for k, v in self.max_scores.items()}, [],
                          [f"the graded notebook could not be read back ({error})"])
        (target / executed.name).write_bytes(graded_bytes)
        feedback.write_feedback(target / executed.name, self.release_notebook(), scores,
                                self.course.root / "autograder" / "feedback" / student / chapter)
        shutil.rmtree(kernel_home, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        return Result(student, GRADED, scores, [], notes, flagged=flagged)

    def run_secrets(self) -> list[Path]:
        """What this run holds that a kernel must not see: the other students' work (the folder
        or zip handed in, and what was unpacked from it), the ledger of scores with its journal,
        logs, the gradebook snapshot, the private folders, other chapters' runs, the tests."""
        workspace = self.workspace
        found = [workspace / name for name in ("private", "ledger.db", "ledger.db-wal", "ledger.db-shm", "logs",
                                               "gradebook-snapshot.db", "downloaded", "collected")]
        found += [p for p in workspace.parent.iterdir() if p != workspace] if workspace.parent.is_dir() else []
        found += [self.course.root / "tests", REPOSITORY / "tests", *self.submissions]
        # Never a folder that holds what the kernel needs (the course, the model cache, Python).
        needed = [workspace, self.model_cache, REPOSITORY, Path(sys.prefix)]
        return [p for p in found if not any(n.resolve().is_relative_to(p.resolve()) for n in needed)]

    def kernels_base(self) -> Path:
        """Where kernels run: in the workspace if another user can reach it, else in /tmp."""
        base = self.workspace / "kernels"
        if self.capabilities.separate_user and isolation.untraversable_ancestor(str(self.workspace)):
            base = Path(tempfile.gettempdir()) / f"efficient-dl-kernels-{hashlib.sha1(str(self.workspace).encode()).hexdigest()[:12]}"
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o711)
        return base

    def release_notebook(self) -> Path:
        return self.workspace / "release" / self.course.chapter / f"{self.course.chapter}.ipynb"

    def _scores(self, db_path: Path, student: str) -> dict[str, tuple[float, float]]:
        try:
            with Gradebook(f"sqlite:///{db_path}") as gb:
                submission = gb.find_submission_notebook(self.course.chapter, self.course.chapter, student)
                return {g.name: (float(g.score), float(g.max_score)) for g in submission.grades}
        except MissingEntry:
            return {}

    def merge(self, result: Result) -> None:
        """Into the course gradebook: one short transaction per student (never for a name that
        is no usable student id: it is reported, not registered)."""
        if not STUDENT_ID.match(result.student):
            return
        chapter = self.course.chapter
        with self.merge_lock, Gradebook(self.course.db_url) as gb:
            gb.update_or_create_student(result.student)
            gb.update_or_create_submission(chapter, result.student)
            for grade_id, (score, _) in result.scores.items():
                grade = gb.find_grade(grade_id, chapter, chapter, result.student)
                grade.auto_score = score
                grade.needs_manual_grade = False
            gb.db.commit()


def _private_config(autograded: Path, report: Path, limits: isolation.Limits, uid: int | None,
                    socket_prefix: Path) -> str:
    return f'''c = get_config()  # noqa: F821
load_subconfig({str(REPOSITORY / "autograder" / "nbgrader_config.py")!r})  # noqa: F821
from nbgrader.preprocessors import IgnorePattern, LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata
from nbconvert.preprocessors import ClearMetadataPreprocessor
from autograder.execution import ResilientExecute
c.CourseDirectory.autograded_directory = {str(autograded)!r}
c.Autograde.autograde_preprocessors = [ResilientExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = {limits.cell_seconds}
c.ResilientExecute.report_path = {str(report)!r}
c.ResilientExecute.workdir_owner = {uid if uid is not None else -1}
c.KernelManager.transport = "ipc"  # Unix sockets: they reach a kernel with no network
c.KernelManager.ip = {str(socket_prefix)!r}
'''


def _last_error(log: str) -> str:
    lines = pipeline.error_lines(log) or [line for line in log.splitlines() if line.strip()]
    return (lines or ["no output"])[-1].strip()[:300]


def _execution_flags(report: Path) -> list[str]:
    data = json.loads(report.read_text()) if report.is_file() else {}
    return [f"{cell}: the kernel could not be verified before this test (its machinery was changed)"
            for cell in data.get("unverified_before", [])]


def _execution_notes(report: Path) -> list[str]:
    if not report.is_file():
        return []
    data = json.loads(report.read_text())
    notes = [f"kernel died in {cell}" for cell in data.get("kernel_died_in", [])]
    notes += [f"cell timed out: {cell}" for cell in data.get("timed_out_in", [])]
    notes += [f"put back before {cell}: {', '.join(sorted(set(names)))}"
              for cell, names in data.get("restored_before", {}).items()]
    notes += [f"output over the limit, cut: {cell}" for cell in data.get("output_truncated_in", [])]
    removed = data.get("removed_from_workdir", [])
    if removed:
        notes.append(f"links or special files left in the working folder, removed: "
                     f"{', '.join(printable(name) for name in removed[:5])}")
    return notes


# --- the class -----------------------------------------------------------------------------


def prepare(course: Course, workspace: Path, submissions: list[Submission]) -> dict[str, float]:
    """The chapter in the gradebook, the students registered, a snapshot for the workers."""
    release = workspace / "release"
    completed = nbgrader_command(course.root, "generate_assignment", course.chapter, "--force",
                                 f"--CourseDirectory.release_directory={release}")
    if completed.returncode != 0:
        raise GradingError(f"nbgrader generate_assignment {course.chapter} failed:\n{completed.stderr[-3000:]}")
    with Gradebook(course.db_url) as gb:
        for submission in submissions:
            if STUDENT_ID.match(submission.student):
                gb.update_or_create_student(submission.student)
        notebook = gb.find_notebook(course.chapter, course.chapter)
        max_scores = {cell.name: float(cell.max_score) for cell in notebook.grade_cells}
    snapshot = workspace / "gradebook-snapshot.db"
    with sqlite3.connect(course.db_path) as source, sqlite3.connect(snapshot) as target:
        source.backup(target)
    return max_scores


def warm_model_cache(course: Course, workspace: Path, out=print) -> Path:
    """Train the baseline models the chapter loads once, here, instead of once per student
    (kernels get the cache read-only)."""
    cache = workspace / "model-cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)
    source = (course.root / "solutions" / course.chapter / f"{course.chapter}.ipynb").read_text()
    for loader in sorted(set(re.findall(r"load_or_train_baseline_\w+", source))):
        out(f"Preparing the shared {loader.removeprefix('load_or_train_')} (fast profile) ...")
        completed = subprocess.run(
            [sys.executable, "-c", f"from efficient_dl import baselines; baselines.{loader}(verbose=False)"],
            env={**os.environ, "EFFICIENT_DL_CACHE": str(cache), "EFFICIENT_DL_PROFILE": "fast"},
            capture_output=True, text=True)
        if completed.returncode != 0:
            out(f"notice: {loader} failed here ({_last_error(completed.stderr)}); each kernel will train its own")
    for path in cache.iterdir():
        os.chmod(path, 0o644)
    return cache


def kernel_thread_limits(workers: int, cores: int | None = None) -> dict[str, str]:
    """Environment variables that give each of ``workers`` kernels its share of the cores."""
    share = str(max(1, (cores or os.cpu_count() or 1) // workers))
    return {"TF_NUM_INTRAOP_THREADS": share, "TF_NUM_INTEROP_THREADS": share, "OMP_NUM_THREADS": share}


def write_csv(path: Path, results: list[Result], max_scores: dict[str, float]) -> None:
    import csv

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


def grade_class(chapter: str, submissions_path: Path, workers: int | None = None, regrade: bool = False,
                limits: isolation.Limits = isolation.Limits(), workspace: Path | None = None,
                lms_regexp: str = DEFAULT_LMS_REGEXP, csv_path: Path | None = None,
                out=print) -> list[Result]:
    course = Course(grading_root(), chapter)
    if not (course.root / "solutions" / chapter / f"{chapter}.ipynb").is_file():
        raise GradingError(f"No chapter {chapter!r} in {course.root / 'solutions'}.")
    workspace = (workspace or course.root / "autograder" / "runs" / chapter).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    os.chmod(workspace, 0o711)
    capabilities = isolation.probe()
    for notice in capabilities.notices():
        out(f"notice: {notice}")
    refused, handed_in = [], [submissions_path.resolve()]
    if submissions_path.is_file() and submissions_path.suffix.lower() == ".zip":
        submissions_path, refused = collect_zip(submissions_path, course, workspace, lms_regexp)
    if not submissions_path.is_dir():
        raise GradingError(f"{submissions_path} is neither a folder of students nor a .zip export.")
    submissions = find_submissions(submissions_path, chapter) + refused
    max_scores = prepare(course, workspace, submissions)
    ledger = Ledger(workspace / "ledger.db")
    grader = Grader(course, workspace, limits, capabilities, warm_model_cache(course, workspace, out), max_scores,
                    submissions=handed_in)

    results, pending = [], []
    for submission in submissions:
        previous = None if regrade else ledger.done(submission.student, submission.digest())
        if previous:
            results.append(previous)
        else:
            pending.append(submission)
    workers = max(1, workers or os.cpu_count() or 1)
    users = isolation.SandboxUsers(workers if capabilities.separate_user else 0)
    grader.sandbox_uids = users.uids
    grader.threads_per_kernel = kernel_thread_limits(workers)
    out(f"Grading {chapter}: {len(pending)} to grade, {len(results)} already graded, {workers} worker(s).")
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    max_total = sum(max_scores.values())

    def run(submission: Submission) -> Result:
        slot = slots.get()
        try:
            digest = submission.digest()
            try:
                result = grader.grade(submission, slot)
            except Exception as error:  # one broken submission never stops the class
                result = Result(submission.student, FAILED, {k: (0.0, v) for k, v in max_scores.items()}, [],
                                [f"grader error: {type(error).__name__}: {error}"])
                grader.merge(result)
            ledger.record(result, digest)
            return result
        finally:
            slots.put(slot)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run, submission) for submission in pending]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            result = future.result()
            results.append(result)
            out(f"[{done}/{len(pending)}] {result.student}: {result.status}, {result.total:g}/{max_total:g}"
                f" ({result.seconds:.0f} s)" + (" TAMPERED" if result.tampered else "")
                + (" FLAGGED" if result.flagged else ""))
    users.release()
    csv_path = csv_path or course.root / "autograder" / "exports" / f"{chapter}.csv"
    write_csv(csv_path, results, max_scores)
    out("Summary")
    for line in summary_lines(results, max_total):
        out(line)
    out(f"CSV: {csv_path}\nFeedback: {course.root / 'autograder' / 'feedback'}/<student>/{chapter}/")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter")
    parser.add_argument("submissions", type=Path, help="folder of student folders, or an LMS .zip export")
    parser.add_argument("--workers", type=int, default=None, help="parallel notebooks (default: CPU count)")
    parser.add_argument("--regrade", action="store_true", help="grade again students already in the ledger")
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--cpu-seconds", type=int, default=900)
    parser.add_argument("--cell-timeout", type=int, default=300)
    parser.add_argument("--notebook-timeout", type=int, default=1200)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--lms-regexp", default=DEFAULT_LMS_REGEXP,
                        help="nbgrader FileNameCollectorPlugin.named_regexp for zip exports")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    limits = isolation.Limits(memory_bytes=int(args.memory_gb * 2**30), cpu_seconds=args.cpu_seconds,
                              cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout)
    try:
        grade_class(args.chapter, args.submissions, args.workers, args.regrade, limits, args.workspace,
                    args.lms_regexp, args.csv)
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
