"""The pruning that lets a mutant skip the grade cells that cannot observe it."""
from notebook_grading import cells_that_can_observe, grade_id, small_notebook


def _notebook(*cells):
    return small_notebook(*cells, trailing_demo=True)


COURSE = _notebook(
    ("setup", None, "import numpy as np\nDATA = np.arange(4)"),
    ("answer", "ex1", "def scale(x):\n    return 2 * x"),
    ("test", "test_ex1", "sample = scale(DATA)\nassert scale(1) == 2"),
    ("answer", "ex2", "def total(x):\n    return FACTOR * x.sum()\nFACTOR = 1"),
    ("test", "test_ex2", "assert total(sample) == 12"),
    ("answer", "ex3", "def shifted(x):\n    return scale(x) + 1"),
    ("test", "test_ex3", "_sample = shifted(DATA)\nassert _sample[0] == 1"),
    ("test", "test_ex3_more", "def _check():\n    return total(DATA)\nassert _check() == 6"),
)


def _kept_tests(answer_id):
    return [grade_id(cell) for cell in cells_that_can_observe(COURSE, answer_id).cells
            if cell.metadata.get("nbgrader", {}).get("grade")]


def test_every_grade_cell_that_reads_a_changed_name_runs():
    # scale is read by test_ex1, by test_ex2 through `sample`, and by test_ex3 through shifted;
    # test_ex3_more reads total, which does not read scale.
    assert _kept_tests("ex1") == ["test_ex1", "test_ex2", "test_ex3"]


def test_a_function_body_reads_globals_late_and_a_needed_visible_test_is_kept():
    # total reads FACTOR when called; test_ex2 needs `sample`, which only test_ex1 binds.
    assert _kept_tests("ex2") == ["test_ex1", "test_ex2", "test_ex3_more"]


def test_setup_and_answer_cells_always_run_and_demonstrations_never():
    sources = [cell.source for cell in cells_that_can_observe(COURSE, "ex3").cells]
    assert sources[0].startswith("import numpy") and sum("def " in s for s in sources[:4]) == 3
    assert "expensive_demo()" not in sources
    assert _kept_tests("ex3") == ["test_ex3"]


def test_a_cell_that_is_not_plain_python_means_everything_runs():
    magic = _notebook(("answer", "ex1", "%time x = 1"), ("test", "test_ex1", "assert x"),
                      ("answer", "ex2", "y = 2"), ("test", "test_ex2", "assert y"))
    assert [grade_id(c) for c in cells_that_can_observe(magic, "ex2").cells if c.metadata["nbgrader"]["grade"]] == [
        "test_ex1", "test_ex2"]
