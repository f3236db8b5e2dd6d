"""Grade a whole class for one chapter, in parallel, each notebook in its own sandbox.

    python -m autograder.grade_class CHAPTER SUBMISSIONS [--workers N] [--regrade] ...
    make grade-class CHAPTER=ch01_compute_and_energy SUBMISSIONS=path/to/folder-or.zip

SUBMISSIONS is a folder with one sub-folder per student (holding ``<chapter>.ipynb``, or
``<chapter>/<chapter>.ipynb`` as nbgrader's submitted/ does), or the zip an LMS exports,
collected with nbgrader's own ``zip_collect`` (file names matched by ``--lms-regexp``).

The flow, one module per step:

1. ``autograder.intake``: one Submission per student; only plain files, never through a link.
2. ``autograder.integrity``: test cells compared with the release; code that reaches for the
   kernel's machinery flagged for review.
3. ``autograder.sandbox`` and ``autograder.cgroups``: each kernel in bubblewrap, as its own
   uid, with per-student memory and process limits.
4. ``autograder.execution``: nbgrader's own ``autograde``, in a private copy of the course
   (its own gradebook copy, so workers never fight over one SQLite file), executed cell by
   cell by ``ResilientExecute``, which survives dead kernels and verifies the kernel before
   every test.
5. ``autograder.results``: a ledger in the run's folder (a student already graded from the
   same file is skipped next time, so a run killed half-way loses nothing), the course's
   gradebook (backed up first), feedback that never shows hidden tests, a CSV and a summary.

The course's paths are ``autograder.paths``. This module runs the steps, and only ``main``
exits.

Outputs: the gradebook (``grading/gradebook.db``), feedback
(``grading/feedback/<student>/<chapter>/<chapter>.html``), a CSV with one row per student
(``grading/exports/<chapter>.csv``) and a summary on stdout.
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
from nbgrader.api import Gradebook

from autograder import cgroups, feedback, integrity, sandbox
from autograder.intake import (DEFAULT_LMS_REGEXP, STUDENT_ID, Submission, collect_zip,  # noqa: F401 -- the API
                               find_submissions, printable, read_regular_file, read_submission, without_duplicate_ids)
from autograder.paths import REPOSITORY, STATE_FOLDER, Course, GradingError, grading_root
from autograder.pipeline import NbgraderForks, error_lines, nbgrader_command
from autograder.results import (FAILED, GRADED, INVALID, MISSING, TIMED_OUT, Ledger, Result,  # noqa: F401
                                backup_gradebook, merge, recorded_scores, summary_lines, write_csv)

# nbgrader's gradebook API trips SQLAlchemy's autoflush warnings on every new submission.
warnings.filterwarnings("ignore", module="nbgrader.api")
warnings.filterwarnings("ignore", message=".*not in session.*")

WEAKER_SANDBOX_FLAG = "--allow-weaker-sandbox"


# --- one student ---------------------------------------------------------------------------


@dataclasses.dataclass
class Grader:
    course: Course
    workspace: Path
    limits: sandbox.Limits
    capabilities: sandbox.Capabilities
    model_cache: Path
    max_scores: dict[str, float]
    sandbox_uids: list[int] = dataclasses.field(default_factory=list)  # one per worker slot
    submissions: list[Path] = dataclasses.field(default_factory=list)  # the class's work, hidden from kernels
    # Each kernel's share of the cores: TensorFlow and oneDNN would otherwise each start a
    # thread per core in every kernel, and the workers' threads would fight over the cores.
    threads_per_kernel: dict[str, str] = dataclasses.field(default_factory=dict)
    merge_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    forks: NbgraderForks | None = None  # nbgrader preloaded for many students; None: a fresh process each

    def grade(self, submission: Submission, slot: int) -> Result:
        started = time.perf_counter()
        notebook = read_submission(submission) if submission.problem is None else None
        if notebook is None:
            status = MISSING if submission.problem.startswith("no notebook") else INVALID
            result = Result(submission.student, status, self._nothing(), [], submission.notes + [submission.problem])
            self.merge(result)
            return result
        release = nbformat.read(str(self.release_notebook()), as_version=4)
        tampered = integrity.tampering(notebook, release)
        flagged = integrity.suspicious_code(notebook, release)
        uid = self.sandbox_uids[slot] if self.capabilities.separate_user else None
        group = self._student_cgroup(uid)
        try:
            result = self._autograde(submission, notebook, uid, group)
        finally:
            self._stop_everything_of(uid, group)
        result.tampered = tampered
        result.flagged = flagged + result.flagged
        result.notes = submission.notes + result.notes
        result.seconds = time.perf_counter() - started
        self.merge(result)
        return result

    def _nothing(self) -> dict[str, tuple[float, float]]:
        return {grade_id: (0.0, most) for grade_id, most in self.max_scores.items()}

    def _student_cgroup(self, uid: int | None) -> cgroups.StudentCgroup | None:
        if self.capabilities.cgroups is None or uid is None:
            return None
        return cgroups.create(f"uid-{uid}", self.limits.memory_bytes, self.limits.max_processes)

    @staticmethod
    def _stop_everything_of(uid: int | None, group: cgroups.StudentCgroup | None, remove: bool = True) -> None:
        """Nothing the student started runs on: their cgroup emptied (and removed), their uid's
        processes killed (the PID namespace has ended them already; this is for a weaker sandbox)."""
        if group is not None and remove:
            group.remove()
        elif group is not None:
            group.kill()
        if uid is not None:
            sandbox.kill_user_processes(uid)

    def _autograde(self, submission: Submission, notebook, uid: int | None,
                   group: cgroups.StudentCgroup | None) -> Result:
        # The kernel's Unix sockets live in a short folder of their own, whatever the course's
        # path: a socket path over 108 bytes fails every student ("File name too long").
        sockets = Path(tempfile.mkdtemp(prefix="edl-", dir="/tmp" if os.path.isdir("/tmp") else None))
        try:
            if uid is not None:
                os.chown(sockets, uid, uid)
            return self._autograde_with(submission, notebook, uid, group, sockets)
        finally:
            shutil.rmtree(sockets, ignore_errors=True)

    def _plan(self, uid: int | None, group: cgroups.StudentCgroup | None, sockets: Path,
              kernel_home: Path) -> sandbox.SandboxPlan:
        limits = dataclasses.asdict(self.limits)
        if self.capabilities.bubblewrap:
            mirror = os.environ.get("EFFICIENT_DL_DATA_MIRROR")
            read_only = sandbox.python_paths() + [str(self.model_cache)]
            read_only += [str(Path(mirror).resolve())] if mirror and Path(mirror).is_dir() else []
            return sandbox.SandboxPlan(limits=limits, uid=uid, hide=[], no_network=True, home=sandbox.SANDBOX_HOME,
                                       bubblewrap=self.capabilities.bubblewrap, read_only=read_only,
                                       read_write=[str(sockets)], cgroup=group.to_json() if group else None,
                                       runtime=str(sockets))
        hidden = self.course.secrets() + self.run_secrets() if self.capabilities.hidden_paths else []
        return sandbox.SandboxPlan(limits=limits, uid=uid, hide=[str(p) for p in hidden],
                                   no_network=self.capabilities.no_network, home=str(kernel_home / "home"),
                                   cgroup=group.to_json() if group else None, runtime=str(sockets))

    def _autograde_with(self, submission: Submission, notebook, uid: int | None,
                        group: cgroups.StudentCgroup | None, sockets: Path) -> Result:
        student, chapter = submission.student, self.course.chapter
        private = self.workspace / "private" / student
        kernel_home = self.kernels_base() / student
        for folder in (private, kernel_home):
            shutil.rmtree(folder, ignore_errors=True)
        (private / STATE_FOLDER).mkdir(parents=True)
        os.chmod(private, 0o700)
        (private / "solutions" / chapter).mkdir(parents=True)
        shutil.copyfile(self.workspace / "gradebook-snapshot.db", private / STATE_FOLDER / "gradebook.db")
        submitted = private / STATE_FOLDER / "submitted" / student / chapter / f"{chapter}.ipynb"
        submitted.parent.mkdir(parents=True)
        nbformat.write(without_duplicate_ids(notebook), str(submitted))
        autograded = kernel_home / "autograded"
        for folder in (autograded, kernel_home / "runtime", kernel_home / "home"):
            folder.mkdir(parents=True)
        # In bubblewrap the kernel sees none of these folders (its socket folder and connection
        # file are bound in); in a weaker sandbox it runs in the notebook's folder and needs them.
        weaker = uid is not None and not self.capabilities.bubblewrap
        if weaker:
            # autograded/ stays root's: nbgrader (root) makes <student>/<chapter> in it, and a kernel
            # that could rename those could point root's writes anywhere.
            for folder in (kernel_home, kernel_home / "runtime", kernel_home / "home"):
                os.chown(folder, uid, uid)
            os.chmod(kernel_home, 0o700)
            os.chmod(autograded, 0o755)
        report = private / "execution.json"
        sandbox.write_kernel_spec(private / "jupyter", self._plan(uid, group, sockets, kernel_home))
        (private / "nbgrader_config.py").write_text(
            _private_config(autograded, report, self.limits, uid if weaker else None, sockets / "k"))
        env = {"JUPYTER_PATH": str(private / "jupyter"), "JUPYTER_RUNTIME_DIR": str(kernel_home / "runtime"),
               "EFFICIENT_DL_CACHE": str(self.model_cache), "EFFICIENT_DL_PROFILE": "fast",
               **self.threads_per_kernel}
        log = self.workspace / "logs" / f"{student}.log"
        log.parent.mkdir(exist_ok=True)
        arguments = ("autograde", chapter, f"--student={student}", "--force")
        try:
            if self.forks is not None:
                returncode = self.forks.run(private, *arguments, cwd=private, log=log, env=env,
                                            timeout=self.limits.notebook_seconds)
            else:
                completed = nbgrader_command(private, *arguments, cwd=private, env=env,
                                             timeout=self.limits.notebook_seconds)
                log.write_text(completed.stdout + completed.stderr)
                returncode = completed.returncode
        except (subprocess.TimeoutExpired, TimeoutError):
            with log.open("a") as handle:
                handle.write(f"\n[killed after {self.limits.notebook_seconds} s]\n")
            return Result(student, TIMED_OUT, self._nothing(), [],
                          [f"the whole notebook ran over {self.limits.notebook_seconds} s and was stopped"])
        finally:  # nothing of the student runs while results are read back
            self._stop_everything_of(uid, group, remove=False)
        scores = recorded_scores(private / STATE_FOLDER / "gradebook.db", chapter, student)
        executed = autograded / student / chapter / f"{chapter}.ipynb"
        if returncode != 0 or not scores or not executed.is_file():
            output = log.read_text(errors="replace") if log.is_file() else ""
            return Result(student, FAILED, self._nothing(), [], [f"nbgrader autograde failed: {_last_error(output)}"])
        execution = json.loads(report.read_text()) if report.is_file() else {}
        notes = _execution_notes(execution)
        flagged = _execution_flags(execution)
        if group is not None and (peak := group.peak_memory_bytes()):
            notes += [f"used {peak / 2**30:.1f} GiB, the memory limit"] if peak >= self.limits.memory_bytes * 0.98 else []
        target = self.course.autograded(student)
        target.mkdir(parents=True, exist_ok=True)
        try:  # read through a descriptor, never following a link: a weaker sandbox's kernel could write there
            graded_bytes = read_regular_file(executed)
        except (OSError, ValueError) as error:
            return Result(student, FAILED, self._nothing(), [], [f"the graded notebook could not be read back ({error})"])
        (target / executed.name).write_bytes(graded_bytes)
        feedback.write_feedback(target / executed.name, self.release_notebook(), scores, self.course.feedback(student))
        shutil.rmtree(kernel_home, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        return Result(student, GRADED, scores, [], notes, flagged=flagged,
                      kernel_seconds=float(execution.get("kernel_seconds", 0.0)),
                      cell_seconds=float(execution.get("cell_seconds", 0.0)))

    def run_secrets(self) -> list[Path]:
        """For the weaker sandbox's deny-list: what this run holds that a kernel must not see
        (the other students' work, the ledger with its journal, logs, the gradebook snapshot,
        the private folders, other chapters' runs, the tests)."""
        workspace = self.workspace
        found = [workspace / name for name in ("private", "ledger.db", "ledger.db-wal", "ledger.db-shm", "logs",
                                               "gradebook-snapshot.db", "downloaded", "collected", "backups")]
        found += [p for p in workspace.parent.iterdir() if p != workspace] if workspace.parent.is_dir() else []
        found += [self.course.root / "tests", REPOSITORY / "tests", *self.submissions]
        # Never a folder that holds what the kernel needs (the course, the model cache, Python).
        needed = [workspace, self.model_cache, REPOSITORY, Path(sys.prefix)]
        return [p for p in found if not any(n.resolve().is_relative_to(p.resolve()) for n in needed)]

    def kernels_base(self) -> Path:
        """Where kernels' private folders are made: in the workspace if the sandbox user can reach
        it (or never needs to: bubblewrap binds in what it needs), else in /tmp."""
        base = self.workspace / "kernels"
        if (self.capabilities.separate_user and not self.capabilities.bubblewrap
                and sandbox.untraversable_ancestor(str(self.workspace))):
            base = Path(tempfile.gettempdir()) / f"efficient-dl-kernels-{hashlib.sha1(str(self.workspace).encode()).hexdigest()[:12]}"
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o711)
        return base

    def release_notebook(self) -> Path:
        return self.workspace / "release" / self.course.chapter / f"{self.course.chapter}.ipynb"

    def merge(self, result: Result) -> None:
        merge(self.course, result, self.merge_lock)


