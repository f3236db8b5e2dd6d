"""Run profiles: how big a notebook's data and training runs are.

A student gets the ``full`` profile: the real sizes the prose talks about. Tests, CI and
nbgrader get ``fast``: the same code on smaller data and fewer repeats, so a whole class
can be graded on a laptop. Every notebook reads its sizes from ``current()`` in one
visible cell, so nothing about the profile is hidden from the student.

Sizes are grouped by data set (``PROFILE.mnist``, ``PROFILE.imdb``), not by chapter: the
chapters that compress a model (07-10) fine-tune it on the data set it was trained on.

Selection, first match wins:
1. ``EFFICIENT_DL_PROFILE=fast`` or ``=full`` in the environment;
2. ``fast`` while nbgrader executes the notebook (it sets ``NBGRADER_EXECUTION``);
3. ``full``.
"""
from __future__ import annotations

import dataclasses
import os

PROFILE_ENV = "EFFICIENT_DL_PROFILE"


@dataclasses.dataclass(frozen=True)
class DataSizes:
    """How much of one data set a run uses, and for how long it trains on it."""

    # Training a model from scratch: passes over the data, and a cap on training examples
    # (None: all of them).
    epochs: int
    max_train_examples: int | None
    # Fine-tuning a trained model (quantization-aware training, pruning, distillation).
    fine_tune_epochs: int
    # Examples of the test split that compressed models are scored on (None: all of them).
    max_eval_examples: int | None

    def describe(self) -> str:
        def count(cap):
            return "all" if cap is None else f"{cap:,}"

        return (f"{self.epochs} epoch(s) on {count(self.max_train_examples)} training examples, "
                f"fine-tuning {self.fine_tune_epochs} epoch(s), scored on {count(self.max_eval_examples)} test examples")


@dataclasses.dataclass(frozen=True)
class RunProfile:
    name: str
    mnist: DataSizes  # the digits: the CNN of chapters 02-03 and its compressed versions
    imdb: DataSizes  # the reviews: the RNN of chapter 05 and its compressed versions
    # Latency measurements: untimed calls first, then timed ones.
    latency_warmup: int
    latency_repeats: int
    # Batch sizes for throughput sweeps.
    batch_sizes: tuple[int, ...]

    def describe(self) -> str:
        return (
            f"Run profile '{self.name}': MNIST: {self.mnist.describe()}; IMDB: {self.imdb.describe()}; "
            f"latency {self.latency_warmup} warm-up + {self.latency_repeats} timed calls, "
            f"batch sizes {list(self.batch_sizes)}"
        )


PROFILES = {
    "full": RunProfile(
        name="full",
        mnist=DataSizes(epochs=20, max_train_examples=None, fine_tune_epochs=2, max_eval_examples=None),
        imdb=DataSizes(epochs=10, max_train_examples=None, fine_tune_epochs=1, max_eval_examples=None),
        latency_warmup=10,
        latency_repeats=50,
        batch_sizes=(1, 4, 16, 64, 256, 1024),
    ),
    "fast": RunProfile(
        name="fast",
        # The CNN of chapter 03 needs about 15 passes over the 3,500 sample images (with
        # augmentation) to clear 97 % test accuracy with a margin; early stopping may end sooner.
        mnist=DataSizes(epochs=15, max_train_examples=4_000, fine_tune_epochs=1, max_eval_examples=None),
        # Chapter 05's GRU reaches 76-79 % test accuracy (8 initialisations) after 2 passes over
        # 5,000 reviews cut to 100 tokens, well above its fast-profile bar of 70 %.
        imdb=DataSizes(epochs=2, max_train_examples=5_000, fine_tune_epochs=1, max_eval_examples=1_000),
        latency_warmup=2,
        latency_repeats=7,
        batch_sizes=(1, 16, 256),
    ),
}


def selected_name(environ: os._Environ | dict | None = None) -> str:
    environ = os.environ if environ is None else environ
    requested = environ.get(PROFILE_ENV, "").strip().lower()
    if requested:
        if requested not in PROFILES:
            raise ValueError(
                f"{PROFILE_ENV}={requested!r} is not a run profile; "
                f"choose one of {sorted(PROFILES)}."
            )
        return requested
    if environ.get("NBGRADER_EXECUTION"):
        return "fast"
    return "full"


def current(environ: os._Environ | dict | None = None) -> RunProfile:
    """The profile this process runs in (see the module docstring for the rules)."""
    return PROFILES[selected_name(environ)]
