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
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.utils import compute_checksum, is_grade

from autograder import feedback, isolation, pipeline

# nbgrader's gradebook API trips SQLAlchemy's autoflush warnings on every new submission.
warnings.filterwarnings("ignore", module="nbgrader.api")
warnings.filterwarnings("ignore", message=".*not in session.*")

REPOSITORY = Path(__file__).resolve().parents[1]
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MAX_NOTEBOOK_BYTES = 200 * 2**20
# Blackboard-style names, nbgrader's documented example: <anything>_<student>_attempt_<time>_<file>
DEFAULT_LMS_REGEXP = r".*_(?P<student_id>[A-Za-z0-9.@+-]+)_attempt_(?P<timestamp>[0-9\-]+)_(?P<file_id>\w+)"

GRADED, FAILED, TIMED_OUT, MISSING, INVALID = "graded", "failed", "timed out", "missing", "invalid"


@dataclasses.dataclass
class Submission:
    student: str
    path: Path | None
    problem: str | None = None  # why it cannot be graded (missing, invalid)
    notes: list[str] = dataclasses.field(default_factory=list)

    def digest(self) -> str:
        if self.path is None or not self.path.is_file():
            return "none"
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclasses.dataclass
class Result:
    student: str
    status: str
    scores: dict[str, tuple[float, float]]  # grade_id -> (score, max)
    tampered: list[str]
    notes: list[str]
    seconds: float = 0.0

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


def collect_zip(archive: Path, course: Course, workspace: Path, regexp: str) -> Path:
    """Unpack an LMS export with nbgrader's zip_collect; returns a folder of students."""
    downloaded = workspace / "downloaded"
    shutil.rmtree(downloaded, ignore_errors=True)
    (downloaded / course.chapter / "archive").mkdir(parents=True)
    shutil.copyfile(archive, downloaded / course.chapter / "archive" / archive.name)
    collected = workspace / "collected"
    shutil.rmtree(collected, ignore_errors=True)
    completed = nbgrader_command(
        course.root, "zip_collect", course.chapter, "--force",
        # zip_collect glues these to the course root, so they must be relative to it.
        f"--ZipCollectApp.downloaded_directory={os.path.relpath(downloaded, course.root)}",
        f"--FileNameCollectorPlugin.named_regexp={regexp}",
        f"--CourseDirectory.submitted_directory={os.path.relpath(collected, course.root)}")
    if completed.returncode != 0:
        raise SystemExit(f"nbgrader zip_collect could not read {archive}:\n{completed.stderr[-3000:]}")
    return collected


