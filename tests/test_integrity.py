"""The grader's static checks of a submission: tampered cells, and code that needs a person's review."""
import nbformat
import pytest

from autograder import integrity, pipeline

CHAPTER = "ch01_compute_and_energy"


def release():
    return nbformat.read(str(pipeline.notebook_path(pipeline.COURSE, CHAPTER)), as_version=4)


def with_answer(source: str):
    notebook = release()
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex1_parameter_formulas")
    answer.source = source
    return notebook


@pytest.mark.parametrize("source, reason", [
    ("get_ipython().input_transformers_cleanup.append(lambda lines: [])", "IPython's input transformers"),
    ("ip = get_ipython()\nip.ast_transformers.append(object())", "IPython's AST transformers"),
    ("type(get_ipython()).run_cell = lambda *a, **k: None", "IPython's run_cell"),
    ("get_ipython().set_custom_exc((AssertionError,), lambda *a: None)", "IPython's exception hooks"),
    ("import sys\nsys.settrace(lambda *a: None)", "trace hooks"),
    ("from sys import settrace", "trace hooks"),
    ("import sys\nsys.modules['numpy'] = None", "sys.modules"),
    ("__import__('sys').modules['numpy'] = None", "sys.modules"),
    ("import builtins\nbuiltins.len = lambda x: 0", "the built-ins"),
    ("import ctypes", "ctypes"),
    ("import gc\nfor o in gc.get_objects(): pass", "object graph"),
    ("import sys\nframe = sys._getframe(1)", "frame introspection"),
    ("open('/proc/1/cmdline').read()", "/proc"),
    ("exec(bytes.fromhex('7072696e74').decode())", "code built at run time"),
    ("del __edl_install_integrity", "the grader's own integrity code"),
])
def test_code_that_reaches_for_the_grader_is_flagged_with_its_reason(source, reason):
    reasons = integrity.suspicious_code(with_answer(source), release())
    assert any(reason in r and r.startswith("ex1_parameter_formulas: ") for r in reasons), reasons


@pytest.mark.parametrize("source", [
    "def dense_parameters(n_in, n_out, use_bias=True):\n    return n_in * n_out + n_out * use_bias",
    "%timeit sum(range(10))\nimport numpy as np\nevents = np.stack([np.ones(2)])",
    "import gc\ngc.collect()",
    "exec('x = 1')",
    "this is not python (",
])
def test_ordinary_code_is_not_flagged(source):
    assert integrity.suspicious_code(with_answer(source), release()) == []


def test_test_cells_are_compared_with_the_release_not_the_source():
    honest = release()
    assert integrity.tampering(honest, release()) == []
    source = nbformat.read(str(pipeline.notebook_path(pipeline.SOLUTIONS, CHAPTER)), as_version=4)
    edited = integrity.tampering(source, release())  # hidden tests in every test cell: not what was released
    assert edited and all(line.endswith("test cell edited") for line in edited)
