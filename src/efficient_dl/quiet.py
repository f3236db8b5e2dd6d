"""Keep TensorFlow, absl and Keras from writing routine chatter to stderr.

Why it matters: nbgrader scores a test cell 0 if the cell writes *anything* to stderr,
and TensorFlow logs there freely. Two layers of defence:

1. ``quiet_tensorflow()`` lowers every log level we can reach. The environment variables
   only work if they are set before TensorFlow is imported, which is why importing
   ``efficient_dl`` calls it first.
2. Some lines come from C++ before any Python setting can apply (absl's
   "All log messages before absl::InitializeLog()" notice, the oneDNN banner, the CUDA
   probe on a machine without a GPU). ``filtered_stderr()`` drops them where we know they
   come (importing TensorFlow, listing devices), and the autograder's ``IgnorePattern``
   drops them anywhere else. ``STDERR_NOISE_PATTERN`` is the one regular expression both use.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

# Lines on stderr that are logging noise rather than a failure: C++ log lines in absl's
# format (I1128 15:04:05.123 1234 file.cc:12] ...), absl's pre-init banner, Python-side
# TensorFlow/absl log records, Python warnings (a warning is advice, never a failure), and the
# two lines the TFLite converter and LiteRT print on every int8 conversion and interpreter.
STDERR_NOISE_PATTERN = (
    r"(?m)("
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|^[IWE]\d{4} [\d:. ]+\d+ [\w./-]+:\d+\]"
    r"|^(WARNING|INFO|ERROR):(tensorflow|absl)"
    r"|^[\w./\\: -]*:\d+: \w*Warning: "
    r"|^fully_quantize: \d+, inference_type: \d+"  # the TFLite converter's quantization settings
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate"  # LiteRT choosing its CPU kernels
    r")"
)


def quiet_tensorflow() -> None:
    """Silence TensorFlow's and Keras's routine logging. Safe to call more than once."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++: errors only
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # keep speed; its banner is dropped by the pattern
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(keras|tensorflow|tf_keras|absl|h5py)")
    try:  # absl is a TensorFlow dependency, so it is normally present.
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


@contextlib.contextmanager
def filtered_stderr():
    """Drop TensorFlow's C++ log lines written to stderr inside the block; keep everything else.

    C++ writes to file descriptor 2 directly, past Python's ``sys.stderr``, so the descriptor
    itself is pointed at a temporary file for the duration and the lines that are not noise
    are written back afterwards (a real error message is never lost, only delayed).
    """
    try:
        stderr_fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
    except (AttributeError, OSError, ValueError):
        stderr_fd = 2
    saved_fd = os.dup(stderr_fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), stderr_fd)
        try:
            yield
        finally:
            os.dup2(saved_fd, stderr_fd)
            os.close(saved_fd)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not re.search(STDERR_NOISE_PATTERN, line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
