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

What happened (dead kernels, timeouts, restored functions) is written as JSON to the file
named by ``report_path`` (outside the kernel's reach), for the grader's summary.
"""
from __future__ import annotations

import copy
import json
import os

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
    import builtins, importlib, json, math, sys, types
    import numpy, numpy.testing
    watched = {"builtins": builtins, "math": math, "numpy": numpy, "numpy.testing": numpy.testing}
    try:
        import efficient_dl
        for name in ("data", "measure", "baselines", "litert", "profile", "hardware", "quiet"):
            watched[f"efficient_dl.{name}"] = importlib.import_module(f"efficient_dl.{name}")
    except ImportError:
        pass
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
    for module_name, module in watched.items():
        wanted = names.get(module_name) or [n for n in vars(module) if not n.startswith("_")
                                            and callable(getattr(module, n))]
        for name in wanted:
            if hasattr(module, name):
                originals[(module_name, name)] = getattr(module, name)
    module_globals = {}

    def remember_globals(namespace):
        module_globals.clear()
        module_globals.update({k: v for k, v in namespace.items()
                               if isinstance(v, types.ModuleType) and not k.startswith("_")})

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

    holder = types.ModuleType("_edl_integrity")
    holder.remember_globals, holder.check_and_restore = remember_globals, check_and_restore
    sys.modules["_edl_integrity"] = holder

__edl_install_integrity()
del __edl_install_integrity
'''
_REMEMBER = "__import__('sys').modules['_edl_integrity'].remember_globals(globals())"
_CHECK = ("print('__edl_restored__' + __import__('json').dumps("
          "__import__('sys').modules['_edl_integrity'].check_and_restore(globals())))")


def _is_setup(cell) -> bool:
    return "setup" in cell.get("metadata", {}).get("tags", [])


class ResilientExecute(Execute):
    max_kernel_deaths = Integer(3, help="Restarts allowed per notebook before giving up.").tag(config=True)
    report_path = Unicode("", help="Where to write what happened, as JSON (empty: nowhere).").tag(config=True)
    workdir_owner = Integer(-1, help="uid that gets the notebook's folder, where the kernel runs as another "
                                     "user (-1: leave it)").tag(config=True)

    def preprocess(self, nb, resources, km=None):
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
        self._write_report(nb, gave_up=False)
        return result

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if not self._integrity_ready:
            self._run_hidden(_SNAPSHOT, index)
            self._integrity_ready = True
        if index in self.killed_cells:
            cell.outputs = [NotebookNode(output_type="error", ename=KILLED_ENAME, evalue=KILLED_MESSAGE,
                                         traceback=[f"{KILLED_ENAME}: {KILLED_MESSAGE}"])]
            return cell, resources
        if is_grade(cell):
            restored = self._restored_names(self._run_hidden(_CHECK, index))
            if restored:
                grade_id = cell.metadata["nbgrader"]["grade_id"]
                self.restored.setdefault(grade_id, []).extend(restored)
        self._running_index = index
        cell, resources = super().preprocess_cell(cell, resources, index)
        self._running_index = None
        if _is_setup(cell):
            self._run_hidden(_REMEMBER, index)
        return cell, resources

    def _run_hidden(self, source: str, index: int):
        probe = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[], execution_count=None)
        return self.execute_cell(probe, index, store_history=False)

    @staticmethod
    def _restored_names(probe) -> list[str]:
        for output in probe.get("outputs", []):
            text = output.get("text", "")
            if output.get("output_type") == "stream" and "__edl_restored__" in text:
                return json.loads(text.split("__edl_restored__", 1)[1].splitlines()[0])
        return []

    def _write_report(self, nb, gave_up: bool) -> None:
        if not self.report_path:
            return
        timed_out = [cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
                     for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                     and any(o.get("ename") == TIMEOUT_ENAME for o in cell.get("outputs", []))]
        killed = [nb.cells[i].metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
                  for i in sorted(self.killed_cells) if i < len(nb.cells)]
        report = {"kernel_died_in": killed, "timed_out_in": timed_out, "restored_before": self.restored,
                  "gave_up": gave_up}
        with open(self.report_path, "w") as handle:
            json.dump(report, handle)
