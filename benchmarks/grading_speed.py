"""How much faster the class grader is than plain `nbgrader autograde`, on this machine.

    python benchmarks/grading_speed.py [--copies 8] [--chapter ch01_compute_and_energy] [--workers N]

Grades N copies of a chapter's solution twice, in two scratch courses, from the same
starting point (sources, submissions, no gradebook) to the same end (grades and feedback):
with nbgrader alone, serially (`nbgrader generate_assignment`, `autograde`,
`generate_feedback`: one student after another), then with `autograder.grade_class`
(parallel, sandboxed, its redacted feedback). Prints both wall-clock times and the ratio,
then where each student's time went: the notebook's own cells, the kernel's start,
integrity checks and shutdown, and the grader's work outside the kernel (intake, nbgrader,
feedback, gradebook: goal within 3 s of the kernel's run), with the sandbox this machine
allows (the line names its layers).
A benchmark, not a test: it prints numbers and asserts nothing about speed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograder import grade_class, pipeline, sandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--chapter", default="ch01_compute_and_energy")
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    args = parser.parse_args()
    os.environ.setdefault("EFFICIENT_DL_DATA_SOURCE", "sample")
    solution = pipeline.notebook_path(pipeline.SOLUTIONS, args.chapter)
    students = [f"student{i:03d}" for i in range(args.copies)]

    with tempfile.TemporaryDirectory(prefix="grading-bench-") as scratch:
        serial_root = pipeline.scratch_course(Path(scratch) / "serial", [args.chapter])
        for student in students:
            pipeline.submit(serial_root, args.chapter, student, solution)
        start = time.perf_counter()
        pipeline.generate_release(serial_root, args.chapter)
        pipeline.autograde(serial_root, args.chapter)  # plain nbgrader: every student, one by one
        pipeline.nbgrader(serial_root, "generate_feedback", args.chapter, "--force")
        serial = time.perf_counter() - start

        parallel_root = pipeline.scratch_course(Path(scratch) / "parallel", [args.chapter])
        folder = Path(scratch) / "submissions"
        for student in students:
            (folder / student).mkdir(parents=True)
            (folder / student / solution.name).write_bytes(solution.read_bytes())
        os.environ["EFFICIENT_DL_GRADING_ROOT"] = str(parallel_root)
        start = time.perf_counter()
        results = grade_class.grade_class(args.chapter, folder, workers=args.workers, out=lambda *_: None,
                                          allow_weaker_sandbox=True)
        parallel = time.perf_counter() - start
        full = sum(r.status == grade_class.GRADED for r in results)

    workers = args.workers or os.cpu_count()
    print(f"{args.copies} copies of {args.chapter} on {os.cpu_count()} CPU core(s)")
    print(f"plain nbgrader, serial:                {serial:7.1f} s  (generate_assignment, autograde, generate_feedback)")
    print(f"autograder.grade_class ({workers} workers): {parallel:7.1f} s  ({full}/{args.copies} graded)")
    print(f"speed-up: {serial / parallel:.2f}x")
    capabilities = sandbox.probe()
    layers = [name for name, on in (("own uid", capabilities.separate_user), ("bubblewrap", capabilities.bubblewrap),
                                    (f"cgroup v{capabilities.cgroups}", capabilities.cgroups)) if on]
    graded = [r for r in results if r.status == grade_class.GRADED]
    if graded:
        outside = statistics.median(r.seconds - r.kernel_seconds for r in graded)
        inside = statistics.median(r.kernel_seconds - r.cell_seconds for r in graded)
        print(f"per student, median (sandbox: {', '.join(layers) or 'none'}):")
        print(f"  the notebook's own cells:                              {statistics.median(r.cell_seconds for r in graded):5.1f} s")
        print(f"  the kernel's start, integrity checks and shutdown:     {inside:5.1f} s")
        print(f"  the grader outside the kernel (intake, nbgrader, feedback, gradebook): {outside:5.1f} s"
              f"  (goal: within 3 s)")
        print(f"  all overhead, beyond the cells:                        {outside + inside:5.1f} s")

if __name__ == "__main__":
    main()
