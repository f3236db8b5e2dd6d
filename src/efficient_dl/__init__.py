"""efficient_dl: the plumbing the course's notebooks share.

Data (``data``), hardware (``hardware``), measurement (``measure``), run profiles (``profile``)
and the baseline models later chapters start from (``baselines``). What a student must learn
to write stays in the notebooks.

Import this package before TensorFlow: it quiets TensorFlow's logging, which only works
before TensorFlow is loaded (see ``efficient_dl.quiet``).
"""
from efficient_dl.quiet import quiet_tensorflow

quiet_tensorflow()

# None of these imports TensorFlow or Keras at import time; they do so inside functions.
from efficient_dl import data, hardware, measure, profile  # noqa: E402

__all__ = ["data", "hardware", "measure", "profile", "quiet_tensorflow"]
__version__ = "0.1.0"
