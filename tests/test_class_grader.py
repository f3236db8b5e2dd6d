"""The class grader against real, hostile submissions (chapter 01, the quickest to run).

One batch holds good students and every kind of trouble the issue lists; it is graded once,
in parallel, and each outcome is asserted: the points each deserves, a clear line in the
summary, and nothing else in the batch affected. Where this machine cannot isolate in some
way (no root, no namespaces), the assertions that depend on it are skipped with the reason.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import html
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import feedback, grade_class, pipeline, sandbox

CHAPTER = "ch01_compute_and_energy"
FULL = 16.0
# 2 GiB per student: chapter 01's kernel needs a few hundred MiB, and the batch must fit a
# 2-core CI machine while three of its students try to take more.
LIMITS = sandbox.Limits(memory_bytes=2 * 2**30, cpu_seconds=300, cell_seconds=45, notebook_seconds=300,
                        max_processes=256, scratch_bytes=256 * 2**20)
CAPABILITIES = sandbox.probe()
# Tests grade with what the machine has; the checks that need a layer it lacks say so (below).
WEAKER_OK = {"allow_weaker_sandbox": True}


def solution():
    return nbformat.read(str(pipeline.notebook_path(pipeline.SOLUTIONS, CHAPTER)), as_version=4)


def answered():
    """What an honest student submits: the release, every answer cell filled in (with the
    solution's answers), the test cells exactly as released."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution().cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    release = nbformat.read(str(pipeline.notebook_path(pipeline.COURSE, CHAPTER)), as_version=4)
    for c in release.cells:
        grade_id = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            c.source = answers[grade_id]
    return release


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
    save(folder, "good_a", answered())
    save(folder, "good_b", answered())
    expected["good_a"] = expected["good_b"] = (FULL, {})

    different = answered()  # correct, but written another way
    replace_in(different, "ex1_parameter_formulas", "return n_in * n_out + (n_out if use_bias else 0)",
               "weights = sum(n_in for _ in range(n_out))\n    return weights + use_bias * n_out")
    replace_in(different, "ex8_choose_batch_size", "    within_budget = [row for row in rows if row[\"median_ms\"] <= latency_budget_ms]\n"
               "    if not within_budget:\n        return None\n    return max(within_budget, key=lambda row: row[\"throughput_per_s\"])[\"batch_size\"]",
               "    best = None\n    for row in sorted(rows, key=lambda r: -r[\"throughput_per_s\"]):\n"
               "        if row[\"median_ms\"] <= latency_budget_ms:\n            best = row[\"batch_size\"]\n            break\n"
               "    return best")
    save(folder, "different", different)
    expected["different"] = (FULL, {})

    looping = replace_in(answered(), "ex2_convolution_flops", "    multiply_adds =", "    while True:\n        pass\n    multiply_adds =")
    save(folder, "infinite_loop", looping)
    expected["infinite_loop"] = (FULL - 2, {"test_ex2_convolution_flops": 0})

    crashing = replace_in(answered(), "ex3_weights_memory", "    return n_params * bytes_per_value(dtype) / 1e9",
                          "    import os\n    os._exit(1)")
    save(folder, "kernel_crash", crashing)
    expected["kernel_crash"] = (FULL - 2, {"test_ex3_weights_memory": 0})

    greedy = replace_in(answered(), "ex4_adam_training_memory", "    copies = 4",
                        "    hog = np.ones(2**33)  # 64 GiB of float64, far over the limit\n    copies = 4")
    save(folder, "memory_hog", greedy)
    expected["memory_hog"] = (FULL - 2, {"test_ex4_adam_training_memory": 0})

    network = answered()
    cell(network, "ex5_training_compute").source += (
        "\n\nimport socket\ntry:\n"
        f"    socket.create_connection((\"127.0.0.1\", {port}), timeout=3).sendall(b\"answers\")\n"
        "    print(\"network reached\")\nexcept OSError as error:\n    print(\"network blocked:\", error)\n")
    save(folder, "network", network)
    expected["network"] = (FULL, {})

    # Copies the answers out of solutions/ or the gradebook if it can read them; wrong answers otherwise.
    secrets = [course_root / "solutions" / CHAPTER / f"{CHAPTER}.ipynb", course_root / "grading" / "gradebook.db"]
    snooping = replace_in(answered(), "ex6_training_energy_and_cost", "    joules = seconds * watts_per_accelerator * n_accelerators * pue\n",
                          f"    from pathlib import Path\n    readable = []\n    for secret in {[str(p) for p in secrets]!r}:\n"
                          "        try:\n            readable.append(len(Path(secret).read_bytes()) > 0)\n"
                          "        except OSError:\n            readable.append(False)\n"
                          "    try:\n        Path(" + repr(str(secrets[1])) + ").write_bytes(b'overwritten')\n    except OSError:\n        pass\n"
                          "    if not any(readable):\n        return 0.0\n"
                          "    joules = seconds * watts_per_accelerator * n_accelerators * pue\n")
    save(folder, "snooper", snooping)
    # Where the machine cannot hide them, the snooper reads the answers and gets away with it.
    expected["snooper"] = (FULL - 2, {"test_ex6_training_energy_and_cost": 0}) if CAPABILITIES.hidden_paths else (FULL, {})

    patcher = replace_in(answered(), "ex5_training_compute", "    return 6 * n_params * n_tokens", "    return 5 * n_params * n_tokens")
    replace_in(patcher, "ex2_convolution_flops", "    return 2 * multiply_adds", "    return 451_584")
    cell(patcher, "ex5_training_compute").source += (
        "\n\nimport numpy, numpy.testing\nnumpy.allclose = numpy.isclose = lambda *args, **kwargs: True\n"
        "numpy.testing.assert_allclose = lambda *args, **kwargs: None\nmeasure.count_flops = lambda *args, **kwargs: 451_584\n")
    save(folder, "monkeypatcher", patcher)
    expected["monkeypatcher"] = (FULL - 4, {"test_ex2_convolution_flops": 0, "test_ex5_training_compute": 0})

    edited = replace_in(answered(), "ex6_training_energy_and_cost", " * pue\n", "\n")
    cell(edited, "test_ex6_training_energy_and_cost").source = "pass"
    save(folder, "edited_test", edited)
    expected["edited_test"] = (FULL - 2, {"test_ex6_training_energy_and_cost": 0})

    deleted = replace_in(answered(), "ex8_choose_batch_size", "    if not within_budget:\n        return None\n", "")
    deleted.cells.remove(cell(deleted, "test_ex8_choose_batch_size"))
    save(folder, "deleted_test", deleted)
    expected["deleted_test"] = (FULL - 2, {"test_ex8_choose_batch_size": 0})

    retyped = replace_in(answered(), "ex1_parameter_formulas", "(n_out if use_bias else 0)", "n_out")
    test_cell = cell(retyped, "test_ex1_parameter_formulas")
    retyped.cells[retyped.cells.index(test_cell)] = nbformat.v4.new_markdown_cell(test_cell.source, metadata=test_cell.metadata)
    save(folder, "retyped_test", retyped)
    expected["retyped_test"] = (FULL - 2, {"test_ex1_parameter_formulas": 0})

    duplicated = answered()
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
    save(folder, "wrong_name", answered(), name="homework final (2).ipynb")
    expected["wrong_name"] = (FULL, {})

    noisy = answered()
    cell(noisy, "ex1_parameter_formulas").outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 25_000_000)]
    cell(noisy, "ex1_parameter_formulas").execution_count = 1
    save(folder, "huge_outputs", noisy)
    expected["huge_outputs"] = (FULL, {})

    # Intake: what root must never open or follow. Each is refused by name, none stops the run.
    for student, target in (("link_to_root_file", root_only_file(course_root)),
                            ("link_to_gradebook", course_root / "grading" / "gradebook.db"),
                            ("link_to_solution", course_root / "solutions" / CHAPTER / f"{CHAPTER}.ipynb")):
        (folder / student).mkdir()
        (folder / student / f"{CHAPTER}.ipynb").symlink_to(target)
        expected[student] = (0.0, None)
    (folder / "fifo").mkdir()
    os.mkfifo(folder / "fifo" / f"{CHAPTER}.ipynb")  # opening it for reading would block the run forever
    expected["fifo"] = (0.0, None)
    deep = folder / "deep_folders"
    deep.mkdir()
    for _ in range(1_200):  # one level at a time: pathlib's mkdir(parents=True) recurses per level too
        deep = deep / "d"
        deep.mkdir()
    expected["deep_folders"] = (0.0, None)

    # Output: a 200 MB line (one line: LimitOutput's 1,000-line cap lets it through) and HTML
    # that would run in the browser of whoever opens the feedback.
    flooding = answered()
    cell(flooding, "ex2_convolution_flops").source += "\n\nprint('x' * 200_000_000)\n"
    save(folder, "huge_line", flooding)
    expected["huge_line"] = (FULL, {})
    scripting = answered()
    cell(scripting, "ex3_weights_memory").source += (
        "\n\nfrom IPython.display import HTML, display\n"
        "display(HTML('<script>window.edl_pwned = 1</script><img src=x onerror=\"window.edl_pwned = 2\">'))\n")
    save(folder, "html_output", scripting)
    expected["html_output"] = (FULL, {})
    (folder / "evil\x1b[2K\r  good_a: graded, 16 of 16").mkdir()  # would print a fake summary line
    expected["evil\\x1b[2K\\r  good_a: graded, 16 of 16"] = (0.0, None)

    # A kernel that plants a link where root writes the graded notebook next, and leaves a daemon
    # behind to tamper after grading: the link is removed first, the daemon killed, the file kept.
    planter = answered()
    cell(planter, "ex5_training_compute").source += (
        "\n\nimport os, subprocess, sys\n"
        f"_notebook = {CHAPTER + '.ipynb'!r}\n"
        "try:\n    os.remove(_notebook)\n"
        f"    os.symlink({str(root_only_file(course_root))!r}, _notebook)\n"
        "except OSError as error:\n    print('no link:', error)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    save(folder, "link_planter", planter)
    expected["link_planter"] = (FULL, {})

    # What the grader's environment and the classmates' folders hold must stay out of reach.
    curious = answered()
    cell(curious, "ex7_batch_size_sweep").source += (
        "\n\nimport os\nfrom pathlib import Path\n"
        "print('token:', os.environ.get('GRADER_API_TOKEN'))\n"
        f"_classmate = Path({str(folder / 'good_a' / f'{CHAPTER}.ipynb')!r})\n"
        "print('classmate readable:', _classmate.is_file())\n"
        f"print('tests readable:', Path({str(pipeline.REPOSITORY / 'tests' / 'mutants')!r}).is_dir() and "
        f"any(Path({str(pipeline.REPOSITORY / 'tests' / 'mutants')!r}).iterdir()))\n")
    save(folder, "curious", curious)
    expected["curious"] = (FULL, {})

    # An answer that solves nothing but claims to equal anything: the tests convert first.
    from mutants import ALWAYS_EQUAL

    permissive = replace_in(answered(), "ex1_parameter_formulas", "return n_in * n_out + (n_out if use_bias else 0)",
                            f"return {ALWAYS_EQUAL}")
    save(folder, "permissive_eq", permissive)
    expected["permissive_eq"] = (FULL - 2, {"test_ex1_parameter_formulas": 0})

    # What the sandbox itself must hold: processes, memory, disk, and sight of the rest.
    daemon = answered()
    cell(daemon, "ex2_convolution_flops").source += (
        "\n\nimport os, subprocess, sys\n"
        "# Outlives the kernel, if it can, then kills every process of this uid it can signal (the\n"
        "# next student graded in this slot) and holds uid locks in /tmp.\n"
        "_code = ('import os, signal, time, fcntl\\n'\n"
        "         'held = []\\n'\n"
        "         'for uid in range(61000, 61064):\\n'\n"
        "         '    try:\\n'\n"
        "         '        handle = open(f\"/tmp/efficient-dl-sandbox-uid-{uid}.lock\", \"a\")\\n'\n"
        "         '        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB); held.append(handle)\\n'\n"
        "         '    except OSError: pass\\n'\n"
        "         'time.sleep(20)\\n'\n"
        "         'for _ in range(1200):\\n'\n"
        "         '    if os.fork() == 0: os._exit(0)\\n'\n"
        "         '    try: os.kill(-1, signal.SIGKILL)\\n'\n"
        "         '    except OSError: pass\\n'\n"
        "         '    time.sleep(0.1)\\n')\n"
        "subprocess.Popen([sys.executable, '-c', _code], start_new_session=True, stdin=subprocess.DEVNULL,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    save(folder, "daemon_killer", daemon)
    expected["daemon_killer"] = (FULL, {})

    forks = answered()
    cell(forks, "ex3_weights_memory").source += (
        "\n\nimport os, time\n_children = []\nfor _ in range(2_000):\n    try:\n        _pid = os.fork()\n"
        "    except OSError:\n        break\n    if _pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
        "    _children.append(_pid)\nprint('forked:', len(_children))\nfor _pid in _children:\n    os.waitpid(_pid, 0)\n")
    save(folder, "fork_bomb", forks)
    expected["fork_bomb"] = (FULL, {})

    split = answered()  # in a cell of its own: whichever process the limit stops, no exercise is lost
    hogging = nbformat.v4.new_code_cell(
        "# memory_split: three children of 900 MiB each, 2.6 GiB, over the student's 2 GiB.\n"
        "import subprocess, sys\n"
        "_hogs = [subprocess.Popen([sys.executable, '-c', 'import time; b = b\"x\" * (900 * 2**20); time.sleep(8)'])\n"
        "         for _ in range(3)]\nprint('children exit codes:', sorted(h.wait() for h in _hogs))\n")
    split.cells.insert(split.cells.index(cell(split, "ex4_adam_training_memory")) + 1, hogging)
    save(folder, "memory_split", split)
    expected["memory_split"] = (FULL, {})

    filler = answered()
    cell(filler, "ex6_training_energy_and_cost").source += (
        "\n\nimport os\nfor _where in ('/tmp', '/dev/shm'):\n    _written = 0\n    try:\n"
        "        with open(os.path.join(_where, 'filler.bin'), 'wb') as _handle:\n"
        "            while _written < 1_200 * 2**20:\n                _handle.write(b'x' * 2**20)\n"
        "                _written += 2**20\n    except OSError as _error:\n        pass\n"
        "    print(_where, 'took', _written // 2**20, 'MiB')\n")
    save(folder, "disk_filler", filler)
    expected["disk_filler"] = (FULL, {})

    # Reads every other process's command line (the grader's names the submissions folder),
    # then looks for the notebook nbgrader executes, hidden tests inside, anywhere it can reach.
    spy = answered()
    own = course_root / "grading" / "runs" / CHAPTER / "private" / "spy" / "grading" / "submitted" / "spy"
    cell(spy, "ex7_batch_size_sweep").source += (
        "\n\nimport os\n_seen = []\nfor _pid in os.listdir('/proc'):\n    try:\n"
        "        _seen.append(open(f'/proc/{_pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode())\n"
        "    except OSError:\n        pass\n"
        "print('grader visible:', any(word in line for line in _seen for word in ('nbgrader', 'pytest', 'grade_class')))\n"
        "_found = []\n"
        "for _top in [os.getcwd(), os.path.expanduser('~'), '/tmp', '/home', '/work', '/root', '/srv', '/var', "
        f"{str(course_root.parent)!r}, {str(own)!r}]:\n"
        "    for _folder, _, _files in os.walk(_top):\n"
        "        for _name in [n for n in _files if n.endswith(('.ipynb', '.db', '.json', '.log', '.html', '.csv'))]:\n"
        "            try:\n"
        "                if 'site-packages' not in _folder and '### BEGIN ' + 'HIDDEN TESTS' in "
        "open(os.path.join(_folder, _name), errors='ignore').read(10_000_000):\n"
        "                    _found.append(os.path.join(_folder, _name))\n"
        "            except OSError:\n                pass\n"
        "print('hidden tests found:', _found)\n")
    save(folder, "spy", spy)
    expected["spy"] = (FULL, {})

    # Points without a solution: the unchanged release, plus two lines that turn the kernel's
    # machinery against the tests. Each earns nothing (restored, or unverifiable) and is flagged.
    attacks = {
        "input_transformer": "get_ipython().input_transformers_cleanup.append(\n"
                             "    lambda lines: ['pass\\n'] if any('assert' in line for line in lines) else lines)\n",
        "ast_transformer": "import ast\nclass Gutted(ast.NodeTransformer):\n"
                           "    def visit_Assert(self, node):\n        return ast.Pass()\n"
                           "get_ipython().ast_transformers.append(Gutted())\n",
        "run_cell_wrapper": "_shell = get_ipython()\n_real = type(_shell).run_cell\n"
                            "def _forgiving(self, raw_cell, *args, **kwargs):\n"
                            "    return _real(self, 'pass' if 'assert' in raw_cell else raw_cell, *args, **kwargs)\n"
                            "type(_shell).run_cell = _forgiving\n",
        "fake_integrity": "import sys, types\n_fake = types.ModuleType('_edl_integrity')\n"
                          "_fake.remember_globals = lambda namespace: None\n"
                          "_fake.checked = lambda namespace, token: '{\"restored\": [], \"proof\": \"\"}'\n"
                          "sys.modules['_edl_integrity'] = _fake\n"
                          "get_ipython().input_transformers_cleanup.append(\n"
                          "    lambda lines: ['pass\\n'] if any('assert' in line for line in lines) else lines)\n",
    }
    for student, attack in attacks.items():
        unanswered = nbformat.read(str(pipeline.notebook_path(pipeline.COURSE, CHAPTER)), as_version=4)
        cell(unanswered, "ex1_parameter_formulas").source = attack
        save(folder, student, unanswered)
        expected[student] = (0.0, None)
    return expected


def remove_deep_folders(top: Path) -> None:
    """Python 3.11's shutil.rmtree and os.walk recurse once per level: 1,200 levels overflow them."""
    if not top.is_dir():
        return
    chain = [top]
    while os.path.isdir(os.path.join(chain[-1], "d")):
        chain.append(chain[-1] / "d")
    for folder in reversed(chain):
        folder.rmdir()


def root_only_file(course_root: Path) -> Path:
    """A file of root's, outside everything the grader reads or writes: it must stay as it is."""
    path = course_root.parent / "root-only.txt"
    if not path.exists():
        path.write_text("root's own file\n")
        os.chmod(path, 0o600)
    return path


def sandbox_files_in_shared_folders() -> set[str]:
    found = set()
    for top in ("/tmp", "/dev/shm"):
        for path in Path(top).glob("*"):
            try:
                if sandbox.SANDBOX_UID_BASE <= path.lstat().st_uid < sandbox.SANDBOX_UID_BASE + 4_000:
                    found.add(str(path))
            except FileNotFoundError:
                pass
    return found


def fingerprint(tops: list[Path]) -> dict[str, tuple]:
    """Every entry below ``tops``: a file's SHA-256 and mode, a link's target, anything else's
    kind; never following a link, never opening a FIFO, never recursing (1,200 levels)."""
    import hashlib

    found, pending = {}, list(tops)
    while pending:
        path = pending.pop()
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            found[str(path)] = ("missing",)
            continue
        if stat.S_ISDIR(status.st_mode):
            found[str(path)] = ("folder", status.st_mode, status.st_uid)
            pending.extend(Path(path) / name for name in os.listdir(path) if name not in ("__pycache__", ".pytest_cache"))
        elif stat.S_ISREG(status.st_mode):
            found[str(path)] = (hashlib.sha256(Path(path).read_bytes()).hexdigest(), status.st_mode, status.st_uid)
        elif stat.S_ISLNK(status.st_mode):
            found[str(path)] = ("link", os.readlink(path))
        else:
            found[str(path)] = ("special", stat.S_IFMT(status.st_mode))
    return found


@pytest.fixture
def graded_batch():
    # A folder others may traverse, as a course under /srv or a shared drive is: under pytest's
    # own temporary folder (0700) no sandbox user could reach anything, hidden or not, and the
    # checks that secrets are hidden would prove nothing.
    base = Path(tempfile.mkdtemp(prefix="edl-batch-", dir="/tmp" if os.path.isdir("/tmp") else None))
    os.chmod(base, 0o711)
    course_root = pipeline.scratch_course(base / "class", [CHAPTER])
    submissions = base / "submissions"
    submissions.mkdir()
    listener = Listener()
    lines = []
    try:
        expected = build_batch(submissions, course_root, listener.port)
        root_file = root_only_file(course_root)
        root_file_before = (root_file.read_bytes(), os.stat(root_file).st_mode)
        os.environ["EFFICIENT_DL_GRADING_ROOT"] = str(course_root)
        os.environ["GRADER_API_TOKEN"] = "secret-token-of-the-instructor"
        untouched_before = fingerprint([submissions, course_root / "solutions", course_root / "course", root_file])
        sandbox_files_before = sandbox_files_in_shared_folders()  # another grader's, running now
        results = grade_class.grade_class(CHAPTER, submissions, workers=2, limits=LIMITS, out=lines.append, **WEAKER_OK)
        untouched_after = fingerprint([submissions, course_root / "solutions", course_root / "course", root_file])
        yield {"root": course_root, "results": {r.student: r for r in results}, "expected": expected,
               "lines": lines, "listener": listener, "root_file_before": root_file_before,
               "untouched": (untouched_before, untouched_after), "sandbox_files_before": sandbox_files_before}
    finally:
        os.environ.pop("EFFICIENT_DL_GRADING_ROOT", None)
        os.environ.pop("GRADER_API_TOKEN", None)
        # shutil.rmtree recurses once per level, and 1,200 levels overflow it.
        remove_deep_folders(submissions / "deep_folders")
        shutil.rmtree(base, ignore_errors=True)


pytestmark = [pytest.mark.notebook]

BATCH_CHECKS = ["every_submission_gets_the_points_it_deserves", "each_problem_is_named_in_the_summary",
                "the_csv_has_a_row_per_student_and_a_column_per_test",
                "the_gradebook_holds_every_grade_and_survived_the_snooper", "no_network_from_a_kernel",
                "kernels_cannot_read_solutions_or_the_gradebook", "feedback_never_shows_hidden_tests",
                "root_never_follows_a_students_link", "no_process_of_a_sandbox_user_survives",
                "output_is_capped_in_bytes_and_feedback_runs_no_script", "files_outside_the_sandbox_are_untouched",
                "the_sandbox_holds_processes_memory_and_disk", "nothing_of_value_is_in_sight"]


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
    assert tampered == {"edited_test", "deleted_test", "retyped_test", "duplicate_ids"}, (
        "only these changed a test cell; honest students submit the release, whose checksums differ from the source's")
    refusals = {"link_to_root_file": "is a symbolic link: not opened", "link_to_gradebook": "is a symbolic link",
                "link_to_solution": "is a symbolic link", "fifo": "is a FIFO: not opened",
                "deep_folders": "no notebook submitted"}
    if CAPABILITIES.separate_user and not CAPABILITIES.bubblewrap:  # in bubblewrap, no such file is in reach
        refusals["link_planter"] = "removed: ch01_compute_and_energy.ipynb"
    for student, phrase in refusals.items():
        line = next((line for line in graded_batch["lines"] if line.strip().startswith(f"{student}:")), "")
        assert phrase in line, f"summary line for {student} should mention {phrase!r}: {line!r}"
    assert not any("\x1b" in line or "\r" in line for line in graded_batch["lines"]), "escape codes printed raw"
    flagged = {s: r.flagged for s, r in graded_batch["results"].items() if r.flagged}
    assert set(flagged) == {"input_transformer", "ast_transformer", "run_cell_wrapper", "fake_integrity", "spy"}, flagged
    assert any("IPython's input transformers" in reason for reason in flagged["input_transformer"])
    assert any("could not be verified" in reason for reason in flagged["fake_integrity"]), flagged["fake_integrity"]
    assert "FLAGGED: ex1_parameter_formulas: IPython's run_cell" in summary
    assert "is not a usable student id" in summary and "\\x1b[2K" in summary
    assert re.search(r"37 students: 29 graded, 2 missing, 6 invalid; 4 tampered; 5 flagged for review", summary), summary


def check_the_csv_has_a_row_per_student_and_a_column_per_test(graded_batch):
    rows = list(csv.DictReader((graded_batch["root"] / "grading" / "exports" / f"{CHAPTER}.csv").open()))
    by_student = {row["student"]: row for row in rows}
    assert set(by_student) == set(graded_batch["expected"]) | {"(max)"}
    assert float(by_student["(max)"]["total"]) == FULL
    for student, (total, _) in graded_batch["expected"].items():
        assert float(by_student[student]["total"]) == total
    assert "test cell deleted" in by_student["deleted_test"]["tampered"]
    assert float(by_student["monkeypatcher"]["test_ex5_training_compute"]) == 0


def check_the_gradebook_holds_every_grade_and_survived_the_snooper(graded_batch):
    root = graded_batch["root"]
    with sqlite3.connect(root / "grading" / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        students = {row[0] for row in db.execute("SELECT id FROM student")}
    assert not any("\x1b" in name or "\\x1b" in name for name in students), "an unusable id was registered"
    for student, (total, _) in graded_batch["expected"].items():
        if grade_class.STUDENT_ID.match(student):
            scores = pipeline.recorded_scores(root, CHAPTER, student)
            assert sum(s.score for s in scores.values()) == total, student


def check_root_never_follows_a_students_link(graded_batch):
    if not CAPABILITIES.separate_user:
        return "skipped: the kernel runs as the grader's own user here"
    path = root_only_file(graded_batch["root"])
    assert (path.read_bytes(), os.stat(path).st_mode) == graded_batch["root_file_before"], "root's file was changed"
    graded = graded_batch["root"] / "grading" / "autograded" / "link_planter" / CHAPTER / f"{CHAPTER}.ipynb"
    assert graded.is_file() and not graded.is_symlink()
    assert graded_batch["results"]["link_to_solution"].total == 0, "a link to the solution earns nothing"


def check_output_is_capped_in_bytes_and_feedback_runs_no_script(graded_batch):
    root = graded_batch["root"]
    for kind in ("autograded", "feedback"):
        pages = [p for p in (root / "grading" / kind / "huge_line").rglob("*") if p.is_file()]
        assert pages and max(p.stat().st_size for p in pages) < 5 * 2**20, f"{kind}: {[p.stat().st_size for p in pages]}"
    assert any("output over the limit, cut: ex2_convolution_flops" in note for note in graded_batch["results"]["huge_line"].notes)
    page = (root / "grading" / "feedback" / "html_output" / CHAPTER / f"{CHAPTER}.html").read_text()
    assert "edl_pwned" in page, "the output is shown, as text"
    assert not re.search(r"<script>window\.edl_pwned|<img[^>]*onerror", page), "the student's HTML is live in the page"


def check_no_process_of_a_sandbox_user_survives(graded_batch):
    if not CAPABILITIES.separate_user:
        return "skipped: the kernel runs as the grader's own user here"
    def survivors():
        found = []
        for uid in range(sandbox.SANDBOX_UID_BASE, sandbox.SANDBOX_UID_BASE + 64):
            for pid in sandbox.processes_of(uid):
                if not sandbox.is_zombie(pid):  # exited, waiting to be reaped: nothing runs
                    try:
                        found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80]))
                    except OSError:
                        pass
        return found
    assert not survivors(), f"left running after the run: {survivors()}"


