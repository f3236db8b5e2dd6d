"""The IMDB review classifier (chapter 05) and its vectorizer, trained once per machine and profile.

``baseline_rnn()`` is the architecture; ``load_or_train_baseline_rnn()`` returns a trained
one with the ``TextVectorization`` layer that turns reviews into its input.
"""
from __future__ import annotations

import os
from pathlib import Path

from efficient_dl.baselines import cache

SEED = 0
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
                 embedding_dim: int = TEXT_EMBEDDING_DIM, units: int = TEXT_UNITS, name: str | None = None,
                 keras_module=None):
    """The course's review classifier: Embedding (masking id 0) → recurrent layer → 2 logits.

    Input: integer word ids of any length, 0 = padding. ``mask_zero=True`` makes the
    recurrent layer skip padded steps, so the state it returns is the one after the last
    real word, wherever the padding is. ``cell`` is ``"simple"`` (chapter 05's port of a
    PyTorch ``nn.RNN``), ``"gru"`` or ``"lstm"``; ``bidirectional`` also reads the review
    backwards and concatenates the two last states. The last layer outputs logits.
    ``keras_module=tf_keras`` builds the same architecture in Keras 2 (chapters 07-08).
    """
    if keras_module is None:
        import keras as keras_module
    keras = keras_module

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
    return cache.cached_path("baseline_rnn", cache_dir_, profile_name)


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
    split (capped by the profile's ``imdb.max_train_examples``), validates on its validation split
    and never sees the test split, which is only used for the accuracy in the message.
    The model takes word ids: ``model.predict(baselines.vectorize(vectorizer, reviews))``.
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
            splits, epochs=run.imdb.epochs, max_train_reviews=run.imdb.max_train_examples)
        return (model, vectorizer), _bundle(vectorizer, model), len(history.history["loss"])

    (model, vectorizer), action = cache.load_or_train(path, "Baseline RNN", load=load, train=train)
    if verbose:
        accuracy = cache.accuracy(model, vectorize(vectorizer, splits.x_test), splits.y_test)
        print(f"Baseline RNN {action} {path}: test accuracy {accuracy:.2%} ({run.name} profile).")
    return model, vectorizer
