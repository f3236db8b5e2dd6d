"""The MNIST CNN (chapter 03), trained once per machine and run profile.

Chapter 03 asks the student to build and train this CNN; the chapters that quantize, prune
or distil it (and chapter 02, which checks a hand-written convolution against it) start
from ``load_or_train_baseline_cnn()`` instead, so they never depend on an earlier answer.
"""
from __future__ import annotations

import os
from pathlib import Path

from efficient_dl.baselines import cache

SEED = 0
BATCH_SIZE = 32
LEARNING_RATE = 2e-3  # peak of a cosine decay to zero over the run
SHIFT = 0.1  # augmentation: random shifts of up to 10 % of the height and width
PATIENCE = 5


def baseline_cnn(name: str = "baseline_cnn", keras_module=None):
    """The course's CNN for 28x28x1 digits: two conv/pool blocks, a hidden Dense, logits.

    The Keras 3 port of the PyTorch model in chapter 03, layer for layer:
    333,526 parameters; the last layer outputs logits (no softmax). ``keras_module=tf_keras``
    builds the same architecture in Keras 2, for tensorflow-model-optimization (chapter 07).
    """
    if keras_module is None:
        import keras as keras_module
    keras = keras_module

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


def baseline_cnn_path(cache_dir_: str | os.PathLike | None = None, profile_name: str | None = None) -> Path:
    return cache.cached_path("baseline_cnn", cache_dir_, profile_name)


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
        model, history = train_baseline_cnn(splits, epochs=run.mnist.epochs, max_train_examples=run.mnist.max_train_examples)
        return model, model, len(history.history["loss"])

    model, action = cache.load_or_train(
        path, "Baseline CNN",
        load=lambda: compile_baseline_cnn(keras.saving.load_model(path, compile=False)),
        train=train)
    if verbose:
        accuracy = cache.accuracy(model, splits.x_test, splits.y_test)
        print(f"Baseline CNN {action} {path}: test accuracy {accuracy:.2%} ({run.name} profile).")
    return model
