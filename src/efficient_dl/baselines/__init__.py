"""The course's baseline models, so that later chapters never depend on an earlier answer.

One module per model family, each saying which chapter defines it (as d2l does):

- ``mnist_cnn``: the CNN for digits that chapter 03 builds and trains;
- ``imdb_rnn``: the review classifier and its vectorizer that chapter 05 builds and trains;
- ``bridge``: the same architectures in tf_keras (Keras 2), for tensorflow-model-optimization
  (chapters 07-08);
- ``cache``: where trained baselines are kept (``EFFICIENT_DL_CACHE``, else
  ``~/.cache/efficient_dl``) and how processes that share it train each one once.

The names a notebook needs are importable from here: ``baselines.load_or_train_baseline_cnn()``.
"""
from efficient_dl.baselines.bridge import (BridgeMismatch, cnn_in_keras3, cnn_in_tf_keras, copy_weights,
                                           import_tf_keras, rnn_in_keras3, rnn_in_tf_keras)
from efficient_dl.baselines.cache import CACHE_ENV, accuracy, cache_dir
from efficient_dl.baselines.imdb_rnn import (RNN_CELLS, TEXT_BATCH_SIZE, TEXT_CLIPNORM, TEXT_EMBEDDING_DIM,
                                             TEXT_LEARNING_RATE, TEXT_PATIENCE, TEXT_SEQUENCE_LENGTH, TEXT_UNITS,
                                             TEXT_VOCABULARY_SIZE, baseline_rnn, baseline_rnn_path,
                                             compile_baseline_rnn, load_or_train_baseline_rnn, text_jit_compile,
                                             text_vectorizer, train_baseline_rnn, vectorize)
from efficient_dl.baselines.mnist_cnn import (baseline_cnn, baseline_cnn_path, compile_baseline_cnn,
                                              load_or_train_baseline_cnn, train_baseline_cnn)
