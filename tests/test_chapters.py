"""Every chapter through the real nbgrader pipeline, in the fast profile.

1. course/ is exactly what `nbgrader generate_assignment` makes from solutions/;
2. each solution, submitted as a student, autogrades to full marks;
3. each release, submitted unchanged, scores the floor (0) with every test cell failing
   (1 to 3 in one test per chapter, on a scratch course);
4. every mutant (a wrong answer, tests/mutants/) loses exactly its exercise's points. A
   mutant runs only the grade cells that can observe it (notebook_grading.observers_and_kept):
   the others read nothing it changed, so they score what they score on the solution (2.),
   and a chapter's expensive training check reruns only for the mutants of its own exercise.
   Mutants of exercises that cannot see each other share one notebook run (mutants.rounds),
   so a chapter costs about as many runs as its exercise with the most mutants;
5. no solution or hidden test reaches course/; outputs stripped; grade_ids unique;
   `nbgrader validate` accepts the solutions; every exercise has the same shape.
"""
from __future__ import annotations

import ast
import json
import os
import re

import nbformat
import pytest

from autograder import pipeline
from alternatives import ALTERNATIVES, rounds
from nbgrader.utils import is_grade
from notebook_grading import (answer_cell, answered_release, execute, grade_cell_scores, grade_id, graded_cells_only,
                              keep_cells, observers_and_kept, read, release_filled_in)
from mutants import MUTANTS, observing_cells
from mutants import rounds as mutant_rounds
from mutants import variants as mutant_variants

# EFFICIENT_DL_TEST_CHAPTERS=ch04_x,ch05_y limits a run to some chapters (while writing them).
_SELECTED = [name for name in os.environ.get("EFFICIENT_DL_TEST_CHAPTERS", "").split(",") if name]
CHAPTERS = [chapter for chapter in pipeline.chapters() if not _SELECTED or chapter in _SELECTED]
RELEASE_FLOOR = 0.0  # documented in README.md: an untouched notebook earns nothing
MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS")


def nbgrader_cells(notebook):
    return [(cell, cell.metadata["nbgrader"]) for cell in notebook.cells if "nbgrader" in cell.get("metadata", {})]


def normalised(notebook) -> dict:
    """A notebook as JSON, minus what legitimately varies between runs of nbgrader."""
    data = json.loads(json.dumps(notebook))
    for cell in data["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("trusted", None)
    return data


def test_there_are_chapters():
    assert "ch01_compute_and_energy" in pipeline.chapters()
    assert CHAPTERS, f"EFFICIENT_DL_TEST_CHAPTERS selects no chapter of {pipeline.chapters()}"


# One test per chapter, not a session fixture shared by several tests: pytest-xdist's
# loadgroup cannot keep such tests on one worker with pytest 9.2 (pytest-xdist #1386), and
# every worker would build the fixture again, all chapters at once.
@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_through_nbgrader(tmp_path, chapter):
    """nbgrader generates exactly the committed release; the release answered with the solution's
    answers, submitted as a student would ("reference"), autogrades to full marks through nbgrader
    (which restores the hidden tests); the release submitted untouched scores the floor."""
    root = pipeline.scratch_course(tmp_path, [chapter])
    pipeline.generate_release(root, chapter)
    # "reference" submits what a student submits: the release, answered with the solution's answers.
    answered = tmp_path / f"{chapter}.ipynb"
    nbformat.write(answered_release(read(pipeline.notebook_path(pipeline.COURSE, chapter)),
                                    read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))), str(answered))
    pipeline.submit(root, chapter, "reference", answered)
    pipeline.submit(root, chapter, "untouched", pipeline.notebook_path(root / "course", chapter))
    pipeline.autograde(root, chapter)
    problems = []

    generated = read(pipeline.notebook_path(root / "course", chapter))
    committed = read(pipeline.notebook_path(pipeline.COURSE, chapter))
    if normalised(committed) != normalised(generated):
        problems.append(f"course/{chapter} is stale: run `make release CHAPTER={chapter}` and commit the result.")

    reference = pipeline.recorded_scores(root, chapter, "reference")
    lost = {name: (s.score, s.max_score) for name, s in reference.items() if s.score != s.max_score}
    if not reference:
        problems.append("nbgrader recorded no grade cells for the solution")
    elif lost:
        problems.append(f"the solution lost points (stderr in a test cell, or a failing test): {lost}")

    untouched = pipeline.recorded_scores(root, chapter, "untouched")
    scored = {name: s.score for name, s in untouched.items() if s.score != 0}
    if sum(s.score for s in untouched.values()) != RELEASE_FLOOR or scored:
        problems.append(f"every test cell must fail on the untouched release; these scored: {scored}")

    assert not problems, "\n".join(problems)


