"""The gold rater: the tiny world's stand-in for human judgment, and a noisy simulated annotator.

The alignment goal of the course is a review that is **positive and fluent**. The gold score
of a text is

.. math:: g(x) = \\text{positivity}(x) \\cdot \\text{fluency}(x) \\in [0, 1]

- positivity = (VADER compound + 1) / 2, VADER being the lexicon-based sentiment scorer of
  the ``vaderSentiment`` package (independent of every model in the course), with a few topic
  words it would wrongly count as opinion removed from its lexicon (:data:`NEUTRAL_WORDS`);
- fluency = 1 minus penalties for repetition (repeated word pairs, a word repeated back to
  back), for word pairs never seen in the reference corpus (non-words, word salad), for a
  missing sentence ending and for a text that is too short; clipped to [0, 1].

The product is what makes reward hacking visible: ``"great great great great"`` is very
positive for VADER but its fluency is 0, so its gold score is 0 — while a learned reward
model that has only seen fluent reviews may score it highly.

The gold rater is the ground truth of chapters 10–12. It is never the trained reward model:
the reward model only sees the annotator's noisy labels.

The :class:`Annotator` labels a pair (a, b) by a Bradley–Terry coin flip,
P(a ≻ b) = σ(β·(g(a) − g(b))), like a human who agrees with the gold rater more often the
clearer the difference is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (letters and inner apostrophes; punctuation dropped)."""
    return _WORD.findall(text.lower())


def _bigrams(tokens: list[str]) -> list[tuple[str, str]]:
    return list(zip(tokens, tokens[1:]))


REFERENCE_REVIEWS = 20_000
"""How many reviews of the tiny world's pretraining corpus define the "seen" word pairs
(the first ones; more add almost no new pairs: the grammar is small)."""


@lru_cache(maxsize=1)
def _tiny_world_bigrams() -> frozenset[tuple[str, str]]:
    from rlhf.tiny_world import TinyWorldConfig, train_reviews

    texts = train_reviews(TinyWorldConfig(n_train_reviews=REFERENCE_REVIEWS))
    return frozenset(b for text in texts for b in _bigrams(words(text)))


NEUTRAL_WORDS = (
    # genre and people names: the topic of a review, not its opinion
    "comedy", "crime", "horror", "romance", "war", "thriller", "comedian", "festival", "friend", "friends",
    # character roles ("the lonely inventor", "a clever thief", "the tired boxer", ...)
    "ambitious", "lonely", "nervous", "shy", "stubborn", "thief", "tired",
    # aspects ("special effects", "supporting roles", "the jokes", "the humor") and scenery
    "humor", "jokes", "special", "supporting", "rainy", "tears",
    # intensifiers VADER scores as positive words ("truly awful" would count as half praise)
    "truly", "surprisingly", "clearly",
)
"""Words that VADER's lexicon scores but that carry no opinion in a movie review of the tiny
world; the gold rater ignores them, as a human reader would."""


