"""SQuAD-style scoring and the episode reward, on hand-computed cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_smartrag.scoring import episode_reward, exact_match, f1_score, has_answer, normalize_answer


@pytest.mark.parametrize(
    ("text", "normalized"),
    [("The Eiffel Tower!", "eiffel tower"), ("  A  cat, an apple ", "cat apple"), ("Theatre", "theatre"), ("", "")],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match_takes_the_best_alias():
    assert exact_match("the Beatles", ["Rolling Stones", "Beatles"]) == 1.0
    assert exact_match("Beatles band", ["Beatles"]) == 0.0
    assert exact_match("Paris", "paris.") == 1.0


def test_f1_by_hand():
    # prediction tokens: [new, york, city]; gold: [new, york] -> P = 2/3, R = 1, F1 = 0.8
    assert f1_score("New York City", ["New York"]) == pytest.approx(0.8)
    assert f1_score("New York City", ["Boston", "New York City"]) == 1.0
    assert f1_score("London", ["Paris"]) == 0.0
    assert f1_score("the", ["a"]) == 1.0  # both normalise to nothing
    assert f1_score("Paris", []) == 0.0


def test_episode_reward():
    assert episode_reward("Paris", ["Paris"], retrievals=0) == 2.0
    assert episode_reward("Paris", ["Paris"], retrievals=1) == pytest.approx(1.8)
    assert episode_reward("London", ["Paris"], retrievals=2) == pytest.approx(-0.4)
    assert episode_reward("", ["Paris"], retrievals=1, well_formed=False) == pytest.approx(-1.2)
    assert episode_reward("Paris", ["Paris"], retrievals=1, alpha=0.5) == pytest.approx(1.5)


@given(st.text(), st.lists(st.text(), min_size=1))
def test_scores_are_bounded_and_em_implies_full_f1(prediction, golds):
    em, f1 = exact_match(prediction, golds), f1_score(prediction, golds)
    assert em in (0.0, 1.0) and 0.0 <= f1 <= 1.0
    assert em == 0.0 or f1 == 1.0
    assert exact_match(prediction, [*golds, prediction]) == 1.0


def test_has_answer_matches_normalised_words_not_substrings():
    assert has_answer("Hamlet was written by William Shakespeare.", ["shakespeare"])
    assert has_answer("It landed in July, 1969!", ["1969"])
    assert not has_answer("Parisian cafes", ["Paris"])
    assert not has_answer("anything", [""])
