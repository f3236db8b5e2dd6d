"""nbgrader configuration for the course.

Layout (relative to the grading root, the repository unless EFFICIENT_DL_GRADING_ROOT
names another folder, as the tests do):

    solutions/<chapter>/<chapter>.ipynb         nbgrader "source": solutions and hidden tests
    course/<chapter>/<chapter>.ipynb            nbgrader "release": what students get
    grading/submitted/<student>/<chapter>/   student work to grade
    grading/autograded/, grading/feedback/, grading/gradebook.db, grading/exports/, grading/runs/
    (the whole of grading/ is never committed:
    the gradebook holds the hidden tests)
"""
import sys
from pathlib import Path

from efficient_dl.quiet import STDERR_NOISE_PATTERN

c = get_config()  # noqa: F821 -- injected by traitlets when nbgrader loads this file

# The `nbgrader` command does not put the folder it starts in on sys.path; the kernel
# manager below and the course's paths live in this repository's autograder package.
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder.paths import STATE_FOLDER, grading_root  # noqa: E402

GRADING_ROOT = grading_root()

c.CourseDirectory.root = str(GRADING_ROOT)
c.CourseDirectory.course_id = "efficient-dl"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
c.CourseDirectory.submitted_directory = "grading/submitted"
c.CourseDirectory.autograded_directory = "grading/autograded"
c.CourseDirectory.feedback_directory = "grading/feedback"
c.CourseDirectory.solution_directory = "grading/solution"
c.CourseDirectory.db_url = f"sqlite:///{GRADING_ROOT / STATE_FOLDER / 'gradebook.db'}"
# Notebooks write models and caches next to themselves; none of that belongs in a release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.keras", "*.tflite", "models", "artifacts"]

# What a student sees where a solution was.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# nbgrader gives a test cell 0 points if it wrote anything to stderr. TensorFlow and absl
# log there on their own (some lines from C++, before any Python setting applies), so drop
# exactly those lines; a real failure still shows up as an error output.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = STDERR_NOISE_PATTERN

# The default 30 s per cell kills training cells. The fast profile (selected automatically
# while nbgrader executes) keeps every cell well under a minute on two CPU cores; 300 s
# leaves room for a slow machine without letting a runaway cell hold the grader for long.
c.Execute.timeout = 300
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True

# Graded notebooks should not balloon the gradebook with plots printed thousands of times.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# Kernels talk over Unix sockets in a private folder: TCP ports picked by two kernels that
# start at once can collide, and one of the two submissions would fail to grade.
c.Execute.kernel_manager_class = "autograder.kernels.PrivateSocketKernelManager"
