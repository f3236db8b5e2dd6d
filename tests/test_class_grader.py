"""The class grader against real, hostile submissions (chapter 01, the quickest to run).

One batch holds good students and every kind of trouble the issue lists; it is graded once,
in parallel, and each outcome is asserted: the points each deserves, a clear line in the
summary, and nothing else in the batch affected. Where this machine cannot isolate in some
way (no root, no namespaces), the assertions that depend on it are skipped with the reason.
"""
from __future__ import annotations

import copy
import csv
import html
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import warnings
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import feedback, grade_class, isolation, pipeline

CHAPTER = "ch01_compute_and_energy"
FULL = 16.0
LIMITS = isolation.Limits(memory_bytes=4 * 2**30, cpu_seconds=300, cell_seconds=45, notebook_seconds=300)
CAPABILITIES = isolation.probe()


def solution():
    return nbformat.read(str(pipeline.notebook_path(pipeline.SOLUTIONS, CHAPTER)), as_version=4)


def cell(notebook, grade_id):
    return next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def replace_in(notebook, grade_id, old, new):
    target = cell(notebook, grade_id)
    assert old in target.source, f"{old!r} not in {grade_id}: the solution changed, update this test"
    target.source = target.source.replace(old, new)
    return notebook


def save(folder: Path, student: str, notebook, name: str = f"{CHAPTER}.ipynb") -> None:
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(folder / student / name))


