"""The gold rater (positivity x fluency) and the Bradley–Terry annotator."""

import numpy as np
import pytest

from rlhf.gold import Annotator, GoldRater, GoldRaterConfig, words

# A small reference corpus keeps these tests independent of the tiny world's 20k-review reference.
REFERENCE = [
    "This comedy is wonderful. The acting is brilliant. I loved every minute of it.",
    "This comedy is dull. The acting is awful. I regretted it within ten minutes.",
    "The story moves at a steady pace and never loses its way.",
]


@pytest.fixture(scope="module")
def rater():
    return GoldRater(reference_texts=REFERENCE)


def test_words_lowercases_and_drops_punctuation():
    assert words("The film's ending, at last!") == ["the", "film's", "ending", "at", "last"]


def test_positive_fluent_review_beats_negative_one(rater):
    pos, neg = rater.score(["This comedy is wonderful. The acting is brilliant.",
                            "This comedy is dull. The acting is awful."])
    assert pos > 0.8 and neg < 0.3  # VADER compound: +0.88 vs -0.49


def test_repetition_is_punished_even_when_very_positive(rater):
    parts = rater.components(["great great great great", "This comedy is wonderful. The acting is brilliant."])
    assert parts["positivity"][0] > 0.9  # VADER loves it ...
    assert parts["repetition"][0] == 1.0  # ... every word pair repeats a word back to back ...
    assert parts["gold"][0] == 0.0  # ... so the gold rater gives it nothing
    assert parts["gold"][1] > 0.8


def test_repeated_sentences_lower_fluency(rater):
    once = "This comedy is wonderful. The acting is brilliant."
    thrice = once + " The acting is brilliant. The acting is brilliant."
    f_once, f_thrice = rater.components([once, thrice])["fluency"]
    assert f_once == 1.0 and f_thrice < 0.5


def test_unseen_word_pairs_and_missing_ending(rater):
    parts = rater.components(["This comedy is wonderful brilliant superb.",  # word salad
                              "Thiss cmoedy iss wondrful.",  # non-words
                              "This comedy is wonderful. The acting is",  # unfinished
                              "This comedy is wonderful."])
    # 2 of 5 word pairs unseen: "wonderful brilliant" and "brilliant superb"
    assert parts["unseen"][0] == pytest.approx(2 / 5)
    assert parts["unseen"][1] == 1.0 and parts["fluency"][1] == 0.0
    assert parts["unfinished"][2] == 1.0 and parts["unfinished"][3] == 0.0
    assert parts["fluency"][2] == pytest.approx(1.0 - 0.3 - 1.0 * parts["unseen"][2] - 1.5 * parts["repetition"][2])
    assert parts["fluency"][3] == 1.0


def test_short_texts_are_penalised(rater):
    short, long = rater.components(["Wonderful.", "This comedy is wonderful."])["fluency"]
    assert short == pytest.approx(0.5) and long == 1.0


def test_scores_lie_in_unit_interval_and_are_deterministic(rater):
    texts = ["", "!!!", "This comedy is dull.", "This comedy is wonderful.", "a a a a a a"]
    s1, s2 = rater.score(texts), rater.score(texts)
    assert np.all((s1 >= 0) & (s1 <= 1))
    np.testing.assert_array_equal(s1, s2)


def test_rater_rejects_a_bare_string(rater):
    with pytest.raises(TypeError, match="list of strings"):
        rater.score("This comedy is wonderful.")


def test_config_validation():
    with pytest.raises(ValueError, match="repetition_weight"):
        GoldRaterConfig(repetition_weight=-1)


def test_default_rater_accepts_tiny_world_reviews():
    from rlhf.tiny_world import load_reviews

    parts = GoldRater().components(load_reviews("eval")[:200])
    assert parts["fluency"].mean() > 0.95  # the corpus itself is fluent by the gold rater's standard
    assert 0.4 < parts["positivity"].mean() < 0.7  # and about half positive


def test_annotator_probability_is_bradley_terry(rater):
    a = ["This comedy is wonderful. The acting is brilliant."]
    b = ["This comedy is dull. The acting is awful."]
    beta = 3.0
    ga, gb = rater.score(a)[0], rater.score(b)[0]
    p = Annotator(beta=beta, rater=rater).preference_probability(a, b)[0]
    assert p == pytest.approx(1 / (1 + np.exp(-beta * (ga - gb))))
    assert Annotator(beta=0.0, rater=rater).preference_probability(a, b)[0] == 0.5


def test_annotator_label_frequency_matches_probability(rater):
    a = ["This comedy is wonderful. The acting is brilliant."] * 4000
    b = ["This comedy is dull. I loved every minute of it."] * 4000
    annotator = Annotator(beta=2.0, seed=1, rater=rater)
    p = annotator.preference_probability(a[:1], b[:1])[0]
    labels = annotator.label_pairs(a, b)
    assert 0.55 < p < 0.95
    assert labels.mean() == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / len(a)))
    # the expected agreement with the gold order is max(p, 1-p) per pair
    assert annotator.noise_ceiling(a[:1], b[:1]) == pytest.approx(max(p, 1 - p))


def test_annotator_is_seeded(rater):
    a = ["This comedy is wonderful."] * 50
    b = ["This comedy is dull."] * 50
    l1 = Annotator(beta=1.0, seed=7, rater=rater).label_pairs(a, b)
    l2 = Annotator(beta=1.0, seed=7, rater=rater).label_pairs(a, b)
    np.testing.assert_array_equal(l1, l2)
    assert isinstance(Annotator(beta=1.0, rater=rater).label_pair(a[0], b[0]), bool)


def test_annotator_validates_input(rater):
    with pytest.raises(ValueError, match="beta"):
        Annotator(beta=-1.0, rater=rater)
    with pytest.raises(ValueError, match="pair up"):
        Annotator(rater=rater).label_pairs(["a"], ["b", "c"])


def test_topic_words_carry_no_sentiment(rater):
    text = ["The special effects in this comedy are truly awful."]
    plain_vader = GoldRater(GoldRaterConfig(neutral_words=()), reference_texts=REFERENCE)
    assert plain_vader.components(text)["positivity"][0] > 0.5  # VADER alone: "comedy", "special", "truly" read as praise
    assert rater.components(text)["positivity"][0] < 0.3  # the gold rater reads the opinion: awful
