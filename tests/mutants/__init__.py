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


# An answer that solves nothing: an object equal to anything, on either side of every comparison,
# that survives arithmetic, so that `x == 5`, `x <= 5` and `np.isclose(x, 5)` all hold. Only a test
# that converts first (`float(x)`, `np.asarray(x, dtype=float)`) catches it. One expression, so that
# a mutant can put it wherever the solution has a value: `f"return {ALWAYS_EQUAL}"`.
_COMPARISONS = {"eq": True, "ne": False, "lt": True, "le": True, "gt": True, "ge": True}
_ARITHMETIC = ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow"]
_LIES = ([f"'__{name}__': lambda self, other: {answer}" for name, answer in _COMPARISONS.items()]
         + [f"'__{prefix}{name}__': lambda self, other: self" for name in _ARITHMETIC for prefix in ("", "r")]
         + [f"'__{name}__': lambda self: self" for name in ("abs", "neg", "pos")])
ALWAYS_EQUAL = "type('_Anything', (), {%s})()" % ", ".join(_LIES + ["'__hash__': object.__hash__"])


def always_equal_instance_of(base: str, value: str) -> str:
    """Source of an expression: the same lies from a subclass of `base` ("int", "float", "str") holding
    `value`, which also answers True to every NumPy function (`np.isclose`, `np.allclose`, ...), so that
    `isinstance` checks pass too; only a conversion (`float(x)`, `int(x)`, `str.__str__(x)`) sees `value`."""
    lies = _LIES + [f"'__hash__': {base}.__hash__", "'__array_function__': lambda self, function, types, args, kwargs: True"]
    return f"type('_Any{base.title()}', ({base},), {{{', '.join(lies)}}})({value})"


def with_lying_history(fit_source: str) -> str:
    """``fit_source`` (an answer's ``return <model>.fit(...)``) as the solution trains, with every
    number in the returned History replaced by an always-equal object."""
    return (fit_source.replace("return ", "history = ", 1)
            + f"\n    history.history = {{name: [{ALWAYS_EQUAL}] * len(values) for name, values in history.history.items()}}"
            + "\n    return history")


def _collect() -> dict[str, list[Mutant]]:
    import importlib
    import pkgutil

    found = {}
    for module in pkgutil.iter_modules(__path__):
        found[module.name] = importlib.import_module(f"{__name__}.{module.name}").MUTANTS
    return found


MUTANTS = _collect()
