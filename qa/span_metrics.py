"""How answers are compared: SQuAD v1.1's official normalisation, exact match and token F1 (max over the accepted
answers); the folding `qa eval` matches passages with; the words agreement groups compare."""
from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower case, drop punctuation, articles and extra whitespace (the official evaluation script's rule)."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str | None, answers: list[str]) -> float:
    """1.0 when the normalised prediction equals a normalised accepted answer."""
    if prediction is None or not answers:
        return 0.0
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(a) for a in answers))


def f1(prediction: str | None, answers: list[str]) -> float:
    """Best token-overlap F1 of the prediction against the accepted answers."""
    if prediction is None or not answers:
        return 0.0
    pred = normalize_answer(prediction).split()
    best = 0.0
    for a in answers:
        gold = normalize_answer(a).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


_FOLD = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def normalise(s: str) -> str:
    """Case, Unicode form, quote, dash and space folding for answer matching (punctuation kept)."""
    s = unicodedata.normalize("NFKC", s).lower().translate(_FOLD)
    return " ".join(s.split())


_DIGIT_GROUP = re.compile(r"(?<=\d)[,.\s\u00a0\u202f](?=\d{3}\b)")


def answer_words(text: str) -> frozenset[str]:
    """The normalised words of an answer: digit groups joined ("85 000" is 85,000), then SQuAD's rule (case,
    punctuation and articles dropped)."""
    return frozenset(normalize_answer(_DIGIT_GROUP.sub("", text)).split())
