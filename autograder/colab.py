"""Every notebook opens in Colab: a badge under its title, and a cell that installs the course there.

    python -m autograder.colab ch06_x ...        # or: make colab-cells CHAPTER=ch06_x
    python -m autograder.colab                   # every chapter of solutions/

writes both into the chapters' solutions/ notebooks, from the one setting that names where the
course is published (``[tool.efficient-dl]`` in pyproject.toml), and rewrites
requirements-colab.txt from requirements.txt; ``make colab-cells`` then regenerates course/.
Running it again changes nothing; after the setting changes, it rewrites every badge and cell.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

import nbformat

from autograder.paths import REPOSITORY, SOLUTIONS

INSTALL_CELL_ID = "colab_install"  # the install cell's grade_id
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
                        r"\([^)\s]*\)$", re.M)
COLAB_REQUIREMENTS = "requirements-colab.txt"
# requirements.txt's packages that Colab must not get: it runs its own notebook server and kernel
# (pinning ipykernel there would replace the one Colab's frontend talks to), and nothing is graded
# or tested on Colab. Everything else, a new package included, is installed with its pin.
NOT_ON_COLAB = {"jupyterlab", "ipykernel", "nbgrader", "nbclient", "nbformat", "pytest", "pytest-xdist",
                "pytest-timeout"}

# The cell runs before the helper package exists, so it is plain Python that needs nothing but the
# standard library (no `!pip`: the tests and the grader parse cells with `ast`).
INSTALL_CELL = '''\
# On Google Colab only: install the course's helper package and the versions it is pinned to.
# Anywhere else (make lab, a JupyterHub, the grader) this cell does nothing.
def install_the_course_on_colab(repository=__REPOSITORY__, branch=__BRANCH__):
    import importlib.metadata as metadata, importlib.util, os, subprocess, sys

    if "google.colab" not in sys.modules and "COLAB_RELEASE_TAG" not in os.environ:
        return  # not Colab: `make lab` or the JupyterHub image installed everything already
    if importlib.util.find_spec("efficient_dl") is not None:
        return print("The course is installed: run the next cells.")
    print(f"Installing the course from github.com/{repository} (a few minutes)...")
    before = {d.name: d.version for d in metadata.distributions()}
    # requirements.txt's pins less Jupyter, nbgrader and pytest (Colab has its own Jupyter), from the
    # package's own branch; they are pinned for Python 3.11, and their wheels exist for Colab's too.
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--ignore-requires-python", "-r",
                          f"https://raw.githubusercontent.com/{repository}/{branch}/requirements-colab.txt",
                          f"efficient-dl @ git+https://github.com/{repository}.git@{branch}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        why = (pip.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
        return print(f"Could not install the course ({why}): connect the runtime to the internet, then run this cell again.")
    importlib.invalidate_caches()
    # What Colab had already imported keeps its old version in memory until the runtime restarts.
    loaded = {d for name, ds in metadata.packages_distributions().items() if name in sys.modules for d in ds}
    changed = sorted({d.name for d in metadata.distributions() if d.name in loaded and before.get(d.name) != d.version})
    if changed:
        return print(f"Installed, but Colab had already loaded other versions of {', '.join(changed)}: restart the "
                     "runtime (Runtime → Restart session), then run this notebook again from the top.")
    print("The course is installed and ready: run the next cells.")


install_the_course_on_colab()'''

_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_BRANCH = re.compile(r"^[A-Za-z0-9_./-]+$")


class ColabSettingError(ValueError):
    pass


def published(pyproject: Path = REPOSITORY / "pyproject.toml") -> tuple[str, str]:
    """(owner/name, branch) of the course on GitHub: ``[tool.efficient-dl]`` in pyproject.toml."""
    table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("efficient-dl", {})
    repository, branch = table.get("repository"), table.get("branch", "main")
    if not isinstance(repository, str) or not _NAME.match(repository):
        raise ColabSettingError(f"{pyproject}: [tool.efficient-dl] repository must be \"owner/name\" on GitHub, "
                                f"not {repository!r}")
    if not isinstance(branch, str) or not _BRANCH.match(branch):
        raise ColabSettingError(f"{pyproject}: [tool.efficient-dl] branch {branch!r} is not a branch name")
    return repository, branch


def notebook_url(chapter: str, repository: str, branch: str) -> str:
    """Colab's address of the student notebook (course/, never solutions/) on GitHub."""
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/course/{chapter}/{chapter}.ipynb"