def printed_in(graded_batch, student: str, grade_id: str) -> str:
    graded = graded_batch["root"] / "grading" / "autograded" / student / CHAPTER / f"{CHAPTER}.ipynb"
    return "".join(o.get("text", "") for o in cell(nbformat.read(str(graded), 4), grade_id).outputs)


def check_files_outside_the_sandbox_are_untouched(graded_batch):
    before, after = graded_batch["untouched"]
    changed = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
    assert not changed, f"changed while grading: {changed[:10]}"


def check_the_sandbox_holds_processes_memory_and_disk(graded_batch):
    if not CAPABILITIES.complete:
        return f"skipped: the full sandbox is missing here ({'; '.join(CAPABILITIES.notices())})"
    forked = int(re.search(r"forked: (\d+)", printed_in(graded_batch, "fork_bomb", "ex3_weights_memory")).group(1))
    assert forked < LIMITS.max_processes, f"{forked} processes for one student, past {LIMITS.max_processes}"
    graded = graded_batch["root"] / "grading" / "autograded" / "memory_split" / CHAPTER / f"{CHAPTER}.ipynb"
    hogging = next(c for c in nbformat.read(str(graded), 4).cells if c.source.startswith("# memory_split"))
    stopped = json.dumps(hogging.outputs)
    assert "-9" in stopped or "KernelDied" in stopped, f"three children together took more than the student's memory: {stopped}"
    assert any("the memory limit" in note for note in graded_batch["results"]["memory_split"].notes)
    taken = [int(n) for n in re.findall(r"took (\d+) MiB", printed_in(graded_batch, "disk_filler", "ex6_training_energy_and_cost"))]
    assert len(taken) == 2 and max(taken) <= LIMITS.scratch_bytes // 2**20, taken
    left = sandbox_files_in_shared_folders() - graded_batch["sandbox_files_before"]
    assert not left, f"files of the sandbox left in the machine's /tmp or /dev/shm: {sorted(left)[:5]}"
    groups = [str(p) for p in Path("/sys/fs/cgroup").rglob("efficient-dl-grader/uid-*")]
    assert not groups, f"cgroups left behind: {groups}"
    users = sandbox.SandboxUsers(2)  # the daemon tried to hold every uid lock: later runs still start
    try:
        assert len(users.uids) == 2
    finally:
        users.release()


