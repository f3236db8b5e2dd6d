"""nbgrader's Execute step, made to survive what students' notebooks do to it.

``ResilientExecute`` replaces ``nbgrader.preprocessors.Execute`` in the class grader's
autograde pipeline (same options, same outputs) and adds two things nbgrader lacks:

- **A kernel that dies is not the end.** ``os._exit()``, a segfault, the memory limit or
  the CPU-time limit kill the kernel; nbgrader would give up on the whole notebook. Here
  the cell that was running is marked with an error output (so its exercise fails, as it
  should), the kernel is restarted and the notebook is run again from the top without that
  cell, so the other exercises earn what they deserve. At most ``max_kernel_deaths`` times.
- **Tests use the real functions.** Before every grade cell the kernel checks that NumPy's
  comparison functions, ``math``, the built-ins the tests use, the course's helper
  package and the modules the setup cells imported are still the originals, and puts the
  originals back if a student's cell replaced them (``np.allclose = lambda *a: True``).
- **Output is capped in bytes as it arrives.** nbgrader's LimitOutput counts lines, after
  the fact: one 200 MB line is kept whole, in the grader's memory and in the feedback. Here
  each cell keeps at most ``max_output_bytes`` of printed output and displays; the rest is
  dropped on arrival with one notice. What decides a score is never dropped: errors,
  results, and the fact that a cell wrote to stderr (a stderr notice stays stderr).

What happened (dead kernels, timeouts, restored functions) is written as JSON to the file
named by ``report_path`` (outside the kernel's reach), for the grader's summary.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import time

from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from nbgrader.utils import is_grade
from traitlets import Integer, Unicode

KILLED_ENAME = "KernelDied"
KILLED_MESSAGE = ("the kernel died while running this cell (os._exit, a crash, or the memory or CPU-time limit); "
                  "the grader restarted it and ran the rest of the notebook without this cell")
TIMEOUT_ENAME = "CellTimeoutError"

# Runs in the kernel before the first cell: keeps the originals where a student would have
# to look for them on purpose, and defines the check that runs before each grade cell.
_SNAPSHOT = r'''
def __edl_install_integrity():
    import builtins, json, math, sys, types
    secret = SECRET  # noqa: F821 -- set just before, deleted just after: only this closure keeps it
    import numpy, numpy.testing
    watched = {}
    names = {
        "builtins": ("isinstance", "len", "abs", "all", "any", "float", "int", "sum", "max", "min", "round",
                     "print", "range", "zip", "sorted", "set", "type", "getattr", "hasattr", "repr", "str"),
        "math": ("isclose", "isfinite", "prod"),
        "numpy": ("allclose", "isclose", "array_equal", "array_equiv", "asarray", "array", "all", "any", "abs",
                  "max", "min", "sum", "mean", "argmax", "isfinite", "shape", "prod", "issubdtype"),
        "numpy.testing": ("assert_allclose", "assert_array_equal", "assert_array_almost_equal", "assert_equal",
                          "assert_almost_equal"),
    }
    originals = {}

    def watch(module_name, module):
        watched[module_name] = module
        wanted = names.get(module_name) or [n for n in vars(module) if not n.startswith("_")
                                            and callable(getattr(module, n))]
        for name in wanted:
            if hasattr(module, name):
                originals[(module_name, name)] = getattr(module, name)

    for module_name, module in {"builtins": builtins, "math": math, "numpy": numpy,
                                "numpy.testing": numpy.testing}.items():
        watch(module_name, module)
    module_globals = {}


    def check_and_restore(namespace):
        restored = []
        for (module_name, name), value in originals.items():
            module = watched[module_name]
            if getattr(module, name, None) is not value:
                setattr(module, name, value)
                restored.append(f"{module_name}.{name}")
        for name, module in module_globals.items():
            if namespace.get(name) is not module:
                namespace[name] = module
                restored.append(name)
        return restored

    # IPython's own machinery: a transformer or a run_cell wrapper can turn every test into a no-op.
    shell = get_ipython()  # noqa: F821 -- the kernel's shell, a built-in there
    lists = {name: list(getattr(shell, name)) for name in
             ("input_transformers_cleanup", "input_transformers_post", "ast_transformers")}
    methods = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "should_run_async", "transform_cell",
               "showtraceback", "_showtraceback", "set_custom_exc")
    class_methods = {name: getattr(type(shell), name) for name in methods if hasattr(type(shell), name)}
    instance_methods = {name: vars(shell)[name] for name in methods if name in vars(shell)}  # ipykernel sets some
    plain = {"custom_exceptions": shell.custom_exceptions, "CustomTB": shell.CustomTB}
    callbacks = {event: list(handlers) for event, handlers in shell.events.callbacks.items()}
    allowed_callbacks = {}
    trace, profile = sys.gettrace(), sys.getprofile()

    def restore_machinery():
        restored = []
        for name, saved in lists.items():
            if getattr(shell, name) != saved:
                getattr(shell, name)[:] = saved
                restored.append(f"IPython {name}")
        for name in methods:
            if name in vars(shell) and vars(shell)[name] is not instance_methods.get(name, vars(shell)[name]):
                setattr(shell, name, instance_methods[name])
                restored.append(f"IPython {name}")
            elif name in vars(shell) and name not in instance_methods:
                delattr(shell, name)
                restored.append(f"IPython {name}")
        for name, method in class_methods.items():
            if getattr(type(shell), name) is not method:
                setattr(type(shell), name, method)
                restored.append(f"IPython {name}")
        for name, value in plain.items():
            if getattr(shell, name) is not value:
                setattr(shell, name, value)
                restored.append(f"IPython {name}")
        def same(handler, known):
            # Identity, or the same method of the same object (a bound method is made anew on
            # each access); never ==, which a student's object could answer as it likes.
            if handler is known:
                return True
            return (isinstance(handler, types.MethodType) and isinstance(known, types.MethodType)
                    and handler.__self__ is known.__self__ and handler.__func__ is known.__func__)

        for event, handlers in shell.events.callbacks.items():
            allowed = callbacks.get(event, []) + allowed_callbacks.get(event, [])
            if any(not any(same(handler, known) for known in allowed) for handler in handlers):
                handlers[:] = [handler for handler in handlers if any(same(handler, known) for known in allowed)]
                restored.append(f"IPython {event} callbacks")
        if sys.gettrace() is not trace:
            sys.settrace(trace)
            restored.append("sys.settrace")
        if sys.getprofile() is not profile:
            sys.setprofile(profile)
            restored.append("sys.setprofile")
        return restored

    def remember_globals(namespace):
        # After each setup cell (the grader's, before any student code): the modules it imported,
        # the course's helper modules as they are now, and the IPython callbacks it registered
        # (pyplot's). Taken here, not before the first cell: a chapter without TensorFlow does
        # not pay for importing it, and none pays for importing pyplot twice.
        module_globals.clear()
        module_globals.update({k: v for k, v in namespace.items()
                               if isinstance(v, types.ModuleType) and not k.startswith("_")})
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("efficient_dl.") and module_name not in watched and module is not None:
                watch(module_name, module)
        callbacks.update({event: list(handlers) for event, handlers in shell.events.callbacks.items()})
        # pyplot and the inline backend register two more when a cell first plots: the very
        # functions, as the setup left them, not ones that merely say they come from there.
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            try:
                from matplotlib_inline.backend_inline import flush_figures
                allowed_callbacks["post_execute"] = [flush_figures, pyplot._draw_all_if_interactive]
            except (ImportError, AttributeError):
                pass

    def checked(namespace, token):
        import hashlib
        restored = restore_machinery() + check_and_restore(namespace)
        proof = hashlib.sha256((secret + token).encode()).hexdigest()
        return json.dumps({"restored": restored, "proof": proof})

    holder = types.ModuleType("_edl_integrity")
    holder.remember_globals, holder.checked = remember_globals, checked
    sys.modules["_edl_integrity"] = holder

__edl_install_integrity()
del __edl_install_integrity
'''
UNVERIFIED_ENAME = "IntegrityError"
UNVERIFIED_MESSAGE = ("the grader could not verify the kernel before this test (its machinery was changed): "
                      "the test counts as failed and the submission is flagged for review")
_REMEMBER = "__import__('sys').modules['_edl_integrity'].remember_globals(globals())"
# Before each grade cell: restore, and answer a fresh token with a proof only the snapshot's
# secret can give. A kernel whose machinery was changed (a transformer that empties or fakes
# the grader's own cells) cannot answer, and its test is failed and flagged.
_CHECK = "print('__edl_restored__' + __import__('sys').modules['_edl_integrity'].checked(globals(), {token!r}))"


def _is_setup(cell) -> bool:
    return "setup" in cell.get("metadata", {}).get("tags", [])


class ResilientExecute(Execute):
    max_kernel_deaths = Integer(3, help="Restarts allowed per notebook before giving up.").tag(config=True)
    report_path = Unicode("", help="Where to write what happened, as JSON (empty: nowhere).").tag(config=True)
    workdir_owner = Integer(-1, help="uid that gets the notebook's folder, where the kernel runs as another "
                                     "user (-1: leave it)").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="Bytes of printed output and displays kept per cell "
                                               "(-1: no limit)").tag(config=True)

    def preprocess(self, nb, resources, km=None):
        self.started = time.perf_counter()  # the kernel's run: start, every cell and check, shutdown
        pristine = copy.deepcopy(nb)
        workdir = (resources or {}).get("metadata", {}).get("path")
        if self.workdir_owner >= 0 and workdir:
            # nbgrader (root) just made this folder; the sandboxed kernel must be able to write in it.
            for folder, _, files in os.walk(workdir):
                os.chown(folder, self.workdir_owner, self.workdir_owner)
                for name in files:
                    os.chown(os.path.join(folder, name), self.workdir_owner, self.workdir_owner)
        self.killed_cells: set[int] = set()
        self.restored: dict[str, list[str]] = {}
        self.output_bytes: dict[int, int] = {}
        self.unverified: list[str] = []
        self.truncated: set[tuple[int, str]] = set()
        self.cell_seconds = 0.0  # the notebook's own cells, every run of them: what grading cannot avoid
        while True:
            self._running_index = None
            self._integrity_ready = False
            try:
                result = super().preprocess(nb, resources, km)
                break
            except DeadKernelError:
                if self._running_index is None or len(self.killed_cells) >= self.max_kernel_deaths:
                    self._write_report(nb, gave_up=True)
                    raise
                self.log.warning("Kernel died in cell %d; restarting without it", self._running_index)
                self.killed_cells.add(self._running_index)
                nb.cells = copy.deepcopy(pristine.cells)
                self.restored = {}
                self.unverified = []
        if self.workdir_owner >= 0 and workdir:
            # nbgrader (root) writes the graded notebook here next: first stop whatever the student
            # left running, then take the folder back, so that root follows no link they planted.
            from autograder import sandbox

            sandbox.kill_user_processes(self.workdir_owner)
            self.reclaimed = sandbox.reclaim(workdir)
        self._write_report(nb, gave_up=False)
        return result

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if not self._integrity_ready:
            self._secret = secrets.token_hex(16)
            self._run_hidden(f"SECRET = {self._secret!r}\n" + _SNAPSHOT + "del SECRET\n", index)
            self._integrity_ready = True
        if index in self.killed_cells:
            cell.outputs = [NotebookNode(output_type="error", ename=KILLED_ENAME, evalue=KILLED_MESSAGE,
                                         traceback=[f"{KILLED_ENAME}: {KILLED_MESSAGE}"])]
            return cell, resources
        verified = True
        if is_grade(cell):
            token = secrets.token_hex(8)
            answer = self._answer(self._run_hidden(_CHECK.format(token=token), index))
            grade_id = cell.metadata["nbgrader"]["grade_id"]
            expected = hashlib.sha256((self._secret + token).encode()).hexdigest()
            verified = answer is not None and answer.get("proof") == expected
            if not verified:
                self.unverified.append(grade_id)
            elif answer["restored"]:
                self.restored.setdefault(grade_id, []).extend(answer["restored"])
        self._running_index = index
        started = time.perf_counter()
        cell, resources = super().preprocess_cell(cell, resources, index)
        self.cell_seconds += time.perf_counter() - started
        self._running_index = None
        if not verified:
            cell.outputs = [NotebookNode(output_type="error", ename=UNVERIFIED_ENAME, evalue=UNVERIFIED_MESSAGE,
                                         traceback=[f"{UNVERIFIED_ENAME}: {UNVERIFIED_MESSAGE}"])]
        if _is_setup(cell):
            self._run_hidden(_REMEMBER, index)
        return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        kind = msg.get("msg_type")
        if self.max_output_bytes < 0 or kind not in ("stream", "display_data", "update_display_data"):
            return super().output(outs, msg, display_id, cell_index)  # errors and results always count
        size = len(content.get("text", "")) + sum(len(str(value)) for value in content.get("data", {}).values())
        used = self.output_bytes.get(cell_index, 0)
        if used + size <= self.max_output_bytes:
            self.output_bytes[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)
        stream = content.get("name", "stdout") if kind == "stream" else "stdout"
        if (cell_index, stream) not in self.truncated:
            self.truncated.add((cell_index, stream))
            outs.append(NotebookNode(output_type="stream", name=stream,
                                     text=f"\n[output over {self.max_output_bytes:,} bytes: the rest was dropped]\n"))
        return None

    def _run_hidden(self, source: str, index: int):
        probe = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[], execution_count=None)
        return self.execute_cell(probe, index, store_history=False)

    @staticmethod
    def _answer(probe) -> dict | None:
        for output in probe.get("outputs", []):
            text = output.get("text", "")
            if output.get("output_type") == "stream" and "__edl_restored__" in text:
                try:
                    return json.loads(text.split("__edl_restored__", 1)[1].splitlines()[0])
                except (ValueError, IndexError):
                    return None
        return None

    def _write_report(self, nb, gave_up: bool) -> None:
        if not self.report_path:
            return
        timed_out = [cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
                     for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                     and any(o.get("ename") == TIMEOUT_ENAME for o in cell.get("outputs", []))]
        killed = [nb.cells[i].metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
                  for i in sorted(self.killed_cells) if i < len(nb.cells)]
        truncated = sorted({nb.cells[i].metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
                            for i, _ in self.truncated if i < len(nb.cells)})
        report = {"kernel_died_in": killed, "timed_out_in": timed_out, "restored_before": self.restored,
                  "gave_up": gave_up, "removed_from_workdir": getattr(self, "reclaimed", []),
                  "output_truncated_in": truncated, "unverified_before": self.unverified,
                  "cell_seconds": round(self.cell_seconds, 3),
                  "kernel_seconds": round(time.perf_counter() - self.started, 3)}
        with open(self.report_path, "w") as handle:
            json.dump(report, handle)
