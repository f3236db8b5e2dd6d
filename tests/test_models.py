"""The baseline CNN: its architecture, and training it once per cache folder and profile."""
import dataclasses
import time

import numpy as np
import pytest

from efficient_dl import models, profile


@pytest.fixture(scope="module")
def keras():
    from efficient_dl import quiet

    with quiet.filtered_stderr():
        import keras
    return keras


def test_the_baseline_has_the_pytorch_models_parameter_count(keras):
    model = models.baseline_cnn()
    # conv1 3*3*1*32+32, conv2 3*3*32*64+64, dense1 3136*100+100, logits 100*10+10
    assert model.count_params() == 320 + 18_496 + 313_700 + 1_010 == 333_526


def test_the_baseline_layers_and_shapes(keras):
    model = models.baseline_cnn(name="my_cnn")
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
    monkeypatch.setitem(profile.PROFILES, "fast", dataclasses.replace(fast, epochs=1))
    monkeypatch.setenv("EFFICIENT_DL_PROFILE", "fast")
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "baseline_cnn_fast.keras"


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_load_or_train_trains_once_then_loads_from_the_cache(keras, one_epoch, capsys):
    start = time.perf_counter()
    trained = models.load_or_train_baseline_cnn()
    train_s = time.perf_counter() - start
    first = capsys.readouterr().out
    assert one_epoch.is_file(), "the trained model is cached under EFFICIENT_DL_CACHE"
    assert "trained" in first and "test accuracy" in first
    assert [p.name for p in one_epoch.parent.iterdir()] == [one_epoch.name], "no temporary file is left behind"

    start = time.perf_counter()
    loaded = models.load_or_train_baseline_cnn()
    load_s = time.perf_counter() - start
    second = capsys.readouterr().out
    assert "loaded from" in second and "trained" not in second
    assert load_s < train_s / 2, f"loading ({load_s:.1f} s) should be much faster than training ({train_s:.1f} s)"
    for a, b in zip(_weights(trained), _weights(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    # Ready to use: compiled with the baseline's loss and metric.
    x = np.zeros((4, 28, 28, 1), dtype=np.float32)
    loss, accuracy = loaded.evaluate(x, np.zeros(4, dtype=np.int64), verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_the_cache_dir_argument_wins_over_the_environment(keras, one_epoch, tmp_path):
    models.load_or_train_baseline_cnn(cache_dir=tmp_path / "elsewhere", verbose=False)
    assert (tmp_path / "elsewhere" / "baseline_cnn_fast.keras").is_file()
    assert not one_epoch.exists()


def test_a_corrupt_cache_file_is_replaced_not_a_crash(keras, one_epoch, capsys):
    one_epoch.parent.mkdir(parents=True)
    one_epoch.write_bytes(b"half a zip file")
    model = models.load_or_train_baseline_cnn()
    out = capsys.readouterr().out
    assert "unreadable" in out and "training a new one" in out
    assert model.count_params() == 333_526
    reloaded = keras.saving.load_model(one_epoch, compile=False)
    for a, b in zip(_weights(model), _weights(reloaded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_cache_folder_defaults_to_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(models.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / ".cache" / "efficient_dl"