def check_nothing_of_value_is_in_sight(graded_batch):
    if CAPABILITIES.bubblewrap is None:
        return "skipped: without bubblewrap, the kernel runs in the folder of the notebook nbgrader executes"
    printed = printed_in(graded_batch, "spy", "ex7_batch_size_sweep")
    assert "grader visible: False" in printed, printed
    assert "hidden tests found: []" in printed, printed


def check_no_network_from_a_kernel(graded_batch):
    if not CAPABILITIES.no_network:
        return "skipped: this machine allows no separate network namespace"
    assert graded_batch["listener"].connections == 0
    graded = nbformat.read(str(graded_batch["root"] / "grading" / "autograded" / "network" / CHAPTER / f"{CHAPTER}.ipynb"), 4)
    printed = "".join(o.get("text", "") for o in cell(graded, "ex5_training_compute").outputs)
    assert "network blocked" in printed


def check_kernels_cannot_read_solutions_or_the_gradebook(graded_batch):
    if not CAPABILITIES.hidden_paths:
        return "skipped: hiding paths needs root and mount namespaces"
    assert graded_batch["results"]["snooper"].scores["test_ex6_training_energy_and_cost"][0] == 0
    graded = nbformat.read(str(graded_batch["root"] / "grading" / "autograded" / "curious" / CHAPTER / f"{CHAPTER}.ipynb"), 4)
    printed = "".join(o.get("text", "") for o in cell(graded, "ex7_batch_size_sweep").outputs)
    assert "token: None" in printed, f"the grader's environment reached the kernel: {printed!r}"
    assert "classmate readable: False" in printed and "tests readable: False" in printed, printed


