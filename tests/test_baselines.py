"""The baseline CNN: its architecture, and training it once per cache folder and profile."""
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from efficient_dl import baselines, profile
from efficient_dl.baselines import cache, imdb_rnn, mnist_cnn


@pytest.fixture(scope="module")
def keras():
    from efficient_dl import quiet

    with quiet.filtered_stderr():
        import keras
    return keras


def test_the_baseline_has_the_pytorch_models_parameter_count(keras):
    model = baselines.baseline_cnn()
    # conv1 3*3*1*32+32, conv2 3*3*32*64+64, dense1 3136*100+100, logits 100*10+10
    assert model.count_params() == 320 + 18_496 + 313_700 + 1_010 == 333_526


def test_the_baseline_layers_and_shapes(keras):
    model = baselines.baseline_cnn(name="my_cnn")
    assert model.name == "my_cnn"
    expected = [
        ("conv1", keras.layers.Conv2D, (None, 28, 28, 32)),
        ("pool1", keras.layers.MaxPooling2D, (None, 14, 14, 32)),
        ("conv2", keras.layers.Conv2D, (None, 14, 14, 64)),
        ("pool2", keras.layers.MaxPooling2D, (None, 7, 7, 64)),
        ("flatten", keras.layers.Flatten, (None, 3_136)),
        ("dense1", keras.layers.Dense, (None, 100)),
        ("logits", keras.layers.Dense, (None, 10)),
    ]
    assert [layer.name for layer in model.layers] == [name for name, _, _ in expected]
    for layer, (name, kind, shape) in zip(model.layers, expected):
        assert isinstance(layer, kind), name
        assert tuple(layer.output.shape) == shape, name
    assert model.get_layer("conv1").kernel_size == (3, 3) and model.get_layer("conv1").padding == "same"
    assert model.get_layer("logits").activation is keras.activations.linear, "the model outputs logits"


