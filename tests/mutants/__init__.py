"""Wrong answers, one or more per graded exercise: each must lose exactly its exercise's points.

One module per chapter, named after it, holding a list ``MUTANTS``.

A mutant names the answer cell it changes and a textual edit of the reference solution
(the `original` text must occur in the solution, so a rewrite of the solution that makes a
mutant stale fails loudly instead of silently testing nothing).

Mutants are checked in rounds (``rounds``): one notebook run holds mutants of several
exercises at once when the static data flow (notebook_grading.observers_and_kept) shows they
cannot see each other. That analysis follows names only; a mutant whose effect can leak
through other global state (the random seed, files, the Keras dtype policy, environment
variables) or through an object it changes in place (an array a setup cell binds) runs alone:
set ``alone=True``, or let ``GLOBAL_STATE`` spot it in its text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# What a mutant's original or replacement text touches that is shared state but no name: the
# random generators, the working directory's files, Keras' global policy, the environment.
# A seed passed as an argument (``shuffle(..., seed=seed)``) is a name, not shared state: only the
# calls that set a generator's seed count, and only the setters of the dtype policy.
GLOBAL_STATE = re.compile(r"set_random_seed|set_seed|random\.seed|set_dtype_policy|set_global_policy|\.save|save_|"
                          r"load|open\(|write|unlink|remove|mkdir|chdir|environ|os\.|shutil|Path\(|clear_session|"
                          r"global\b")


@dataclass(frozen=True)
class Mutant:
    answer_id: str  # grade_id of the answer cell; its grade cell is "test_" + answer_id
    mistake: str
    original: str
    replacement: str
    alone: bool = False  # never share a notebook run (an effect the data flow cannot see)

    @property
    def test_id(self) -> str:
        return f"test_{self.answer_id}"

    @property
    def runs_alone(self) -> bool:
        return self.alone or bool(GLOBAL_STATE.search(self.original) or GLOBAL_STATE.search(self.replacement))

    @property
    def name(self) -> str:
        return f"{self.answer_id}-{self.mistake}"


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


def rounds(solution, mutants: list[Mutant]) -> list[list[Mutant]]:
    """The mutants grouped into notebook runs that cannot interfere.

    Two mutants share a run only if they change different exercises and the cells that can
    observe one (its answer cell, every cell that reads a name it binds, transitively, and the
    grade cells among them) are disjoint from the cells that can observe the other. So neither
    answer cell reads the other's names, no cell (grade cell or not) sees both, and every grade
    cell of the run sees at most one mutant: it scores what it would score with that mutant
    alone. The analysis merges each answer cell's names with those of all its mutants, so it
    holds whichever of them a run applies. ``runs_alone`` mutants get a run of their own.

    Greedy: exercises with the most mutants first, each mutant into the least full run it may
    join (so an exercise's expensive check spreads over runs), else a new run; the number of
    runs is then about the largest number of mutants of one exercise.
    """
    observers = observing_cells(solution, mutants)
    counts = {}
    for mutant in mutants:
        counts[mutant.answer_id] = counts.get(mutant.answer_id, 0) + 1
    shared = sorted((m for m in mutants if not m.runs_alone), key=lambda m: -counts[m.answer_id])
    groups: list[list[Mutant]] = []
    for mutant in shared:
        fits = [group for group in groups
                if all(other.answer_id != mutant.answer_id and not observers[other.answer_id] & observers[mutant.answer_id]
                       for other in group)]
        if fits:
            min(fits, key=len).append(mutant)
        else:
            groups.append([mutant])
    order = {mutant: position for position, mutant in enumerate(mutants)}
    groups = [sorted(group, key=order.get) for group in groups]
    return groups + [[mutant] for mutant in mutants if mutant.runs_alone]


def variants(solution, mutants: list[Mutant]) -> dict[str, list[str]]:
    """{answer_id: the answer cell's source under each of its mutants} (stale ones left out)."""
    from notebook_grading import answer_cell

    found: dict[str, list[str]] = {}
    for mutant in mutants:
        source = answer_cell(solution, mutant.answer_id).source
        if mutant.original in source:
            found.setdefault(mutant.answer_id, []).append(source.replace(mutant.original, mutant.replacement))
    return found


def observing_cells(solution, mutants: list[Mutant]) -> dict[str, frozenset[int]]:
    """{answer_id: indices of the cells that can observe any of its mutants} (see ``rounds``)."""
    from notebook_grading import observers_and_kept

    merged = variants(solution, mutants)
    return {answer_id: observers_and_kept(solution, answer_id, merged)[0] for answer_id in {m.answer_id for m in mutants}}
