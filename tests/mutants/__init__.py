"""Wrong answers, one or more per graded exercise: each must lose exactly its exercise's points.

One module per chapter, named after it, holding a list ``MUTANTS``.

A mutant names the answer cell it changes and a textual edit of the reference solution
(the `original` text must occur in the solution, so a rewrite of the solution that makes a
mutant stale fails loudly instead of silently testing nothing).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    answer_id: str  # grade_id of the answer cell; its grade cell is "test_" + answer_id
    mistake: str
    original: str
    replacement: str

    @property
    def test_id(self) -> str:
        return f"test_{self.answer_id}"



def _collect() -> dict[str, list[Mutant]]:
    import importlib
    import pkgutil

    found = {}
    for module in pkgutil.iter_modules(__path__):
        found[module.name] = importlib.import_module(f"{__name__}.{module.name}").MUTANTS
    return found


MUTANTS = _collect()
