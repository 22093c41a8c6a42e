"""Follow-up questions in a conversation, resolved to a search query without a generative model.

Public API (stable; `qa ask --conversation`, `qa eval` on conversation files and the chat app use it):

    turns: list[Turn] = []                          # the conversation so far, oldest first
    query = followup_query(question, turns, idf)    # what to search: the question itself when it stands alone
    r = resolve(question, turns, idf)               # the same with the decision: r.query, r.followup, r.kind,
                                                    # r.referent (what a pronoun or a missing part resolved to)
    turns.append(Turn.from_answer(question, reply)) # after answering (reply: qa.Answer), or
                                                    # Turn(question, query=..., answer=..., sentence=...)

`idf(word)` is corpus salience (`index_idf(index)` reads it from a loaded index: 0 for words the corpus lacks);
None stands in `default_idf` (names and figures weigh more). Everything here is pure: no models, no index, no I/O.

How a question is judged and resolved:

* It depends on the conversation when it opens with "and …", "but …", "what about …" (an opener), trails off
  ("…"), refers back with a pronoun (he, she, it, they, this, there; not when a name earlier in the same question
  is the antecedent, as in "from its power plants" after "Ukraine's"), has no content word of its own ("why?",
  "how much?"), or names nothing (no name, figure or acronym: "how many tanks?", "which outlet published the
  transcript?"). A question whose words the corpus mostly lacks ("what is the capital of Peru?") stands alone.
  A question that stands alone is searched exactly as typed.
* "he"/"she" become the most recent person: the answer of a who-question, else a person named in a question.
* "it"/"they"/"its" become the topic of the last question: its subject ("the US plan" in "what army cap did the
  US plan propose?"), or the answer when the last question asked which thing ("which newspaper said …?").
  "there" becomes the last place asked for or named ("in Donetsk").
* "and what did X propose?" keeps the last question's intent with the new subject X: "what army cap did X
  propose?". "what about X?" puts X in the last question's subject ("what army cap did Russia propose?") when X
  is a name, or in its intent when X is a thing ("what about missile range?": the last subject stays).
* Whatever cannot be rewritten in place is searched as the question followed by the salient words it lacks from
  the last turn's search (history query expansion, after Lin et al. 2020, arXiv 2005.02230).

The last turn's search is already resolved, so chains ("who drafted it?" after "and what did the US plan
propose?") build on what was actually searched.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.words import CONVERSATION_WORDS, MONTHS
from index.words import STOPWORDS as INDEX_STOPWORDS

__all__ = ["Keyword", "Resolution", "Turn", "default_idf", "followup_query", "index_idf",
           "is_followup", "keywords", "resolve"]

Idf = Callable[[str], float]

# Function words and question words: never keywords of their own.
STOPWORDS = INDEX_STOPWORDS | CONVERSATION_WORDS | frozenset({"within", "according"})
PRONOUNS = frozenset(
    "it its it's they them their theirs he him his she her hers this that these those there such".split()
)
PERSON_PRONOUNS = frozenset("he him his she her hers himself herself".split())
THING_PRONOUNS = frozenset("it its they them their theirs itself themselves".split())
AUX = frozenset("""did does do is are was were would will has have had can could should might must may shall
    isn't wasn't didn't doesn't won't wouldn't""".split())
WH = frozenset("what which who whom whose when where why how".split())
HOW_ADJ = frozenset("many much long large big often far old high soon".split())
PREPOSITIONS = frozenset("""about above across after against along among around at before behind below beneath
    beside between beyond by despite during except for from in inside into like near of off on onto out outside
    over past since through throughout to toward towards under underneath until upon with within without""".split())
DETERMINERS = frozenset("the a an this that these those its their his her our".split())
# Words after which "it"/"they" opens a clause of its own (its subject), not an object
_CLAUSE_OPENERS = frozenset("unless if because although though whereas once lest whether and but or nor".split())
_BE = frozenset("is are was were be been will would 's".split())
_TIME = frozenset("time year week month day morning evening weekend autumn spring summer winter".split())
# Nouns that head the subject of a question ("the US plan", "the European counterproposal").
SUBJECT_NOUNS = frozenset("""plan plans draft drafts proposal proposals counterproposal counterproposals initiative
    deal treaty agreement document framework version outline memorandum talks side government administration
    leader leaders president envoy aide official officials delegation army military commentary article report
    author newspaper minister ministry spokesman spokesperson negotiator negotiators points point summit
    call statement offer demands demand""".split())
# Nouns naming people: "which aide …?" asks for a person.
PERSON_NOUNS = frozenset("""aide envoy official officials minister president leader historian economist lawmaker
    diplomat spokesman spokesperson chief secretary commentator author negotiator general analyst journalist
    person man woman professor adviser advisor confidant chancellor senator ambassador editor writer""".split())
# Nouns that "that"/"those" point back with ("that plan", "that figure").
_REFERRING_NOUNS = SUBJECT_NOUNS | frozenset("""figure number cap limit city region claim idea meeting quote
    estimate amount fund""".split())
# Common irregular past forms: verbs end a wh-phrase ("which newspaper said …").
_VERBS = frozenset("""said told called met made gave took wrote led set put sent held ran won lost cut paid
    became came went knew thought brought bought fought sought began drew struck saw""".split())
# Place and group names: never taken as the person "he"/"she" refers to.
_NOT_PERSONS = frozenset("""russia ukraine europe america us usa uk eu nato kremlin kyiv kiev moscow washington
    london paris berlin brussels beijing china india istanbul geneva ankara miami alaska crimea donbas donbass
    donetsk luhansk kherson zaporizhzhia poland turkey türkiye qatar israel iran syria germany france britain
    belarus minsk telegram axios bloomberg reuters congress senate thanksgiving""".split())
# Words of organisations and dates: a capitalised run holding one is not a person ("Russian Ministry of …").
_GROUP_WORDS = frozenset("""ministry council union affairs fund church times news post party parliament committee
    commission office agency institute house forces department court bank company group""".split())
_CALENDAR = frozenset(m.lower() for m in MONTHS) | frozenset(
    "monday tuesday wednesday thursday friday saturday sunday".split())
_NAME_PARTICLES = frozenset("von van der de da del di al bin le la".split())

_CONJ = r"and|but|also|so|then|or|plus|okay|ok|now|well"
_ABOUT = r"(?:what|how)\s+about|what\s+of|as\s+for|same\s+(?:for|with)|compared\s+(?:to|with)|versus|vs\.?"
_OPENER = re.compile(rf"^\s*(?:(?P<conj>{_CONJ})\b[\s,]*)?(?:(?P<about>{_ABOUT})(?:\s+|$))?", re.I)
_ELLIPSIS = re.compile(r"^\s*(?:\.\.\.|…)|(?:\.\.\.|…)\s*\??\s*$")
_WORD = re.compile(r"\d+(?:[.,]\d+)*(?:[-–][\w]+)*%?|[^\W\d_]+(?:[’'.-][^\W\d_]+)*\.?")
_ACRONYM = re.compile(r"^(?:[A-Z]{2,}|(?:[A-Z]\.){2,})$")

LONG = 6  # a question with this many content words and a name of its own carries its antecedents itself
MIN_IDF = 1.0  # words below this corpus idf are too common to narrow a search and are not carried over
MAX_TERMS = 6


@dataclass(frozen=True)
class Keyword:
    """A word of a question that could be carried over to a later query."""

    text: str
    weight: float
    entity: bool
    key: str


@dataclass(frozen=True)
class Turn:
    """One answered turn: what was asked, what was searched, and the top answer (a span, and its sentence)."""

    question: str
    query: str | None = None
    answer: str | None = None
    sentence: str | None = None

    @property
    def searched(self) -> str:
        return (self.query or self.question).strip()

    @classmethod
    def from_answer(cls, question: str, reply) -> Turn:
        """The turn record of a `qa.Answer` (the top span and best sentence only when it answered)."""
        sentence = None
        if reply.answered and reply.passages:
            p = reply.passages[0]
            base = p.citation.start
            sentence = p.text[p.sentence_start - base:p.sentence_end - base]
        return cls(question=question, query=reply.query or question,
                   answer=reply.answer if reply.answered else None, sentence=sentence)


@dataclass(frozen=True)
class Resolution:
    """What to search for a question, whether it leaned on the conversation, how, and on what."""

    query: str
    followup: bool
    kind: str | None = None  # opener, what_about, ellipsis, person, pronoun, place, missing_subject
    referent: str | None = None


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
    if first and (lower in _IMPERATIVES or lower in AUX):
        return False
    return True


_IMPERATIVES = frozenset("tell show give list explain describe compare summarise summarize name find".split())


def default_idf(word: str) -> float:
    """A stand-in for corpus statistics: names and figures weigh more than other content words."""
    return 4.0 if _is_entity(word, first=False) else 2.0


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int

    @property
    def low(self) -> str:
        return self.text.lower().replace("’", "'")


def _tokens(text: str) -> list[_Tok]:
    out = []
    for m in _WORD.finditer(text):
        word = m.group()
        end = m.end()
        if word.endswith(".") and not _ACRONYM.match(word):
            word = word.rstrip(".")
            end = m.start() + len(word)
        if word:
            out.append(_Tok(word, m.start(), end))
    return out


def _words(text: str) -> list[tuple[str, bool]]:
    """The words of text, each with whether it opens the question."""
    return [(t.text, i == 0) for i, t in enumerate(_tokens(text))]


def keywords(text: str, idf: Idf | None = None) -> list[Keyword]:
    """Content words of text in order, with their idf weight and whether each is an entity (no repeats)."""
    idf = idf or default_idf
    out: list[Keyword] = []
    seen: set[str] = set()
    for word, first in _words(text):
        lower = word.lower()
        acronym = bool(_ACRONYM.match(word))  # "US" is a name, "us" a pronoun
        if not acronym and (lower in STOPWORDS or lower in PRONOUNS or lower in AUX
                            or len(word) < 2 and not word.isdigit()):
            continue
        if first and lower in _IMPERATIVES:
            continue
        key = _norm(word)
        if key in seen:
            continue
        seen.add(key)
        out.append(Keyword(text=word, weight=float(idf(word) or 0.0), entity=_is_entity(word, first), key=key))
    return out


# --- the dependence decision ---------------------------------------------------------------------------------

def _split_opener(question: str) -> tuple[str | None, bool, str]:
    """(conjunction, whether a "what about"-style opener was used, the rest of the question)."""
    m = _OPENER.match(question)
    conj = m.group("conj") if m else None
    about = bool(m and m.group("about"))
    rest = question[m.end():] if m and (conj or about) else question
    return conj, about, rest.strip()


def _anaphora(question: str) -> list[tuple[int, str]]:
    """(token index, class) of each pronoun that points outside the question: person, pronoun or place."""
    toks = _tokens(question)
    n = len(toks)
    found = []
    long = len(keywords(question)) >= LONG
    for i, t in enumerate(toks):
        low = t.low
        prev = toks[i - 1].low if i else ""
        nxt = toks[i + 1].low if i + 1 < n else ""
        comma_before = i > 0 and "," in question[toks[i - 1].end:t.start]
        named_before = any(_is_entity(toks[j].text, j == 0) for j in range(i))
        if low in PERSON_PRONOUNS:
            # "what did Witkoff say he knew?", or a long "In his address, what did Zelensky say …?"
            if not _name_runs(question[:t.start]) and not (long and _name_runs(question[t.end:])):
                found.append((i, "person"))
        elif low in THING_PRONOUNS:
            object_position = low in ("it", "them") and (
                i == n - 1 or prev in PREPOSITIONS or (prev.isalpha() and prev not in WH and prev not in AUX
                                                       and prev not in STOPWORDS and prev not in _CLAUSE_OPENERS
                                                       and not comma_before))
            if not named_before or object_position and not long:
                found.append((i, "pronoun"))
        elif low in ("this", "these"):
            if nxt not in _TIME:
                found.append((i, "pronoun"))
        elif low in ("that", "those"):
            if i == n - 1 or prev in PREPOSITIONS or prev in AUX or nxt in _REFERRING_NOUNS:
                found.append((i, "pronoun"))
        elif low == "there":
            if nxt not in _BE and prev not in _BE:
                found.append((i, "place"))
    return found


def _dependence(question: str, idf: Idf | None) -> str | None:
    """How question leans on the conversation (a kind), or None when it stands alone."""
    if _ELLIPSIS.search(question):
        return "ellipsis"
    conj, about, _ = _split_opener(question)
    if about:
        return "what_about"
    if conj:
        return "opener"
    pronouns = _anaphora(question)
    if pronouns:
        kinds = [k for _, k in pronouns]
        return "person" if "person" in kinds else kinds[0]
    own = keywords(question, idf)
    if not own:
        return "ellipsis"
    if idf is not None:
        unknown = sum(1 for k in own if k.weight <= 0)
        if 2 * unknown >= len(own):
            return None  # mostly words the corpus never uses: a new topic, not a follow-up
    if not any(k.entity for k in own):
        return "missing_subject"
    return None


def is_followup(question: str, history: Sequence[str] = (), idf: Idf | None = None) -> bool:
    """Whether question leans on the conversation (see the module docstring). Never true without history."""
    if not any(h.strip() for h in history):
        return False
    return _dependence(question.strip(), idf) is not None


# --- reading a question --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Parse:
    """A wh-question split as WH [NP] AUX SUBJECT …, with token index ranges into toks."""

    toks: list[_Tok]
    wh: tuple[int, int] | None = None  # "what", "how many"
    np: tuple[int, int] | None = None  # "army cap"
    aux: int | None = None
    subject: tuple[int, int] | None = None  # "the US plan", "Istanbul 2022"

    def span(self, text: str, r: tuple[int, int] | None) -> str:
        if not r or r[0] >= r[1]:
            return ""
        return text[self.toks[r[0]].start:self.toks[r[1] - 1].end]


def _verb_like(tok: _Tok) -> bool:
    low = tok.low
    return low in _VERBS or (len(low) > 4 and low.endswith("ed") and not tok.text[0].isupper())


def _parse(text: str) -> _Parse:
    toks = _tokens(_question_part(text))
    n = len(toks)
    i = 0
    while i < n and re.fullmatch(_CONJ, toks[i].low):
        i += 1
    if i >= n or toks[i].low not in WH:
        return _Parse(toks)
    wh_start = i
    i += 1
    if toks[wh_start].low == "how" and i < n and toks[i].low in HOW_ADJ:
        i += 1
    wh = (wh_start, i)
    np_start = i
    while i < n and toks[i].low not in AUX and not _verb_like(toks[i]) and i - np_start < 4:
        i += 1
    if i >= n or toks[i].low not in AUX:
        return _Parse(toks, wh=wh, np=(np_start, i))  # the wh-phrase is the subject ("which newspaper said …")
    np = (np_start, i)
    aux = i
    subject = _subject(toks, aux + 1)
    return _Parse(toks, wh=wh, np=np, aux=aux, subject=subject)


def _subject(toks: list[_Tok], i: int) -> tuple[int, int] | None:
    """The noun phrase starting at i: a run of names ("Istanbul 2022"), or a determiner up to its head noun."""
    n = len(toks)
    if i >= n:
        return None
    if toks[i].low in DETERMINERS and toks[i].low not in ("his", "her", "their", "its"):
        end = None
        for j in range(i + 1, min(n, i + 5)):
            t = toks[j]
            if t.low in AUX or t.low in PREPOSITIONS or t.low in WH or t.low in PRONOUNS:
                break
            if _is_entity(t.text, False) or t.low in SUBJECT_NOUNS:
                end = j + 1
                if t.low in SUBJECT_NOUNS and not (j + 1 < n and toks[j + 1].low in SUBJECT_NOUNS):
                    break
            elif end is not None:
                break
        return (i, end) if end else None
    j = i
    while j < n and (_is_entity(toks[j].text, False) or toks[j].low in _NAME_PARTICLES and j > i
                     or j > i and toks[j].low in SUBJECT_NOUNS):
        j += 1
    while j > i and toks[j - 1].low in _NAME_PARTICLES:
        j -= 1
    return (i, j) if j > i else None


# --- referents -----------------------------------------------------------------------------------------------

def _looks_like_name(text: str | None) -> bool:
    if not text:
        return False
    words = text.split()
    return 0 < len(words) <= 5 and words[0][0].isupper() and not any(ch.isdigit() for ch in text)


def _is_person_phrase(words: list[str]) -> bool:
    """A run of capitalised words that names a person rather than a place, a group or a thing."""
    if not words or any(_ACRONYM.match(w) or w[0].isdigit() for w in words):
        return False
    lows = [w.lower().removesuffix("’s").removesuffix("'s") for w in words]
    if any(w in _NOT_PERSONS or w in _GROUP_WORDS or w in _CALENDAR or w in SUBJECT_NOUNS for w in lows):
        return False
    if len(words) == 1 and "-" in words[0]:
        return False  # "Trump-Putin"
    if len(words) == 1:
        return not re.search(r"(?:ia|land|stan|an|ans|ese|ish|ic)$", lows[0])  # places and peoples
    return not lows[0].endswith(("ian", "ean", "ese", "ish"))  # "Russian Ministry", "European Council"


def _possessive(word: str) -> bool:
    return word.endswith(("’s", "'s"))


def _name_runs(text: str, skip_first: bool = True) -> list[str]:
    """Capitalised runs in text that could name a person, first to last (followed by a noun: a modifier).

    A sentence's first word counts only when a name goes on after it ("Witkoff drafted", not "Similarly, …").
    """
    toks = _tokens(text)
    runs, i, n = [], 0, len(toks)
    while i < n:
        t = toks[i]
        opener = i == 0 and (skip_first or "," in text[t.end:t.end + 1])
        if t.text[0].isupper() and not opener and t.low not in STOPWORDS | PRONOUNS | AUX:
            j = i
            while j < n and (toks[j].text[0].isupper() or toks[j].low in _NAME_PARTICLES and any(
                    x.text[0].isupper() for x in toks[j + 1:j + 3])):
                j += 1
                if _possessive(toks[j - 1].text):
                    break  # "Putin's July essay": the name ends at its possessive
            words = [x.text for x in toks[i:j]]
            modifier = j < n and toks[j].low in (SUBJECT_NOUNS | PERSON_NOUNS) and not toks[j].text[0].isupper() \
                and not _possessive(toks[j - 1].text)
            if not modifier and _is_person_phrase(words):
                runs.append(text[toks[i].start:toks[j - 1].end].removesuffix("’s").removesuffix("'s"))
            i = j
        else:
            i += 1
    return runs


def _asks_for_person(question: str) -> bool:
    p = _parse(question)
    if p.wh is None:
        return False
    wh = p.toks[p.wh[0]].low
    if wh in ("who", "whom", "whose"):
        return True
    np_words = {t.low for t in p.toks[p.np[0]:p.np[1]]} if p.np else set()
    return wh in ("which", "what") and bool(np_words & PERSON_NOUNS)


def _person(turns: Sequence[Turn]) -> str | None:
    """The most recent person: answered to a who-question, else named in a question (its subject first)."""
    for turn in reversed(turns):
        if _asks_for_person(turn.searched):
            if _looks_like_name(turn.answer) and _is_person_phrase(turn.answer.split()):
                return turn.answer
            if turn.sentence:
                asked = {w.lower() for w in turn.searched.split()}
                names = [r for r in _name_runs(turn.sentence, skip_first=False)
                         if not set(r.lower().split()) <= asked]
                if names:
                    return names[0]
        names = _name_runs(turn.searched)
        if names:
            return names[0]
    return None


def _topic(turn: Turn) -> str | None:
    """What "it" refers to after turn: the subject of its question, or the thing it asked for and got, or the
    thing its asker named after the verb ("the plan" in "who drafted the plan?")."""
    text = _question_part(turn.searched)
    p = _parse(text)
    if p.subject:
        phrase = p.span(text, p.subject)
        if not _is_person_phrase(phrase.split()) or p.toks[p.subject[0]].low in DETERMINERS:
            return phrase
        return None
    if p.wh is None:
        return None
    asked_thing = p.toks[p.wh[0]].low in ("which", "what") and not _asks_for_person(text)
    if asked_thing and turn.answer and not any(ch.isdigit() for ch in turn.answer) \
            and len(turn.answer.split()) <= 6:
        return turn.answer
    after = p.np[1] + 1 if p.np else p.wh[1] + 1  # the verb follows the wh-phrase
    obj = _subject(p.toks, after)
    if obj and p.toks[obj[0]].low in DETERMINERS:
        return p.span(text, obj)
    return None


def _place(turns: Sequence[Turn]) -> str | None:
    """The most recent place: the answer to a where/which-city question, else a name after in/of/at."""
    for turn in reversed(turns):
        p = _parse(turn.searched)
        if p.wh and turn.answer and _looks_like_name(turn.answer):
            wh = p.toks[p.wh[0]].low
            np_words = {t.low for t in p.toks[p.np[0]:p.np[1]]} if p.np else set()
            if wh == "where" or np_words & {"city", "town", "region", "country", "place", "oblast", "capital"}:
                return turn.answer
        toks = p.toks
        for i, t in enumerate(toks[1:], 1):
            if toks[i - 1].low in ("in", "of", "at", "near", "from") and t.text[0].isupper() \
                    and not _ACRONYM.match(t.text):
                j = i
                while j < len(toks) and toks[j].text[0].isupper():
                    j += 1
                return turn.searched[t.start:toks[j - 1].end]
    return None


# --- resolution ----------------------------------------------------------------------------------------------

def _question_part(text: str) -> str:
    """The question of a search that had words appended after it ("how much? Telegraph Donbass")."""
    head, mark, tail = text.partition("?")
    return head + mark if mark and tail.strip() else text


def _carry(frame: str, question: str, idf: Idf, drop: str, max_terms: int = MAX_TERMS) -> list[str]:
    """Salient words of frame (the last search) that question lacks. drop="intent" leaves out the frame's
    wh-phrase ("army cap": the question asks something else), drop="subject" its names (a new subject)."""
    own = {k.key for k in keywords(question, idf)}
    p = _parse(_question_part(frame))
    skip: set[str] = set()
    if drop == "intent" and p.np and p.np[1] > p.np[0]:
        skip = {_norm(t.text) for t in p.toks[p.np[0]:p.np[1]]}
    chosen = []
    for order, k in enumerate(keywords(frame, idf)):
        if k.key in own or k.key in skip or k.weight < MIN_IDF:
            continue
        if drop == "subject" and k.entity:
            continue
        chosen.append((order, k))
    chosen = sorted(chosen, key=lambda p: -p[1].weight)[:max_terms]
    return [k.text for _, k in sorted(chosen, key=lambda p: p[0])]


def _append(question: str, words: list[str]) -> str:
    return f"{question} {' '.join(words)}" if words else question


def _substitute(question: str, referents: dict[int, str]) -> str:
    """question with the pronoun at each token index replaced by its referent (possessives keep their 's)."""
    toks = _tokens(question)
    out, pos = [], 0
    for i in sorted(referents):
        t = toks[i]
        ref = referents[i]
        low = t.low
        nxt = toks[i + 1].low if i + 1 < len(toks) else ""
        if low in ("his", "its", "their", "theirs", "hers") or (
                low == "her" and nxt and nxt not in STOPWORDS and nxt not in PREPOSITIONS and nxt not in AUX):
            ref = ref + "’s" if not ref.endswith("s") else ref + "’"
        elif low == "there":
            ref = "in " + ref
        out.append(question[pos:t.start])
        out.append(ref)
        pos = t.end
    out.append(question[pos:])
    return "".join(out)


def resolve(question: str, turns: Sequence[Turn], idf: Idf | None = None) -> Resolution:
    """What to search for question, given the earlier turns (oldest first); see the module docstring."""
    question = question.strip()
    turns = [t for t in turns if t.question.strip()]
    if not question or not turns:
        return Resolution(question, False)
    kind = _dependence(question, idf)
    if kind is None:
        return Resolution(question, False)
    idf_ = idf or default_idf
    last = turns[-1]
    frame = last.searched
    conj, about, rest = _split_opener(question)
    rest = rest.rstrip()
    rest_toks = _tokens(rest)
    rest_names = [t for i, t in enumerate(rest_toks) if _is_entity(t.text, i == 0)]
    fp = _parse(_question_part(frame))
    frame_np = fp.span(frame, fp.np) if fp.np else ""

    # "what about Russia?", "and the Europeans?": a fragment without a question of its own
    rp = _parse(rest)
    fragment = about or (conj and rp.wh is None and not (rest_toks and rest_toks[0].low in AUX))
    if fragment and rest_toks:
        x = rest.rstrip("?").strip()
        if rest_names and fp.subject and frame_np:
            subject = fp.span(frame, fp.subject)
            s, e = fp.toks[fp.subject[0]].start, fp.toks[fp.subject[1] - 1].end
            return Resolution(frame[:s] + x + frame[e:], True, kind, subject)
        if rest_names:
            return Resolution(_append(question, _carry(frame, question, idf_, "subject")), True, kind)
        if fp.np and fp.np[1] > fp.np[0] and fp.aux is not None and rest_toks[0].low not in DETERMINERS:
            s, e = fp.toks[fp.np[0]].start, fp.toks[fp.np[1] - 1].end
            return Resolution(frame[:s] + x + frame[e:], True, kind, frame_np)
        return Resolution(_append(question, _carry(frame, question, idf_, "intent")), True, kind)

    # "and what did the US plan propose?": the new subject takes the last question's intent
    new_subject = rp.subject and any(_is_entity(t.text, False) for t in rp.toks[rp.subject[0]:rp.subject[1]])
    if conj and rp.wh is not None and rp.aux is not None and rp.np and rp.np[1] == rp.np[0] and frame_np \
            and rp.toks[rp.wh[0]].low in ("what", "which") and new_subject:
        at = rp.toks[rp.wh[1] - 1].end
        return Resolution(rest[:at] + " " + frame_np + rest[at:], True, kind, frame_np)

    # pronouns: put the referent in place
    referents: dict[int, str] = {}
    unresolved = False
    question_body = rest if conj else question
    for i, cls in _anaphora(question_body):
        if cls == "person":
            ref = _person(turns)
        elif cls == "place":
            ref = _place(turns)
        else:
            ref = _topic(last)
        if ref and ref.lower() not in question_body.lower() and ref not in referents.values():
            referents[i] = ref
        elif not ref:
            unresolved = True
    if referents:
        query = _substitute(question_body, referents)
        if unresolved:
            query = _append(query, _carry(frame, query, idf_, "intent"))
        referent = "; ".join(dict.fromkeys(referents.values()))
        return Resolution(query, True, kind, referent)

    # a bare "why?" / "how much?" keeps everything; anything else asks its own thing about the last subject
    bare = not keywords(rest, idf_)
    drop = "none" if bare else ("subject" if rest_names and conj else "intent")
    return Resolution(_append(question, _carry(frame, question, idf_, drop)), True, kind)


def followup_query(question: str, turns: Sequence[Turn], idf: Idf | None = None) -> str:
    """What to search for question after turns: the question itself when it stands alone."""
    return resolve(question, turns, idf).query


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
