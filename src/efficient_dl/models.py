"""The course's baseline models, so that later chapters never depend on an earlier answer.

Chapter 03 asks the student to build and train the baseline CNN; chapters that quantize,
prune or distil it (and chapter 02, which checks a hand-written convolution against it)
start from ``load_or_train_baseline_cnn()`` instead: the same architecture, trained once
per machine and run profile and cached as a ``.keras`` file. Chapter 05 does the same for
the recurrent network on IMDB reviews: ``baseline_rnn()`` is its architecture and
``load_or_train_baseline_rnn()`` returns a trained one with the ``TextVectorization`` layer
that turns reviews into its input.

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
SEED = 0
BATCH_SIZE = 32
LEARNING_RATE = 2e-3  # peak of a cosine decay to zero over the run
SHIFT = 0.1  # augmentation: random shifts of up to 10 % of the height and width
PATIENCE = 5


def baseline_cnn(name: str = "baseline_cnn"):
    """The course's CNN for 28x28x1 digits: two conv/pool blocks, a hidden Dense, logits.

    The Keras 3 port of the PyTorch model in chapter 03, layer for layer:
    333,526 parameters; the last layer outputs logits (no softmax).
    """
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(100, activation="relu", name="dense1"),
            keras.layers.Dense(10, name="logits"),
        ],
        name=name,
    )


def cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder trained models are cached in (created if missing)."""
    named = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    folder = Path(named).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def baseline_cnn_path(cache_dir_: str | os.PathLike | None = None, profile_name: str | None = None) -> Path:
    from efficient_dl import profile

    name = profile_name or profile.current().name
    return cache_dir(cache_dir_) / f"baseline_cnn_{name}.keras"


def _accuracy(model, x, y) -> float:
    import numpy as np

    logits = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def compile_baseline_cnn(model, decay_steps: int | None = None):
    """Compile with the baseline's settings: Adam (cosine-decayed learning rate when
    ``decay_steps`` is given), cross-entropy from logits, accuracy."""
    import keras

    rate = LEARNING_RATE if decay_steps is None else keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train_baseline_cnn(splits, epochs: int, max_train_examples: int | None = None, seed: int = SEED, verbose=False):
    """Train ``baseline_cnn()`` on ``splits`` (train/validation only); returns (model, history).

    The recipe of chapter 03: Adam with a cosine learning-rate decay, random shifts as
    augmentation (applied by a wrapper that shares the model's layers, so the returned
    model is exactly ``baseline_cnn()``), early stopping that restores the best weights.
    """
    import math

    import keras

    keras.utils.set_random_seed(seed)
    x_train, y_train = splits.x_train, splits.y_train
    if max_train_examples is not None:
        x_train, y_train = x_train[:max_train_examples], y_train[:max_train_examples]
    model = baseline_cnn()
    augment = keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="constant", seed=seed)
    trainer = keras.Sequential([keras.Input((28, 28, 1)), augment, model], name="baseline_trainer")
    compile_baseline_cnn(trainer, decay_steps=epochs * math.ceil(len(y_train) / BATCH_SIZE))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE, restore_best_weights=True)
    history = trainer.fit(
        x_train, y_train,
        validation_data=(splits.x_val, splits.y_val),
        epochs=epochs, batch_size=BATCH_SIZE, shuffle=True,
        callbacks=[stop], verbose=2 if verbose == "fit" else 0,
    )
    compile_baseline_cnn(model)  # ready for evaluate(); the trainer's optimizer stays with the trainer
    return model, history


def _save_atomically(model, path: Path) -> None:
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


def _load_or_train(path: Path, label: str, load, train):
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
            _save_atomically(to_save, path)
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


def load_or_train_baseline_cnn(cache_dir: str | os.PathLike | None = None, verbose: bool = True):
    """A trained baseline CNN: loaded from the cache, or trained once and cached.

    Training uses ``data.load_mnist()``'s train split, validates on its validation split
    (early stopping on the validation loss, best weights kept) and never sees the test
    split, which is only used for the accuracy reported in the one-line message.
    """
    import keras

    from efficient_dl import data, profile

    run = profile.current()
    path = baseline_cnn_path(cache_dir, run.name)
    splits = data.load_mnist()

    def train():
        model, history = train_baseline_cnn(splits, epochs=run.epochs, max_train_examples=run.max_train_examples)
        return model, model, len(history.history["loss"])

    model, action = _load_or_train(
        path, "Baseline CNN",
        load=lambda: compile_baseline_cnn(keras.saving.load_model(path, compile=False)),
        train=train)
    if verbose:
        accuracy = _accuracy(model, splits.x_test, splits.y_test)
        print(f"Baseline CNN {action} {path}: test accuracy {accuracy:.2%} ({run.name} profile).")
    return model


