"""The answer() stages on hand-made hits, chunks and passages: no index, no models."""
from __future__ import annotations

from index.bm25 import tokenize
from index.models import Chunk
from qa.answering import (MAX_PER_DOC, NO_SPAN_PENALTY, UNKNOWN_NAME_PENALTY, Hit, choose_passages, decide,
                          extract_spans, group_answers, merge_chunks, passage_chunk)
from qa.models import Citation, Passage

DOC_A = "Alpha one. Beta two. Gamma three. Delta four. Epsilon five."  # sentences at 0, 11, 21, 34, 46


def chunk(cid: int, start: int, end: int, doc: str = "a.txt", text: str = DOC_A) -> Chunk:
    """A chunk of `text[start:end]` whose sentences are the full sentences inside it."""
    bounds = [(0, 10), (11, 20), (21, 33), (34, 45), (46, 59)]
    return Chunk(id=cid, doc=doc, start=start, end=end, text=text[start:end], search_text=text[start:end],
                 line_start=1, sentences=[(s, e) for s, e in bounds if start <= s and e <= end], hash=str(cid))


def passage(rank: int, answer: str | None, doc: str = "a.txt", score: float = 0.9) -> Passage:
    return Passage(rank=rank, text=f"... {answer} ...", answer=answer, sentence_start=0, sentence_end=5, score=score,
                   citation=Citation(doc=doc, start=0, end=5, line_start=1, line_end=1))


# --- choose: merge overlapping windows, cap per document and in all ---------------------------------

def test_overlapping_windows_of_one_document_become_one_passage_with_the_better_score():
    hits = [Hit(1, "a.txt", 0, 20, 0.9), Hit(2, "a.txt", 11, 33, 0.8), Hit(3, "b.txt", 0, 10, 0.7)]
    choices = choose_passages(hits, top_k=5, max_merged_chars=100)
    assert [(c.ids, c.score) for c in choices] == [([1, 2], 0.9), ([3], 0.7)]


def test_a_merge_that_would_grow_too_long_drops_the_overlapping_window():
    hits = [Hit(1, "a.txt", 0, 20, 0.9), Hit(2, "a.txt", 11, 33, 0.8)]
    choices = choose_passages(hits, top_k=5, max_merged_chars=30)
    assert [c.ids for c in choices] == [[1]]  # 0..33 is longer than 30; the overlap is not shown twice either


def test_merging_tracks_the_grown_extent():
    """The third window overlaps only what the second added, and still joins the passage."""
    hits = [Hit(1, "a.txt", 0, 20, 0.9), Hit(2, "a.txt", 11, 33, 0.8), Hit(3, "a.txt", 21, 45, 0.7)]
    assert [c.ids for c in choose_passages(hits, top_k=5, max_merged_chars=100)] == [[1, 2, 3]]


def test_windows_that_only_touch_stay_apart():
    hits = [Hit(1, "a.txt", 0, 20, 0.9), Hit(2, "a.txt", 20, 33, 0.8)]
    assert [c.ids for c in choose_passages(hits, top_k=5, max_merged_chars=100)] == [[1], [2]]


def test_at_most_max_per_doc_passages_from_one_document_and_top_k_in_all():
    hits = [Hit(i, "a.txt", 100 * i, 100 * i + 50, 1.0 - i / 10) for i in range(4)]
    hits += [Hit(10 + i, f"d{i}.txt", 0, 50, 0.5 - i / 100) for i in range(5)]
    choices = choose_passages(hits, top_k=4, max_merged_chars=1000)
    assert [c.ids for c in choices] == [[0], [1], [10], [11]]
    assert MAX_PER_DOC == 2
    assert [c.ids for c in choose_passages(hits, top_k=4, max_merged_chars=1000, max_per_doc=3)] == [[0], [1], [2], [10]]


def test_a_full_list_still_merges_later_overlapping_windows():
    hits = [Hit(1, "a.txt", 0, 20, 0.9), Hit(2, "b.txt", 0, 20, 0.8), Hit(3, "a.txt", 11, 33, 0.1)]
    assert [c.ids for c in choose_passages(hits, top_k=2, max_merged_chars=100)] == [[1, 3], [2]]


def test_no_hits_no_passages():
    assert choose_passages([], top_k=5, max_merged_chars=100) == []


def test_merge_chunks_keeps_the_text_verbatim_and_the_union_of_sentences():
    merged = merge_chunks(chunk(2, 11, 33), chunk(1, 0, 20))  # either order
    assert (merged.start, merged.end, merged.text) == (0, 33, DOC_A[0:33])
    assert merged.sentences == [(0, 10), (11, 20), (21, 33)]
    assert merge_chunks(chunk(1, 0, 45), chunk(2, 11, 33)) == chunk(1, 0, 45)  # contained: nothing added


def test_passage_chunk_merges_the_chosen_windows_in_order():
    chunks = {1: chunk(1, 0, 20), 2: chunk(2, 11, 33), 3: chunk(3, 21, 45)}
    merged = passage_chunk([1, 2, 3], chunks.__getitem__)
    assert (merged.id, merged.start, merged.end, merged.text) == (1, 0, 45, DOC_A[:45])
    assert passage_chunk([2], chunks.__getitem__) == chunks[2]


# --- extract: the stage a trained reader replaces ----------------------------------------------------

def test_extract_spans_gives_one_extraction_per_passage_in_chunk_offsets():
    text = "The plan was signed in 2021. The army would be capped at 85,000 troops. Talks ended."
    c = Chunk(id=0, doc="x.txt", start=1000, end=1000 + len(text), text=text, search_text=text, line_start=1,
              sentences=[(1000, 1028), (1029, 1071), (1072, 1084)], hash="h")
    question = "how many troops would the army be capped at?"
    (ex,) = extract_spans(question, [c], {t: 1.0 for t in tokenize(question)}, "number")
    assert text[ex.answer[0]:ex.answer[1]] == "85,000"
    assert text[ex.start:ex.end].startswith("The army would be capped")
    assert extract_spans("anything?", [], {}, None) == []