class Listener:
    """A TCP server on 127.0.0.1 that counts who reaches it."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


def build_batch(folder: Path, course_root: Path, port: int) -> dict[str, tuple[float, dict[str, float]]]:
    """Write the submissions; returns {student: (expected total, {grade_id: expected score})}."""
    expected = {}
    save(folder, "good_a", solution())
    save(folder, "good_b", solution())
    expected["good_a"] = expected["good_b"] = (FULL, {})

    different = solution()  # correct, but written another way
    replace_in(different, "ex1_parameter_formulas", "return n_in * n_out + (n_out if use_bias else 0)",
               "weights = sum(n_in for _ in range(n_out))\n    return weights + use_bias * n_out")
    replace_in(different, "ex8_choose_batch_size", "    within_budget = [row for row in rows if row[\"median_ms\"] <= latency_budget_ms]\n"
               "    if not within_budget:\n        return None\n    return max(within_budget, key=lambda row: row[\"throughput_per_s\"])[\"batch_size\"]",
               "    best = None\n    for row in sorted(rows, key=lambda r: -r[\"throughput_per_s\"]):\n"
               "        if row[\"median_ms\"] <= latency_budget_ms:\n            best = row[\"batch_size\"]\n            break\n"
               "    return best")
    save(folder, "different", different)
    expected["different"] = (FULL, {})

    looping = replace_in(solution(), "ex2_convolution_flops", "    multiply_adds =", "    while True:\n        pass\n    multiply_adds =")
    save(folder, "infinite_loop", looping)
    expected["infinite_loop"] = (FULL - 2, {"test_ex2_convolution_flops": 0})

    crashing = replace_in(solution(), "ex3_weights_memory", "    return n_params * bytes_per_value(dtype) / 1e9",
                          "    import os\n    os._exit(1)")
    save(folder, "kernel_crash", crashing)
    expected["kernel_crash"] = (FULL - 2, {"test_ex3_weights_memory": 0})

    greedy = replace_in(solution(), "ex4_adam_training_memory", "    copies = 4",
                        "    hog = np.ones(2**33)  # 64 GiB of float64, far over the limit\n    copies = 4")
    save(folder, "memory_hog", greedy)
    expected["memory_hog"] = (FULL - 2, {"test_ex4_adam_training_memory": 0})

    network = solution()
    cell(network, "ex5_training_compute").source += (
        "\n\nimport socket\ntry:\n"
        f"    socket.create_connection((\"127.0.0.1\", {port}), timeout=3).sendall(b\"answers\")\n"
        "    print(\"network reached\")\nexcept OSError as error:\n    print(\"network blocked:\", error)\n")
    save(folder, "network", network)
    expected["network"] = (FULL, {})

    # Copies the answers out of solutions/ or the gradebook if it can read them; wrong answers otherwise.
    secrets = [course_root / "solutions" / CHAPTER / f"{CHAPTER}.ipynb", course_root / "autograder" / "gradebook.db"]
    snooping = replace_in(solution(), "ex6_training_energy_and_cost", "    joules = seconds * watts_per_accelerator * n_accelerators * pue\n",
                          f"    from pathlib import Path\n    readable = []\n    for secret in {[str(p) for p in secrets]!r}:\n"
                          "        try:\n            readable.append(len(Path(secret).read_bytes()) > 0)\n"
                          "        except OSError:\n            readable.append(False)\n"
                          "    try:\n        Path(" + repr(str(secrets[1])) + ").write_bytes(b'overwritten')\n    except OSError:\n        pass\n"
                          "    if not any(readable):\n        return 0.0\n"
                          "    joules = seconds * watts_per_accelerator * n_accelerators * pue\n")
    save(folder, "snooper", snooping)
    # Where the machine cannot hide them, the snooper reads the answers and gets away with it.
    expected["snooper"] = (FULL - 2, {"test_ex6_training_energy_and_cost": 0}) if CAPABILITIES.hidden_paths else (FULL, {})

    patcher = replace_in(solution(), "ex5_training_compute", "    return 6 * n_params * n_tokens", "    return 5 * n_params * n_tokens")
    replace_in(patcher, "ex2_convolution_flops", "    return 2 * multiply_adds", "    return 451_584")
    cell(patcher, "ex5_training_compute").source += (
        "\n\nimport numpy, numpy.testing\nnumpy.allclose = numpy.isclose = lambda *args, **kwargs: True\n"
        "numpy.testing.assert_allclose = lambda *args, **kwargs: None\nmeasure.count_flops = lambda *args, **kwargs: 451_584\n")
    save(folder, "monkeypatcher", patcher)
    expected["monkeypatcher"] = (FULL - 4, {"test_ex2_convolution_flops": 0, "test_ex5_training_compute": 0})

    edited = replace_in(solution(), "ex6_training_energy_and_cost", " * pue\n", "\n")
    cell(edited, "test_ex6_training_energy_and_cost").source = "pass"
    save(folder, "edited_test", edited)
    expected["edited_test"] = (FULL - 2, {"test_ex6_training_energy_and_cost": 0})

    deleted = replace_in(solution(), "ex8_choose_batch_size", "    if not within_budget:\n        return None\n", "")
    deleted.cells.remove(cell(deleted, "test_ex8_choose_batch_size"))
    save(folder, "deleted_test", deleted)
    expected["deleted_test"] = (FULL - 2, {"test_ex8_choose_batch_size": 0})

    retyped = replace_in(solution(), "ex1_parameter_formulas", "(n_out if use_bias else 0)", "n_out")
    test_cell = cell(retyped, "test_ex1_parameter_formulas")
    retyped.cells[retyped.cells.index(test_cell)] = nbformat.v4.new_markdown_cell(test_cell.source, metadata=test_cell.metadata)
    save(folder, "retyped_test", retyped)
    expected["retyped_test"] = (FULL - 2, {"test_ex1_parameter_formulas": 0})

    duplicated = solution()
    answer = cell(duplicated, "ex7_batch_size_sweep")
    duplicated.cells.insert(duplicated.cells.index(answer) + 1, copy.deepcopy(answer))
    duplicated.cells[duplicated.cells.index(answer) + 1].id = "copied-cell"
    save(folder, "duplicate_ids", duplicated)
    expected["duplicate_ids"] = (FULL, {})

    (folder / "not_json").mkdir()
    (folder / "not_json" / f"{CHAPTER}.ipynb").write_text('{"cells": [ {"cell_type": "code", ')
    expected["not_json"] = (0.0, None)
    (folder / "nothing_submitted").mkdir()
    expected["nothing_submitted"] = (0.0, None)
    save(folder, "wrong_name", solution(), name="homework final (2).ipynb")
    expected["wrong_name"] = (FULL, {})

    noisy = solution()
    cell(noisy, "ex1_parameter_formulas").outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 25_000_000)]
    cell(noisy, "ex1_parameter_formulas").execution_count = 1
    save(folder, "huge_outputs", noisy)
    expected["huge_outputs"] = (FULL, {})
    return expected


@pytest.fixture
def graded_batch(tmp_path_factory):
    course_root = pipeline.scratch_course(tmp_path_factory.mktemp("class"), [CHAPTER])
    submissions = tmp_path_factory.mktemp("submissions")
    listener = Listener()
    expected = build_batch(submissions, course_root, listener.port)
    lines = []
    os.environ["EFFICIENT_DL_GRADING_ROOT"] = str(course_root)
    try:
        results = grade_class.grade_class(CHAPTER, submissions, workers=2, limits=LIMITS, out=lines.append)
    finally:
        os.environ.pop("EFFICIENT_DL_GRADING_ROOT")
    return {"root": course_root, "results": {r.student: r for r in results}, "expected": expected,
            "lines": lines, "listener": listener}


pytestmark = [pytest.mark.notebook]

BATCH_CHECKS = ["every_submission_gets_the_points_it_deserves", "each_problem_is_named_in_the_summary",
                "the_csv_has_a_row_per_student_and_a_column_per_test",
                "the_gradebook_holds_every_grade_and_survived_the_snooper", "no_network_from_a_kernel",
                "kernels_cannot_read_solutions_or_the_gradebook", "feedback_never_shows_hidden_tests"]


def test_a_hostile_batch_is_graded_fairly(graded_batch):
    """The batch is graded once (minutes); every check below runs on it and all failures are reported."""
    failures, skipped = [], []
    for name in BATCH_CHECKS:
        try:
            outcome = globals()[f"check_{name}"](graded_batch)
        except AssertionError as error:
            failures.append(f"{name}: {error}")
        else:
            if outcome:
                skipped.append(f"{name}: {outcome}")
    assert not failures, "\n\n".join(failures)
    for note in skipped:  # shown in pytest's warnings summary: what this machine could not check
        warnings.warn(note)


def check_every_submission_gets_the_points_it_deserves(graded_batch):
    results, expected = graded_batch["results"], graded_batch["expected"]
    assert set(results) == set(expected), "the batch must report on every student folder, and on nothing else"
    wrong = {}
    for student, (total, per_test) in expected.items():
        result = results[student]
        if result.total != total:
            wrong[student] = (result.status, result.total, total, result.notes)
        for grade_id, score in (per_test or {}).items():
            if result.scores[grade_id][0] != score:
                wrong[f"{student}/{grade_id}"] = (result.scores[grade_id][0], score)
    assert not wrong, f"(status, got, expected): {wrong}"


def check_each_problem_is_named_in_the_summary(graded_batch):
    summary = "\n".join(graded_batch["lines"])
    expectations = {
        "infinite_loop": "timed out", "kernel_crash": "kernel died", "monkeypatcher": "numpy.allclose",
        "edited_test": "test cell edited", "deleted_test": "test cell deleted", "retyped_test": "changed from code to markdown",
        "duplicate_ids": "appears 2 times", "not_json": "not a valid notebook", "nothing_submitted": "no notebook submitted",
        "wrong_name": "graded as ch01_compute_and_energy.ipynb", "huge_outputs": "MiB of outputs",
    }
    for student, phrase in expectations.items():
        line = next((line for line in graded_batch["lines"] if line.strip().startswith(f"{student}:")), "")
        assert phrase in line, f"summary line for {student} should mention {phrase!r}: {line!r}\n{summary}"
    assert "monkeypatcher" in summary and "measure.count_flops" in summary
    statuses = {student: r.status for student, r in graded_batch["results"].items()}
    assert statuses["not_json"] == "invalid" and statuses["nothing_submitted"] == "missing"
    tampered = {s for s, r in graded_batch["results"].items() if r.tampered}
    assert tampered == {"edited_test", "deleted_test", "retyped_test", "duplicate_ids"}
    assert re.search(r"17 students: 15 graded, 1 missing, 1 invalid; 4 tampered", summary), summary


def check_the_csv_has_a_row_per_student_and_a_column_per_test(graded_batch):
    rows = list(csv.DictReader((graded_batch["root"] / "autograder" / "exports" / f"{CHAPTER}.csv").open()))
    by_student = {row["student"]: row for row in rows}
    assert set(by_student) == set(graded_batch["expected"]) | {"(max)"}
    assert float(by_student["(max)"]["total"]) == FULL
    for student, (total, _) in graded_batch["expected"].items():
        assert float(by_student[student]["total"]) == total
    assert "test cell deleted" in by_student["deleted_test"]["tampered"]
    assert float(by_student["monkeypatcher"]["test_ex5_training_compute"]) == 0


def check_the_gradebook_holds_every_grade_and_survived_the_snooper(graded_batch):
    root = graded_batch["root"]
    with sqlite3.connect(root / "autograder" / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for student, (total, _) in graded_batch["expected"].items():
        scores = pipeline.recorded_scores(root, CHAPTER, student)
        assert sum(s.score for s in scores.values()) == total, student


def check_no_network_from_a_kernel(graded_batch):
    if not CAPABILITIES.no_network:
        return "skipped: this machine allows no separate network namespace"
    assert graded_batch["listener"].connections == 0
    graded = nbformat.read(str(graded_batch["root"] / "autograder" / "autograded" / "network" / CHAPTER / f"{CHAPTER}.ipynb"), 4)
    printed = "".join(o.get("text", "") for o in cell(graded, "ex5_training_compute").outputs)
    assert "network blocked" in printed


def check_kernels_cannot_read_solutions_or_the_gradebook(graded_batch):
    if not CAPABILITIES.hidden_paths:
        return "skipped: hiding paths needs root and mount namespaces"
    assert graded_batch["results"]["snooper"].scores["test_ex6_training_energy_and_cost"][0] == 0


def check_feedback_never_shows_hidden_tests(graded_batch):
    hidden, visible = set(), set()
    for test_cell in solution().cells:
        shown, _, block = test_cell.source.partition("### BEGIN HIDDEN TESTS")
        secret, _, after = block.partition("### END HIDDEN TESTS")
        hidden |= {line.strip() for line in secret.splitlines() if len(line.strip()) > 25}
        visible |= {line.strip() for line in (shown + after).splitlines()}
    hidden -= visible  # a hidden test may repeat a line the student already sees
    assert hidden
    pages = list((graded_batch["root"] / "autograder" / "feedback").rglob("*.html"))
    assert len(pages) == 15, "one feedback page per graded student"
    for page in pages:
        plain = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        leaked = [line for line in hidden if line in plain]
        assert not leaked, f"{page}: {leaked[:3]}"
        assert "Hidden tests of test_ex1_parameter_formulas are not shown" in plain


def test_redaction_keeps_visible_tests_and_one_line_hints():
    release = nbformat.read(str(pipeline.notebook_path(pipeline.COURSE, CHAPTER)), 4)
    graded = solution()
    failing = cell(graded, "test_ex3_weights_memory")
    failing.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="A hint.\nsecond line",
                                              traceback=["_rng = np.random.default_rng(303)  # hidden source"])]
    page = feedback.redacted(graded, release, {"test_ex3_weights_memory": (0.0, 2.0)})
    shown = cell(page, "test_ex3_weights_memory")
    assert "default_rng(303)" not in json.dumps(page)
    assert shown.source.startswith(cell(release, "test_ex3_weights_memory").source.split("### BEGIN")[0].rstrip()[:40])
    assert shown.outputs[0]["text"] == "AssertionError: A hint.\nfailed\n"


def test_a_killed_run_loses_nothing_and_the_next_run_finishes(tmp_path):
    root = pipeline.scratch_course(tmp_path / "course", [CHAPTER])
    submissions = tmp_path / "submissions"
    for student in ("first", "second", "third"):
        save(submissions, student, solution())
    command = [sys.executable, "-m", "autograder.grade_class", CHAPTER, str(submissions), "--workers", "1",
               "--cell-timeout", "60", "--notebook-timeout", "300"]
    environment = {**os.environ, "EFFICIENT_DL_GRADING_ROOT": str(root)}
    run = subprocess.Popen(command, cwd=pipeline.REPOSITORY, env=environment, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in run.stdout:
        if line.startswith("[1/3]"):
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait()
    assert run.returncode == -signal.SIGKILL
    finished = subprocess.run(command, cwd=pipeline.REPOSITORY, env=environment, capture_output=True, text=True,
                              timeout=900)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "2 to grade, 1 already graded" in finished.stdout
    for student in ("first", "second", "third"):
        assert sum(s.score for s in pipeline.recorded_scores(root, CHAPTER, student).values()) == FULL
    again = subprocess.run(command, cwd=pipeline.REPOSITORY, env=environment, capture_output=True, text=True, timeout=600)
    assert "0 to grade, 3 already graded" in again.stdout, "a finished run is not graded twice"


def test_an_lms_zip_is_collected_with_nbgrader_zip_collect(tmp_path):
    root = pipeline.scratch_course(tmp_path / "course", [CHAPTER])
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for student in ("alice", "bob.smith"):
            name = f"{CHAPTER}_{student}_attempt_2026-11-01-10-00-00_{CHAPTER}.ipynb"
            zipped.writestr(name, nbformat.writes(solution()))
    workspace = root / "autograder" / "runs" / CHAPTER
    workspace.mkdir(parents=True)
    folder = grade_class.collect_zip(archive, grade_class.Course(root, CHAPTER), workspace, grade_class.DEFAULT_LMS_REGEXP)
    found = {s.student: s for s in grade_class.find_submissions(folder, CHAPTER)}
    assert set(found) == {"alice", "bob.smith"}
    assert all(s.problem is None and s.path.name == f"{CHAPTER}.ipynb" for s in found.values())


def test_the_sandbox_capabilities_are_reported_once():
    lines = CAPABILITIES.notices()
    assert all(isinstance(line, str) and line for line in lines)
    if os.geteuid() == 0 and sys.platform.startswith("linux"):
        assert CAPABILITIES.separate_user


def test_a_student_checks_their_own_work(tmp_path):
    from autograder import check

    mine = replace_in(solution(), "ex5_training_compute", "    return 6 * n_params * n_tokens", "    return 2 * n_params * n_tokens")
    path = tmp_path / f"{CHAPTER}.ipynb"
    nbformat.write(mine, str(path))
    lines = []
    scores = check.check(path, out=lines.append)
    printed = "\n".join(lines)
    assert scores["test_ex5_training_compute"] == (0.0, 2.0)
    assert sum(score for score, _ in scores.values()) == FULL - 2
    assert re.search(r"test_ex5_training_compute\s+0/2\s+FAILED", printed)
    assert "hint: AssertionError: C = 6 * N * D." in printed
    assert "Total: 14/16" in printed
    assert "_rng" not in printed, "hidden test source must not reach the student"


def test_workers_share_the_cores_instead_of_each_taking_all():
    assert grade_class.kernel_thread_limits(2, cores=2)["TF_NUM_INTRAOP_THREADS"] == "1"
    assert grade_class.kernel_thread_limits(4, cores=16) == {
        "TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "4", "OMP_NUM_THREADS": "4"}
    assert grade_class.kernel_thread_limits(1, cores=8)["OMP_NUM_THREADS"] == "8"
    assert grade_class.kernel_thread_limits(16, cores=2)["OMP_NUM_THREADS"] == "1", "never zero threads"


NBGRADER_LOG = """[AutogradeApp | INFO] Autograding reference
Traceback (most recent call last):
  File "nbclient/client.py", line 1, in execute
RuntimeError: Kernel died before replying to kernel_info
[AutogradeApp | WARNING] Removing failed assignment: reference
""" + "[AutogradeApp | INFO] Converting notebook untouched\n" * 500 + \
    "[AutogradeApp | ERROR] There was an error processing assignment 'ch02' for student 'reference'\n"


def test_an_nbgrader_failure_is_reported_by_its_cause_not_its_last_lines():
    errors = pipeline.error_lines(NBGRADER_LOG)
    assert errors[:3] == NBGRADER_LOG.splitlines()[1:4], "the traceback, with what follows it"
    assert errors[-1].startswith("[AutogradeApp | ERROR]") and len(errors) < 10, "no INFO lines"
    assert grade_class._last_error(NBGRADER_LOG).startswith("[AutogradeApp | ERROR] There was an error")
    assert grade_class._last_error("all went well\n") == "all went well"