@dataclass(frozen=True)
class GoldRaterConfig:
    """Weights of the fluency penalties (each penalty is a number in [0, 1] times its weight)
    and the words whose VADER sentiment is ignored."""

    repetition_weight: float = 1.5
    """Weight of the fraction of word pairs that repeat an earlier pair or a word back to back."""
    unseen_weight: float = 1.0
    """Weight of the fraction of word pairs never seen in the reference corpus. Set to 0 to
    score text from outside the tiny world (e.g. phi-2's general English) on sentiment,
    repetition and form only."""
    ending_penalty: float = 0.3
    """Subtracted when the text does not end with ``.``, ``!`` or ``?`` (an unfinished response)."""
    min_words: int = 4
    """Texts with fewer words get ``short_penalty``."""
    short_penalty: float = 0.5
    """Subtracted from the fluency of texts shorter than ``min_words``."""
    neutral_words: tuple[str, ...] = NEUTRAL_WORDS
    """Words removed from VADER's lexicon (topic words it wrongly counts as sentiment)."""

    def __post_init__(self):
        for name in ("repetition_weight", "unseen_weight", "ending_penalty", "short_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"GoldRaterConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_words < 0:
            raise ValueError(f"GoldRaterConfig.min_words must be >= 0, got {self.min_words}")


class GoldRater:
    """Ground-truth score of texts: positivity × fluency, both in [0, 1].

    Args:
        config: fluency penalty weights.
        reference_texts: corpus whose word pairs count as "seen" for the fluency term.
            None uses the tiny world's pretraining corpus.

    Score whole reviews (prompt + response): the gold rater judges the text a reader sees.
    """

    def __init__(self, config: GoldRaterConfig = GoldRaterConfig(), reference_texts: Iterable[str] | None = None):
        self.config = config
        self._vader = SentimentIntensityAnalyzer()
        for word in config.neutral_words:  # the lexicon is per instance: other analyzers are untouched
            self._vader.lexicon.pop(word, None)
        if reference_texts is None:
            self._seen = _tiny_world_bigrams()
        else:
            self._seen = frozenset(b for text in reference_texts for b in _bigrams(words(text)))

    def components(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Every ingredient of the gold score, each a ``(B,)`` array.

        Keys: ``positivity``, ``repetition``, ``unseen``, ``unfinished`` (0/1), ``short``
        (0/1), ``fluency`` and ``gold``.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings (score a single text as [text])")
        c = self.config
        out = {k: np.zeros(len(texts)) for k in ("positivity", "repetition", "unseen", "unfinished", "short")}
        for i, text in enumerate(texts):
            out["positivity"][i] = (self._vader.polarity_scores(text)["compound"] + 1.0) / 2.0
            tokens = words(text)
            pairs = _bigrams(tokens)
            if pairs:
                seen_before: set[tuple[str, str]] = set()
                repeated = 0
                for pair in pairs:
                    repeated += pair in seen_before or pair[0] == pair[1]
                    seen_before.add(pair)
                out["repetition"][i] = repeated / len(pairs)
                out["unseen"][i] = sum(pair not in self._seen for pair in pairs) / len(pairs)
            out["unfinished"][i] = not text.rstrip().endswith((".", "!", "?"))
            out["short"][i] = len(tokens) < c.min_words
        fluency = (1.0 - c.repetition_weight * out["repetition"] - c.unseen_weight * out["unseen"]
                   - c.ending_penalty * out["unfinished"] - c.short_penalty * out["short"])
        out["fluency"] = np.clip(fluency, 0.0, 1.0)
        out["gold"] = out["positivity"] * out["fluency"]
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Gold scores ``(B,)`` in [0, 1] of ``texts`` (whole reviews: prompt + response)."""
        return self.components(texts)["gold"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) without overflow for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Annotator:
    """A simulated human labeller with Bradley–Terry noise around the gold rater.

    P(a ≻ b) = σ(β · (g(a) − g(b))): a large β is a careful annotator (β → ∞ always agrees
    with the gold preference), β = 0 a coin flip.

    Args:
        beta: inverse noise temperature, >= 0.
        seed: seed of the annotator's own random generator.
        rater: the gold rater (a default :class:`GoldRater` if None).
    """

    def __init__(self, beta: float = 10.0, seed: int = 0, rater: GoldRater | None = None):
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        self.beta = float(beta)
        self.rater = rater if rater is not None else GoldRater()
        self.rng = np.random.default_rng(seed)

    def _pair_scores(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if len(texts_a) != len(texts_b):
            raise ValueError(f"texts_a has {len(texts_a)} texts but texts_b has {len(texts_b)}; they must pair up")
        return self.rater.score(texts_a), self.rater.score(texts_b)

    def preference_probability(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
        """``(B,)`` probabilities that the annotator prefers ``texts_a[i]`` over ``texts_b[i]``."""
        ga, gb = self._pair_scores(texts_a, texts_b)
        return _sigmoid(self.beta * (ga - gb))

    def label_pairs(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
        """Draw labels: ``(B,)`` bool array, True where ``texts_a[i]`` is preferred."""
        p = self.preference_probability(texts_a, texts_b)
        return self.rng.random(len(p)) < p

    def label_pair(self, text_a: str, text_b: str) -> bool:
        """True if the annotator prefers ``text_a`` over ``text_b`` (one noisy draw)."""
        return bool(self.label_pairs([text_a], [text_b])[0])

    def noise_ceiling(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> float:
        """Expected agreement of the annotator's labels with the gold preference on these pairs.

        For a pair with gold scores ``g_a != g_b`` the annotator picks the gold winner with
        probability ``max(p, 1 - p)``, ``p = σ(β(g_a − g_b))``; ties count 1/2. The mean over
        pairs is also the best expected accuracy any reward model can reach on held-out
        annotator labels, since the labels themselves are this noisy.
        """
        p = self.preference_probability(texts_a, texts_b)
        return float(np.mean(np.maximum(p, 1.0 - p)))
