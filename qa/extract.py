"""Pick the answering sentence in a passage and, for number/date/name/place questions, the answer span."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from index.bm25 import term_set, tokenize
from index.words import FUNCTION_WORDS, MONTH_NAMES, STOPWORDS

_NUMBER_WORDS = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                 r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
                 r"hundred|thousand|million|billion|half|dozen)")
_MONTHS = rf"(?:{MONTH_NAMES})"
PATTERNS = {
    "number": re.compile(
        r"[$£€¥]?\d+(?:[.,]\d+)*(?:\s?[–-]\s?\d+(?:[.,]\d+)*)?(?:\s?(?:%|percent|per cent|billion|million|thousand)|(?:bn|m)\b)?"
        rf"|\b{_NUMBER_WORDS}(?:[- ]{_NUMBER_WORDS})*\b", re.I),
    "date": re.compile(
        rf"\b(?:\d{{1,2}} {_MONTHS}(?: \d{{4}})?|{_MONTHS}(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? \d{{4}})?|"
        rf"(?:early|mid|late)[- ]{_MONTHS}|(?:1[5-9]|20)\d\d(?:s)?|(?:Monday|Tuesday|Wednesday|Thursday|Friday|"
        rf"Saturday|Sunday)|Thanksgiving|Christmas)\b"),
    "name": re.compile(
        r"\b(?:[A-Z][\w’'.-]*[a-z][\w’'-]*|[A-Z]{2,})(?:\s+(?:of|the|de|van|von|al|bin|for)?\s*"
        r"(?:[A-Z][\w’'.-]*[a-z][\w’'-]*|[A-Z]{2,}))*"),
}
_TYPE_CUES = [
    ("date", re.compile(r"^\s*when\b|\b(?:what|which) (?:year|date|month|day|decade|century)\b|\bsince when\b|\bby when\b", re.I)),
    ("number", re.compile(r"\bhow (?:many|much|large|big|long|far|old|high|low|often)\b|\b(?:what|which) (?:\w+ ){0,3}(?:size|number|cap|limit|ceiling|figure|amount|percentage|share|cost|price|total|count|age|strength|range)\b|\bcapped? at\b|\blimited to\b|\bwhat\b.*\bcap\b", re.I)),
    ("name", re.compile(r"^\s*(?:who|whom|whose)\b|\bwho\b|\b(?:which|what) (?:\w+ ){0,2}(?:person|official|envoy|leader|minister|president|economist|historian|professor|analyst|commentator|author|newspaper|outlet|agency|company|country|city|region|organi[sz]ation|institute|think tank|university|school|body|alliance|group|party|treaty|summit|publication|site|unit|plant|firm|oil giants?|river|sea)\b|^\s*where\b|\bin which (?:city|country|region)\b|\bwhat is the name\b|\bnamed?\b", re.I)),
]
_MONEY_QUESTION = re.compile(
    r"\bhow much (?:money|rent|fees?|costs?|pay|payments?|funding|budget|compensation|ransom|salary|wages?|debt|"
    r"loans?|damages)\b|\bhow much (?:did|does|do|would|will|could|is|was|were)\b.*\b(?:cost|pay|paid|spend|spent|"
    r"earn|earned|charge|fetch)\b", re.I)
_CURRENCY = re.compile(r"[$£€¥₹]|\b(?:dollars?|euros?|pounds?|sterling|ro?ubles?|hryvnias?|yuan|yen|lira|lire|francs?|"
                       r"rupees?|pesos?|shillings?|cents?|USD|EUR|GBP)\b", re.I)
_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                     "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = dict(zip("twenty thirty forty fifty sixty seventy eighty ninety".split(), range(20, 100, 10)))
_YEAR = re.compile(r"(?:1[5-9]|20)\d\d")
_DATE_BEFORE = re.compile(rf"(?:\b(?:in|since|by|of|until|from)|{_MONTHS}(?: \d{{1,2}},?)?)\s*$", re.I)


def answer_type(question: str) -> str | None:
    """'number', 'date' or 'name' when the question asks for one, else None."""
    for kind, cue in _TYPE_CUES:
        if cue.search(question):
            return kind
    return None


def number_value(text: str) -> float | None:
    """The value of a plain figure or number word ("85,000", "twenty-eight"); None for anything else."""
    t = text.strip().lower().replace(",", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    parts = re.split(r"[- ]", t)
    if len(parts) == 1 and parts[0] in _UNITS:
        return float(_UNITS[parts[0]])
    if 1 <= len(parts) <= 2 and parts[0] in _TENS and (len(parts) == 1 or 0 < _UNITS.get(parts[1], 0) < 10):
        return float(_TENS[parts[0]] + (_UNITS[parts[1]] if len(parts) == 2 else 0))
    return None


@lru_cache(maxsize=1024)
def asks_for_money(question: str) -> bool:
    """"How much rent / did it cost": only an amount of money answers it, not any figure."""
    return bool(_MONEY_QUESTION.search(question))


def find_candidates(text: str, kind: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Ranges in text[start:end] that could answer a question of this kind."""
    out = []
    for m in PATTERNS[kind].finditer(text, start, len(text) if end is None else end):
        s, e = m.start(), m.end()
        if kind == "name":
            if re.search(r"[’']s$", m.group()) or re.match(r"[’']s\b", text[e:e + 3]):
                continue  # "Ukraine’s military": a possessive modifies the answer, it is not one
            words = m.group().split()
            while words and words[-1].lower() in FUNCTION_WORDS:
                e -= len(words.pop()) + 1
            if not words:
                continue
        out.append((s, e))
    return out


