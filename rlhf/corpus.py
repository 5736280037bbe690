"""The tiny world's text: a seeded generator of short movie reviews and their openings.

Every review is built from a small hand-written grammar (templates, word lists, invented
names), so the corpus is reproducible from a seed, grammatical, varied enough to need a
language model, and free of any scraped or licensed text. Reviews are positive or negative
with equal probability; about a fifth of them contrast one aspect of the other polarity
before their overall verdict, so sentiment is not a single-word decision.

A review is ``opening + continuation``. The opening (e.g. ``"I watched this comedy last
night and"``) is sentiment-neutral: it is the *prompt* of the later chapters, and the
continuation decides whether the review is positive or negative. Openings never end in a
space; continuations start with one (what a byte-level BPE tokenizer expects).

    >>> gen = ReviewGenerator(seed=0)
    >>> review = gen.review()
    >>> review.text == review.opening + review.continuation
    True
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Sentiment = Literal["positive", "negative"]
SENTIMENTS: tuple[Sentiment, Sentiment] = ("positive", "negative")

# (singular, plural)
GENRES = [
    ("comedy", "comedies"), ("drama", "dramas"), ("thriller", "thrillers"),
    ("horror film", "horror films"), ("romance", "romances"), ("western", "westerns"),
    ("musical", "musicals"), ("documentary", "documentaries"), ("animated film", "animated films"),
    ("science fiction film", "science fiction films"), ("mystery", "mysteries"),
    ("war film", "war films"), ("family film", "family films"), ("crime drama", "crime dramas"),
    ("fantasy film", "fantasy films"), ("sports drama", "sports dramas"),
]
FILM_NOUNS = ["movie", "film", "picture", "feature"]
# (noun phrase, is_plural)
ASPECTS = [
    ("acting", False), ("plot", False), ("script", False), ("dialogue", False),
    ("soundtrack", False), ("score", False), ("cinematography", False), ("ending", False),
    ("pacing", False), ("humor", False), ("direction", False), ("editing", False),
    ("story", False), ("cast", False), ("lead performance", False), ("final act", False),
    ("opening scene", False), ("characters", True), ("performances", True),
    ("special effects", True), ("visuals", True), ("costumes", True), ("jokes", True),
    ("action scenes", True), ("twists", True), ("songs", True), ("supporting roles", True),
]
ADJECTIVES: dict[Sentiment, list[str]] = {
    "positive": [
        "wonderful", "brilliant", "charming", "moving", "delightful", "gripping", "beautiful",
        "clever", "funny", "heartfelt", "stunning", "excellent", "superb", "memorable",
        "fresh", "powerful", "touching", "thrilling", "entertaining", "smart", "elegant",
        "inventive", "warm", "confident", "lovely", "impressive", "original", "engaging",
    ],
    "negative": [
        "boring", "dull", "awful", "terrible", "predictable", "dreadful", "dreary",
        "forgettable", "joyless", "messy", "weak", "lame", "confusing", "silly", "stupid",
        "painful", "ridiculous", "miserable", "disappointing", "poor", "lazy", "awkward", "horrible",
        "ugly", "bad", "dumb", "uneven", "annoying",
    ],
}
ADVERBS: dict[Sentiment, list[str]] = {
    "positive": ["truly", "really", "remarkably", "surprisingly", "quite", "absolutely", "wonderfully", "genuinely"],
    "negative": ["truly", "really", "painfully", "surprisingly", "quite", "completely", "terribly", "simply"],
}
FIRST_NAMES = [
    "Maya", "Tom", "Lena", "Omar", "Clara", "Ivan", "Nora", "Felix", "Ada", "Hugo", "Iris",
    "Jonas", "Rosa", "Theo", "Mira", "Leo", "Vera", "Sami", "Greta", "Paul", "Elena", "Marco",
]
LAST_NAMES = [
    "Lindqvist", "Okafor", "Moreau", "Haddad", "Novak", "Brennan", "Castillo", "Ferreira",
    "Kowalski", "Lund", "Mendes", "Nakamura", "Quinn", "Rahman", "Sorensen", "Varga", "Weber",
    "Abbott", "Duarte", "Hale",
]
ROLES = [
    "the grumpy detective", "the young teacher", "a retired pilot", "the lonely inventor",
    "the village doctor", "a stubborn farmer", "the ambitious mayor", "a shy musician",
    "the old captain", "a nervous student", "the tired boxer", "a clever thief",
    "the new neighbor", "a famous chef", "the youngest sister", "a wandering painter",
]
CREATORS = [
    "a first-time director", "a veteran director", "the team behind last year's hit",
    "an acclaimed writer", "a small independent studio", "a well-known comedian",
]
WHEN = [
    "last night", "over the weekend", "on a rainy Sunday", "with my family",
    "at a local festival", "on a long flight", "after work", "at the cinema downtown",
]
COMPANIONS = ["friend", "sister", "brother", "wife", "husband", "partner", "father", "mother", "roommate"]
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@dataclass(frozen=True)
class Review:
    """One generated review.

    Attributes:
        opening: the sentiment-neutral first words (a prompt), no trailing space.
        continuation: the rest of the review, starting with a space.
        sentiment: the polarity the generator aimed for ("positive" or "negative").
    """

    opening: str
    continuation: str
    sentiment: Sentiment

    @property
    def text(self) -> str:
        """The whole review: ``opening + continuation``."""
        return self.opening + self.continuation


def _article(word: str) -> str:
    """``"a"`` or ``"an"`` for the word that follows."""
    return "an" if word[0] in "aeiou" else "a"


def _capitalize(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


class ReviewGenerator:
    """Seeded generator of reviews, openings and prompt/completion demonstrations.

    Args:
        seed: seed of the generator's own ``random.Random`` (the module-level RNG is untouched),
            so the same seed always yields the same sequence of texts.
    """

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    # ------------------------------------------------------------------ small pieces
    def _pick(self, items: list):
        return self.rng.choice(items)

    def _adjective(self, s: Sentiment) -> str:
        return self._pick(ADJECTIVES[s])

    def _graded(self, s: Sentiment) -> str:
        """An adjective, sometimes with an adverb: ``"remarkably clever"``."""
        adjective = self._adjective(s)
        return f"{self._pick(ADVERBS[s])} {adjective}" if self.rng.random() < 0.5 else adjective

    def _two_adjectives(self, s: Sentiment) -> str:
        """Two different adjectives joined by "and": ``"clever and moving"``."""
        first, second = self.rng.sample(ADJECTIVES[s], 2)
        return f"{first} and {second}"

    def _actor(self) -> str:
        return f"{self._pick(FIRST_NAMES)} {self._pick(LAST_NAMES)}"

    def _genre(self) -> tuple[str, str]:
        return self._pick(GENRES)

    # ------------------------------------------------------------------ openings
    def opening(self) -> tuple[str, str]:
        """A sentiment-neutral opening and the kind of clause that must follow it.

        Returns:
            (opening, kind) where kind is ``"film"`` (a film is the subject; a predicate
            follows), ``"aspect_sg"``/``"aspect_pl"`` (an aspect is the subject) or ``"and"``
            (the writer is the subject; a verb phrase follows ``and``).
        """
        genre, _ = self._genre()
        noun = self._pick(FILM_NOUNS)
        choice = self.rng.randrange(8)
        if choice == 0:
            return f"This {genre}", "film"
        if choice == 1:
            return f"The new {genre} from {self._pick(CREATORS)}", "film"
        if choice == 2:
            return f"{self._actor()}'s new {genre}", "film"
        if choice == 3:
            return f"This {noun} about {self._pick(ROLES)}", "film"
        if choice == 4:
            aspect, plural = self._pick(ASPECTS)
            where = self._pick([f"this {genre}", f"this {noun}", f"the new {genre}"])
            return f"The {aspect} in {where}", "aspect_pl" if plural else "aspect_sg"
        if choice == 5:
            return f"I watched this {genre} {self._pick(WHEN)} and", "and"
        if choice == 6:
            return f"My {self._pick(COMPANIONS)} and I saw this {noun} {self._pick(WHEN)} and", "and_we"
        return f"I went to see {self._actor()}'s {genre} {self._pick(WHEN)} and", "and"

    def _finish_opening(self, kind: str, s: Sentiment) -> str:
        """The clause that completes an opening into a first sentence (leading space, final period)."""
        films = self._pick(["films", "movies", "pictures"])
        if kind == "film":
            options = {
                "positive": [
                    f" is {self._graded(s)}.",
                    f" is one of the best {films} I have seen in years.",
                    f" kept me hooked from start to finish.",
                    f" was {_article(a := self._adjective(s))} {a} surprise.",
                    f" deserves every bit of its praise.",
                    f" is {self._two_adjectives(s)}.",
                ],
                "negative": [
                    f" is {self._graded(s)}.",
                    f" is one of the worst {films} I have seen in years.",
                    f" bored me from start to finish.",
                    f" was {_article(a := self._adjective(s))} {a} disappointment.",
                    f" does not deserve any of its praise.",
                    f" is {self._two_adjectives(s)}.",
                ],
            }
        elif kind in ("aspect_sg", "aspect_pl"):
            verb = "are" if kind == "aspect_pl" else "is"
            options = {
                "positive": [f" {verb} {self._graded(s)}.", f" {verb} the best thing I have seen this year."],
                "negative": [f" {verb} {self._graded(s)}.", f" {verb} the worst thing I have seen this year."],
            }
        else:  # "and" / "and_we": a verb phrase with the writer(s) as subject
            subject_verb = "we" if kind == "and_we" else "I"
            options = {
                "positive": [
                    " loved every minute of it.",
                    " enjoyed it far more than I expected." if kind == "and" else " enjoyed it far more than we expected.",
                    f" {subject_verb} thought it was {self._graded(s)}.",
                    " left the theater smiling.",
                    f" found it {self._graded(s)}.",
                ],
                "negative": [
                    " regretted it within ten minutes.",
                    " disliked it far more than I expected." if kind == "and" else " disliked it far more than we expected.",
                    f" {subject_verb} thought it was {self._graded(s)}.",
                    " left the theater early.",
                    f" found it {self._graded(s)}.",
                ],
            }
        return self._pick(options[s])

    # ------------------------------------------------------------------ body sentences
    def _aspect_sentence(self, s: Sentiment) -> str:
        aspect, plural = self._pick(ASPECTS)
        verb = "are" if plural else "is"
        return f"The {aspect} {verb} {self._graded(s)}."

    def body_sentence(self, s: Sentiment) -> str:
        """One sentence supporting the verdict ``s``."""
        choice = self.rng.randrange(9)
        if choice <= 2:
            return self._aspect_sentence(s)
        if choice == 3:
            adjective = self._adjective(s)
            return f"{self._actor()} gives {_article(adjective)} {adjective} performance as {self._pick(ROLES)}."
        if choice == 4:
            return self._pick({
                "positive": [
                    "The story moves at a steady pace and never loses its way.",
                    "The story builds slowly to a satisfying finale.",
                    "Every scene feels carefully planned.",
                    "The dialogue sounds natural and sharp.",
                ],
                "negative": [
                    "The story drags badly in the middle and never recovers.",
                    "The story falls apart long before the finale.",
                    "Every scene feels longer than it should.",
                    "The dialogue sounds stiff and forced.",
                ],
            }[s])
        if choice == 5:
            return self._pick({
                "positive": [
                    "I laughed out loud more than once.", "I was moved to tears by the last scene.",
                    "I smiled all the way home.", "I could not look away from the screen.",
                ],
                "negative": [
                    "I checked my watch more than once.", "I nearly fell asleep before the last scene.",
                    "I sighed all the way home.", "I kept looking away from the screen.",
                ],
            }[s])
        if choice == 6:
            aspect, plural = self._pick(ASPECTS)
            return f"Even the {aspect} {'are' if plural else 'is'} {self._adjective(s)}."
        if choice == 7:
            adjective = self._adjective(s)
            return f"It has {_article(adjective)} {adjective} {self._pick(['soundtrack', 'cast', 'script', 'ending'])}."
        return self._pick({
            "positive": [
                "The whole cast seems to be having a great time.",
                "The director clearly knows how to tell a story.",
                "The music fits every scene perfectly.",
            ],
            "negative": [
                "The whole cast seems to be bored.",
                "The director clearly has no idea how to tell a story.",
                "The music drowns out half of the dialogue.",
            ],
        }[s])

    def contrast_sentence(self, s: Sentiment) -> str:
        """A sentence that concedes one aspect of the other polarity, then restates ``s``."""
        other: Sentiment = "negative" if s == "positive" else "positive"
        (a1, p1), (a2, p2) = self.rng.sample(ASPECTS, 2)
        return (f"The {a1} {'are' if p1 else 'is'} {self._adjective(other)}, "
                f"but the {a2} {'are' if p2 else 'is'} {self._graded(s)}.")

    def closing_sentence(self, s: Sentiment) -> str:
        """A final verdict for ``s``."""
        genre = self._pick(FILM_NOUNS)
        adjective = self._adjective(s)
        score = self._pick(NUMBER_WORDS[7:] if s == "positive" else NUMBER_WORDS[:4])
        return self._pick({
            "positive": [
                "I would happily watch it again.", "Highly recommended.", "Do not miss this one.",
                f"Overall, {_article(adjective)} {adjective} {genre} that is well worth your time.",
                f"I give it {score} out of ten.", "I will be recommending it to all my friends.",
            ],
            "negative": [
                "I would not watch it again.", "Not recommended.", "Skip this one.",
                f"Overall, {_article(adjective)} {adjective} {genre} that is not worth your time.",
                f"I give it {score} out of ten.", "I will be warning all my friends about it.",
            ],
        }[s])

    # ------------------------------------------------------------------ whole texts
    def review(self, sentiment: Sentiment | None = None, min_sentences: int = 2, max_sentences: int = 5) -> Review:
        """One review of ``min_sentences``..``max_sentences`` sentences.

        Args:
            sentiment: "positive", "negative", or None for a fair coin.
            min_sentences: at least 1 (the opening sentence).
            max_sentences: at least ``min_sentences``; the opening and an optional closing
                sentence count.
        """
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise ValueError(f"sentiment must be one of {SENTIMENTS} or None, got {sentiment!r}")
        if not 1 <= min_sentences <= max_sentences:
            raise ValueError(f"need 1 <= min_sentences <= max_sentences, got {min_sentences}, {max_sentences}")
        opening, kind = self.opening()
        s: Sentiment = sentiment or self._pick(list(SENTIMENTS))
        sentences = [self._finish_opening(kind, s)]
        n = self.rng.randint(min_sentences, max_sentences)
        has_closing = n >= 2 and self.rng.random() < 0.6
        n_body = n - 1 - int(has_closing)
        body = [self.body_sentence(s) for _ in range(n_body)]
        if body and self.rng.random() < 0.25:
            body[self.rng.randrange(len(body))] = self.contrast_sentence(s)
        sentences += [" " + b for b in body]
        if has_closing:
            sentences.append(" " + self.closing_sentence(s))
        return Review(opening=opening, continuation="".join(sentences), sentiment=s)

    def reviews(self, n: int, min_sentences: int = 2, max_sentences: int = 5) -> list[Review]:
        """``n`` reviews with fair-coin sentiments."""
        return [self.review(None, min_sentences, max_sentences) for _ in range(n)]

    def openings(self, n: int) -> list[str]:
        """``n`` distinct openings (prompts), in generation order.

        Raises:
            ValueError: if the grammar cannot produce ``n`` distinct openings within a generous number of draws.
        """
        seen: dict[str, None] = {}
        for _ in range(200 * n):
            seen.setdefault(self.opening()[0], None)
            if len(seen) == n:
                return list(seen)
        raise ValueError(f"could not draw {n} distinct openings; ask for fewer")


def generate_reviews(n: int, seed: int, min_sentences: int = 2, max_sentences: int = 5) -> list[str]:
    """Texts of ``n`` reviews drawn with ``ReviewGenerator(seed)``."""
    return [r.text for r in ReviewGenerator(seed).reviews(n, min_sentences, max_sentences)]


def generate_prompts(n_train: int, n_eval: int, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint train and eval sets of distinct review openings."""
    openings = ReviewGenerator(seed).openings(n_train + n_eval)
    return openings[:n_train], openings[n_train:]