# --- the baseline RNN for IMDB reviews (chapter 05) -------------------------------------

TEXT_VOCABULARY_SIZE = 20_000  # the vectorizer's vocabulary, padding (0) and out-of-vocabulary (1) included
TEXT_SEQUENCE_LENGTH = 200  # tokens kept per review: longer reviews are cut, shorter ones padded with 0
TEXT_EMBEDDING_DIM = 64
TEXT_UNITS = 64
TEXT_BATCH_SIZE = 50  # divides every split of both IMDB sources: XLA compiles a single batch shape
TEXT_LEARNING_RATE = 1e-3
TEXT_CLIPNORM = 1.0  # gradients longer than this are scaled down: one exploding step cannot undo an epoch
TEXT_PATIENCE = 2
RNN_CELLS = ("simple", "gru", "lstm")


def baseline_rnn(vocabulary_size: int = TEXT_VOCABULARY_SIZE, cell: str = "gru", bidirectional: bool = False,
                 embedding_dim: int = TEXT_EMBEDDING_DIM, units: int = TEXT_UNITS, name: str | None = None):
    """The course's review classifier: Embedding (masking id 0) → recurrent layer → 2 logits.

    Input: integer word ids of any length, 0 = padding. ``mask_zero=True`` makes the
    recurrent layer skip padded steps, so the state it returns is the one after the last
    real word, wherever the padding is. ``cell`` is ``"simple"`` (chapter 05's port of a
    PyTorch ``nn.RNN``), ``"gru"`` or ``"lstm"``; ``bidirectional`` also reads the review
    backwards and concatenates the two last states. The last layer outputs logits.
    """
    import keras

    layers = {"simple": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}
    if cell not in layers:
        raise ValueError(f"cell={cell!r} is not one of {RNN_CELLS}.")
    recurrent = layers[cell](units, name=cell)
    if bidirectional:
        recurrent = keras.layers.Bidirectional(recurrent, name=f"bidirectional_{cell}")
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int64", name="word_ids"),
            keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding"),
            recurrent,
            keras.layers.Dense(2, name="logits"),
        ],
        name=name or f"{'bidirectional_' if bidirectional else ''}{cell}_classifier",
    )


def text_vectorizer(texts, vocabulary_size: int = TEXT_VOCABULARY_SIZE,
                    sequence_length: int = TEXT_SEQUENCE_LENGTH):
    """A ``TextVectorization`` layer adapted on ``texts``: pass the training reviews, only them.

    Lower-cases, strips punctuation, splits on whitespace; keeps the ``vocabulary_size - 2``
    most frequent words (0 is padding, 1 out-of-vocabulary) and turns a review into
    ``sequence_length`` word ids, cut at the end or padded with zeros at the end.
    """
    import keras
    import numpy as np

    adapted = keras.layers.TextVectorization(max_tokens=vocabulary_size, output_sequence_length=sequence_length)
    adapted.adapt(np.asarray(texts, dtype=object))
    # The same layer again, built from the vocabulary as a list: Keras then saves the list in the
    # .keras file's config.json. An adapted layer saves it as a text file of one word per line,
    # which Keras cannot read back when a word holds a Unicode line separator (a few IMDB reviews do).
    return keras.layers.TextVectorization(
        max_tokens=vocabulary_size, output_sequence_length=sequence_length,
        vocabulary=[str(word) for word in adapted.get_vocabulary()], name="vectorizer")


def vectorize(vectorizer, texts):
    """Reviews (strings) → an int64 NumPy array of word ids, one row per review."""
    import numpy as np

    return np.asarray(vectorizer(np.asarray(texts, dtype=object)), dtype=np.int64)


def text_jit_compile():
    """What to pass as ``jit_compile`` when training a recurrent model here.

    On a CPU Keras leaves XLA off by default; for recurrent layers, compiling the whole time
    loop with XLA makes training about 3 times faster there. With a GPU, "auto" lets Keras use
    cuDNN's fused GRU/LSTM kernels, which XLA cannot compile.
    """
    from efficient_dl.quiet import filtered_stderr

    with filtered_stderr():  # the first device query probes CUDA from C++ on a CPU-only machine
        import tensorflow as tf

        accelerators = [d for d in tf.config.list_logical_devices() if d.device_type != "CPU"]
    return "auto" if accelerators else True


