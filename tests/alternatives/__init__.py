"""Correct answers written differently from the solution: each must get full marks.

One module per chapter, named after it, holding a list ``ALTERNATIVES``; the table beside
``tests/mutants/`` (wrong answers that must lose their points).

An alternative names the answer cell it fills and the whole source a student might write
there instead of the solution (another algorithm, other types, other idioms). Tests
require only what a task's text states, so every such answer must pass its grade cell.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alternative:
    answer_id: str  # grade_id of the answer cell; its grade cell is "test_" + answer_id
    description: str
    source: str  # the whole answer cell, as the student would write it

    @property
    def test_id(self) -> str:
        return f"test_{self.answer_id}"


def _collect() -> dict[str, list[Alternative]]:
    import importlib
    import pkgutil

    found = {}
    for module in pkgutil.iter_modules(__path__):
        found[module.name] = importlib.import_module(f"{__name__}.{module.name}").ALTERNATIVES
    return found


ALTERNATIVES = _collect()


def rounds(alternatives: list[Alternative]) -> list[list[Alternative]]:
    """The alternatives grouped so that each group holds at most one per exercise: all the
    exercises' first alternatives in one notebook run, all the second ones in the next, ...
    Every grade cell must score full marks in each run, so one run checks many answers."""
    groups: list[list[Alternative]] = []
    for alternative in alternatives:
        for group in groups:
            if all(other.answer_id != alternative.answer_id for other in group):
                group.append(alternative)
                break
        else:
            groups.append([alternative])
    return groups
