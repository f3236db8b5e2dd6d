"""Keras 3 models as tf_keras (Keras 2) twins, for tensorflow-model-optimization (chapters 07-08).

tensorflow-model-optimization 0.8.1 wraps only tf_keras models (Keras 2): given a Keras 3
model, ``quantize_model`` and ``prune_low_magnitude`` refuse it, and its maintainers do not
plan Keras 3 support (tensorflow/model-optimization#1119). The bridge is explicit: build the
same architecture with tf_keras from the same function, copy the weights in order, and check
that both compute the same function before trusting the copy. It works in both directions.
"""
from __future__ import annotations

import numpy as np

from efficient_dl.baselines import imdb_rnn, mnist_cnn

TOLERANCE = 1e-5  # float32 arithmetic in another order: differences of a few ulps, never more


class BridgeMismatch(AssertionError):
    """The twin computes something else than the original: the architectures differ."""


def import_tf_keras():
    """The ``tf_keras`` package (Keras 2), imported quietly."""
    from efficient_dl.quiet import filtered_stderr

    with filtered_stderr():
        import tf_keras
    return tf_keras


def copy_weights(source, target, sample, atol: float = TOLERANCE):
    """Give ``target`` the weights of ``source`` (same architecture, either Keras) and check
    that both give the same outputs on ``sample`` to ``atol``; returns ``target``."""
    source_weights = source.get_weights()
    target_shapes = [tuple(w.shape) for w in target.get_weights()]
    if [tuple(w.shape) for w in source_weights] != target_shapes:
        raise BridgeMismatch(f"weight shapes differ: {[w.shape for w in source_weights]} vs {target_shapes}")
    target.set_weights(source_weights)
    expected = np.asarray(source(sample, training=False), dtype=np.float64)
    got = np.asarray(target(sample, training=False), dtype=np.float64)
    difference = float(np.max(np.abs(expected - got)))
    if not difference <= atol:
        raise BridgeMismatch(f"outputs differ by up to {difference:.2e} (more than {atol:.0e})")
    return target


def digit_sample(count: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 28, 28, 1), dtype=np.float32)


def review_sample(vocabulary_size: int, count: int = 8, length: int = 40, seed: int = 0) -> np.ndarray:
    """Word ids with padding (0) at the end of every row but the first: masks are exercised too."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocabulary_size, (count, length), dtype=np.int64)
    for row, kept in enumerate(rng.integers(length // 4, length, count)):
        ids[row, kept:] = 0 if row else ids[row, kept:]
    return ids


def cnn_in_tf_keras(model, atol: float = TOLERANCE):
    """The baseline CNN ``model`` (Keras 3) rebuilt in tf_keras with the same weights."""
    twin = mnist_cnn.baseline_cnn(name=model.name, keras_module=import_tf_keras())
    return copy_weights(model, twin, digit_sample(), atol)


def cnn_in_keras3(tf_keras_model, atol: float = TOLERANCE):
    """Back again: a tf_keras baseline CNN (a stripped pruned one, say) as a Keras 3 model."""
    twin = mnist_cnn.baseline_cnn(name=tf_keras_model.name)
    return copy_weights(tf_keras_model, twin, digit_sample(), atol)


def _rnn_architecture(model) -> dict:
    embedding, recurrent = model.layers[0], model.layers[1]
    bidirectional = hasattr(recurrent, "forward_layer")
    layer = recurrent.forward_layer if bidirectional else recurrent
    cells = {"SimpleRNN": "simple", "GRU": "gru", "LSTM": "lstm"}
    return dict(vocabulary_size=embedding.input_dim, embedding_dim=embedding.output_dim, units=layer.units,
                cell=cells[type(layer).__name__], bidirectional=bidirectional, name=model.name)


def rnn_in_tf_keras(model, atol: float = TOLERANCE):
    """A ``baseline_rnn`` model (Keras 3) rebuilt in tf_keras with the same weights."""
    architecture = _rnn_architecture(model)
    twin = imdb_rnn.baseline_rnn(**architecture, keras_module=import_tf_keras())
    return copy_weights(model, twin, review_sample(architecture["vocabulary_size"]), atol)


def rnn_in_keras3(tf_keras_model, atol: float = TOLERANCE):
    architecture = _rnn_architecture(tf_keras_model)
    twin = imdb_rnn.baseline_rnn(**architecture)
    return copy_weights(tf_keras_model, twin, review_sample(architecture["vocabulary_size"]), atol)
