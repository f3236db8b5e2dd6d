"""Wrong answers for chapter 03.

Every mutant of this chapter costs a training run (Exercise 3's hidden test trains a CNN
whatever was mutated), so the list keeps one or two telling mistakes per exercise."""
from mutants import Mutant

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
]
