"""Every notebook opens in Colab: its badge, its install cell, and what that cell does on Colab.

The cell is run for real, in a fresh interpreter started with ``-S`` (no site-packages, so
``efficient_dl`` is not importable, as on a fresh Colab runtime), next to a fake ``google.colab``
and a fake ``pip`` that records its arguments and "installs" by rewriting a fake distribution's
version. Nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from autograder import colab, integrity, pipeline
from notebook_grading import grade_id, read

REPOSITORY, BRANCH = colab.published()
CELL = colab.install_cell_source(REPOSITORY, BRANCH)
NOTEBOOKS = [pytest.param(folder, chapter, id=f"{folder.name}-{chapter}")
             for folder in (pipeline.SOLUTIONS, pipeline.COURSE) for chapter in pipeline.chapters()]
FIX = "run `make colab-cells CHAPTER={chapter}`"


# --- every notebook ---------------------------------------------------------------------------

@pytest.mark.parametrize("folder, chapter", NOTEBOOKS)
def test_every_notebook_has_one_badge_to_its_own_student_notebook(folder, chapter):
    notebook = read(pipeline.notebook_path(folder, chapter))
    badges = [(index, line) for index, cell in enumerate(notebook.cells) for line in cell.source.splitlines()
              if "colab-badge.svg" in line or "colab.research.google.com/github" in line]
    expected = colab.badge(chapter, REPOSITORY, BRANCH)
    assert badges == [(0, expected)], f"{chapter}: want one badge, under the title, to {expected}; {FIX.format(chapter=chapter)}"
    assert notebook.cells[0].source.startswith("# ")
    assert f"/course/{chapter}/{chapter}.ipynb" in expected and f"/{REPOSITORY}/blob/{BRANCH}/" in expected


@pytest.mark.parametrize("folder, chapter", NOTEBOOKS)
def test_every_notebook_has_the_install_cell_before_it_imports_the_helper_package(folder, chapter):
    cells = read(pipeline.notebook_path(folder, chapter)).cells
    installs = [index for index, cell in enumerate(cells) if grade_id(cell) == colab.INSTALL_CELL_ID]
    assert len(installs) == 1, f"{chapter}: {len(installs)} install cells; {FIX.format(chapter=chapter)}"
    cell = cells[installs[0]]
    assert cell.cell_type == "code" and cell.source == CELL, f"{chapter}: install cell out of date; {FIX.format(chapter=chapter)}"
    meta = cell.metadata["nbgrader"]
    assert meta["locked"] and not meta["grade"] and not meta["solution"]
    assert "setup" not in cell.metadata.get("tags", [])  # setup cells start by importing efficient_dl
    first_import = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "import efficient_dl" in c.source)
    assert installs[0] == 1 < first_import


@pytest.mark.parametrize("chapter", pipeline.chapters())
def test_the_install_cell_is_released_locked_and_never_flagged(chapter):
    """nbgrader releases it read-only; the class grader skips it (it owns it), and its source
    gives the static checks nothing to say but the ``sys.modules`` it reads to decide."""
    release = read(pipeline.notebook_path(pipeline.COURSE, chapter))
    cell = next(c for c in release.cells if grade_id(c) == colab.INSTALL_CELL_ID)
    assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False
    assert integrity.suspicious_code(release, release) == []
    assert integrity._reasons(CELL) <= {integrity.SUSPICIOUS_NAMES["modules"]}


def test_requirements_for_colab_are_requirements_txt_without_jupyter_grading_and_tests():
    root = pipeline.REPOSITORY
    requirements = (root / "requirements.txt").read_text()
    assert (root / colab.COLAB_REQUIREMENTS).read_text() == colab.colab_requirements(requirements), (
        "requirements-colab.txt is stale: run `make colab-cells`")
    pins = {line.split("==")[0] for line in colab.colab_requirements(requirements).splitlines() if "==" in line}
    assert {"tensorflow", "keras", "numpy", "tf-keras", "ai-edge-litert"} <= pins
    assert not pins & {"jupyterlab", "ipykernel", "nbgrader", "pytest"}


# --- the script ------------------------------------------------------------------------------

@pytest.fixture
def scratch(tmp_path):
    """A repository copy with one chapter (ch08: random cell ids) as it was before the badge."""
    chapter = "ch08_pruning"
    notebook = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    notebook.cells = [c for c in notebook.cells if grade_id(c) != colab.INSTALL_CELL_ID]
    notebook.cells[0].source = colab.BADGE_LINE.sub("", notebook.cells[0].source).replace("\n\n\n\n", "\n\n")
    path = pipeline.notebook_path(tmp_path / "solutions", chapter)
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, str(path))
    (tmp_path / "requirements.txt").write_text((pipeline.REPOSITORY / "requirements.txt").read_text())
    (tmp_path / "pyproject.toml").write_text((pipeline.REPOSITORY / "pyproject.toml").read_text())
    return tmp_path, chapter, path


def test_applying_twice_changes_nothing_the_second_time(scratch):
    root, chapter, path = scratch
    assert path in colab.apply([chapter], root)
    once = path.read_text()
    assert colab.apply([chapter], root) == []
    assert path.read_text() == once
    applied = read(path)
    assert applied.cells[0].source.splitlines()[:3] == [applied.cells[0].source.splitlines()[0], "",
                                                          colab.badge(chapter, REPOSITORY, BRANCH)]
    committed = read(pipeline.notebook_path(pipeline.SOLUTIONS, chapter))
    assert nbformat.writes(applied) == nbformat.writes(committed), "the script would not write what is committed"


def test_a_new_repository_setting_rewrites_every_badge_and_cell_and_keeps_their_ids(scratch):
    root, chapter, path = scratch
    colab.apply([chapter], root)
    ids = [cell.id for cell in read(path).cells]
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'repository = "{REPOSITORY}"', 'repository = "a-teacher/our-fork"')
                         .replace(f'branch = "{BRANCH}"', 'branch = "spring-2027"'))
    assert colab.published(pyproject) == ("a-teacher/our-fork", "spring-2027")
    assert path in colab.apply([chapter], root)
    notebook = read(path)
    assert [cell.id for cell in notebook.cells] == ids
    text = path.read_text()
    assert REPOSITORY not in text and text.count("a-teacher/our-fork/blob/spring-2027/course/ch08_pruning/") == 1
    assert notebook.cells[1].source == colab.install_cell_source("a-teacher/our-fork", "spring-2027")


def test_a_malformed_setting_is_refused_by_name(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.efficient-dl]\nrepository = "not a repository; rm -rf"\n')
    with pytest.raises(colab.ColabSettingError, match=r"owner/name"):
        colab.published(tmp_path / "pyproject.toml")


# --- the cell, run -------------------------------------------------------------------------------

FAKE_PIP = '''
import json, os, pathlib, sys
pathlib.Path(os.environ["FAKE_PIP_LOG"]).write_text(json.dumps(sys.argv[1:]))
action = os.environ.get("FAKE_PIP_DOES", "")
if action == "fail":
    sys.exit("ERROR: Could not open requirements file: <urlopen error [Errno -3] Temporary failure in name resolution>")
for upgrade in filter(None, action.split(",")):  # name=version: what pip would install
    name, version = upgrade.split("=")
    info = pathlib.Path(os.environ["FAKE_SITE"]) / f"{name}-0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n")
    (info / "top_level.txt").write_text(name + "\\n")
'''
HARNESS = '''
import importlib, os, sys
for name in filter(None, os.environ.get("ALREADY_IMPORTED", "").split(",")):
    importlib.import_module(name)
exec(compile(open(sys.argv[1]).read(), "colab_install", "exec"), {"__name__": "__main__"})
'''


@pytest.fixture
def runtime(tmp_path):
    """run(colab=..., already_imported=..., pip_does=...) -> (stdout, pip's arguments or None)."""
    site = tmp_path / "site"
    for package, body in {"google": "", "google/colab": "", "pip": "", "numpy": '__version__ = "2.0.2"',
                          "IPython": ""}.items():
        (site / package).mkdir(parents=True, exist_ok=True)
        (site / package / "__init__.py").write_text(body)
    (site / "pip" / "__main__.py").write_text(FAKE_PIP)
    for name, version in {"numpy": "2.0.2", "ipython": "9.0.0"}.items():  # what Colab ships
        info = site / f"{name}-0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "top_level.txt").write_text("IPython\n" if name == "ipython" else f"{name}\n")
    (tmp_path / "cell.py").write_text(CELL)
    (tmp_path / "harness.py").write_text(HARNESS)
    log = tmp_path / "pip-arguments.json"

    def run(colab_module=True, colab_variable=False, already_imported=("numpy",), pip_does="", helper_installed=False):
        if helper_installed:
            (site / "efficient_dl").mkdir(exist_ok=True)
            (site / "efficient_dl" / "__init__.py").write_text("")
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("COLAB_RELEASE_TAG", "PYTHONPATH", "PYTHONSTARTUP")}
        environment.update(PYTHONPATH=str(site), FAKE_PIP_LOG=str(log), FAKE_PIP_DOES=pip_does, FAKE_SITE=str(site),
                           ALREADY_IMPORTED=",".join([*already_imported, *(["google.colab"] if colab_module else [])]))
        if colab_variable:
            environment["COLAB_RELEASE_TAG"] = "release-colab-external_20260901-060048_RC00"
        completed = subprocess.run([sys.executable, "-S", str(tmp_path / "harness.py"), str(tmp_path / "cell.py")],
                                   env=environment, capture_output=True, text=True, timeout=60)
        assert completed.returncode == 0 and completed.stderr == "", completed.stderr
        return completed.stdout, json.loads(log.read_text()) if log.exists() else None

    return run