def badge(chapter: str, repository: str, branch: str) -> str:
    return BADGE.format(url=notebook_url(chapter, repository, branch))


def install_cell_source(repository: str, branch: str) -> str:
    return INSTALL_CELL.replace("__REPOSITORY__", json.dumps(repository)).replace("__BRANCH__", json.dumps(branch))


def _imports_the_helper_package(cell) -> bool:
    return (cell.cell_type == "code" and "setup" in cell.get("metadata", {}).get("tags", [])
            and re.search(r"^\s*(import|from) efficient_dl\b", cell.source, re.M) is not None)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def with_colab(notebook, chapter: str, repository: str, branch: str):
    """The notebook with the badge under its title (first markdown cell) and the install cell right
    after that cell, both as the setting says; an up-to-date notebook comes back unchanged."""
    title = notebook.cells[0]
    if title.cell_type != "markdown" or not title.source.startswith("# "):
        raise ValueError(f"{chapter}: the first cell must be the markdown title (# Chapter ...)")
    line = badge(chapter, repository, branch)
    if BADGE_LINE.search(title.source):
        title.source = BADGE_LINE.sub(lambda _: line, title.source, count=1)
    else:
        heading, _, rest = title.source.partition("\n")
        title.source = f"{heading}\n\n{line}\n{rest}" if rest else f"{heading}\n\n{line}"

    source = install_cell_source(repository, branch)
    existing = [cell for cell in notebook.cells if _grade_id(cell) == INSTALL_CELL_ID]
    if existing:
        existing[0].source = source
        return notebook
    setup = next((i for i, cell in enumerate(notebook.cells) if _imports_the_helper_package(cell)), None)
    if setup is None:
        raise ValueError(f"{chapter}: no setup cell imports efficient_dl; the install cell goes before it")
    # A stable id that looks random (the newer chapters' convention): the same on every machine and
    # rerun, so that adding the cell changes one cell in the diff.
    cell_id = hashlib.sha1(f"{chapter}/{INSTALL_CELL_ID}".encode()).hexdigest()[:8]
    assert cell_id not in {cell.get("id") for cell in notebook.cells}, f"{chapter}: cell id {cell_id} taken"
    cell = nbformat.v4.new_code_cell(source, id=cell_id, metadata={"nbgrader": {
        "grade": False, "grade_id": INSTALL_CELL_ID, "locked": True, "schema_version": 3, "solution": False,
        "task": False}})
    notebook.cells.insert(1, cell)  # setup > 0: the title comes first
    return notebook


def colab_requirements(requirements: str) -> str:
    """requirements-colab.txt: requirements.txt's pinned lines, less NOT_ON_COLAB."""
    kept = [line for line in requirements.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
            and re.split(r"[=<>!~\[;\s]", line.strip(), maxsplit=1)[0].lower() not in NOT_ON_COLAB]
    header = ["# What a notebook needs on Google Colab, with requirements.txt's pins; its Colab cell installs it.",
              "# Generated by `make colab-cells` (autograder/colab.py) from requirements.txt: edit that file instead.",
              f"# Left out: {', '.join(sorted(NOT_ON_COLAB))} (Colab brings its own Jupyter; nothing is graded there)."]
    return "\n".join(header + kept) + "\n"


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def apply(chapters: list[str], root: Path = REPOSITORY) -> list[Path]:
    """Write the badge and the install cell into each chapter's solutions/ notebook and refresh
    requirements-colab.txt; the paths that changed."""
    repository, branch = published(root / "pyproject.toml")
    changed = []
    for chapter in chapters:
        path = root / "solutions" / chapter / f"{chapter}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"no notebook {path}")
        notebook = nbformat.read(str(path), as_version=4)
        if _write_if_changed(path, nbformat.writes(with_colab(notebook, chapter, repository, branch)) + "\n"):
            changed.append(path)
    requirements = root / COLAB_REQUIREMENTS
    if _write_if_changed(requirements, colab_requirements((root / "requirements.txt").read_text())):
        changed.append(requirements)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapters to update (default: every chapter of solutions/)")
    arguments = parser.parse_args(argv)
    chapters = arguments.chapters or sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())
    try:
        changed = apply(chapters)
    except (ColabSettingError, FileNotFoundError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {path.relative_to(REPOSITORY)}")
    print(f"{len(chapters)} chapter(s) open in Colab from github.com/{'/'.join(published())}"
          + ("" if changed else " (nothing to change)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