# --- decide: confidence and abstention ---------------------------------------------------------------

def test_confident_answer_is_given():
    d = decide(0.8, 0.1, [passage(1, "85,000")], "number", names_unknown=False)
    assert d.answered and d.confidence == 0.8


def test_a_name_the_corpus_never_mentions_lowers_confidence_below_the_bar():
    d = decide(0.8, 0.1, [passage(1, "85,000")], "number", names_unknown=True)
    assert not d.answered and abs(d.confidence - 0.8 * UNKNOWN_NAME_PENALTY) < 1e-12


def test_a_number_question_whose_best_passage_holds_no_figure_is_penalised():
    d = decide(0.5, 0.1, [passage(1, None)], "number", names_unknown=False)
    assert not d.answered and abs(d.confidence - 0.5 * NO_SPAN_PENALTY) < 1e-12
    assert decide(0.5, 0.1, [passage(1, None)], None, names_unknown=False).answered  # no figure was asked for
    assert decide(0.5, 0.1, [passage(1, None)], "name", names_unknown=False).answered


def test_no_passages_never_answer():
    assert not decide(1.0, 0.1, [], None, names_unknown=False).answered


def test_the_threshold_is_inclusive():
    assert decide(0.45, 0.45, [passage(1, None)], None, names_unknown=False).answered
    assert not decide(0.4499, 0.45, [passage(1, None)], None, names_unknown=False).answered


# --- group: agreement ---------------------------------------------------------------------------------

def test_passages_giving_the_same_answer_are_one_group_whatever_the_case_and_punctuation():
    groups = group_answers([passage(1, "85,000", "a.txt"), passage(2, "85 000", "b.txt"),
                            passage(3, "85,000", "a.txt"), passage(4, None, "c.txt")], 0.1, reranked=True)
    assert [(g.answer, g.docs, g.ranks) for g in groups] == [("85,000", ["a.txt", "b.txt"], [1, 2, 3])]


def test_differing_answers_make_several_groups_in_rank_order():
    groups = group_answers([passage(1, "85,000", "a.txt"), passage(2, "600,000", "b.txt")], 0.1, reranked=True)
    assert [(g.answer, g.ranks) for g in groups] == [("85,000", [1]), ("600,000", [2])]


def test_reranked_passages_below_the_threshold_do_not_count_as_sources():
    low = passage(2, "600,000", "b.txt", score=0.05)
    assert len(group_answers([passage(1, "85,000"), low], 0.1, reranked=True)) == 1
    assert len(group_answers([passage(1, "85,000"), low], 0.1, reranked=False)) == 2  # fused scores: no bar


def test_a_shorter_form_of_the_same_answer_agrees_but_differing_figures_do_not():
    groups = group_answers([passage(1, "Kirill Dmitriev", "a.txt"), passage(2, "Dmitriev", "b.txt"),
                            passage(3, "85,000", "c.txt"), passage(4, "800,000", "d.txt")], 0.1, reranked=True)
    assert [(g.answer, g.docs) for g in groups] == [("Kirill Dmitriev", ["a.txt", "b.txt"]), ("85,000", ["c.txt"]),
                                                   ("800,000", ["d.txt"])]


def test_the_confidence_fit_recovers_a_known_logistic_model():
    import numpy as np

    from qa.confidence import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2)) * [2.0, 1.0] + [1.0, -3.0]
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - 2.0 * x[:, 1] - 4.0)))
    y = (rng.random(20000) < p).astype(float)
    weights, bias = fit_logistic(x, y, l2=1e-6)
    assert abs(weights[0] - 1.5) < 0.2 and abs(weights[1] + 2.0) < 0.3 and abs(bias + 4.0) < 0.8
    # a feature the signs say may only raise the probability gets weight 0 where the data would make it lower it
    signed, signed_bias = fit_logistic(x, y, l2=1e-6, signs=(1, 1))
    assert signed[1] == 0.0 and signed[0] > 0 and np.isfinite(signed_bias)
    kept, _ = fit_logistic(x, y, l2=1e-6, signs=(1, -1))
    assert np.allclose(kept, weights)


def test_key_term_coverage_weighs_each_question_term_by_its_idf():
    from qa.confidence import key_term_coverage

    terms = {"istanbul": 3.0, "cap": 1.0}
    assert key_term_coverage(terms, {"istanbul", "cap", "army"}) == 1.0
    assert key_term_coverage(terms, {"cap"}) == 0.25
    assert key_term_coverage({}, {"cap"}) == 1.0


def test_a_perfectly_calibrated_confidence_has_no_calibration_error():
    from qa.confidence import reliability

    ece, table = reliability([0.25] * 4 + [0.75] * 4, [True, False, False, False, True, True, True, False])
    assert ece == 0.0 and sum(row["count"] for row in table) == 8
    ece, _ = reliability([0.95] * 10, [False] * 10)
    assert abs(ece - 0.95) < 1e-9


def test_answers_giving_the_same_figure_in_different_words_agree():
    groups = group_answers([passage(1, "peacetime cap of 85,000 active personnel", "a.txt"),
                            passage(2, "armed forces at 85,000 troops", "b.txt"),
                            passage(3, "800,000 troops", "c.txt")], 0.1, reranked=True)
    assert [(g.docs, g.ranks) for g in groups] == [(["a.txt", "b.txt"], [1, 2]), (["c.txt"], [3])]