def check_feedback_never_shows_hidden_tests(graded_batch):
    hidden, visible = set(), set()
    for test_cell in solution().cells:
        shown, _, block = test_cell.source.partition("### BEGIN HIDDEN TESTS")
        secret, _, after = block.partition("### END HIDDEN TESTS")
        hidden |= {line.strip() for line in secret.splitlines() if len(line.strip()) > 25}
        visible |= {line.strip() for line in (shown + after).splitlines()}
    hidden -= visible  # a hidden test may repeat a line the student already sees
    assert hidden
    pages = list((graded_batch["root"] / "grading" / "feedback").rglob("*.html"))
    graded = {s for s, r in graded_batch["results"].items() if r.status == "graded"}
    assert {page.parts[-3] for page in pages} == graded and len(graded) == 29, "one feedback page per graded student"
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
        save(submissions, student, answered())
    command = [sys.executable, "-m", "autograder.grade_class", CHAPTER, str(submissions), "--workers", "1",
               "--cell-timeout", "60", "--notebook-timeout", "300", grade_class.WEAKER_SANDBOX_FLAG]
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
        for student in ("alice", "bob.smith", "..", "-rf"):
            name = f"{CHAPTER}_{student}_attempt_2026-11-01-10-00-00_{CHAPTER}.ipynb"
            zipped.writestr(name, nbformat.writes(answered()))
    workspace = root / "grading" / "runs" / CHAPTER
    workspace.mkdir(parents=True)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    folder, refused = grade_class.collect_zip(archive, grade_class.Course(root, CHAPTER), workspace,
                                              r".*_(?P<student_id>[^_]+)_attempt_(?P<timestamp>[0-9\-]+)_(?P<file_id>\w+)")
    found = {s.student: s for s in grade_class.find_submissions(folder, CHAPTER)}
    assert set(found) == {"alice", "bob.smith"}
    assert all(s.problem is None and s.path.name == f"{CHAPTER}.ipynb" for s in found.values())
    assert sorted(s.student for s in refused) == ["-rf", ".."], "reported, not silently lost"
    assert all("names no usable student id" in s.problem for s in refused)
    outside = [p for p in (sorted(p.relative_to(root) for p in root.rglob("*"))) if p not in before
               and not str(p).startswith(str(workspace.relative_to(root)))]
    assert not outside, f"zip_collect wrote outside the workspace: {outside}"


