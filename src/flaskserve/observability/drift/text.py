"""Drift of a text model's input: how long the texts are, and how many of their words the model knows.

A text has no bins of its own, so it is measured twice, and each measure is
profiled and served like a numeric feature (quantile bins, PSI, KS, JS):

* ``FEATURE:length`` — the number of tokens in the text;
* ``FEATURE:vocabulary_hits`` — the share of those tokens found in the
  vocabulary (missing for a text without tokens).

Tokens are what the model's word vectorizer would cut: its ``token_pattern``,
lowercased when it lowercases. The vocabulary is the vectorizer's own single
words (``vocabulary_`` of a ``CountVectorizer`` or ``TfidfVectorizer`` at the
front of the Pipeline, or in the ``FeatureUnion`` there) when it has them, else
the training texts' words; either way at most :data:`MAX_VOCABULARY` of them,
the ones most frequent in the training texts. The pattern, the case rule and the
vocabulary are written in the profile, so serving measures a text exactly as
profiling did, without the model.

The vocabulary hits of the training texts are **held out**: each training text
is scored as a new text would be, against the words of the *other* training
texts. A vocabulary learnt from the training texts holds every one of their
words, so scored in-sample they would all hit 100 %, while new texts from the
same source miss the rare words nobody wrote twice — on a small training set a
false major drift from the first requests. A word found in a single training
text (``seen_once``, with a digest of that text) therefore counts as a miss in
that text and as a hit in any other: the reference is the held-out share, new
texts of the same kind score alike, and a training text sent back is scored
exactly as it was profiled (a PSI of zero).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from flaskserve.observability.drift.profile import FeatureProfile, profile_column

__all__ = ["MAX_VOCABULARY", "TOKEN_PATTERN", "TextProfile", "profile_texts"]

#: scikit-learn's default token pattern: words of two or more word characters.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
#: Words kept in a profile's vocabulary, so that ``reference.json`` stays small.
MAX_VOCABULARY = 20_000
LENGTH = "length"
VOCABULARY_HITS = "vocabulary_hits"

VocabularySource = Literal["model", "data"]


@dataclass(frozen=True)
class TextProfile:
    """How a text feature is measured (tokens, vocabulary), and the training profile of each measure."""

    feature: str
    token_pattern: str
    lowercase: bool
    vocabulary: tuple[str, ...]
    source: VocabularySource
    length: FeatureProfile
    hits: FeatureProfile
    #: The vocabulary's words found in one training text only, each with that text's digest.
    seen_once: Mapping[str, str] = field(default_factory=dict)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _known: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile(self.token_pattern))
        object.__setattr__(self, "_known", frozenset(self.vocabulary))

    @property
    def features(self) -> tuple[FeatureProfile, FeatureProfile]:
        """The measures, in the column order of :meth:`measure`."""
        return self.length, self.hits

    def measure(self, texts: Iterable[Any]) -> npt.NDArray[np.float64]:
        """One row per text: its token count and its vocabulary-hit share (NaN without tokens)."""
        return _measure(texts, self._pattern, self.lowercase, self._known, self.seen_once)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "token_pattern": self.token_pattern,
            "lowercase": self.lowercase,
            "vocabulary_source": self.source,
            "vocabulary": self.vocabulary,
            "seen_once": dict(sorted(self.seen_once.items())),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any], features: Sequence[FeatureProfile]) -> TextProfile:
        """The text profile of ``document``, its measures being ``features`` (the profile's inputs)."""
        feature = str(document["feature"])
        by_name = {f.name: f for f in features}
        source = document["vocabulary_source"]
        if source not in ("model", "data"):
            raise ValueError(f"unknown vocabulary source {source!r}")
        try:
            length, hits = (
                by_name[measure_name(feature, LENGTH)],
                by_name[measure_name(feature, VOCABULARY_HITS)],
            )
        except KeyError as exc:
            raise ValueError(f"the text feature {feature!r} has no profile of {exc}") from None
        token_pattern = str(document["token_pattern"])
        try:
            re.compile(token_pattern)
        except re.error as exc:
            raise ValueError(f"token_pattern {token_pattern!r} is not a regular expression: {exc}") from None
        return cls(
            feature=feature,
            token_pattern=token_pattern,
            lowercase=bool(document["lowercase"]),
            vocabulary=tuple(str(word) for word in document["vocabulary"]),
            source=source,
            length=length,
            hits=hits,
            # Absent from profiles written before hits were held out: scored in-sample, as then.
            seen_once={str(word): str(digest) for word, digest in document.get("seen_once", {}).items()},
        )


def measure_name(feature: str, measure: str) -> str:
    """The label of one measure of a text feature, e.g. ``text:length``."""
    return f"{feature}:{measure}"


def profile_texts(feature: str, texts: Sequence[Any], estimator: Any) -> TextProfile:
    """The text profile of the training ``texts`` of ``estimator``'s text feature ``feature``."""
    found = _model_vocabulary(estimator)
    token_pattern, lowercase = (found[1], found[2]) if found is not None else (TOKEN_PATTERN, True)
    pattern = re.compile(token_pattern)
    frequency: Counter[str] = Counter()
    # In how many training texts each word is, and the text of each word found in one only.
    texts_with: Counter[str] = Counter()
    only_text: dict[str, str] = {}
    for text in texts:
        if isinstance(text, str):
            tokens = pattern.findall(text.lower() if lowercase else text)
            frequency.update(tokens)
            for word in set(tokens):
                texts_with[word] += 1
                only_text[word] = text
    words = found[0] if found is not None else set(frequency)
    # The most frequent in training first, then by name, so that the profile is the same on every run.
    vocabulary = tuple(sorted(sorted(words), key=lambda word: -frequency[word])[:MAX_VOCABULARY])
    seen_once = {word: _digest(only_text[word]) for word in vocabulary if texts_with[word] == 1}
    measured = _measure(texts, pattern, lowercase, frozenset(vocabulary), seen_once)
    return TextProfile(
        feature=feature,
        token_pattern=token_pattern,
        lowercase=lowercase,
        vocabulary=tuple(sorted(vocabulary)),
        source="model" if found is not None else "data",
        length=profile_column(measure_name(feature, LENGTH), measured[:, 0]),
        hits=_profile_hits(measure_name(feature, VOCABULARY_HITS), measured[:, 1]),
        seen_once=seen_once,
    )


def _measure(
    texts: Iterable[Any],
    pattern: re.Pattern[str],
    lowercase: bool,
    known: frozenset[str],
    seen_once: Mapping[str, str],
) -> npt.NDArray[np.float64]:
    rows: list[tuple[float, float]] = []
    for text in texts:
        tokens = pattern.findall(text.lower() if lowercase else text) if isinstance(text, str) else []
        if not tokens:
            rows.append((0.0, float("nan")))
            continue
        hits = 0
        digest: str | None = None
        for token in tokens:
            if token not in known:
                continue
            only_in = seen_once.get(token)
            if only_in is not None:
                # A word of one training text alone is a miss in that very text: held out.
                digest = digest or _digest(text)
                if only_in == digest:
                    continue
            hits += 1
        rows.append((float(len(tokens)), hits / len(tokens)))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2)


