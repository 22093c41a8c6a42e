"""The one path every caller takes: open a fresh index, then answer(question) -> Answer."""
from __future__ import annotations

import re
import time
from pathlib import Path

from index.bm25 import tokenize
from index.models import Chunk
from index.store import (Index, IndexCorrupt, IndexOutdated, Progress, Warn, build_index, load_index, scan_corpus,
                         stale_reason)

from .extract import answer_type, extract_answer, unknown_names
from .models import Answer, AnswerGroup, Citation, Passage
from .retrieve import cosine, rerank_pool, retrieve
from .rerank import rerank
from .settings import Settings

NO_ANSWER = "no answer found in the documents"
MAX_PER_DOC = 2
UNKNOWN_NAME_PENALTY = 0.1  # confidence factor when the question names something absent from the corpus
NO_SPAN_PENALTY = 0.1


class QAError(Exception):
    """A problem the user can fix (bad question, bad path); the CLI prints it as one line."""


class CorpusError(QAError):
    """The corpus paths given cannot be read."""


def open_index(settings: Settings, progress: Progress | None = None, warn: Warn | None = None,
               rebuild: bool = False) -> Index:
    """The index for settings.corpus, built or rebuilt first when missing, stale or corrupt."""
    from index.ingest import IngestError

    index_dir = settings.resolved_index_dir()
    try:
        root, files = scan_corpus(settings.corpus)
    except IngestError as exc:
        raise CorpusError(str(exc)) from None
    reason = "rebuild requested" if rebuild else None
    index = None
    if not rebuild:
        try:
            index = load_index(index_dir)
        except IndexCorrupt as exc:
            state = "was built by another version of qa" if isinstance(exc, IndexOutdated) else "is corrupt"
            reason = f"index at {index_dir} {state} ({exc}); rebuilding"
        if index is not None:
            reason = stale_reason(index.manifest, root, files, settings.chunking, settings.bm25)
            if reason is None:
                return index
        elif reason is None:
            reason = f"no index at {index_dir}; building it"
    if warn and reason:
        warn(reason)
    try:
        index, _ = build_index(settings.corpus, index_dir, settings.chunking, settings.bm25, progress, warn)
    except IngestError as exc:
        raise CorpusError(str(exc)) from None
    except OSError as exc:
        raise QAError(f"cannot write index at {index_dir}: {exc.strerror or exc}") from None
    return index


def _term_weights(index: Index, question: str) -> dict[str, float]:
    weights = {}
    for tok in tokenize(question):
        t = index.bm25.vocab.get(tok)
        weights[tok] = index.bm25.idf(t) if t is not None else 0.0
    return weights


def _normalise_answer(s: str) -> str:
    return re.sub(r"[^\w]+", " ", s.lower()).strip()


