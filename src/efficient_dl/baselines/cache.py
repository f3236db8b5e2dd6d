"""Where trained baselines are kept, and how they are trained only once.

The cache folder is ``EFFICIENT_DL_CACHE`` if set, else ``~/.cache/efficient_dl``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

CACHE_ENV = "EFFICIENT_DL_CACHE"
DEFAULT_CACHE = "~/.cache/efficient_dl"


def cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder trained models are cached in (created if missing)."""
    named = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    folder = Path(named).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_path(stem: str, cache_dir_: str | os.PathLike | None = None, profile_name: str | None = None) -> Path:
    """``<cache>/<stem>_<profile>.keras``: one file per model and run profile."""
    from efficient_dl import profile

    name = profile_name or profile.current().name
    return cache_dir(cache_dir_) / f"{stem}_{name}.keras"


def save_atomically(model, path: Path) -> None:
    # Write next to the target, then rename: a parallel reader sees the old file or the
    # whole new one, never half of one (os.replace is atomic within one file system).
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".keras", dir=path.parent)
    os.close(handle)
    try:
        model.save(tmp_name)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def load_or_train(path: Path, label: str, load, train):
    """``(load(), "loaded from")`` if the cache file reads back; otherwise ``train()``, saved.

    ``train()`` returns what the caller gets, what to save, and how many epochs it ran.
    A truncated or foreign cache file means training again, never a crash; a cache folder
    that cannot be written (a read-only shared cache) means a trained model that is not kept.
    Processes sharing a cache (a classroom's kernels, parallel graders) train it once: the
    others wait for the first, then load its file.
    """
    with _exclusive(path.with_name(path.name + ".lock")):
        if path.is_file():
            try:
                return load(), "loaded from"
            except Exception as error:
                print(f"{label} cache {path} is unreadable ({type(error).__name__}); training a new one.")
        start = time.perf_counter()
        result, to_save, epochs = train()
        took = f"{epochs} epochs, {time.perf_counter() - start:.0f} s"
        try:
            save_atomically(to_save, path)
        except OSError as error:
            return result, f"trained ({took}), not saved ({error.strerror or error}), for"
        return result, f"trained ({took}) and saved to"


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An advisory lock between processes, where the file system allows one; otherwise none
    (a read-only cache cannot be written by anyone, so there is nothing to wait for)."""
    try:
        import fcntl

        handle = open(lock_path, "a")
    except (ImportError, OSError):  # Windows, or a read-only folder
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def accuracy(model, x, y, batch_size: int = 256) -> float:
    """Share of ``x`` whose largest logit is the label ``y`` (any Keras 3 or tf_keras model)."""
    import numpy as np

    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))