@dataclass(frozen=True)
class Extraction:
    """The chosen sentence range and, if any, the answer range, both in file offsets."""

    start: int
    end: int
    answer: tuple[int, int] | None


def span_candidates(question: str, kind: str, text: str, s_start: int, s_end: int) -> list[tuple[int, int]]:
    """Candidates of the right kind in the sentence that the question does not already state."""
    q_lower, q_tokens, q_names = _question_words(question)
    q_values = _question_values(question) if kind == "number" else frozenset()
    money = kind == "number" and asks_for_money(question)
    cands = []
    for s, e in find_candidates(text, kind, s_start, s_end):
        cand = text[s:e]
        cand_terms = term_set(cand)
        if cand.lower() in q_lower or (cand_terms and cand_terms <= q_tokens):
            continue
        if kind == "name" and (not cand_terms or cand_terms & q_names):
            continue  # "The", "It" (sentence starts), or "Steven Witkoff" when the question names Witkoff
        if kind == "number" and _YEAR.fullmatch(cand) and _DATE_BEFORE.search(text[max(0, s - 12):s]):
            continue  # "in March 2022" dates the figure, it does not count anything
        if kind == "number" and number_value(cand) in q_values:
            continue  # "twenty-eight" when the question says "the 28-point plan": the question's own figure
        if money and not _CURRENCY.search(text[max(0, s - 2):e + 12]):
            continue  # "how much rent": "one" or "50%" is not an amount of money
        cands.append((s, e))
    return cands


def nearest_candidate(question: str, kind: str, text: str, s_start: int, s_end: int, terms: dict[str, float],
                      cands: list[tuple[int, int]]) -> tuple[int, int]:
    """The candidate nearest to the question's words in the sentence, weighted by their IDF."""
    focus = count_focus(question) if kind == "number" else frozenset()
    boost = 1 + sum(terms.values())
    anchors = []
    for m in re.finditer(r"[^\W_]+(?:[.,’']\w+)*", text[s_start:s_end]):
        toks = tokenize(m.group())
        if toks and toks[0] in terms:
            anchors.append((s_start + m.start(), terms[toks[0]] + (boost if toks[0] in focus else 0.0)))
        elif toks and toks[0] in focus:  # counted things weigh most: "fewer than 400 tanks"
            anchors.append((s_start + m.start(), boost))
    if not anchors:
        return cands[0]

    def distance(c: tuple[int, int]) -> float:
        # weighted nearness to important question words, in characters; full names beat single words
        d = min(abs(((c[0] + c[1]) / 2) - pos) / (1 + w) for pos, w in anchors)
        return d * (0.5 if kind == "name" and " " in text[c[0]:c[1]] else 1.0)

    return min(cands, key=distance)