def answer(question: str, index: Index, settings: Settings, query: str | None = None) -> Answer:
    """Answer one question from the index with cited verbatim passages (or abstain).

    `query` is what to search when it differs from the question (an expanded follow-up).
    """
    t0 = time.perf_counter()
    question = question.strip()
    if not question:
        raise QAError("empty question")
    search = (query or question).strip()
    retrieval = retrieve(index, search, settings.mode, settings.candidates, settings.fusion, settings.dense_weight,
                         settings.rrf_k, settings.query_encoder)
    hits = retrieval.hits
    reranked = settings.rerank and bool(hits)
    if reranked:
        pool = rerank_pool(retrieval, settings.rerank_candidates, settings.rerank_dense_nominees)
        probs = rerank(search, [index.records[i]["search_text"] for i, _ in pool], settings.rerank_max_tokens)
        ranked = sorted(zip([i for i, _ in pool], probs.tolist()), key=lambda p: -p[1])
        confidence = float(ranked[0][1]) if ranked else 0.0
        threshold = settings.abstain_below
    else:
        ranked = hits
        confidence = max(0.0, cosine(index, search, ranked[0][0], settings.query_encoder)) if ranked else 0.0
        threshold = settings.abstain_below_no_rerank

    terms = _term_weights(index, search)
    kind = answer_type(question) or (answer_type(search) if search != question else None)
    chosen: list[tuple[Chunk, float]] = []
    per_doc: dict[str, int] = {}
    for chunk_id, score in ranked:
        record = index.records[chunk_id]  # a Chunk is built only for what is shown (50 candidates without rerank)
        doc, start, end = record["doc"], record["start"], record["end"]
        merged = False
        for n, (kept, kept_score) in enumerate(chosen):
            if kept.doc == doc and start < kept.end and kept.start < end:
                # overlapping windows of one document: show them as one longer passage
                if max(kept.end, end) - min(kept.start, start) <= 2 * settings.chunk_max_chars:
                    chosen[n] = (merge_chunks(kept, index.chunk(chunk_id)), kept_score)
                merged = True
                break
        if merged or per_doc.get(doc, 0) >= MAX_PER_DOC or len(chosen) >= settings.top_k:
            continue
        per_doc[doc] = per_doc.get(doc, 0) + 1
        chosen.append((index.chunk(chunk_id), score))
    passages: list[Passage] = []
    for chunk, score in chosen:
        local = [(s - chunk.start, e - chunk.start) for s, e in chunk.sentences]
        ex = extract_answer(question, chunk.text, local, terms, kind)
        passages.append(_passage(index, chunk, ex, score, len(passages) + 1))

    if unknown_names(question, index.bm25.vocab):
        confidence *= UNKNOWN_NAME_PENALTY
    if kind in ("number", "date") and passages and passages[0].answer is None:
        confidence *= NO_SPAN_PENALTY  # asked "how many" / "when", and the best passage holds no such figure
    answered = bool(passages) and confidence >= threshold
    supporting = [p for p in passages if not reranked or p.score >= threshold]
    groups = _groups(supporting) if answered else []
    return Answer(
        question=question,
        answered=answered,
        confidence=round(confidence, 4),
        passages=passages,
        message=None if answered else NO_ANSWER,
        answer=passages[0].answer if answered and passages else None,
        groups=groups,
        disagreement=len(groups) > 1,
        query=search if search != question else None,
        mode=settings.mode,
        reranked=reranked,
        seconds=round(time.perf_counter() - t0, 4),
    )


def merge_chunks(a: Chunk, b: Chunk) -> Chunk:
    """One chunk spanning two overlapping chunks of the same document (text stays verbatim)."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.end <= first.end:
        return first
    text = first.text + second.text[first.end - second.start:]
    sentences = sorted(set(map(tuple, first.sentences)) | set(map(tuple, second.sentences)))
    return first.model_copy(update={"end": second.end, "text": text, "sentences": sentences})


def _passage(index: Index, chunk, ex, score: float, rank: int) -> Passage:
    """The whole chunk is the cited passage; the best sentence and the answer span are marked inside it."""
    source = index.source(chunk.doc)
    span = None
    if ex.answer is not None:
        span = (chunk.start + ex.answer[0], chunk.start + ex.answer[1])
    return Passage(
        rank=rank,
        text=chunk.text,
        answer=chunk.text[ex.answer[0]:ex.answer[1]] if ex.answer else None,
        answer_start=span[0] if span else None,
        answer_end=span[1] if span else None,
        sentence_start=chunk.start + ex.start,
        sentence_end=chunk.start + ex.end,
        score=round(float(score), 4),
        citation=Citation(
            doc=chunk.doc, start=chunk.start, end=chunk.end, line_start=chunk.line_start,
            line_end=chunk.line_start + chunk.text.count("\n"),
            title=source.title if source else None, date=source.date if source else None,
            author=source.author if source else None,
        ),
    )


def _groups(passages: list[Passage]) -> list[AnswerGroup]:
    """Group passages by the answer they give, so agreeing sources sit together and disagreement shows."""
    groups: dict[str, AnswerGroup] = {}
    for p in passages:
        if not p.answer:
            continue
        key = _normalise_answer(p.answer)
        g = groups.get(key)
        if g is None:
            groups[key] = AnswerGroup(answer=p.answer, docs=[p.citation.doc], ranks=[p.rank])
        else:
            if p.citation.doc not in g.docs:
                g.docs.append(p.citation.doc)
            g.ranks.append(p.rank)
    return list(groups.values())


def corpus_path(index: Index, doc: str) -> Path:
    """Absolute path of a cited document."""
    return index.corpus_root / doc
