"""What a submission did to the grader's cells, and code that reaches for the grader itself.

Two checks, run on the submitted notebook before anything executes:

- ``tampering``: the cells the grader owns (test cells, read-only cells), compared with the
  release the student was given. They are restored from the source before grading anyway
  (nbgrader's OverwriteCells); this says who touched them.
- ``suspicious_code``: code a student wrote that reaches for the machinery a test relies on
  (IPython's input and AST transformers, ``run_cell``, exception and trace hooks, the
  built-ins, ``sys.modules``, frames, ``gc``'s object graph, ``ctypes``, ``/proc``, the
  grader's own names). No honest answer to this course needs any of it, and no check inside
  the kernel can be trusted once it is used: such a submission is flagged for a person to
  review, with the reasons, instead of being trusted or silently failed.
"""
from __future__ import annotations

import ast

from nbgrader.utils import compute_checksum, is_grade, is_locked

# Attribute and function names, as written in the code, and what they reach.
SUSPICIOUS_NAMES = {
    "input_transformers_cleanup": "IPython's input transformers", "input_transformers_post": "IPython's input transformers",
    "ast_transformers": "IPython's AST transformers", "run_cell": "IPython's run_cell",
    "run_ast_nodes": "IPython's run_cell", "run_code": "IPython's run_cell", "run_cell_async": "IPython's run_cell",
    "set_custom_exc": "IPython's exception hooks", "custom_exceptions": "IPython's exception hooks",
    "showtraceback": "IPython's exception hooks", "events": "IPython's event callbacks",
    "settrace": "trace hooks", "setprofile": "trace hooks", "gettrace": "trace hooks",
    "excepthook": "exception hooks", "displayhook": "the display hook",
    "_getframe": "frame introspection", "currentframe": "frame introspection", "f_back": "frame introspection",
    "f_globals": "frame introspection", "f_locals": "frame introspection", "stack": None,
    "get_objects": "the garbage collector's object graph", "get_referrers": "the garbage collector's object graph",
    "get_referents": "the garbage collector's object graph",
    "__builtins__": "the built-ins", "__code__": "function code objects", "__globals__": "function globals",
    "modules": "sys.modules (replacing modules the tests use)", "get_ipython": "the IPython shell",
    "__import__": "imports by computed name", "__subclasses__": "the class graph",
}
# Names that count on their own, not only as an attribute: a student's variable may be called
# "events" or "stack", but not "get_ipython".
NAMES_THAT_COUNT_BARE = {"__builtins__", "get_ipython", "__import__"}
SUSPICIOUS_MODULES = {"ctypes": "ctypes", "builtins": "the built-ins", "gc": None, "inspect": None}


def _grade_id(cell) -> str | None:
    metadata = cell.get("metadata", {}).get("nbgrader", {})
    return metadata.get("grade_id") if isinstance(metadata, dict) else None


def _checksum(cell) -> str | None:
    try:
        return compute_checksum(cell)
    except (KeyError, TypeError, ValueError):  # metadata a student mangled: not what was released
        return None


def tampering(notebook, release) -> list[str]:
    """What the student changed in the cells the grader owns, compared with the release they
    were given. (The gradebook's checksums are the source's, hidden tests included: compared
    with those, every honest student's test cells would look edited.)"""
    found = []
    expected = {_grade_id(cell): cell for cell in release.cells if _grade_id(cell)}
    graded = {name for name, cell in expected.items() if is_grade(cell)}
    seen: dict[str, int] = {}
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id is None:
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
        reference = expected.get(grade_id)
        if reference is None or seen[grade_id] > 1:
            continue
        if cell.cell_type != reference.cell_type:
            found.append(f"{grade_id}: changed from {reference.cell_type} to {cell.cell_type}")
        elif grade_id in graded and is_locked(reference) and _checksum(cell) != compute_checksum(reference):
            found.append(f"{grade_id}: test cell edited")
    found += [f"{grade_id}: appears {count} times" for grade_id, count in seen.items() if count > 1]
    found += [f"{grade_id}: test cell deleted" for grade_id in sorted(graded) if grade_id not in seen]
    return found


def suspicious_code(notebook, release) -> list[str]:
    """Why the code a student wrote needs a person's review ('ex2_flops: IPython's input
    transformers'), one reason per cell and kind; empty for an honest submission. Cells the
    grader owns are skipped: they are replaced by the source's before anything runs."""
    owned = {_grade_id(cell) for cell in release.cells if _grade_id(cell) and is_locked(cell)}
    reasons = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or (_grade_id(cell) in owned and _grade_id(cell) is not None):
            continue
        where = _grade_id(cell) or f"cell {index + 1}"
        for reason in sorted(_reasons(cell.source)):
            reasons.append(f"{where}: {reason}")
    return reasons


def _reasons(source: str) -> set[str]:
    found = set()
    if "/proc" in source:
        found.add("/proc (other processes' command lines and memory)")
    if "__edl" in source:
        found.add("the grader's own integrity code")
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return found  # it will fail as it is; nothing it does can run
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                top = module.split(".")[0]
                if top in SUSPICIOUS_MODULES:
                    imported[top] = SUSPICIOUS_MODULES[top]
                    if SUSPICIOUS_MODULES[top]:
                        found.add(SUSPICIOUS_MODULES[top])
        if isinstance(node, ast.ImportFrom):  # from sys import settrace
            for alias in node.names:
                if SUSPICIOUS_NAMES.get(alias.name):
                    found.add(SUSPICIOUS_NAMES[alias.name])
        # Attributes only (ip.events, sys.settrace): a variable of the student's may be called "events".
        name = node.attr if isinstance(node, ast.Attribute) else node.id if (
            isinstance(node, ast.Name) and node.id in NAMES_THAT_COUNT_BARE) else None
        if name in SUSPICIOUS_NAMES:
            if SUSPICIOUS_NAMES[name]:
                found.add(SUSPICIOUS_NAMES[name])
            elif name == "stack" and "inspect" in imported:
                found.add("frame introspection")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval", "compile") \
                and node.args and not isinstance(node.args[0], ast.Constant):
            found.add("code built at run time (exec/eval of a computed string)")
    return found


def _without_magics(source: str) -> str:
    # "%timeit f()" and "!ls" are IPython, not Python: blank them so the rest still parses.
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