def _private_config(autograded: Path, report: Path, limits: sandbox.Limits, uid: int | None,
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
c.Application.log_format = "%(asctime)s.%(msecs)03d [%(name)s | %(levelname)s] %(message)s"
'''


def _last_error(log: str) -> str:
    lines = error_lines(log) or [line for line in log.splitlines() if line.strip()]
    return (lines or ["no output"])[-1].strip()[:300]


def _execution_flags(data: dict) -> list[str]:
    """From ResilientExecute's report: what needs a person's review."""
    return [f"{cell}: the kernel could not be verified before this test (its machinery was changed)"
            for cell in data.get("unverified_before", [])]


def _execution_notes(data: dict) -> list[str]:
    """From ResilientExecute's report: what happened while the notebook ran, in words."""
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


def grade_class(chapter: str, submissions_path: Path, workers: int | None = None, regrade: bool = False,
                limits: sandbox.Limits = sandbox.Limits(), workspace: Path | None = None,
                lms_regexp: str = DEFAULT_LMS_REGEXP, csv_path: Path | None = None,
                out=print, allow_weaker_sandbox: bool = False,
                capabilities: sandbox.Capabilities | None = None) -> list[Result]:
    """Grade every submission in ``submissions_path``; GradingError, in words, where the run
    cannot go on (no such chapter, an unreadable export, a sandbox weaker than the grader is
    built for and not accepted with ``allow_weaker_sandbox``)."""
    course = Course(grading_root(), chapter)
    if not course.source_notebook.is_file():
        raise GradingError(f"No chapter {chapter!r} in {course.root / 'solutions'}.")
    capabilities = capabilities or sandbox.probe()
    if not capabilities.complete and not allow_weaker_sandbox:
        raise GradingError(
            "The class grader runs strangers' code, and this machine cannot sandbox it fully:\n"
            + "\n".join(f"  - {notice}" for notice in capabilities.notices())
            + f"\nRun it as root on a machine with bubblewrap (apt-get install bubblewrap) and cgroups, "
              f"or pass {WEAKER_SANDBOX_FLAG} to grade with what this machine has (only for work you trust).")
    for notice in capabilities.notices():
        out(f"notice: {notice}")
    if not submissions_path.exists():
        raise GradingError(f"{submissions_path} is neither a folder of students nor a .zip export (it does not exist).")
    workspace = (workspace or course.runs).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    os.chmod(workspace, 0o711)
    backup = backup_gradebook(course, workspace / "backups")
    if backup:
        out(f"Gradebook backed up to {backup}")
    refused, handed_in = [], [submissions_path.resolve()]
    if submissions_path.is_file() and submissions_path.suffix.lower() == ".zip":
        submissions_path, refused = collect_zip(submissions_path, course, workspace, lms_regexp)
    if not submissions_path.is_dir():
        raise GradingError(f"{submissions_path} is neither a folder of students nor a .zip export.")
    submissions = find_submissions(submissions_path, chapter) + refused
    max_scores = prepare(course, workspace, submissions)
    ledger = Ledger(workspace / "ledger.db")
    grader = Grader(course, workspace, limits, capabilities, warm_model_cache(course, workspace, out), max_scores,
                    submissions=handed_in, forks=NbgraderForks())

    results, pending = [], []
    for submission in submissions:
        previous = None if regrade else ledger.done(submission.student, submission.digest())
        if previous:
            results.append(previous)
        else:
            pending.append(submission)
    workers = max(1, workers or os.cpu_count() or 1)
    users = sandbox.SandboxUsers(workers if capabilities.separate_user else 0)
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
                result = Result(submission.student, FAILED, grader._nothing(), [],
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
    csv_path = csv_path or course.csv_path
    write_csv(csv_path, results, max_scores)
    out("Summary")
    for line in summary_lines(results, max_total):
        out(line)
    out(f"CSV: {csv_path}\nFeedback: {course.state / 'feedback'}/<student>/{chapter}/")
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
    parser.add_argument(WEAKER_SANDBOX_FLAG, action="store_true",
                        help="grade even where bubblewrap, root or cgroups are missing, with what the machine has")
    args = parser.parse_args(argv)
    limits = sandbox.Limits(memory_bytes=int(args.memory_gb * 2**30), cpu_seconds=args.cpu_seconds,
                            cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout)
    try:
        grade_class(args.chapter, args.submissions, args.workers, args.regrade, limits, args.workspace,
                    args.lms_regexp, args.csv, allow_weaker_sandbox=args.allow_weaker_sandbox)
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
