"""Ingestion stays linear in a file's size and keeps its rules: pull quotes, line numbers, decoding."""
from __future__ import annotations

import sys

from index.chunk import make_chunks, split_sentences
from index.ingest import clean_document, read_text, visible_text
from index.models import ChunkParams


def _line_events(fn) -> int:
    """Python lines executed by fn(): a deterministic measure of work (tests never time things)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def _quoted_article(n: int) -> str:
    """n pull quotes, each placed just before the longer paragraph it repeats."""
    return "".join(f"The {k}th draft would cap the army at 600,000 troops.\n\n"
                   f"Officials said the {k}th draft would cap the army at 600,000 troops. Critics disagreed.\n\n"
                   for k in range(n))


def test_cleaning_and_chunking_work_grows_linearly_with_the_file():
    def work(n):
        return _line_events(lambda: make_chunks(clean_document("d.txt", _quoted_article(n)), ChunkParams()))

    small, large = work(100), work(800)
    # 8 times the text: linear work is ~8 times as much; the quadratic pull-quote search did 20+ times
    assert large < 10 * small, (small, large)


def test_pull_quotes_are_hidden_wherever_they_repeat_a_longer_or_earlier_paragraph():
    quote = "The draft would cap the army at 600,000 troops, officials said."
    text = (f"{quote}\n\nOfficials in Kyiv said: {quote} Critics disagreed.\n\n"
            "A standalone paragraph that is said only once in the whole text.\n\n"
            "A standalone paragraph that is said only once in the whole text!\n\n"
            "Repeated paragraph that appears twice in identical form here.\n\n"
            "Repeated paragraph that appears twice in identical form here.\n")
    doc = clean_document("d.txt", text)
    hidden = [text[s.start:s.end] for s in doc.hidden]
    # the quote (inside a longer paragraph) and the second identical copy are hidden; near-duplicates sharing a
    # long prefix, the first copy and the longer paragraph stay
    assert hidden == [quote, "Repeated paragraph that appears twice in identical form here."]
    assert doc.hidden[1].start == text.rindex("Repeated")


def test_many_near_duplicate_paragraphs_with_one_prefix_are_all_kept():
    paras = [f"Log entry from the same long common prefix of forty chars: item {k} done." for k in range(300)]
    text = "\n\n".join(paras)
    assert clean_document("log.txt", text).hidden == []


def test_chunk_line_numbers_count_every_newline_before_the_chunk():
    text = "".join(f"Line {k} says the plan had {k} points.\n" + ("\n" if k % 7 == 0 else "") for k in range(400))
    chunks = make_chunks(clean_document("d.txt", text), ChunkParams(max_chars=120))
    assert len(chunks) > 50
    for c in chunks:
        assert c.line_start == text.count("\n", 0, c.start) + 1


def test_visible_text_blanks_overlapping_hidden_and_markup_spans_without_moving_offsets():
    text = "**Bold** start http://example.com/**x** end\nnext **line**\n"
    doc = clean_document("d.txt", text)
    clean = visible_text(doc)
    assert len(clean) == len(text) and clean.count("\n") == text.count("\n")
    assert "http" not in clean and "*" not in clean and "Bold" in clean and "line" in clean


def test_a_terminal_mark_cut_by_the_block_end_ends_no_sentence():
    text = 'He said "stop." Then left.'
    cut = text.index('."') + 1  # the block ends between the full stop and the closing quote
    assert split_sentences(text, 0, cut) == [(0, cut)]
    assert split_sentences(text) == [(0, text.index('."') + 2), (text.index("Then"), len(text))]


def test_a_long_line_without_punctuation_is_cut_into_readable_pieces(tmp_path):
    words = " ".join(f"word{k % 97}" for k in range(60_000))
    f = tmp_path / "one-line.txt"
    f.write_text(words, encoding="utf-8")
    chunks = make_chunks(clean_document("one-line.txt", read_text(f)), ChunkParams())
    assert len(chunks) > 100 and all(len(c.text) <= 1500 for c in chunks)
    assert all(words[c.start:c.end] == c.text for c in chunks)
