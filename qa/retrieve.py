"""First-stage retrieval: BM25 and dense candidates, fused by a convex combination or reciprocal rank."""
from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from index import dense
from index.backend import SearchBackend
from index.bm25 import tokenize, top_indices  # noqa: F401 - top_indices is part of this module's interface

from .settings import RetrievalParams


def normalise_minmax(scores: np.ndarray) -> np.ndarray:
    """Scale scores to [0, 1]; all-equal scores become 0 (they carry no preference)."""
    if scores.size == 0:
        return scores.astype(np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo < 1e-12:
        return np.zeros_like(scores, dtype=np.float64)
    return (scores - lo) / (hi - lo)


def fuse_convex(bm25: np.ndarray, dense_scores: np.ndarray, dense_weight: float) -> np.ndarray:
    """Convex combination of min-max normalised scores over the same candidates (Bruch et al., TOIS 2023)."""
    return dense_weight * normalise_minmax(dense_scores) + (1 - dense_weight) * normalise_minmax(bm25)


def fuse_rrf(bm25: np.ndarray, dense_scores: np.ndarray, k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion: sum of 1 / (k + rank), rank 1 being the best score of each list."""
    def ranks(s: np.ndarray) -> np.ndarray:
        order = np.argsort(-s, kind="stable")
        r = np.empty(len(s), dtype=np.float64)
        r[order] = np.arange(1, len(s) + 1)
        return r

    return 1.0 / (k + ranks(bm25)) + 1.0 / (k + ranks(dense_scores))


READ_AHEAD = 16  # questions embedded ahead of the one being answered; well under query_vector's cache size


@lru_cache(maxsize=64)
def query_vector(question: str, encoder_kind: str) -> np.ndarray:
    """The question's embedding; cached because retrieval and confidence both need it."""
    return dense.load_encoder(encoder_kind).encode([question])[0]


def embed_ahead(questions: Iterable[str], encoder_kind: str, ahead: int = READ_AHEAD) -> Iterator[str]:
    """The same questions, in order, each yielded once its embedding is in query_vector's cache.

    A second thread reads the questions and embeds them while the caller answers earlier ones: ONNX Runtime releases
    the GIL, so a stdin batch keeps both cores busy. A question is yielded as soon as it is embedded, never held
    back waiting for the next one to arrive.
    """
    ready: queue.Queue = queue.Queue(maxsize=ahead)
    done = object()

    def read_and_embed() -> None:
        try:
            for q in questions:
                try:
                    query_vector(q, encoder_kind)
                except Exception:  # noqa: BLE001 - answer() embeds it again and reports the error for this line
                    pass
                ready.put(q)
        except BaseException as exc:  # reading the input failed: the caller raises it after the lines before it
            ready.put(exc)
        ready.put(done)

    threading.Thread(target=read_and_embed, name="qa-embed-ahead", daemon=True).start()
    while (item := ready.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class Retrieval(NamedTuple):
    """First-stage result: fused (or single-mode) hits best first, and the dense retriever's own best chunk ids."""

    hits: list[tuple[int, float]]
    dense_top: list[int]


def retrieve(index: SearchBackend, question: str, params: RetrievalParams) -> Retrieval:
    """Chunk ids with their first-stage scores, best first (plus the dense ranking's head, for the rerank pool).

    Both rankings come from the backend; fusion happens here, over their union, with the BM25 and dense scores of
    every chunk in it, so every backend is fused the same way.
    """
    if index.manifest.num_chunks == 0:
        return Retrieval([], [])
    mode, candidates = params.mode, params.candidates
    terms = tokenize(question) if mode in ("bm25", "hybrid") else []
    if mode == "bm25":
        bm25 = index.bm25_rank(terms, candidates)
        return Retrieval([(int(i), float(s)) for i, s in zip(bm25.ids, bm25.scores)], [])
    index.load_vectors()  # first: a one-shot run loads faiss while the encoder may still be loading
    qvec = query_vector(question, params.query_encoder)
    dense_ids, dense_sc = index.dense_search(qvec, candidates)
    dense_top = [int(i) for i in dense_ids if i >= 0]
    if mode == "dense":
        return Retrieval([(int(i), float(s)) for i, s in zip(dense_ids, dense_sc) if i >= 0], dense_top)
    found = dense_ids[dense_ids >= 0]
    bm25 = index.bm25_rank(terms, candidates, also=found)
    union = np.unique(np.concatenate([bm25.ids, found]))
    bm25_of = dict(zip(found.tolist(), bm25.also.tolist())) | dict(zip(bm25.ids.tolist(), bm25.scores.tolist()))
    union_bm25 = np.array([bm25_of[i] for i in union.tolist()], dtype=np.float64)
    union_dense = index.dense_scores(union, qvec)
    if params.fusion == "rrf":
        fused = fuse_rrf(union_bm25, union_dense, params.rrf_k)
    else:
        fused = fuse_convex(union_bm25, union_dense, params.dense_weight)
    order = np.lexsort((union, -fused))[:candidates]
    return Retrieval([(int(union[i]), float(fused[i])) for i in order], dense_top)


def rerank_pool(retrieval: Retrieval, size: int, dense_nominees: int) -> list[tuple[int, float]]:
    """The hits the cross-encoder scores: the first `size`, plus the dense ranking's first `dense_nominees` wherever
    fusion put them (a paraphrase with few shared words can rank high on meaning and low on BM25)."""
    pool = retrieval.hits[:size]
    taken = {i for i, _ in pool}
    score = dict(retrieval.hits)
    for i in retrieval.dense_top[:dense_nominees]:
        if i not in taken and i in score:
            pool.append((i, score[i]))
            taken.add(i)
    return pool


def sentence_cover(sentences: Iterable[str], terms: dict[str, float]) -> float:
    """The largest idf share of the query's terms that one sentence holds (a stemmed term matches a word's start)."""
    total = sum(w for w in terms.values() if w > 0)
    if total <= 0:
        return 0.0
    patterns = [(re.compile(r"\b" + re.escape(t), re.IGNORECASE), w) for t, w in terms.items() if w > 0]
    return max((sum(w for pat, w in patterns if pat.search(s)) / total for s in sentences), default=0.0)


def cover_nominees(hits: list[tuple[int, float]], taken: set[int], sentences_of: Callable[[int], list[str]],
                   terms: dict[str, float], n: int, depth: int = 30) -> list[tuple[int, float]]:
    """Up to n hits outside the pool, within the first `depth`, with one sentence holding every query term ("Witkoff
    drafted the plan" for "who drafted the plan?"): a long chunk where the terms meet can rank low on BM25."""
    if n <= 0 or sum(1 for w in terms.values() if w > 0) < 2:
        return []
    out = []
    for i, score in hits[:depth]:
        if i not in taken and sentence_cover(sentences_of(i), terms) >= 1.0 - 1e-9:
            out.append((i, score))
            if len(out) == n:
                break
    return out


def cosine(index: SearchBackend, question: str, chunk_id: int, encoder_kind: str = "onnx-int8") -> float:
    """Cosine similarity of the question and one chunk: a calibrated-enough confidence without the reranker."""
    return float(index.vector(chunk_id) @ query_vector(question, encoder_kind))