def test_the_sandbox_capabilities_are_reported_once():
    lines = CAPABILITIES.notices()
    assert all(isinstance(line, str) and line for line in lines)
    if os.geteuid() == 0 and sys.platform.startswith("linux"):
        assert CAPABILITIES.separate_user
        # .ci/run installs it; an instructor's machine gets it the same way (README).
        assert CAPABILITIES.bubblewrap, "bubblewrap is missing: apt-get install bubblewrap"
        if CAPABILITIES.cgroups is None:
            warnings.warn(f"no per-student cgroup here: {CAPABILITIES.cgroup_problem}")


def test_the_grader_refuses_a_weaker_sandbox_unless_told(tmp_path, capsys):
    root = pipeline.scratch_course(tmp_path / "course", [CHAPTER])
    save(tmp_path / "submissions", "student", answered())
    weaker = dataclasses.replace(CAPABILITIES, bubblewrap=None, missing=("bubblewrap (bwrap) is not installed",))
    os.environ["EFFICIENT_DL_GRADING_ROOT"] = str(root)
    try:
        with pytest.raises(grade_class.GradingError) as refused:
            grade_class.grade_class(CHAPTER, tmp_path / "submissions", capabilities=weaker, out=lambda *_: None)
        code = grade_class.main([CHAPTER, str(tmp_path / "missing-folder"), grade_class.WEAKER_SANDBOX_FLAG])
    finally:
        os.environ.pop("EFFICIENT_DL_GRADING_ROOT")
    assert "bubblewrap (bwrap) is not installed" in str(refused.value)
    assert grade_class.WEAKER_SANDBOX_FLAG in str(refused.value), "the message says how to go on anyway"
    assert not (root / "grading" / "gradebook.db").exists(), "refused before anything was written"
    assert code == 2 and "neither a folder of students nor a .zip export" in capsys.readouterr().err


