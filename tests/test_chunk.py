"""Sentence splitting and chunking: offsets always point into the original text, sentences read as sentences."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.chunk import document_sentences, make_chunks, split_sentences
from index.ingest import clean_document
from index.models import ChunkParams


def sentences_of(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def overlaps(a: tuple[int, int], b) -> bool:
    return a[0] < b.end and b.start < a[1]


def check_chunk_invariants(document, chunks) -> None:
    """What every consumer of a chunk relies on."""
    text = document.text
    previous_start = -1
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert c.doc == document.doc
        assert c.line_start == text.count("\n", 0, c.start) + 1
        assert c.sentences, "a chunk without sentences"
        assert c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
        for (_, e1), (s2, _) in zip(c.sentences, c.sentences[1:]):
            assert e1 <= s2, "sentences overlap or are out of order"
        for s, e in c.sentences:
            assert c.start <= s < e <= c.end
            sentence = text[s:e]
            assert sentence == c.text[s - c.start:e - c.start]
            assert sentence == sentence.strip(), "sentence not trimmed"
            for span in document.hidden:
                assert not overlaps((s, e), span), f"sentence {sentence!r} contains hidden {text[span.start:span.end]!r}"
        assert c.start > previous_start, "chunks out of document order"
        previous_start = c.start


# --- the seeds ----------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [ChunkParams(), ChunkParams(max_chars=120, overlap_sentences=0),
                                    ChunkParams(max_chars=2000, overlap_sentences=2)],
                         ids=["default", "small", "large"])
def test_offsets_hold_on_every_seed(seed_documents, params):
    for doc in seed_documents.values():
        chunks = make_chunks(doc, params)
        assert len(chunks) >= 3, doc.doc
        check_chunk_invariants(doc, chunks)


def test_seed_chunks_cover_all_visible_sentences(seed_documents, seed_chunks):
    """No sentence of an article is lost between chunks (overlap is fine, gaps are not)."""
    for name, doc in seed_documents.items():
        in_chunks = {s for c in seed_chunks[name] for s in c.sentences}
        all_sentences = {s for block in document_sentences(doc) for s in block}
        assert all_sentences == in_chunks, name


def test_chunks_respect_max_chars_unless_one_sentence_is_longer(seed_documents):
    params = ChunkParams(max_chars=300, overlap_sentences=1)
    for doc in seed_documents.values():
        for c in make_chunks(doc, params):
            assert c.end - c.start <= params.max_chars or len(c.sentences) == 1


def test_consecutive_chunks_overlap_by_one_sentence(seed_documents):
    doc = seed_documents["001_68f307d24029927d.txt"]
    chunks = make_chunks(doc, ChunkParams(max_chars=500, overlap_sentences=1))
    shared = [set(a.sentences) & set(b.sentences) for a, b in zip(chunks, chunks[1:])]
    assert any(len(s) == 1 for s in shared)
    assert all(len(s) <= 1 for s in shared)


def test_numbered_point_in_seed_is_one_sentence(seed_documents):
    doc = seed_documents["003_341094064a9670fe.txt"]
    target = "6. The size of the Armed Forces of Ukraine will be limited to 600,000 personnel."
    found = [doc.text[s:e] for block in document_sentences(doc) for s, e in block]
    assert target in found


# --- tricky sentences ---------------------------------------------------------------------------

def test_numbered_point_stays_one_sentence():
    text = ("Some of the deadly items he highlighted:\n"
            "6. The size of the Armed Forces of Ukraine will be limited to 600,000 personnel.\n"
            "In February 2022 the military was about 260,000 strong.")
    assert sentences_of(text) == [
        "Some of the deadly items he highlighted:",
        "6. The size of the Armed Forces of Ukraine will be limited to 600,000 personnel.",
        "In February 2022 the military was about 260,000 strong.",
    ]


@pytest.mark.parametrize("text", [
    "The U.S. envoy met Ukrainian officials in Miami. They talked for hours.",
    "Army Sec. Driscoll flew to Kyiv on Tuesday. He met Zelensky.",
    "Gen. Gerasimov told Putin the army was advancing. Nobody believed him.",
    "Talks with the U.K. and the U.S. stalled over guarantees. Europe objected.",
])
def test_abbreviations_do_not_end_sentences(text):
    first, second = text.rsplit(". ", 1)
    assert sentences_of(text) == [first + ".", second]


@pytest.mark.parametrize("text, expected", [
    ("Russia demanded a peacetime cap of 85,000 troops. Ukraine refused.",
     ["Russia demanded a peacetime cap of 85,000 troops.", "Ukraine refused."]),
    ("Officials called it the minerals deal 2.0 in private. It was signed anyway.",
     ["Officials called it the minerals deal 2.0 in private.", "It was signed anyway."]),
    ("The fund holds $100 billion. The US gets 50% of the profits.",
     ["The fund holds $100 billion.", "The US gets 50% of the profits."]),
])
def test_numbers_do_not_end_sentences(text, expected):
    assert sentences_of(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("He said “the war is lost.” Then he left.", ["He said “the war is lost.”", "Then he left."]),
    ("Everyone agreed — even Moscow — that talks should go on. Few expected results.",
     ["Everyone agreed — even Moscow — that talks should go on.", "Few expected results."]),
    ("Outage schedules were discarded in some areas…. A perfect storm is now hitting Ukraine.",
     ["Outage schedules were discarded in some areas….", "A perfect storm is now hitting Ukraine."]),
    ("It looks like a stunt... Perhaps Putin will get sucked in.",
     ["It looks like a stunt...", "Perhaps Putin will get sucked in."]),
    ("Who is the guarantor here, Trump? The failing autarch likely to be impeached after 2026?",
     ["Who is the guarantor here, Trump?", "The failing autarch likely to be impeached after 2026?"]),
])
def test_quotes_dashes_and_ellipses(text, expected):
    assert sentences_of(text) == expected


def test_heading_line_without_punctuation_is_its_own_sentence():
    text = "The conundrum of US-Ukraine relations\nAnd yet, because US aid remains indispensable, Kyiv has no alternative."
    assert sentences_of(text) == [
        "The conundrum of US-Ukraine relations",
        "And yet, because US aid remains indispensable, Kyiv has no alternative.",
    ]


def test_heading_separated_by_blank_lines_is_its_own_sentence():
    text = "Europe's need to stand firmly with Kyiv\n\nThis is why Kyiv and its partners will now try again."
    assert sentences_of(text)[0] == "Europe's need to stand firmly with Kyiv"


def test_sentence_broken_across_blank_lines_is_joined():
    text = ("He must keep a\n\n\n\nworking relationship with Trump and his entourage. "
            "This has produced a chain of crises.")
    assert sentences_of(text) == [
        "He must keep a\n\n\n\nworking relationship with Trump and his entourage.",
        "This has produced a chain of crises.",
    ]


def test_list_items_are_each_a_sentence():
    text = ("Deal-breakers in here:\n"
            "– The Russians will not accept territorial ambiguity\n"
            "– ZNPP is a Russian nuclear power plant\n"
            "- A 600,000-man AFU is ludicrous\n"
            "a. The lifting of sanctions will be discussed in stages;\n"
            "b. Russia will be invited to rejoin the G8")
    assert sentences_of(text) == text.split("\n")




@pytest.mark.parametrize("marker, case", [
    ("- ", "upper"), ("* ", "upper"), ("– ", "upper"), ("• ", "upper"), ("1. ", "upper"),
    ("– ", "lower"), ("• ", "lower"), ("1. ", "lower"),
    ("- ", "lower"),
    ("* ", "lower"),
])
def test_list_items_in_a_document_are_each_a_sentence(marker, case):
    """Through cleaning (markdown markers are blanked before splitting), as the indexer sees a file."""
    items = ["first item without a stop", "second item", "third item"]
    if case == "upper":
        items = [i.capitalize() for i in items]
    if marker == "1. ":
        lines = [f"{n}. {item}" for n, item in enumerate(items, 1)]
    else:
        lines = [marker + item for item in items]
    text = "Deal-breakers:\n" + "\n".join(lines) + "\n"
    doc = clean_document("list.md", text)
    sentences = [text[s:e] for block in document_sentences(doc) for s, e in block]
    assert len(sentences) == 4, sentences
    assert sentences[0] == "Deal-breakers:"
    for sentence, item in zip(sentences[1:], items):
        assert sentence.endswith(item)


def test_split_sentences_respects_the_range_it_is_given():
    text = "Ignore this. Take this one. And this one. Not this."
    start = text.index("Take")
    end = text.index(" Not")
    assert [text[s:e] for s, e in split_sentences(text, start, end)] == ["Take this one.", "And this one."]


# --- property-based -----------------------------------------------------------------------------

WORDS = ["Ukraine", "peace", "plan", "the", "army", "Witkoff", "said", "Kyiv", "talks", "would", "cap",
         "troops", "and", "of", "Europe", "deal", "Russia", "sanctions", "x", "I"]
PIECES = WORDS + [
    "U.S.", "Gen.", "Sec.", "Mr.", "e.g.", "No.", "85,000", "600,000-man", "2.0", "$100", "50%", "2022",
    "“quoted”", "“open", "close.”", "'single'", "(aside)", "—", "–", "-", "…", "...", "….", "?", "!", ".", ",",
    ";", ":", "*bold*", "**strong**",
]
SEPARATORS = [" ", " ", " ", " ", " ", "\n", "\n\n", "\n\n\n\n", "\n- ", "\n6. ", "\n– ", "\na. ", "\n\t", "  "]
ARTIFACTS = [" pic.twitter.com/vRrunW0q8a", " https://t.co/h28QrYk7zn", "\n/blockquote>", "<p>", "</blockquote>",
             "\n— Dances_with_Bears (@bears_with) November 20, 2025\n"]


@st.composite
def articles(draw):
    n = draw(st.integers(min_value=0, max_value=120))
    parts = []
    for _ in range(n):
        kind = draw(st.integers(min_value=0, max_value=19))
        if kind == 0:
            parts.append(draw(st.sampled_from(ARTIFACTS)))
        elif kind < 4:
            parts.append(draw(st.sampled_from(SEPARATORS)))
        else:
            parts.append(draw(st.sampled_from(PIECES)))
            parts.append(draw(st.sampled_from(SEPARATORS[:5])))
    prefix = draw(st.sampled_from(["", " date 2025-11-29 ", "\n\n\n", "\ufeff", "Headline Without Stop\n\n"]))
    return prefix + "".join(parts)


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(text=articles())
def test_split_sentences_ranges_are_ordered_trimmed_and_in_bounds(text):
    ranges = split_sentences(text)
    for s, e in ranges:
        assert 0 <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()
    for (_, e1), (s2, _) in zip(ranges, ranges[1:]):
        assert e1 <= s2


@PROPERTY_SETTINGS
@given(text=articles(), max_chars=st.sampled_from([60, 200, 500]), overlap=st.sampled_from([0, 1, 2]))
def test_chunk_offsets_invariant_on_generated_text(text, max_chars, overlap):
    document = clean_document("generated.txt", text)
    chunks = make_chunks(document, ChunkParams(max_chars=max_chars, overlap_sentences=overlap))
    check_chunk_invariants(document, chunks)


@PROPERTY_SETTINGS
@given(text=articles())
def test_every_visible_word_is_in_some_sentence(text):
    """Cleaning hides artifacts only: all other words stay findable."""
    document = clean_document("generated.txt", text)
    hidden = [False] * len(text)
    for span in document.hidden:
        for i in range(span.start, span.end):
            hidden[i] = True
    covered = [False] * len(text)
    for block in document_sentences(document):
        for (_, e1), (s2, _) in zip(block, block[1:]):
            assert e1 <= s2
        for s, e in block:
            for i in range(s, e):
                covered[i] = True
    lost = [i for i, ch in enumerate(text) if ch.isalnum() and not hidden[i] and not covered[i]]
    assert not lost, repr(text[lost[0] - 20:lost[0] + 20])