def extract_answer(question: str, text: str, sentences: list[tuple[int, int]], terms: dict[str, float],
                   kind: str | None) -> Extraction:
    """Best sentence of a passage for the question (plus its neighbour when it is very short) and the span in it.

    `text` is the whole file text; sentence ranges and the result are file offsets.
    """
    total = sum(terms.values()) or 1.0
    focus = count_focus(question) if kind == "number" else frozenset()
    found = [term_set(text[s:e]) & terms.keys() for s, e in sentences]
    # a sentence scores for holding any candidate; which one is the answer is settled only in the best sentence
    cands = [span_candidates(question, kind, text, s, e) if kind else [] for s, e in sentences]
    best_i, best_score = 0, -1.0
    for i, (s, e) in enumerate(sentences):
        sc = sum(terms[t] for t in found[i])
        if i > 0:  # "It capped ...": question words in the sentence before count a little, if not repeated here
            sc += 0.3 * sum(terms[t] for t in found[i - 1] - found[i])
        if cands[i]:
            sc += 0.6 * total
            if focus & term_set(text[s:e]):
                sc += total  # "how many tanks": a figure beside "tanks" beats one beside other question words
        if sc > best_score + 1e-9:
            best_i, best_score = i, sc
    s, e = sentences[best_i]
    span = nearest_candidate(question, kind, text, s, e, terms, cands[best_i]) if cands[best_i] else None
    if e - s < 60 and len(sentences) > 1:
        if best_i + 1 < len(sentences):
            e = sentences[best_i + 1][1]
        else:
            s = sentences[best_i - 1][0]
    return Extraction(start=s, end=e, answer=span)


def unknown_names(question: str, vocab) -> list[str]:
    """Names the question mentions that occur nowhere in the corpus ("Minsk", "Erdogan").

    A question about something the documents never mention cannot be answered from them, however
    on-topic the rest of it is. Lowercase words are left out: paraphrases use words the text does not.
    """
    out = []
    words = list(re.finditer(r"[^\W_]+(?:[’'.-][^\W_]+)*", question))
    for i, m in enumerate(words):
        w = m.group()
        if not (w[0].isupper() and i > 0) or any(ch.isdigit() for ch in w):
            continue
        if w.isupper() and len(w) <= 5:
            continue  # acronyms ("IAI") often name a publisher or body only the boilerplate spells out
        toks = tokenize(w)
        if toks and all(t not in vocab for t in toks):
            out.append(w)
    return out


@lru_cache(maxsize=1024)
def _question_words(question: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """The question lowercased, its terms, and the terms of its capitalised words (names)."""
    names = frozenset(t for w in re.findall(r"\b[A-Z][\w’'-]+", question) for t in term_set(w))
    return question.lower(), term_set(question), names


@lru_cache(maxsize=1024)
def _question_values(question: str) -> frozenset[float]:
    """The values of the figures a question itself states."""
    values = (number_value(m.group()) for m in PATTERNS["number"].finditer(question))
    return frozenset(v for v in values if v is not None)


_HOW_MANY = re.compile(r"\bhow (?:many|much)\s+((?:[\w’'-]+\s*){1,5})", re.I)


@lru_cache(maxsize=1024)
def count_focus(question: str) -> frozenset[str]:
    """Terms of the thing a "how many / how much" question counts: "how many tanks would..." -> {"tank"}.

    A figure answers such a question only where it counts that thing, so the answer sentence must name it.
    """
    m = _HOW_MANY.search(question)
    if not m:
        return frozenset()
    words = []
    for w in m.group(1).split():
        lw = w.lower()
        if not words and lw in ("of", "the", "a", "an"):
            continue
        if lw in STOPWORDS or lw == "per":
            break
        words.append(w)
    return term_set(" ".join(words)) if words else frozenset()


def span_fits(question: str, kind: str | None, span: str | None) -> bool:
    """Whether a span can answer the question's kind: a figure for "how many", a date for "when", an amount of
    money for "how much rent"; any span fits a question of no such kind."""
    if kind not in ("number", "date"):
        return True
    if not span or not find_candidates(span, kind):
        return False
    return not asks_for_money(question) or bool(_CURRENCY.search(span))