def find_submissions(folder: Path, chapter: str) -> list[Submission]:
    """One Submission per student folder, with what is wrong with it said in words."""
    wanted = f"{chapter}.ipynb"
    submissions = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        student = student_dir.name
        if not STUDENT_ID.match(student):
            submissions.append(Submission(student, None, f"folder name {student!r} is not a usable student id"))
            continue
        for candidate in (student_dir / wanted, student_dir / chapter / wanted):
            if candidate.is_file():
                submissions.append(Submission(student, candidate))
                break
        else:
            others = sorted(p for p in student_dir.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            if len(others) == 1:
                submissions.append(Submission(student, others[0], notes=[
                    f"submitted as {others[0].relative_to(student_dir)}, graded as {wanted}"]))
            elif others:
                names = ", ".join(str(p.relative_to(student_dir)) for p in others)
                submissions.append(Submission(student, None, f"no {wanted}, and several other notebooks: {names}"))
            else:
                submissions.append(Submission(student, None, f"no notebook submitted (expected {wanted})"))
    return submissions


def read_submission(submission: Submission):
    """The notebook, or None with ``submission.problem`` set."""
    size = submission.path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        submission.problem = f"notebook is {size / 2**20:.0f} MiB, over the {MAX_NOTEBOOK_BYTES // 2**20} MiB limit"
        return None
    try:
        notebook = nbformat.read(str(submission.path), as_version=4)
    except Exception as error:  # JSON errors, wrong schema, binary garbage
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        submission.problem = f"not a valid notebook ({first_line[:200]})"
        return None
    if size > 20 * 2**20:
        submission.notes.append(f"{size / 2**20:.0f} MiB of outputs (cleared before grading)")
    return notebook


def tampering(notebook, course: Course) -> list[str]:
    """What the student changed in the cells the grader owns: compared with the gradebook."""
    found = []
    with Gradebook(course.db_url) as gb:
        source = gb.find_notebook(course.chapter, course.chapter)
        expected = {cell.name: cell for cell in source.source_cells}
        graded = {cell.name for cell in source.grade_cells}
    seen: dict[str, int] = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
        reference = expected.get(grade_id)
        if reference is None or seen[grade_id] > 1:
            continue
        if cell.cell_type != reference.cell_type:
            found.append(f"{grade_id}: changed from {reference.cell_type} to {cell.cell_type}")
        elif reference.locked and grade_id in graded and compute_checksum(cell) != reference.checksum:
            found.append(f"{grade_id}: test cell edited")
    found += [f"{grade_id}: appears {count} times" for grade_id, count in seen.items() if count > 1]
    found += [f"{grade_id}: test cell deleted" for grade_id in sorted(graded) if grade_id not in seen]
    return found


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
    # Each kernel's share of the cores: TensorFlow and oneDNN would otherwise each start a
    # thread per core in every kernel, and the workers' threads would fight over the cores.
    threads_per_kernel: dict[str, str] = dataclasses.field(default_factory=dict)
    merge_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def grade(self, submission: Submission, slot: int) -> Result:
        started = time.perf_counter()
        notebook = read_submission(submission) if submission.problem is None else None
        if notebook is None:
            status = MISSING if submission.path is None else INVALID
            result = Result(submission.student, status, {k: (0.0, v) for k, v in self.max_scores.items()}, [],
                            submission.notes + [submission.problem])
            self.merge(result)
            return result
        tampered = tampering(notebook, self.course)
        try:
            result = self._autograde(submission, notebook, slot)
        finally:
            if self.capabilities.separate_user:
                isolation.kill_user_processes(self.sandbox_uids[slot])
        result.tampered = tampered
        result.notes = submission.notes + result.notes
        result.seconds = time.perf_counter() - started
        self.merge(result)
        return result

    def _autograde(self, submission: Submission, notebook, slot: int) -> Result:
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
        uid = self.sandbox_uids[slot] if self.capabilities.separate_user else None
        if uid is not None:
            for folder in (kernel_home, kernel_home / "runtime", kernel_home / "home", autograded):
                os.chown(folder, uid, uid)
            os.chmod(kernel_home, 0o700)
        report = private / "execution.json"
        plan = isolation.SandboxPlan(
            limits=dataclasses.asdict(self.limits), uid=uid,
            hide=[str(p) for p in self.course.secrets() + [self.workspace / "private", self.workspace / "ledger.db",
                                                          self.workspace / "gradebook-snapshot.db"]]
            if self.capabilities.hidden_paths else [],
            no_network=self.capabilities.no_network,
            home=str(kernel_home / "home"))
        isolation.write_kernel_spec(private / "jupyter", plan)
        (private / "nbgrader_config.py").write_text(
            _private_config(autograded, report, self.limits, uid, kernel_home / "runtime" / "kernel"))
        env = {"JUPYTER_PATH": str(private / "jupyter"), "JUPYTER_RUNTIME_DIR": str(kernel_home / "runtime"),
               "EFFICIENT_DL_CACHE": str(self.model_cache), "EFFICIENT_DL_PROFILE": "fast",
               **self.threads_per_kernel}
        log = self.workspace / "logs" / f"{student}.log"
        log.parent.mkdir(exist_ok=True)
        try:
            completed = nbgrader_command(private, "autograde", chapter, f"--student={student}", "--force",
                                         cwd=private, env=env, timeout=self.limits.notebook_seconds)
            log.write_text(completed.stdout + completed.stderr)
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
        target = self.course.root / "autograder" / "autograded" / student / chapter
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, target / executed.name)
        feedback.write_feedback(target / executed.name, self.release_notebook(), scores,
                                self.course.root / "autograder" / "feedback" / student / chapter)
        shutil.rmtree(kernel_home, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        return Result(student, GRADED, scores, [], notes)

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
        """Into the course gradebook: one short transaction per student."""
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


def _execution_notes(report: Path) -> list[str]:
    if not report.is_file():
        return []
    data = json.loads(report.read_text())
    notes = [f"kernel died in {cell}" for cell in data.get("kernel_died_in", [])]
    notes += [f"cell timed out: {cell}" for cell in data.get("timed_out_in", [])]
    notes += [f"put back before {cell}: {', '.join(sorted(set(names)))}"
              for cell, names in data.get("restored_before", {}).items()]
    return notes


# --- the class -----------------------------------------------------------------------------


def prepare(course: Course, workspace: Path, submissions: list[Submission]) -> dict[str, float]:
    """The chapter in the gradebook, the students registered, a snapshot for the workers."""
    release = workspace / "release"
    completed = nbgrader_command(course.root, "generate_assignment", course.chapter, "--force",
                                 f"--CourseDirectory.release_directory={release}")
    if completed.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment {course.chapter} failed:\n{completed.stderr[-3000:]}")
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
        writer.writerow(["student", "status", *columns, "total", "max", "tampered", "notes"])
        writer.writerow(["(max)", "", *[max_scores[c] for c in columns], sum(max_scores.values()),
                         sum(max_scores.values()), "", ""])
        for result in sorted(results, key=lambda r: r.student):
            writer.writerow([result.student, result.status, *[result.scores.get(c, (0.0, 0.0))[0] for c in columns],
                             result.total, sum(max_scores.values()), "; ".join(result.tampered),
                             "; ".join(result.notes)])


def summary_lines(results: list[Result], max_total: float) -> list[str]:
    counts = {status: sum(r.status == status for r in results) for status in (GRADED, FAILED, TIMED_OUT, MISSING, INVALID)}
    tampered = [r for r in results if r.tampered]
    lines = [f"{len(results)} students: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
             + f"; {len(tampered)} tampered"]
    for result in sorted(results, key=lambda r: r.student):
        remarks = result.tampered + result.notes
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
        raise SystemExit(f"No chapter {chapter!r} in {course.root / 'solutions'}.")
    workspace = (workspace or course.root / "autograder" / "runs" / chapter).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    os.chmod(workspace, 0o711)
    capabilities = isolation.probe()
    for notice in capabilities.notices():
        out(f"notice: {notice}")
    if submissions_path.is_file() and submissions_path.suffix.lower() == ".zip":
        submissions_path = collect_zip(submissions_path, course, workspace, lms_regexp)
    if not submissions_path.is_dir():
        raise SystemExit(f"{submissions_path} is neither a folder of students nor a .zip export.")
    submissions = find_submissions(submissions_path, chapter)
    max_scores = prepare(course, workspace, submissions)
    ledger = Ledger(workspace / "ledger.db")
    grader = Grader(course, workspace, limits, capabilities, warm_model_cache(course, workspace, out), max_scores)

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
                f" ({result.seconds:.0f} s)" + (" TAMPERED" if result.tampered else ""))
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
    results = grade_class(args.chapter, args.submissions, args.workers, args.regrade, limits, args.workspace,
                          args.lms_regexp, args.csv)
    return 0 if results is not None else 1


if __name__ == "__main__":
    sys.exit(main())