def _mutant_rounds(chapter):
    mutants = MUTANTS.get(chapter, [])
    try:
        return mutant_rounds(read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter)), mutants) if mutants else []
    except Exception:  # a notebook that does not read: one run per mutant, each failing with the reason
        return [[mutant] for mutant in mutants]


MUTANT_ROUNDS = [pytest.param(chapter, group, id=f"{chapter}-round{number}")
                 for chapter in CHAPTERS for number, group in enumerate(_mutant_rounds(chapter), 1)]


@pytest.mark.notebook
@pytest.mark.parametrize("chapter, mutants", MUTANT_ROUNDS)
def test_mutants_lose_exactly_their_exercises(tmp_path, chapter, mutants):
    """One notebook run checks a round of mutants of different exercises that cannot see each
    other (mutants.rounds): each mutant's own grade cell scores 0, and every other grade cell
    that can observe it, like every grade cell none of them can observe, keeps full marks."""
    solution = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    observers = observing_cells(solution, MUTANTS[chapter])
    merged = mutant_variants(solution, MUTANTS[chapter])
    notebook = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    kept = set()
    for mutant in mutants:
        cell = answer_cell(notebook, mutant.answer_id)
        assert mutant.original in cell.source, (
            f"{chapter}-{mutant.name}: mutant is stale: {mutant.original!r} is no longer in the solution")
        cell.source = cell.source.replace(mutant.original, mutant.replacement)
        kept |= observers_and_kept(solution, mutant.answer_id, merged)[1]
    assert len({m.answer_id for m in mutants}) == len(mutants), "two mutants of one exercise in a round"
    graded = graded_cells_only(notebook).cells
    observed_by = {}  # grade_id of a kept grade cell -> the round's mutant that can observe it
    for mutant in mutants:
        for index in observers[mutant.answer_id] & kept:
            if is_grade(graded[index]):
                assert grade_id(graded[index]) not in observed_by, "mutants of a round observed by one grade cell"
                observed_by[grade_id(graded[index])] = mutant

    scores = grade_cell_scores(execute(keep_cells(notebook, kept), tmp_path))

    problems = []
    for mutant in mutants:
        if mutant.test_id not in scores:
            problems.append(f"{chapter}-{mutant.name}: {mutant.test_id} did not run")
        elif scores[mutant.test_id][0] != 0:
            problems.append(f"{chapter}-{mutant.name}: {mutant.test_id} did not catch: {mutant.mistake}")
        collateral = {name: score for name, (score, max_score) in scores.items()
                      if name != mutant.test_id and observed_by.get(name) == mutant and score != max_score}
        if collateral:
            problems.append(f"{chapter}-{mutant.name}: the mutant also cost points elsewhere: {collateral}")
    unobserved = {name: score for name, (score, max_score) in scores.items()
                  if name not in observed_by and score != max_score}
    if unobserved:
        problems.append(f"grade cells that no mutant of the round can observe lost points: {unobserved}")
    assert not problems, "\n".join(problems)


ALTERNATIVE_ROUNDS = [pytest.param(chapter, group, id=f"{chapter}-round{number}")
                      for chapter in CHAPTERS for number, group in enumerate(rounds(ALTERNATIVES.get(chapter, [])), 1)]


@pytest.mark.notebook
@pytest.mark.parametrize("chapter, alternatives", ALTERNATIVE_ROUNDS)
def test_correct_alternatives_get_full_marks(tmp_path, chapter, alternatives):
    """The release, filled in with correct answers written differently from the solution (one
    per exercise in each round), graded with the solution's test cells: every grade cell full."""
    solution = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    release = read(pipeline.notebook_path(pipeline.COURSE, chapter))
    submitted = release_filled_in(release, solution, {a.answer_id: a.source for a in alternatives})

    scores = grade_cell_scores(execute(graded_cells_only(submitted), tmp_path))

    described = {a.test_id: a.description for a in alternatives}
    lost = {f"{name} ({described.get(name, 'the solution')})": score
            for name, (score, max_score) in scores.items() if score != max_score}
    assert not lost, f"correct answers lost points: {lost}"


