"""The grouping of mutants into shared notebook runs (mutants.rounds), without running any."""
import itertools

import pytest

from autograder import pipeline
from mutants import MUTANTS, Mutant, observing_cells, rounds
from notebook_grading import read, small_notebook

# ex3 calls ex1's function; ex2 and ex4 read nothing of the others.
COURSE = small_notebook(
    ("setup", None, "import numpy as np\nDATA = np.arange(4)"),
    ("answer", "ex1", "def scale(x):\n    return 2 * x"),
    ("test", "test_ex1", "assert scale(1) == 2"),
    ("answer", "ex2", "def total(x):\n    return x.sum()"),
    ("test", "test_ex2", "assert total(DATA) == 6"),
    ("answer", "ex3", "def shifted(x):\n    return scale(x) + 1"),
    ("test", "test_ex3", "assert shifted(DATA)[0] == 1"),
    ("answer", "ex4", "def first(x):\n    return x[0]"),
    ("test", "test_ex4", "assert first(DATA) == 0"),
)
M = [
    Mutant("ex1", "triples", "2 * x", "3 * x"),
    Mutant("ex1", "adds", "2 * x", "2 + x"),
    Mutant("ex2", "max", "x.sum()", "x.max()"),
    Mutant("ex2", "len", "x.sum()", "len(x)"),
    Mutant("ex2", "first", "x.sum()", "x[0]"),
    Mutant("ex3", "minus", "+ 1", "- 1"),
    Mutant("ex4", "last", "x[0]", "x[-1]"),
    Mutant("ex4", "seeded", "return x[0]", "np.random.seed(0)\n    return x[0]"),  # global state: alone
    Mutant("ex4", "opted out", "x[0]", "x[1]", alone=True),
]


def _check_invariants(notebook, mutants, groups):
    observers = observing_cells(notebook, mutants)
    flat = [mutant for group in groups for mutant in group]
    assert sorted(map(repr, flat)) == sorted(map(repr, mutants)), "every mutant in exactly one round"
    for group in groups:
        assert len({m.answer_id for m in group}) == len(group), "two mutants of one exercise share a round"
        for a, b in itertools.combinations(group, 2):
            assert not observers[a.answer_id] & observers[b.answer_id], f"{a.name} and {b.name} can interfere"
        assert len(group) == 1 or not any(m.runs_alone for m in group)


def test_rounds_keep_interfering_mutants_apart():
    groups = rounds(COURSE, M)
    _check_invariants(COURSE, M, groups)
    names = [{m.name for m in group} for group in groups]
    assert not any({"ex1-triples", "ex3-minus"} <= group or {"ex1-adds", "ex3-minus"} <= group for group in names)
    assert {"ex4-seeded"} in names and {"ex4-opted out"} in names
    # ex2 has three shared mutants; ex1 and ex3 conflict (3 runs between them): 3 shared rounds.
    assert len(groups) == 3 + 2


def test_a_mutant_that_reads_another_exercise_keeps_them_apart():
    # The solution's ex2 reads nothing of ex1, but this mutant of it calls scale: ex1's names
    # now reach ex2's answer, so no mutant of ex1 may share its run.
    mutants = [Mutant("ex1", "triples", "2 * x", "3 * x"), Mutant("ex2", "scaled", "x.sum()", "scale(x).sum() // 2")]
    groups = rounds(COURSE, mutants)
    _check_invariants(COURSE, mutants, groups)
    assert len(groups) == 2


def test_independent_mutants_share_one_run():
    mutants = [M[0], M[2], M[6]]
    assert rounds(COURSE, mutants) == [mutants]


@pytest.mark.parametrize("chapter", [chapter for chapter in pipeline.chapters() if MUTANTS.get(chapter)])
def test_every_chapters_rounds_keep_their_mutants_apart(chapter):
    notebook = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    groups = rounds(notebook, MUTANTS[chapter])
    _check_invariants(notebook, MUTANTS[chapter], groups)
    largest = max(sum(m.answer_id == a for m in MUTANTS[chapter]) for a in {m.answer_id for m in MUTANTS[chapter]})
    assert len(groups) <= largest + sum(m.runs_alone for m in MUTANTS[chapter])
