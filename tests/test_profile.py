import pytest

from efficient_dl import profile


def test_students_get_the_full_profile_by_default():
    assert profile.current({}).name == "full"


def test_nbgrader_execution_selects_the_fast_profile():
    assert profile.current({"NBGRADER_EXECUTION": "autograde"}).name == "fast"
    assert profile.current({"NBGRADER_EXECUTION": "validate"}).name == "fast"


def test_an_explicit_choice_wins_over_nbgrader():
    chosen = profile.current({"EFFICIENT_DL_PROFILE": "FULL", "NBGRADER_EXECUTION": "autograde"})
    assert chosen.name == "full"


def test_an_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="EFFICIENT_DL_PROFILE='turbo' is not a run profile"):
        profile.current({"EFFICIENT_DL_PROFILE": "turbo"})


def test_fast_is_smaller_than_full_everywhere():
    fast, full = profile.PROFILES["fast"], profile.PROFILES["full"]
    for data_set in ("mnist", "imdb"):
        small, large = getattr(fast, data_set), getattr(full, data_set)
        assert small.epochs < large.epochs and small.fine_tune_epochs <= large.fine_tune_epochs, data_set
        assert small.max_train_examples is not None and large.max_train_examples is None, data_set
        assert large.max_eval_examples is None, data_set
    assert fast.latency_repeats < full.latency_repeats
    assert set(fast.batch_sizes) <= set(full.batch_sizes)


def test_the_description_names_the_sizes():
    text = profile.PROFILES["fast"].describe()
    assert "'fast'" in text and "4,000" in text and "[1, 16, 256]" in text
    assert "IMDB: 2 epoch(s) on 5,000 training examples" in text
    assert "MNIST: 20 epoch(s) on all training examples" in profile.PROFILES["full"].describe()