def compile_baseline_rnn(model, jit_compile=None):
    """Compile with the baseline's settings: Adam with gradient clipping, cross-entropy from
    2 logits, accuracy; XLA on a CPU (see ``text_jit_compile``)."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=TEXT_LEARNING_RATE, clipnorm=TEXT_CLIPNORM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=text_jit_compile() if jit_compile is None else jit_compile,
    )
    return model


def train_baseline_rnn(splits, epochs: int, max_train_reviews: int | None = None, seed: int = SEED,
                       cell: str = "gru", bidirectional: bool = False, verbose=False):
    """Train ``baseline_rnn()`` on IMDB ``splits`` of raw text; returns (model, vectorizer, history).

    The recipe of chapter 05: a vectorizer adapted on the (capped) training reviews only,
    Adam with gradient clipping, batches of 50, early stopping on the validation loss that
    restores the best weights. The test split is not used.
    """
    import keras

    keras.utils.set_random_seed(seed)
    x_train, y_train = splits.x_train, splits.y_train
    if max_train_reviews is not None:
        x_train, y_train = x_train[:max_train_reviews], y_train[:max_train_reviews]
    vectorizer = text_vectorizer(x_train)
    model = compile_baseline_rnn(baseline_rnn(cell=cell, bidirectional=bidirectional))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=TEXT_PATIENCE, restore_best_weights=True)
    history = model.fit(
        vectorize(vectorizer, x_train), y_train,
        validation_data=(vectorize(vectorizer, splits.x_val), splits.y_val),
        epochs=epochs, batch_size=TEXT_BATCH_SIZE, shuffle=True,
        callbacks=[stop], verbose=2 if verbose == "fit" else 0,
    )
    return model, vectorizer, history


def baseline_rnn_path(cache_dir_: str | os.PathLike | None = None, profile_name: str | None = None) -> Path:
    from efficient_dl import profile

    name = profile_name or profile.current().name
    return cache_dir(cache_dir_) / f"baseline_rnn_{name}.keras"


def _bundle(vectorizer, model):
    # One .keras file holds both, so the vocabulary can never be paired with the wrong weights.
    import keras

    return keras.Sequential([keras.Input((), dtype="string", name="review"), vectorizer, model],
                            name="baseline_rnn_bundle")


def _unbundle(bundle):
    import keras

    vectorizer, model = bundle.layers
    if not (isinstance(vectorizer, keras.layers.TextVectorization) and isinstance(model, keras.Model)):
        raise TypeError(f"expected a vectorizer and a model, found {[type(layer).__name__ for layer in bundle.layers]}")
    return model, vectorizer


def load_or_train_baseline_rnn(cache_dir: str | os.PathLike | None = None, verbose: bool = True):
    """A trained baseline GRU for IMDB reviews and its vectorizer: ``(model, vectorizer)``.

    Loaded from the cache, or trained once and cached (one ``.keras`` file per run profile
    holds the vectorizer and the model together). Training uses ``data.load_imdb()``'s train
    split (capped by the profile's ``max_train_reviews``), validates on its validation split
    and never sees the test split, which is only used for the accuracy in the message.
    The model takes word ids: ``model.predict(models.vectorize(vectorizer, reviews))``.
    """
    import keras

    from efficient_dl import data, profile

    run = profile.current()
    path = baseline_rnn_path(cache_dir, run.name)
    splits = data.load_imdb()

    def load():
        model, vectorizer = _unbundle(keras.saving.load_model(path, compile=False))
        return compile_baseline_rnn(model), vectorizer

    def train():
        model, vectorizer, history = train_baseline_rnn(
            splits, epochs=run.text_epochs, max_train_reviews=run.max_train_reviews)
        return (model, vectorizer), _bundle(vectorizer, model), len(history.history["loss"])

    (model, vectorizer), action = _load_or_train(path, "Baseline RNN", load=load, train=train)
    if verbose:
        accuracy = _accuracy(model, vectorize(vectorizer, splits.x_test), splits.y_test)
        print(f"Baseline RNN {action} {path}: test accuracy {accuracy:.2%} ({run.name} profile).")
    return model, vectorizer