def test_outside_colab_the_cell_installs_nothing_and_prints_nothing(runtime):
    stdout, pip = runtime(colab_module=False)
    assert pip is None and stdout == ""


def test_outside_colab_in_this_environment_the_cell_does_nothing(capsys, monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    namespace = {}
    exec(compile(CELL, "colab_install", "exec"), namespace)
    assert capsys.readouterr() == ("", "")
    assert set(namespace) - {"__builtins__"} == {"install_the_course_on_colab"}  # one name left behind


def test_on_colab_it_installs_the_package_and_the_colab_pins_from_the_configured_branch(runtime):
    stdout, pip = runtime(pip_does="efficient-dl=0.1.0")
    assert pip == ["install", "--quiet", "--ignore-requires-python",
                   "-r", f"https://raw.githubusercontent.com/{REPOSITORY}/{BRANCH}/requirements-colab.txt",
                   f"efficient-dl @ git+https://github.com/{REPOSITORY}.git@{BRANCH}"]
    assert stdout.splitlines()[0].startswith(f"Installing the course from github.com/{REPOSITORY}")


@pytest.mark.parametrize("colab_module, colab_variable", [(True, False), (False, True)], ids=["module", "variable"])
def test_on_colab_with_nothing_loaded_changed_it_says_ready(runtime, colab_module, colab_variable):
    # tensorflow is new (not loaded before), numpy keeps its version: nothing to restart.
    stdout, pip = runtime(colab_module=colab_module, colab_variable=colab_variable,
                          pip_does="efficient-dl=0.1.0,tensorflow=2.21.0")
    assert pip is not None
    assert stdout.splitlines()[-1] == "The course is installed and ready: run the next cells."
    assert "restart" not in stdout.lower()


def test_on_colab_a_loaded_module_whose_version_changed_asks_for_a_restart(runtime):
    stdout, _ = runtime(pip_does="efficient-dl=0.1.0,numpy=2.4.6")
    last = stdout.splitlines()[-1]
    assert last.startswith("Installed, but Colab had already loaded other versions of numpy: restart the runtime")
    assert "Runtime → Restart session" in last and "from the top" in last and last.count(". ") == 0


def test_on_colab_an_upgraded_package_nobody_imported_needs_no_restart(runtime):
    stdout, _ = runtime(already_imported=(), pip_does="numpy=2.4.6")
    assert stdout.splitlines()[-1].startswith("The course is installed and ready")


def test_on_colab_a_failed_install_is_explained_in_one_sentence(runtime):
    stdout, pip = runtime(pip_does="fail")
    assert pip is not None
    lines = stdout.splitlines()
    assert len(lines) == 2 and "Traceback" not in stdout
    assert lines[1].startswith("Could not install the course (ERROR: Could not open requirements file")
    assert lines[1].endswith("connect the runtime to the internet, then run this cell again.")


def test_on_colab_with_the_course_installed_it_installs_nothing_and_says_so_in_one_line(runtime):
    stdout, pip = runtime(helper_installed=True)
    assert pip is None and stdout == "The course is installed: run the next cells.\n"