def test_a_student_checks_their_own_work(tmp_path):
    from autograder import check

    mine = replace_in(answered(), "ex5_training_compute", "    return 6 * n_params * n_tokens", "    return 2 * n_params * n_tokens")
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


def test_a_course_at_a_long_path_grades_correctly(tmp_path):
    """An ordinary long path (/home/<user>/teaching/<term>/<course>/...): the kernels' Unix
    sockets must not be derived from it, or every student fails with "File name too long"."""
    parent = tmp_path / "teaching" / "winter-term-2026-27" / "efficient-deep-learning-with-keras-and-tensorflow"
    parent = parent / ("section-" + "x" * max(1, 150 - len(str(parent)) - len("/section-") - len("/course")))
    root = pipeline.scratch_course(parent / "course", [CHAPTER])
    assert len(str(root)) >= 150
    submissions = tmp_path / "submissions"
    save(submissions, "student", answered())
    os.environ["EFFICIENT_DL_GRADING_ROOT"] = str(root)
    try:
        results = grade_class.grade_class(CHAPTER, submissions, workers=1, limits=LIMITS, out=lambda *_: None,
                                          **WEAKER_OK)
    finally:
        os.environ.pop("EFFICIENT_DL_GRADING_ROOT")
    assert [(r.status, r.total, r.tampered) for r in results] == [("graded", FULL, [])], results[0].notes


