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
    assert fast.epochs < full.epochs
    assert fast.max_train_examples is not None and full.max_train_examples is None
    assert fast.latency_repeats < full.latency_repeats
    assert set(fast.batch_sizes) <= set(full.batch_sizes)
    assert fast.text_epochs < full.text_epochs
    assert fast.max_train_reviews is not None and full.max_train_reviews is None


def test_the_description_names_the_sizes():
    text = profile.PROFILES["fast"].describe()
    assert "'fast'" in text and "4,000" in text and "[1, 16, 256]" in text
    assert "text models: 2 epoch(s), training reviews: 5,000" in text
    assert "training reviews: all" in profile.PROFILES["full"].describe()