def _digest(text: str) -> str:
    """A short digest of a training text: enough to tell it from the others, without keeping it."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _profile_hits(name: str, shares: npt.NDArray[np.float64]) -> FeatureProfile:
    """The hit shares' profile; all missing (no text had a token) profiles as a single zero."""
    if np.isnan(shares).all():
        return profile_column(name, [0.0])
    return profile_column(name, shares)


def _model_vocabulary(estimator: Any) -> tuple[set[str], str, bool] | None:
    """The single words a fitted word vectorizer of ``estimator`` knows, its token pattern and case rule.

    Only a vectorizer that cuts words with its ``token_pattern`` alone counts (no
    custom analyzer, tokenizer or preprocessor, no accent stripping): those are
    what the profile can repeat at serving time without the model. Its stop
    words are counted as known: the model drops them on purpose.
    """
    try:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.pipeline import FeatureUnion, Pipeline
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return None
    if isinstance(estimator, Pipeline):
        return _model_vocabulary(estimator.steps[0][1]) if estimator.steps else None
    if isinstance(estimator, FeatureUnion):
        for _, part in estimator.transformer_list:
            found = _model_vocabulary(part)
            if found is not None:
                return found
        return None
    if not isinstance(estimator, CountVectorizer) or not hasattr(estimator, "vocabulary_"):
        return None
    plain = (
        estimator.analyzer == "word"
        and estimator.tokenizer is None
        and estimator.preprocessor is None
        and estimator.strip_accents is None
        and estimator.token_pattern is not None
        and estimator.ngram_range[0] == 1
    )
    if not plain:
        return None
    words = {term for term in estimator.vocabulary_ if " " not in term}
    stop_words = estimator.get_stop_words()
    if stop_words:
        words.update(stop_words)
    return words, str(estimator.token_pattern), bool(estimator.lowercase)