# Chapters written before tests/alternatives/ existed get theirs with issue 13.
CHAPTERS_WITHOUT_ALTERNATIVES_YET = {"ch01_compute_and_energy", "ch02_convolution_from_its_formula", "ch03_cnn_in_keras",
                                     "ch04_recurrence_from_its_formula", "ch05_rnn_on_imdb_reviews"}


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c not in CHAPTERS_WITHOUT_ALTERNATIVES_YET])
def test_every_exercise_has_two_correct_alternatives(chapter):
    notebook = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    answers = {meta["grade_id"] for _, meta in nbgrader_cells(notebook) if meta.get("solution")}
    counts = {answer: sum(a.answer_id == answer for a in ALTERNATIVES.get(chapter, [])) for answer in answers}
    assert all(count >= 2 for count in counts.values()), f"exercises with fewer than two alternatives: {counts}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_correct_answers_are_never_flagged_for_review(chapter):
    """The class grader flags code that reaches for the kernel's machinery; no correct answer,
    the solution's or an alternative, may look like that."""
    from autograder import integrity

    solution = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    release = read(pipeline.notebook_path(pipeline.COURSE, chapter))
    for group in [[]] + rounds(ALTERNATIVES.get(chapter, [])):
        submitted = answered_release(release, solution, {a.answer_id: a.source for a in group})
        assert integrity.suspicious_code(submitted, release) == [], [a.description for a in group]
        assert integrity.tampering(submitted, release) == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_a_mutant(chapter):
    notebook = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    answers = {meta["grade_id"] for _, meta in nbgrader_cells(notebook) if meta.get("solution")}
    mutated = {mutant.answer_id for mutant in MUTANTS.get(chapter, [])}
    assert answers <= mutated, f"exercises without a wrong answer to catch: {sorted(answers - mutated)}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_release_holds_no_solution_or_hidden_test(chapter):
    solution_text = pipeline.notebook_path(pipeline.SOLUTIONS, chapter).read_text()
    release = read(pipeline.notebook_path(pipeline.COURSE, chapter))
    release_text = json.dumps(release)
    assert not MARKERS.search(release_text)
    secret_lines, public_lines = set(), set()
    for cell in read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter)).cells:
        secret = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
        for _, block in secret.findall(cell.source):
            secret_lines |= {line.strip() for line in block.splitlines() if len(line.strip()) > 12}
        public_lines |= {line.strip() for line in secret.sub("", cell.source).splitlines()}
    assert secret_lines, "the solution notebook has no solution regions"
    release_lines = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    # A hidden test may repeat a line the student already sees; only the rest is secret.
    leaked = sorted((secret_lines - public_lines) & release_lines)
    assert not leaked, f"solution or hidden-test lines in course/: {leaked[:5]}"
    assert "BEGIN SOLUTION" in solution_text


@pytest.mark.parametrize("folder", [pipeline.SOLUTIONS, pipeline.COURSE], ids=["solutions", "course"])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_notebooks_are_stripped_with_unique_grade_ids(folder, chapter):
    notebook = read(pipeline.notebook_path(folder, chapter))
    assert all(not cell.get("outputs") and not cell.get("execution_count")
               for cell in notebook.cells if cell.cell_type == "code"), "outputs must be stripped"
    ids = [meta["grade_id"] for _, meta in nbgrader_cells(notebook)]
    assert len(ids) == len(set(ids)), "duplicate grade_id"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_the_same_shape(chapter):
    """Instructions with points, an answer cell, then its grade cell: visible asserts first,
    then hidden tests, ending in a statement (a bare number would be read as partial credit)."""
    cells = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter)).cells
    answers = [i for i, cell in enumerate(cells) if cell.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert answers
    for index in answers:
        answer_id = grade_id(cells[index])
        instructions, tests = cells[index - 1], cells[index + 1]
        test_meta = tests.metadata.get("nbgrader", {})
        assert test_meta.get("grade") and test_meta.get("grade_id") == f"test_{answer_id}", answer_id
        points = test_meta["points"]
        assert points > 0 and test_meta.get("locked")
        assert instructions.cell_type == "markdown" and f"({points} point" in instructions.source, (
            f"{answer_id}: the instructions must state the {points} points")
        assert "**Write**" in instructions.source and "**Checked:**" in instructions.source, answer_id
        visible, _, hidden = tests.source.partition("### BEGIN HIDDEN TESTS")
        assert "assert" in visible and "assert" in hidden, f"{answer_id}: needs visible and hidden tests"
        last = ast.parse(tests.source).body[-1]
        assert isinstance(last, ast.Assert) or (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
                                                and getattr(last.value.func, "id", "") == "print"), (
            f"{answer_id}: end the test cell with an assert or a print, not a value")


# One chapter is enough to prove `make validate` works: every solution already autograds to full
# marks through nbgrader in test_chapter_through_nbgrader, and validating the others would run
# each notebook a second time for the same purpose (about 5 minutes of the suite).
@pytest.mark.notebook
@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c == "ch01_compute_and_energy"])
def test_nbgrader_validate_accepts_the_solution(tmp_path, chapter):
    result = pipeline.nbgrader(tmp_path, "validate", str(pipeline.notebook_path(pipeline.SOLUTIONS, chapter)))
    assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout[-3000:]
