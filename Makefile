# Efficient Deep Learning with Keras and TensorFlow: every command a student or an
# instructor needs. Each target creates the virtual environment first if it is missing.
#
#   make lab         set up, then open the course in JupyterLab
#   make test        set up, then run the whole test suite (what CI runs)
#
# Instructors (CHAPTER defaults to every chapter for release/validate):
#   make release                       regenerate course/ from solutions/ (nbgrader generate_assignment)
#   make colab-cells                   write the Colab badge and install cell into solutions/ (from
#                                      [tool.efficient-dl] in pyproject.toml), then make release
#   make validate                      check that every solution passes its own tests
#   make grade CHAPTER=ch01_compute_and_energy     autograde grading/submitted/*/CHAPTER
#   make export                        write grading/exports/grades.csv
#   make grade-class CHAPTER=ch01_compute_and_energy SUBMISSIONS=folder-or.zip [WORKERS=4] [GRADE_ARGS=...]
#                                      the class grader: parallel, sandboxed, CSV + feedback (as root;
#                                      GRADE_ARGS=--allow-weaker-sandbox where bubblewrap or cgroups are missing)
#   make benchmark-grading             plain nbgrader vs the class grader, on this machine
#
# Students studying alone:
#   make check NOTEBOOK=course/ch01_compute_and_energy/ch01_compute_and_energy.ipynb

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS := $(notdir $(wildcard solutions/ch*))
CHAPTER ?= $(CHAPTERS)
PYTEST_ARGS ?=
# nbgrader calls `alembic` and starts kernels by name: the environment's own must come first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lab test release colab-cells validate grade export grade-class check benchmark-grading clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "The course needs Python 3.11; run make PYTHON=/path/to/python3.11 ..."' \
	  || { echo "Python 3.11 not found as '$(PYTHON)'. Install it, or pass PYTHON=/path/to/python3.11."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $(STAMP)

# Jupyter refuses to run as root unless told; containers and cloud VMs often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT) course/

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# nbgrader records the release in grading/gradebook.db; without that folder it fails after having
# deleted course/<chapter> (git ignores grading/ whole).
release: setup
	mkdir -p grading
	for chapter in $(CHAPTER); do nbgrader generate_assignment $$chapter --force || exit 1; done

# Every notebook's "Open in Colab" badge and Colab install cell, from the one setting that names
# where the course is published; idempotent (autograder/colab.py), then the release again.
colab-cells: setup
	$(BIN)/python -m autograder.colab $(CHAPTER)
	$(MAKE) release CHAPTER="$(CHAPTER)"

validate: setup
	for chapter in $(CHAPTER); do nbgrader validate solutions/$$chapter/$$chapter.ipynb || exit 1; done

grade: setup
	for chapter in $(CHAPTER); do nbgrader autograde $$chapter || exit 1; done

export: setup
	mkdir -p grading/exports
	nbgrader export --to grading/exports/grades.csv

grade-class: setup
	@test -n "$(SUBMISSIONS)" -a "$(words $(CHAPTER))" = 1 || { echo "Usage: make grade-class CHAPTER=<one chapter> SUBMISSIONS=<folder or .zip> [WORKERS=N]"; exit 2; }
	$(BIN)/python -m autograder.grade_class $(CHAPTER) $(SUBMISSIONS) $(if $(WORKERS),--workers $(WORKERS)) $(GRADE_ARGS)

check: setup
	@test -n "$(NOTEBOOK)" || { echo "Usage: make check NOTEBOOK=course/<chapter>/<chapter>.ipynb"; exit 2; }
	$(BIN)/python -m autograder.check $(NOTEBOOK)

benchmark-grading: setup
	$(BIN)/python benchmarks/grading_speed.py

# Removes what `make setup` and the tests rebuild; never grades (the gradebook, autograded/,
# feedback/, exports/ and the class grader's runs/ stay).
clean:
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
