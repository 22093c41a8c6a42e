"""Fusion arithmetic on hand-made arrays, and first-stage retrieval on the seed index."""
from __future__ import annotations

import numpy as np
import pytest

import threading
import time

from qa import retrieve as retrieve_module
from qa.settings import RetrievalParams, Settings
from qa.retrieve import (Retrieval, embed_ahead, fuse_convex, fuse_rrf, normalise_minmax, query_vector, rerank_pool,
                         retrieve, top_indices)


def test_normalise_minmax():
    assert np.allclose(normalise_minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert np.allclose(normalise_minmax(np.array([-1.0, 0.0, 1.0, 3.0])), [0.0, 0.25, 0.5, 1.0])
    assert np.allclose(normalise_minmax(np.array([5.0, 5.0, 5.0])), [0.0, 0.0, 0.0])
    assert np.allclose(normalise_minmax(np.array([7.0])), [0.0])
    assert normalise_minmax(np.array([])).shape == (0,)
    assert normalise_minmax(np.array([1, 3])).dtype.kind == "f"


BM25 = np.array([10.0, 0.0, 5.0, 2.5])
DENSE = np.array([0.2, 0.8, 0.5, 0.6])  # normalised: [0, 1, 0.5, 0.6667]


def test_fuse_convex_weight_zero_is_bm25_only():
    assert np.allclose(fuse_convex(BM25, DENSE, 0.0), [1.0, 0.0, 0.5, 0.25])


def test_fuse_convex_weight_one_is_dense_only():
    assert np.allclose(fuse_convex(BM25, DENSE, 1.0), [0.0, 1.0, 0.5, 2 / 3])


def test_fuse_convex_half():
    assert np.allclose(fuse_convex(BM25, DENSE, 0.5), [0.5, 0.5, 0.5, (0.25 + 2 / 3) / 2])


def test_fuse_convex_is_scale_invariant():
    assert np.allclose(fuse_convex(BM25 * 100 + 7, DENSE * 3 - 1, 0.3), fuse_convex(BM25, DENSE, 0.3))


def test_fuse_rrf_exact_values():
    bm25 = np.array([3.0, 1.0, 2.0])   # ranks 1, 3, 2
    dense = np.array([0.1, 0.9, 0.5])  # ranks 3, 1, 2
    expected = [1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 1 / 62 + 1 / 62]
    assert np.allclose(fuse_rrf(bm25, dense, k=60), expected, rtol=0, atol=1e-15)
    assert np.allclose(fuse_rrf(bm25, dense), expected, rtol=0, atol=1e-15)


def test_fuse_rrf_other_k_and_agreement():
    bm25 = np.array([0.0, 9.0])
    dense = np.array([0.0, 0.9])
    fused = fuse_rrf(bm25, dense, k=1)
    assert np.allclose(fused, [1 / 3 + 1 / 3, 1 / 2 + 1 / 2])


def test_top_indices_best_first():
    scores = np.array([0.5, 0.9, 0.2, 0.1, 0.7])
    assert top_indices(scores, 3).tolist() == [1, 4, 0]
    assert top_indices(scores, 5).tolist() == [1, 4, 0, 2, 3]


def test_top_indices_best_first_ties_by_index():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    assert top_indices(scores, 3).tolist() == [1, 4, 0]
    assert top_indices(scores, 10).tolist() == [1, 4, 0, 2, 3]
    assert top_indices(scores, 0).tolist() == []


def test_rerank_pool_adds_dense_nominees_after_the_fused_head():
    hits = [(7, 0.9), (3, 0.8), (5, 0.7), (1, 0.6), (9, 0.5), (2, 0.4)]
    r = Retrieval(hits, dense_top=[5, 2, 9, 4])
    assert rerank_pool(r, 3, 0) == hits[:3]
    # 5 is already in; 2 and 9 join with their fused scores, in dense order; 4 never reached the fused list
    assert rerank_pool(r, 3, 3) == [(7, 0.9), (3, 0.8), (5, 0.7), (2, 0.4), (9, 0.5)]
    assert rerank_pool(r, 3, 10) == [(7, 0.9), (3, 0.8), (5, 0.7), (2, 0.4), (9, 0.5)]
    assert rerank_pool(Retrieval(hits, []), 2, 3) == hits[:2]
    assert rerank_pool(r, 10, 3) == hits


# --- on the seeds -------------------------------------------------------------------------------

def params(**changes) -> RetrievalParams:
    """The default retrieval parameters with some changed."""
    return Settings().retrieval.model_copy(update=changes)


def passage_of(index, chunk_id):
    return index.records[chunk_id]["text"]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_every_mode_finds_the_85000_cap(seed_index, seed_settings, mode):
    hits = retrieve(seed_index, "what army cap did Istanbul 2022 propose?", params(mode=mode, dense_weight=0.5)).hits
    top = [passage_of(seed_index, i) for i, _ in hits[:5]]
    assert any("85,000" in t for t in top), top
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert len({i for i, _ in hits}) == len(hits)


def test_rrf_fusion_also_finds_it(seed_index):
    hits = retrieve(seed_index, "what army cap did Istanbul 2022 propose?", params(fusion="rrf", dense_weight=0.5)).hits
    assert any("85,000" in passage_of(seed_index, i) for i, _ in hits[:5])


def test_a_paraphrase_fusion_buries_is_still_reranked_and_answered(seed_index, seed_settings):
    """"warplanes ... host" for "fighter aircraft will be stationed in": BM25 drags the passage below the fused
    head, the dense ranking keeps it near the top, so it is nominated for reranking and answers (the cross-encoder's
    order; the trained reader misses this paraphrase and ranks it second)."""
    from qa.answering import answer

    seed_settings = seed_settings.model_copy(update={"reader": False})
    question = "Which country would host European warplanes under the leaked proposal?"
    r = retrieve(seed_index, question, seed_settings.retrieval)
    holds = [i for i, _ in r.hits if "stationed in Poland" in passage_of(seed_index, i)]
    assert holds and holds[0] not in [i for i, _ in r.hits[:seed_settings.rerank_candidates]]
    assert holds[0] in r.dense_top[:seed_settings.rerank_dense_nominees]
    ans = answer(question, seed_index, seed_settings)
    assert ans.answered and "Poland" in ans.passages[0].text
    without = answer(question, seed_index, seed_settings.model_copy(update={"rerank_dense_nominees": 0}))
    assert not any("Poland" in p.text for p in without.passages[:1])


def test_bm25_mode_ranks_every_chunk_with_the_number_first(seed_index):
    with_number = {i for i, r in enumerate(seed_index.records) if "85,000" in r["text"]}
    assert len(with_number) >= 3  # 000 and twice in 003
    for query in ("85000", "85,000"):
        hits = retrieve(seed_index, query, params(mode="bm25", candidates=10)).hits
        assert {i for i, _ in hits[:len(with_number)]} == with_number


QUESTIONS = ["what army cap did Istanbul 2022 propose?", "Who drafted the plan with Witkoff?",
             "Which region would be demilitarised?"]


def test_embed_ahead_keeps_order_and_leaves_each_vector_cached():
    query_vector.cache_clear()
    out = list(embed_ahead(iter(QUESTIONS), "onnx-int8"))
    assert out == QUESTIONS
    assert query_vector.cache_info().currsize == len(QUESTIONS)
    query_vector(QUESTIONS[0], "onnx-int8")
    assert query_vector.cache_info().hits >= 1


def test_embed_ahead_yields_a_question_before_the_next_one_arrives():
    """A script that writes one line and waits for its answer must get it: nothing is held back for a batch."""
    second_line = threading.Event()

    def lines():
        yield QUESTIONS[0]
        second_line.wait(30)
        yield QUESTIONS[1]

    stream = embed_ahead(lines(), "onnx-int8")
    t0 = time.perf_counter()
    assert next(stream) == QUESTIONS[0]
    assert time.perf_counter() - t0 < 20 and not second_line.is_set()
    second_line.set()
    assert list(stream) == [QUESTIONS[1]]


def test_embed_ahead_raises_a_read_error_after_the_lines_before_it():
    def lines():
        yield QUESTIONS[0]
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    stream = embed_ahead(lines(), "onnx-int8")
    assert next(stream) == QUESTIONS[0]
    with pytest.raises(UnicodeDecodeError):
        next(stream)


def test_embed_ahead_passes_on_a_question_it_could_not_embed(monkeypatch):
    """answer() embeds it again and reports that line's error; the lines after it still flow."""
    def broken(question, kind):
        if question == QUESTIONS[1]:
            raise RuntimeError("encoder failed")
        return np.zeros(3, dtype=np.float32)

    monkeypatch.setattr(retrieve_module, "query_vector", broken)
    assert list(embed_ahead(iter(QUESTIONS), "onnx-int8")) == QUESTIONS


def test_a_low_ranked_chunk_with_a_sentence_holding_every_query_term_is_reranked_too():
    from qa.retrieve import cover_nominees, sentence_cover

    sentences = {1: ["The draft was long.", "The plan was late."],          # both terms, never in one sentence
                 2: ["Others met in Geneva.", "Witkoff drafted the plan with Dmitriev."],
                 3: ["A plan, a draft and a map."],
                 4: ["Nothing here."]}
    terms = {"draft": 1.8, "plan": 1.1, "the": 0.0}
    assert sentence_cover(sentences[1], terms) < 1.0 and sentence_cover(sentences[2], terms) == 1.0
    hits = [(4, 0.9), (1, 0.8), (2, 0.7), (3, 0.6)]
    assert cover_nominees(hits, {4}, sentences.get, terms, 1) == [(2, 0.7)]
    assert cover_nominees(hits, {4}, sentences.get, terms, 5) == [(2, 0.7), (3, 0.6)]
    assert cover_nominees(hits, {4, 2}, sentences.get, terms, 5) == [(3, 0.6)]
    assert cover_nominees(hits, {4}, sentences.get, terms, 0) == []
    assert cover_nominees(hits, {4}, sentences.get, {"plan": 1.1}, 5) == []  # one term: BM25 already ranks it