def test_a_kernel_inherits_an_allow_list_of_the_graders_environment():
    environment = sandbox.kernel_environment(
        {"PATH": "/usr/bin", "GITHUB_TOKEN": "ghp_x", "AWS_SECRET_ACCESS_KEY": "k", "EFFICIENT_DL_PROFILE": "fast",
         "NBGRADER_EXECUTION": "autograde", "TF_NUM_INTRAOP_THREADS": "1", "PYTHONPATH": "/course", "HOME": "/root",
         "JUPYTER_RUNTIME_DIR": "/root/.local"}, home="/tmp/kernel-home")
    assert environment == {"PATH": "/usr/bin", "EFFICIENT_DL_PROFILE": "fast", "NBGRADER_EXECUTION": "autograde",
                           "TF_NUM_INTRAOP_THREADS": "1", "PYTHONPATH": "/course",
                           "HOME": "/tmp/kernel-home", "TMPDIR": "/tmp/kernel-home",
                           "MPLCONFIGDIR": "/tmp/kernel-home/.matplotlib"}


def test_all_grading_state_is_in_one_folder_that_git_ignores():
    course = grade_class.Course(pipeline.REPOSITORY, CHAPTER)
    state = [course.db_path, course.runs / "ledger.db", course.runs / "backups" / "gradebook-before-1.db",
             course.csv_path, course.feedback("someone") / f"{CHAPTER}.html", course.autograded("someone"),
             pipeline.notebook_path(course.state / "submitted" / "someone", CHAPTER)]
    assert all(path.is_relative_to(pipeline.REPOSITORY / "grading") for path in state)
    checked = subprocess.run(["git", "check-ignore", "--no-index", *map(str, state)], cwd=pipeline.REPOSITORY,
                             capture_output=True, text=True)
    assert sorted(checked.stdout.split()) == sorted(map(str, state)), "every path of grading state is ignored"
