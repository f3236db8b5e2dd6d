"""Wrong answers for chapter 03.

Every mutant of this chapter costs a training run (Exercise 3's hidden test trains a CNN
whatever was mutated), so the list keeps one or two telling mistakes per exercise."""
from mutants import ALWAYS_EQUAL, Mutant, always_equal_instance_of, with_lying_history

_FIT = """    return trainer.fit(
        splits.x_train, splits.y_train,
        validation_data=(splits.x_val, splits.y_val),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[early_stopping],
        verbose=0,
    )"""
_FIT_WITH_LYING_HISTORY = with_lying_history(_FIT)

MUTANTS = [
    Mutant("ex1_three_bugs", "the original's flatten size (no pooling taken into account)",
           "FLATTEN_SIZE = 64 * 7 * 7", "FLATTEN_SIZE = 64 * 28 * 28"),
    Mutant("ex1_three_bugs", "the RNN swapped for an LSTM (runs, but changes the parameters)",
           'RNN_STATE_FIX = "a"', 'RNN_STATE_FIX = "c"'),
    Mutant("ex2_build_cnn", "'valid' padding (padding=1 not ported): 13x13 and 5x5 maps, wrong parameter count",
           'padding="same"', 'padding="valid"'),
    Mutant("ex2_build_cnn", "softmax on the last layer: probabilities instead of logits",
           'keras.layers.Dense(10, name="logits")', 'keras.layers.Dense(10, activation="softmax", name="logits")'),
    Mutant("ex3_compile_and_train", "trains on the test split",
           "splits.x_train, splits.y_train,", "splits.x_test, splits.y_test,"),
    Mutant("ex3_compile_and_train", "trains on the validation split only",
           "splits.x_train, splits.y_train,", "splits.x_val, splits.y_val,"),
    Mutant("ex3_compile_and_train", "early stopping keeps the last weights, not the best",
           "restore_best_weights=True", "restore_best_weights=False"),
    Mutant("ex3_compile_and_train", "no fixed seed",
           "    keras.utils.set_random_seed(seed)\n", ""),
    Mutant("ex4_evaluate", "confusion matrix transposed (rows = predictions)",
           "(np.asarray(y), predicted)", "(predicted, np.asarray(y))"),
    Mutant("ex5_save_model", "weights only (save_weights), no .keras archive",
           "model.save(path)", 'model.save_weights(path.with_name(path.stem + ".weights.h5"))'),
    # Objects that equal anything: every answer is converted to a plain value before it is compared.
    Mutant("ex1_three_bugs", "a str that equals anything, holding another option's key",
           'RNN_STATE_FIX = "a"', f"RNN_STATE_FIX = {always_equal_instance_of('str', repr('b'))}"),
    Mutant("ex2_build_cnn", "a model whose count_params() answers with an always-equal object",
           "return keras.Sequential([",
           f"return type('_Lying', (keras.Sequential,), {{'count_params': lambda self: {ALWAYS_EQUAL}}})(["),
    Mutant("ex3_compile_and_train", "a History whose losses are always-equal objects", _FIT, _FIT_WITH_LYING_HISTORY),
    Mutant("ex4_evaluate", "a float that equals anything (and is close to anything for NumPy) as the accuracy",
           "return accuracy, confusion", f"return {always_equal_instance_of('float', '0.0')}, confusion"),
]