def generate_demonstrations(prompts: list[str], seed: int, per_prompt: int = 1,
                            min_sentences: int = 1, max_sentences: int = 3) -> list[dict[str, str]]:
    """Prompt/completion demonstrations for supervised fine-tuning.

    Each demonstration completes one of ``prompts`` with a short review (``min_sentences``..
    ``max_sentences`` sentences in all) of a fair-coin sentiment, in TRL's prompt-completion
    format: ``{"prompt": opening, "completion": " continuation"}``. The completion is chosen
    to fit the opening grammatically, because it is generated together with it.

    Returns:
        ``len(prompts) * per_prompt`` dicts with keys "prompt", "completion" and "sentiment".
    """
    gen = ReviewGenerator(seed)
    demos = []
    for prompt in prompts:
        for _ in range(per_prompt):
            demos.append(_complete(gen, prompt, min_sentences, max_sentences))
    return demos


def _complete(gen: ReviewGenerator, prompt: str, min_sentences: int, max_sentences: int) -> dict[str, str]:
    """Draw reviews until one starts with an opening of the same kind as ``prompt``, then graft.

    The grammar's continuation depends only on the opening's kind (film, aspect, "and"), so a
    continuation drawn for any opening of the same kind completes ``prompt`` correctly.
    """
    kind = opening_kind(prompt)
    while True:
        state = gen.rng.getstate()
        opening, drawn_kind = gen.opening()
        if drawn_kind == kind:
            gen.rng.setstate(state)
            review = gen.review(None, min_sentences, max_sentences)
            return {"prompt": prompt, "completion": review.continuation, "sentiment": review.sentiment}


def opening_kind(opening: str) -> str:
    """The clause kind that must follow ``opening`` (see :meth:`ReviewGenerator.opening`)."""
    if opening.startswith("My ") and opening.endswith(" and"):
        return "and_we"
    if opening.endswith(" and"):
        return "and"
    if opening.startswith("The ") and " in " in opening and not opening.startswith("The new "):
        aspect = opening[len("The "):opening.index(" in ")]
        plural = dict(ASPECTS).get(aspect)
        if plural is not None:
            return "aspect_pl" if plural else "aspect_sg"
    return "film"
