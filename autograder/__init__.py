"""Grading tools for the course, built on nbgrader (configuration: nbgrader_config.py).

- ``pipeline``: nbgrader's own commands as Python calls; ``paths``: where everything lives.
- ``check``: a student grades their own notebook, hidden tests included.
- ``grade_class``: the class grader, one module per step: ``intake`` -> ``integrity`` ->
  ``sandbox`` (and ``cgroups``) -> ``execution`` -> ``results`` (and ``feedback``).
"""