@pytest.fixture
def one_epoch(monkeypatch, tmp_path):
    """The fast profile cut to one epoch, and an empty cache folder: keeps these tests short."""
    fast = profile.PROFILES["fast"]
    monkeypatch.setitem(profile.PROFILES, "fast", dataclasses.replace(fast, mnist=dataclasses.replace(fast.mnist, epochs=1)))
    monkeypatch.setenv("EFFICIENT_DL_PROFILE", "fast")
    monkeypatch.setenv(baselines.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "baseline_cnn_fast.keras"


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_load_or_train_trains_once_then_loads_from_the_cache(keras, one_epoch, capsys, monkeypatch):
    trained = baselines.load_or_train_baseline_cnn()
    first = capsys.readouterr().out
    assert one_epoch.is_file(), "the trained model is cached under EFFICIENT_DL_CACHE"
    assert "trained" in first and "test accuracy" in first
    left = sorted(p.name for p in one_epoch.parent.iterdir())
    assert left == [one_epoch.name, one_epoch.name + ".lock"], "no temporary file is left behind"

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model must be loaded, not trained again")

    monkeypatch.setattr(mnist_cnn, "train_baseline_cnn", no_training)
    loaded = baselines.load_or_train_baseline_cnn()
    second = capsys.readouterr().out
    assert "loaded from" in second and "trained" not in second
    for a, b in zip(_weights(trained), _weights(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    # Ready to use: compiled with the baseline's loss and metric.
    x = np.zeros((4, 28, 28, 1), dtype=np.float32)
    loss, accuracy = loaded.evaluate(x, np.zeros(4, dtype=np.int64), verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_the_cache_dir_argument_wins_over_the_environment(keras, one_epoch, tmp_path):
    baselines.load_or_train_baseline_cnn(cache_dir=tmp_path / "elsewhere", verbose=False)
    assert (tmp_path / "elsewhere" / "baseline_cnn_fast.keras").is_file()
    assert not one_epoch.exists()


def test_a_cache_folder_that_cannot_be_written_still_gives_a_trained_model(keras, one_epoch, capsys, monkeypatch):
    def read_only_file_system(source, target):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(cache.os, "replace", read_only_file_system)
    model = baselines.load_or_train_baseline_cnn()
    out = capsys.readouterr().out
    assert "not saved (Read-only file system)" in out
    assert model.count_params() == 333_526 and not one_epoch.exists()
    assert [p.name for p in one_epoch.parent.iterdir()] == [one_epoch.name + ".lock"], (
        "the half-written temporary file is removed")


def test_processes_sharing_a_cache_train_once(tmp_path):
    """Four kernels of a classroom asking at once: one trains, three wait and load its file."""
    import threading

    path = tmp_path / "shared" / "model.keras"
    path.parent.mkdir()
    trainings, results = [], []

    class Saved:
        def save(self, target):
            Path(target).write_text("weights")

    def train():
        trainings.append(threading.get_ident())
        time.sleep(0.3)  # long enough for the others to arrive while it trains
        return "trained model", Saved(), 1

    def ask():
        results.append(cache.load_or_train(path, "Test model", load=lambda: path.read_text(), train=train))

    askers = [threading.Thread(target=ask) for _ in range(4)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert len(trainings) == 1
    assert sorted(value for value, _ in results) == ["trained model", "weights", "weights", "weights"]
    assert sum(action == "loaded from" for _, action in results) == 3


def test_a_corrupt_cache_file_is_replaced_not_a_crash(keras, one_epoch, capsys):
    one_epoch.parent.mkdir(parents=True)
    one_epoch.write_bytes(b"half a zip file")
    model = baselines.load_or_train_baseline_cnn()
    out = capsys.readouterr().out
    assert "unreadable" in out and "training a new one" in out
    assert model.count_params() == 333_526
    reloaded = keras.saving.load_model(one_epoch, compile=False)
    for a, b in zip(_weights(model), _weights(reloaded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_cache_folder_defaults_to_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(baselines.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert baselines.cache_dir() == tmp_path / ".cache" / "efficient_dl"


# --- the baseline RNN for IMDB reviews -----------------------------------------------------


def _rnn_parameters(vocabulary, embedding, units, cell, bidirectional):
    # Keras's layers: SimpleRNN one bias; GRU (reset_after=True) two biases per gate; LSTM one per gate.
    per_direction = {
        "simple": embedding * units + units * units + units,
        "gru": 3 * (embedding * units + units * units + 2 * units),
        "lstm": 4 * (embedding * units + units * units + units),
    }[cell]
    directions = 2 if bidirectional else 1
    return vocabulary * embedding + directions * per_direction + (directions * units * 2 + 2)


@pytest.mark.parametrize("cell", ["simple", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_baseline_rnn_architecture(keras, cell, bidirectional):
    model = baselines.baseline_rnn(vocabulary_size=500, cell=cell, bidirectional=bidirectional,
                                embedding_dim=8, units=6, name="my_rnn")
    assert model.name == "my_rnn"
    assert model.count_params() == _rnn_parameters(500, 8, 6, cell, bidirectional)
    embedding, recurrent, logits = model.layers
    assert isinstance(embedding, keras.layers.Embedding) and embedding.mask_zero
    kind = {"simple": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    inner = recurrent.forward_layer if bidirectional else recurrent
    assert isinstance(recurrent, keras.layers.Bidirectional) == bidirectional and isinstance(inner, kind)
    assert not inner.return_sequences and not inner.go_backwards, "the classifier reads the last state"
    assert logits.units == 2 and logits.activation is keras.activations.linear, "the model outputs 2 logits"
    assert model.output_shape == (None, 2)


@pytest.mark.parametrize("cell, bidirectional", [("simple", False), ("gru", False), ("lstm", False), ("gru", True)])
def test_padding_does_not_change_the_baseline_rnns_output(keras, cell, bidirectional):
    """The mask in action: zeros appended or prepended are skipped, so the logits do not move."""
    keras.utils.set_random_seed(3)
    model = baselines.baseline_rnn(vocabulary_size=50, cell=cell, bidirectional=bidirectional, embedding_dim=4, units=3)
    words = np.random.default_rng(3).integers(1, 50, size=(2, 7))
    padding = np.zeros((2, 5), dtype=np.int64)
    plain = model.predict(words, verbose=0)
    for padded in (np.concatenate([words, padding], axis=1), np.concatenate([padding, words], axis=1)):
        np.testing.assert_allclose(model.predict(padded, verbose=0), plain, atol=1e-5)


def test_an_unknown_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="'rnn' is not one of"):
        baselines.baseline_rnn(cell="rnn")


def test_the_text_vectorizer_learns_its_vocabulary_from_the_texts_it_is_given(keras):
    vectorizer = baselines.text_vectorizer(["A good film.", "A bad, bad, bad film!"], vocabulary_size=10, sequence_length=6)
    vocabulary = vectorizer.get_vocabulary()
    assert vocabulary[:2] == ["", "[UNK]"] and set(vocabulary[2:]) == {"a", "good", "bad", "film"}
    assert vocabulary.index("bad") == 2, "the most frequent word comes first (ties in any order)"
    ids = baselines.vectorize(vectorizer, np.array(["Bad FILM, unseen"], dtype=object))
    assert ids.dtype == np.int64 and ids.shape == (1, 6)
    assert ids[0].tolist() == [2, vocabulary.index("film"), 1, 0, 0, 0], "lower-cased, OOV 1, padded with 0 at the end"


@pytest.fixture
def one_text_epoch(monkeypatch, tmp_path):
    """The fast profile cut to one epoch on 300 reviews, and an empty cache folder."""
    fast = profile.PROFILES["fast"]
    monkeypatch.setitem(profile.PROFILES, "fast", dataclasses.replace(fast, imdb=dataclasses.replace(fast.imdb, epochs=1, max_train_examples=300)))
    monkeypatch.setenv("EFFICIENT_DL_PROFILE", "fast")
    monkeypatch.setenv(baselines.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "baseline_rnn_fast.keras"


def test_load_or_train_rnn_trains_once_then_loads_from_the_cache(keras, one_text_epoch, capsys):
    trained, trained_vectorizer = baselines.load_or_train_baseline_rnn()
    first = capsys.readouterr().out
    assert one_text_epoch.is_file() and "trained" in first and "test accuracy" in first
    left = sorted(p.name for p in one_text_epoch.parent.iterdir())
    assert left == [one_text_epoch.name, one_text_epoch.name + ".lock"], "no temporary file is left behind"

    loaded, vectorizer = baselines.load_or_train_baseline_rnn()
    second = capsys.readouterr().out
    assert "loaded from" in second and "trained" not in second
    for a, b in zip(_weights(trained), _weights(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    assert vectorizer.get_vocabulary() == trained_vectorizer.get_vocabulary()
    assert loaded.count_params() == baselines.baseline_rnn().count_params()
    # Ready to use: the vectorizer feeds the model, which is compiled with the baseline's loss and metric.
    ids = baselines.vectorize(vectorizer, ["What a wonderful film.", "Dull, and far too long."])
    assert ids.shape == (2, baselines.TEXT_SEQUENCE_LENGTH)
    loss, accuracy = loaded.evaluate(ids, np.array([1, 0]), verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_the_rnn_never_sees_the_test_split_and_a_corrupt_cache_is_replaced(keras, one_text_epoch, monkeypatch, capsys):
    from efficient_dl import data

    real = data.load_imdb()
    marked = np.array([f"zzsecret{i} zzsecret{i} {text}" for i, text in enumerate(real.x_test)], dtype=object)
    monkeypatch.setattr(data, "load_imdb", lambda *args, **kwargs: dataclasses.replace(real, x_test=marked))
    one_text_epoch.parent.mkdir(parents=True)
    one_text_epoch.write_bytes(b"half a zip file")
    model, vectorizer = baselines.load_or_train_baseline_rnn()
    assert "unreadable" in capsys.readouterr().out
    assert not any(word.startswith("zzsecret") for word in vectorizer.get_vocabulary()), (
        "the vocabulary comes from the training reviews only")
    reloaded, _ = imdb_rnn._unbundle(keras.saving.load_model(one_text_epoch, compile=False))
    for a, b in zip(_weights(model), _weights(reloaded), strict=True):
        np.testing.assert_array_equal(a, b)


# --- the tf_keras bridge (chapters 07-08) ---------------------------------------------------


def test_the_cnn_bridges_to_tf_keras_and_back_with_the_same_function(keras):
    tf_keras = baselines.import_tf_keras()
    keras.utils.set_random_seed(5)
    original = baselines.baseline_cnn()
    twin = baselines.cnn_in_tf_keras(original)
    assert isinstance(twin, tf_keras.Model) and not isinstance(twin, keras.Model)
    digits = np.random.default_rng(9).random((5, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(twin(digits)), np.asarray(original(digits)), atol=1e-5)
    back = baselines.cnn_in_keras3(twin)
    assert isinstance(back, keras.Model)
    np.testing.assert_allclose(np.asarray(back(digits)), np.asarray(original(digits)), atol=1e-5)


@pytest.mark.parametrize("cell, bidirectional", [("gru", False), ("lstm", True)])
def test_the_rnn_bridges_with_its_mask(keras, cell, bidirectional):
    keras.utils.set_random_seed(6)
    original = baselines.baseline_rnn(300, cell=cell, bidirectional=bidirectional, embedding_dim=8, units=5)
    twin = baselines.rnn_in_tf_keras(original)
    ids = np.array([[5, 9, 2, 0, 0, 0], [7, 1, 1, 4, 8, 3]], dtype=np.int64)
    np.testing.assert_allclose(np.asarray(twin(ids)), np.asarray(original(ids)), atol=1e-5)


def test_a_bridge_to_another_architecture_is_refused(keras):
    tf_keras = baselines.import_tf_keras()
    original = baselines.baseline_cnn()
    relu_logits = tf_keras.Sequential([*baselines.cnn_in_tf_keras(original).layers[:-1],
                                       tf_keras.layers.Dense(10, activation="relu")])
    relu_logits.build((None, 28, 28, 1))
    with pytest.raises(baselines.BridgeMismatch, match="outputs differ"):
        baselines.copy_weights(original, relu_logits, np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32))
    with pytest.raises(baselines.BridgeMismatch, match="weight shapes differ"):
        baselines.copy_weights(original, baselines.baseline_rnn(50), None)
