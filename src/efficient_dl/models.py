"""The course's baseline models, so that later chapters never depend on an earlier answer.

Chapter 03 asks the student to build and train the baseline CNN; chapters that quantize,
prune or distil it (and chapter 02, which checks a hand-written convolution against it)
start from ``load_or_train_baseline_cnn()`` instead: the same architecture, trained once
per machine and run profile and cached as a ``.keras`` file.

The cache folder is ``EFFICIENT_DL_CACHE`` if set, else ``~/.cache/efficient_dl``.
"""
from __future__ import annotations

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
    model, action = None, None
    if path.is_file():
        try:
            model = compile_baseline_cnn(keras.saving.load_model(path, compile=False))
            action = "loaded from"
        except Exception as error:  # a truncated or foreign file: train again, do not crash
            print(f"Baseline CNN cache {path} is unreadable ({type(error).__name__}); training a new one.")
            model = None
    if model is None:
        start = time.perf_counter()
        model, history = train_baseline_cnn(splits, epochs=run.epochs, max_train_examples=run.max_train_examples)
        _save_atomically(model, path)
        action = f"trained ({len(history.history['loss'])} epochs, {time.perf_counter() - start:.0f} s) and saved to"
    if verbose:
        accuracy = _accuracy(model, splits.x_test, splits.y_test)
        print(f"Baseline CNN {action} {path}: test accuracy {accuracy:.2%} ({run.name} profile).")
    return model
