# nbgrader reads the configuration from the folder it is started in; the real one lives in
# autograder/ (so that `nbgrader ...` and JupyterLab's Formgrader both work from here).
from pathlib import Path

load_subconfig(str(Path(__file__).resolve().parent / "autograder" / "nbgrader_config.py"))  # noqa: F821
