"""The shared text rules: answer folding and answer words, and the word lists indexing and answering share."""
from __future__ import annotations

import re

from index.words import FUNCTION_WORDS, MONTH_NAMES, MONTHS, STOPWORDS
from qa.followup import STOPWORDS as FOLLOWUP_STOPWORDS
from qa.span_metrics import answer_words, normalise


def test_normalise_folds_case_quotes_dashes_and_spaces():
    assert normalise("  Sybiha’s   “Plan” – 2025 ") == "sybiha's \"plan\" - 2025"
    assert normalise("ＡＢＣ") == "abc"  # NFKC: full-width letters
    assert normalise("85,000") != normalise("85 000")  # matching keeps punctuation


def test_answer_words_join_digit_groups_and_drop_case_punctuation_and_articles():
    assert answer_words("85,000") == answer_words("85 000") == frozenset({"85000"})
    assert answer_words("The Andrii Sybiha.") == answer_words("andrii  sybiha") == frozenset({"andrii", "sybiha"})
    assert answer_words("85,000") != answer_words("800,000")


def test_word_lists_nest():
    assert FUNCTION_WORDS < STOPWORDS < FOLLOWUP_STOPWORDS
    assert STOPWORDS.isdisjoint({"when", "not", "no"})  # BM25 keeps them searchable
    assert {"when", "not", "tell"} <= FOLLOWUP_STOPWORDS  # never carried into a follow-up


def test_month_names():
    assert len(MONTHS) == 12 and re.fullmatch(rf"(?:{MONTH_NAMES})", "September")
    assert not re.fullmatch(rf"(?:{MONTH_NAMES})", "Sept")
