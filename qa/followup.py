"""Follow-up questions: history query expansion (HQE) without a generative model.

In the spirit of Lin et al. 2020, "Query Reformulation using Query History for Passage Retrieval in
Conversational Search" (arXiv 2005.02230): a conversational question such as "and what did the US plan
propose?" or "what did they say about it?" is rewritten into a search query by appending the salient
keywords of the earlier questions in the conversation. Salience is inverse document frequency, so the
words that narrow the search (a rare figure, a place, a person) carry over while common words do not.

* topic keywords: very salient words (idf >= `topic_idf`) from every earlier question;
* subtopic keywords: salient words (idf >= `sub_idf`) from the last `window` questions only;
* a follow-up that names its own entity ("what about Russia?", "and the US plan?") switches the subject:
  only the earlier topic words carry over (army, cap), not the earlier entities (Istanbul, 2022);
* a follow-up that refers back with a pronoun ("what did he say?") keeps the earlier entities too, and may
  take the previous answer (a name) as the referent.

A self-contained question is returned unchanged. Everything here is pure: no models, no index, no I/O;
`index_idf(index)` adapts a loaded index's BM25 statistics to the `idf` callable.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.words import CONVERSATION_WORDS
from index.words import STOPWORDS as INDEX_STOPWORDS

__all__ = ["Keyword", "expand_query", "is_followup", "keywords", "index_idf", "default_idf"]

Idf = Callable[[str], float]

# Function words and question words: never keywords of their own.
STOPWORDS = INDEX_STOPWORDS | CONVERSATION_WORDS
PRONOUNS = frozenset(
    "it its it's they them their theirs he him his she her hers this that these those there such".split()
)
# Verbs that start imperative questions: capitalised only because they come first.
_IMPERATIVES = frozenset("tell show give list explain describe compare summarise summarize name find".split())
_OPENER = re.compile(
    r"^\s*(?:and|but|also|so|then|or|plus|what about|how about|what else|what of|same (?:for|with)|"
    r"as for|compared to|versus|vs\.?)\b",
    re.I,
)
_ELLIPSIS = re.compile(r"^\s*(?:\.\.\.|…)|(?:\.\.\.|…)\s*\??\s*$")
_WORD = re.compile(r"\d+(?:[.,]\d+)*(?:-[A-Za-z]+)?%?|[^\W\d_]+(?:[’'.-][^\W\d_]+)*\.?")
_ACRONYM = re.compile(r"^(?:[A-Z]{2,}|(?:[A-Z]\.){2,})$")

SHORT = 3  # a question with fewer content words than this leans on the conversation
RICH = 4  # a question with its own entity and at least this many keywords stands on its own


@dataclass(frozen=True)
class Keyword:
    """A word of a question that could be carried over to a later query."""

    text: str
    weight: float
    entity: bool
    key: str


def _norm(word: str) -> str:
    """A crude stem used only to tell whether a word is already in the question ("proposed" ~ "propose")."""
    w = word.lower().strip(".").replace("’", "'")
    w = re.sub(r"'s$", "", w)
    w = w.replace(",", "")
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def _is_entity(word: str, first: bool) -> bool:
    """A name, acronym or figure: the words that pick out what a question is about."""
    if word[0].isdigit():
        return True
    if _ACRONYM.match(word.rstrip(".") if word.count(".") < 2 else word):
        return True
    if not word[0].isupper():
        return False
    lower = word.lower().rstrip(".")
    if lower in STOPWORDS or lower in PRONOUNS:
        return False
    if first and lower in _IMPERATIVES:
        return False
    return True


def default_idf(word: str) -> float:
    """A stand-in for corpus statistics: names and figures weigh more than other content words."""
    return 4.0 if _is_entity(word, first=False) else 2.0


def _words(text: str) -> list[tuple[str, bool]]:
    """The words of text, each with whether it opens the question."""
    out = []
    for i, m in enumerate(_WORD.finditer(text)):
        word = m.group()
        if word.endswith(".") and not _ACRONYM.match(word):
            word = word.rstrip(".")
        if word:
            out.append((word, i == 0))
    return out


def keywords(text: str, idf: Idf | None = None) -> list[Keyword]:
    """Content words of text in order, with their idf weight and whether each is an entity (no repeats)."""
    idf = idf or default_idf
    out: list[Keyword] = []
    seen: set[str] = set()
    for word, first in _words(text):
        lower = word.lower()
        acronym = bool(_ACRONYM.match(word))  # "US" is a name, "us" a pronoun
        if not acronym and (lower in STOPWORDS or lower in PRONOUNS or len(word) < 2 and not word.isdigit()):
            continue
        if first and lower in _IMPERATIVES:
            continue
        key = _norm(word)
        if key in seen:
            continue
        seen.add(key)
        out.append(Keyword(text=word, weight=float(idf(word) or 0.0), entity=_is_entity(word, first), key=key))
    return out


def _has_pronoun(question: str) -> bool:
    return any(w.lower().replace("’", "'") in PRONOUNS for w, _ in _words(question))


def is_followup(question: str, history: Sequence[str] = (), idf: Idf | None = None) -> bool:
    """Whether question leans on the conversation: an opener ("and…", "what about…"), a pronoun, an ellipsis
    or very few content words. Never true without history; a long question naming its own subject is not."""
    if not any(h.strip() for h in history):
        return False
    if _OPENER.search(question) or _ELLIPSIS.search(question):
        return True
    own = keywords(question, idf)
    if len(own) < SHORT:
        return True
    if _has_pronoun(question):
        rich = any(k.entity for k in own) and len(own) >= RICH
        return not rich
    return False


def expand_query(question: str, history: Sequence[str], idf: Idf | None = None, *,
                 previous_answer: str | None = None, topic_idf: float = 2.5, sub_idf: float = 1.5,
                 window: int = 2, max_terms: int = 6) -> str:
    """The search query for question given the earlier questions (oldest first).

    Returns question unchanged when it is self-contained; otherwise question followed by the salient
    keywords of the history it lacks (at most max_terms, most salient first, kept in conversation order).
    `idf(word)` scores a surface word (0 for words the corpus lacks); without it names and figures weigh 4
    and other content words 2. `previous_answer` (the last reply's answer span) is added when the question
    refers back with a pronoun and names no subject of its own.
    """
    question = question.strip()
    history = [h.strip() for h in history if h and h.strip()]
    if not question or not is_followup(question, history, idf):
        return question
    idf = idf or default_idf
    own = keywords(question, idf)
    own_keys = {k.key for k in own}
    switches_subject = any(k.entity for k in own)

    candidates: dict[str, tuple[Keyword, int]] = {}  # key -> (keyword, order)
    order = 0
    recent_from = len(history) - window
    for turn, past in enumerate(history):
        threshold = sub_idf if turn >= recent_from else topic_idf
        for k in keywords(past, idf):
            order += 1
            if k.weight < threshold or k.key in own_keys:
                continue
            if switches_subject and k.entity:
                continue  # "what about Russia?": Russia replaces the earlier subject
            prev = candidates.get(k.key)
            if prev is None or k.weight > prev[0].weight:
                candidates[k.key] = (k, prev[1] if prev else order)
    if previous_answer and not switches_subject and _has_pronoun(question):
        for k in keywords(previous_answer, idf):
            if k.key not in own_keys and k.key not in candidates and k.weight > 0:
                order += 1
                candidates[k.key] = (Keyword(k.text, max(k.weight, sub_idf), k.entity, k.key), order)
    chosen = sorted(candidates.values(), key=lambda p: -p[0].weight)[:max_terms]
    terms = [k.text for k, _ in sorted(chosen, key=lambda p: p[1])]
    if not terms:
        return question
    return f"{question} {' '.join(terms)}"


def index_idf(index) -> Idf:
    """`idf(word)` from a loaded index's BM25 statistics: the highest idf of the word's tokens, 0 if unknown."""
    from index.bm25 import tokenize

    cache: dict[str, float] = {}

    def idf(word: str) -> float:
        if word not in cache:
            known = (index.term_idf(t) for t in tokenize(word))
            cache[word] = max((v for v in known if v is not None), default=0.0)
        return cache[word]

    return idf
