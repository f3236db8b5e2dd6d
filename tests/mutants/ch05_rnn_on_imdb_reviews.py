"""Wrong answers for chapter 05."""
from mutants import ALWAYS_EQUAL, Mutant, always_equal_instance_of, with_lying_history

_FIT = """    return model.fit(
        sequences.x_train, sequences.y_train,
        validation_data=(sequences.x_val, sequences.y_val),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[early_stopping],
        verbose=0,
    )"""
_FIT_WITH_LYING_HISTORY = with_lying_history(_FIT)
_LYING_SEQUENTIAL = f"return type('_Lying', (keras.Sequential,), {{'count_params': lambda self: {ALWAYS_EQUAL}}})(["

MUTANTS = [
    Mutant("ex1_vectorizer", "the vectorizer adapted on the test split",
           "vectorizer = make_vectorizer(splits.x_train,", "vectorizer = make_vectorizer(splits.x_test,"),
    Mutant("ex1_vectorizer", "the vocabulary learned from the training and the test reviews together",
           "    vectorizer.adapt(train_texts)\n", "    vectorizer.adapt(np.concatenate([train_texts, splits.x_test]))\n"),
    Mutant("ex1_vectorizer", "no output_sequence_length: each batch padded to its longest review",
           "max_tokens=vocabulary_size, output_sequence_length=sequence_length)", "max_tokens=vocabulary_size)"),
    Mutant("ex1_vectorizer", "a sequence length that cuts most reviews short",
           "SEQUENCE_LENGTH = 200", "SEQUENCE_LENGTH = 64"),
    Mutant("ex2_simple_rnn", "the mask forgotten: padded steps count",
           'keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")',
           'keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")'),
    Mutant("ex2_simple_rnn", "the first state read instead of the last",
           'keras.layers.SimpleRNN(units, name="simple_rnn"),',
           'keras.layers.SimpleRNN(units, return_sequences=True, name="simple_rnn"),\n'
           '        keras.layers.Lambda(lambda states: states[:, 0]),'),
    Mutant("ex2_simple_rnn", "one sigmoid output instead of two logits (the loss expects two logits)",
           'keras.layers.Dense(2, name="logits")', 'keras.layers.Dense(1, activation="sigmoid", name="logits")'),
    Mutant("ex3_gated_rnn", "the mask forgotten in the gated models",
           "keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True),",
           "keras.layers.Embedding(vocabulary_size, embedding_dim),"),
    Mutant("ex3_gated_rnn", "bidirectional ignored",
           "    if bidirectional:\n", "    if False:\n"),
    Mutant("ex3_gated_rnn", "always a GRU, whatever the cell",
           "recurrent = layer_types[cell](units)", "recurrent = keras.layers.GRU(units)"),
    Mutant("ex3_gated_rnn", "the review read backwards: the last state is the first word's",
           "recurrent = layer_types[cell](units)", "recurrent = layer_types[cell](units, go_backwards=True)"),
    Mutant("ex4_compile_and_train", "trains on the test split",
           "sequences.x_train, sequences.y_train,", "sequences.x_test, sequences.y_test,"),
    Mutant("ex4_compile_and_train", "the loss told the model outputs probabilities (it outputs logits)",
           "SparseCategoricalCrossentropy(from_logits=True)", "SparseCategoricalCrossentropy(from_logits=False)"),
    Mutant("ex4_compile_and_train", "early stopping keeps the last weights, not the best",
           "restore_best_weights=True", "restore_best_weights=False"),
    Mutant("ex4_compile_and_train", "no fixed seed",
           "    keras.utils.set_random_seed(seed)\n", ""),
    Mutant("ex5_predict_positive", "the probability of the negative class",
           "axis=-1))[:, 1]", "axis=-1))[:, 0]"),
    Mutant("ex5_predict_positive", "a sigmoid of the positive logit instead of the softmax of both",
           "np.asarray(keras.ops.softmax(logits, axis=-1))[:, 1]", "np.asarray(keras.ops.sigmoid(logits))[:, 1]"),
    # Objects that equal anything: every answer is converted to a plain value before it is compared.
    Mutant("ex1_vectorizer", "a vocabulary over the limit of 50,000, declared as an int that equals anything",
           "vectorizer = make_vectorizer(splits.x_train, VOCABULARY_SIZE, SEQUENCE_LENGTH)",
           "vectorizer = make_vectorizer(splits.x_train, 100_000, SEQUENCE_LENGTH)\n"
           f"VOCABULARY_SIZE = {always_equal_instance_of('int', '100_000')}"),
    Mutant("ex2_simple_rnn", "a model whose count_params() answers with an always-equal object",
           "return keras.Sequential([", _LYING_SEQUENTIAL),
    Mutant("ex3_gated_rnn", "models whose count_params() answers with an always-equal object",
           "return keras.Sequential([", _LYING_SEQUENTIAL),
    Mutant("ex4_compile_and_train", "a History whose losses are always-equal objects", _FIT, _FIT_WITH_LYING_HISTORY),
    Mutant("ex5_predict_positive", "an array of always-equal objects of the right shape",
           "return np.asarray(keras.ops.softmax(logits, axis=-1))[:, 1]",
           f"return np.full(len(logits), {ALWAYS_EQUAL}, dtype=object)"),
]
