"""The one path every caller takes: open a fresh index, then answer(question) -> Answer."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from index.backend import SearchBackend
from index.bm25 import tokenize
from index.words import STOPWORDS
from index.models import Chunk
from index.store import (Index, IndexCorrupt, IndexOutdated, Progress, Warn, build_index, load_index,
                         nothing_to_search, scan_corpus, stale_reason)

from .errors import BackendError, CorpusError, EmptyCorpusError, IndexWriteError, QAError, UsageError
from .extract import Extraction, answer_type, extract_answer, span_fits, unknown_names
from .span_metrics import answer_words
from .read import Reading, load_reader, load_span_reader, reader_installed, span_reader_installed, trim_span
from .models import Answer, AnswerGroup, Citation, Passage
from .retrieve import cosine, cover_nominees, rerank_pool, retrieve
from .rerank import rerank
from .settings import Settings

NO_ANSWER = "no answer found in the documents"
MAX_PER_DOC = 2
UNKNOWN_NAME_PENALTY = 0.1  # confidence factor when the question names something absent from the corpus
NO_SPAN_PENALTY = 0.1
TYPE_MARGIN = 2.0  # logits: how far below the reader's best a span of the asked kind may score and still be taken


def open_index(settings: Settings, progress: Progress | None = None, warn: Warn | None = None,
               rebuild: bool = False) -> SearchBackend:
    """The index for settings.corpus, built or rebuilt first when missing, stale or corrupt; EmptyCorpusError when
    the corpus holds nothing to search."""
    index = _open_index(settings, progress, warn, rebuild)
    empty = nothing_to_search(index.manifest)
    if empty:
        raise EmptyCorpusError(empty)
    return index


def _open_index(settings: Settings, progress: Progress | None, warn: Warn | None, rebuild: bool) -> SearchBackend:
    if settings.backend == "milvus":
        return _open_milvus(settings, progress, warn, rebuild)
    return _open_embedded(settings, progress, warn, rebuild)


def _open_milvus(settings: Settings, progress: Progress | None, warn: Warn | None, rebuild: bool) -> SearchBackend:
    """The corpus's current generation on the Milvus server; when missing or stale, the embedded index (the build
    cache: chunks, embeddings and terms reused by file hash) is brought up to date and written as a new one."""
    from index.backend import BackendUnavailable
    from index.ingest import IngestError
    from index.milvus import MilvusStore

    try:
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        store = MilvusStore(settings.milvus_uri, settings.resolved_milvus_collection(), token=token)
        current = None if rebuild else store.open()
        if current is not None:
            try:
                root, files = scan_corpus(settings.corpus)
            except IngestError as exc:
                raise CorpusError(str(exc)) from None
            reason = stale_reason(current.manifest, root, files, settings.chunking, settings.bm25)
            if reason is None:
                return current
            why = f"collection {store.alias} at {store.uri}: {reason}; writing a new generation"
        else:
            why = f"no collection {store.alias} at {store.uri}; writing it"
        local = _open_embedded(settings, progress, warn, rebuild)
        if warn:
            warn(why)
        if progress:
            progress("writing the passages to Milvus", 0, local.manifest.num_chunks)
        return store.publish(local)
    except BackendUnavailable as exc:
        raise BackendError(str(exc)) from None


def _open_embedded(settings: Settings, progress: Progress | None, warn: Warn | None, rebuild: bool) -> Index:
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
            reason = stale_reason(index.manifest, root, files, settings.chunking, settings.bm25,
                                  dense_params=settings.dense)
            if reason is None:
                return index
        elif reason is None:
            reason = f"no index at {index_dir}; building it"
    if warn and reason:
        warn(reason)
    try:
        index, _ = build_index(settings.corpus, index_dir, settings.chunking, settings.bm25, progress, warn,
                               dense_params=settings.dense)
    except IngestError as exc:
        raise CorpusError(str(exc)) from None
    except OSError as exc:
        raise IndexWriteError(f"cannot write index at {index_dir}: {exc.strerror or exc}") from None
    return index


def term_weights(index: Index, text: str) -> dict[str, float]:
    """The idf of each term of the text (0 for a term no chunk contains): how much each question word matters."""
    weights = {}
    for tok in tokenize(text):
        idf = index.term_idf(tok)
        weights[tok] = idf if idf is not None else 0.0
    return weights


class Ranking(NamedTuple):
    """Candidates best first, the confidence of the best one, and the bar it must reach to be an answer."""

    hits: list[tuple[int, float]]
    confidence: float
    threshold: float
    reranked: bool


class Hit(NamedTuple):
    """A ranked chunk: where it lies in its document, and its score."""

    chunk_id: int
    doc: str
    start: int
    end: int
    score: float


class Choice(NamedTuple):
    """One passage to show: the chunk ids it spans (the kept one first, then those merged into it) and its score."""

    ids: list[int]
    score: float


class Decision(NamedTuple):
    """Whether to answer, and the confidence after penalties."""

    confidence: float
    answered: bool


def answer(question: str, index: Index, settings: Settings, query: str | None = None) -> Answer:
    """Answer one question from the index with cited verbatim passages (or abstain).

    `query` is what to search when it differs from the question (an expanded follow-up). Stages: rank (retrieve,
    rerank), choose passages (merge, cap), extract spans, decide (confidence, abstention), group (agreement).
    """
    t0 = time.perf_counter()
    question = question.strip()
    if not question:
        raise UsageError("empty question")
    search = (query or question).strip()
    ranking = rank(index, search, settings)
    hits = [Hit(i, *index.extent(i), score) for i, score in ranking.hits]
    reading = ranking.reranked and settings.reader and reader_installed()
    pool = max(settings.top_k, settings.read_candidates) if reading else settings.top_k
    choices = choose_passages(hits, pool, 2 * settings.chunk_max_chars)
    chosen = [(passage_chunk(c.ids, index.chunk), c.score) for c in choices]
    kind = answer_type(question) or (answer_type(search) if search != question else None)
    if reading:
        chunks = [chunk for chunk, _ in chosen]
        readings = read_passages(search, chunks)
        fused = [fuse_scores(score, r.has_answer, settings.reader_weight) for (_, score), r in zip(chosen, readings)]
        kept = sorted(range(len(chosen)), key=lambda i: -fused[i])[:settings.top_k]
        # the spans that will show: the top passage's, and those sure enough
        shown = {i for n, i in enumerate(kept) if n == 0 or readings[i].has_answer >= settings.span_threshold}
        readings = mark_spans(search, chunks, readings, shown, settings, kind)
        asked = asked_for(question, kind)
        read = []
        for i in kept:
            span = reader_span(chunks[i], readings[i], asked)
            read.append((chunks[i], fused[i], reading_extraction(chunks[i], readings[i], span, settings.span_threshold),
                         readings[i].has_answer, chosen[i][1], span))
        confidence = read[0][1] if read else 0.0
        top = read[0][5] if read else None
        top_span_fits = span_fits(question, kind, read[0][0].text[top[0]:top[1]] if top else None)
        scored = [item[:5] for item in read]
    else:
        spans = extract_spans(question, [chunk for chunk, _ in chosen], term_weights(index, search), kind)
        scored = [(chunk, score, ex, None, score if ranking.reranked else None)
                  for (chunk, score), ex in zip(chosen, spans)]
        top_span_fits = None
        confidence = ranking.confidence
    passages = [_passage(index, chunk, ex, score, n, read, relevance)
                for n, (chunk, score, ex, read, relevance) in enumerate(scored, 1)]
    decision = decide(confidence, ranking.threshold if not reading else settings.abstain_below_read, passages,
                      kind, names_unknown=bool(unknown_names(question, index.terms)), top_span_fits=top_span_fits)
    groups = group_answers(passages, settings.abstain_below if ranking.reranked else ranking.threshold,
                           ranking.reranked) if decision.answered else []
    return Answer(
        question=question,
        answered=decision.answered,
        confidence=round(decision.confidence, 4),
        passages=passages,
        message=None if decision.answered else NO_ANSWER,
        answer=passages[0].answer if decision.answered and passages else None,
        groups=groups,
        disagreement=len(groups) > 1,
        query=search if search != question else None,
        mode=settings.mode,
        reranked=ranking.reranked,
        seconds=round(time.perf_counter() - t0, 4),
    )


def rank(index: Index, search: str, settings: Settings) -> Ranking:
    """Stage 1: retrieve candidates and, when reranking, score the rerank pool with the cross-encoder."""
    retrieval = retrieve(index, search, settings.retrieval)
    hits = retrieval.hits
    if settings.rerank and hits:
        pool = rerank_pool(retrieval, settings.rerank_candidates, settings.rerank_dense_nominees)
        pool += cover_nominees(hits, {i for i, _ in pool}, lambda i: sentence_texts(index.chunk(i)),
                               term_weights(index, search), settings.rerank_cover_nominees)
        probs = rerank(search, [index.search_text(i) for i, _ in pool], settings.rerank_max_tokens)
        ranked = sorted(zip([i for i, _ in pool], probs.tolist()), key=lambda p: -p[1])
        confidence = float(ranked[0][1]) if ranked else 0.0
        return Ranking(ranked, confidence, settings.abstain_below, True)
    confidence = max(0.0, cosine(index, search, hits[0][0], settings.query_encoder)) if hits else 0.0
    return Ranking(hits, confidence, settings.abstain_below_no_rerank, False)


def choose_passages(hits: list[Hit], top_k: int, max_merged_chars: int, max_per_doc: int = MAX_PER_DOC) -> list[Choice]:
    """Stage 2: the passages to show, best first: a hit overlapping a kept passage of its document joins it (while
    the two fit in max_merged_chars) or is dropped; at most max_per_doc passages a document, top_k in all."""
    chosen: list[tuple[Choice, str, int, int]] = []  # choice, doc, start, end of the merged windows
    per_doc: dict[str, int] = {}
    for hit in hits:
        merged = False
        for n, (kept, doc, start, end) in enumerate(chosen):
            if doc == hit.doc and hit.start < end and start < hit.end:
                # overlapping windows of one document: show them as one longer passage
                if max(end, hit.end) - min(start, hit.start) <= max_merged_chars:
                    kept.ids.append(hit.chunk_id)
                    chosen[n] = (kept, doc, min(start, hit.start), max(end, hit.end))
                merged = True
                break
        if merged or per_doc.get(hit.doc, 0) >= max_per_doc or len(chosen) >= top_k:
            continue
        per_doc[hit.doc] = per_doc.get(hit.doc, 0) + 1
        chosen.append((Choice([hit.chunk_id], hit.score), hit.doc, hit.start, hit.end))
    return [choice for choice, *_ in chosen]


def passage_chunk(ids: list[int], chunk: Callable[[int], Chunk]) -> Chunk:
    """The chunk a passage shows: its windows merged, in the order they were chosen."""
    merged = chunk(ids[0])
    for i in ids[1:]:
        merged = merge_chunks(merged, chunk(i))
    return merged


def extract_spans(question: str, chunks: list[Chunk], terms: dict[str, float], kind: str | None) -> list[Extraction]:
    """Stage 3: the best sentence and, for number/date/name questions, the answer span of each chosen passage
    (offsets local to the chunk's text)."""
    out = []
    for chunk in chunks:
        local = [(s - chunk.start, e - chunk.start) for s, e in chunk.sentences]
        out.append(extract_answer(question, chunk.text, local, terms, kind))
    return out


def read_passages(question: str, chunks: list[Chunk]) -> list[Reading]:
    """Stage 3 (reader): what the trained reader finds in each chosen passage (offsets local to its text)."""
    reader = load_reader()
    return reader.read_many(question, [(c.text, _local_sentences(c)) for c in chunks])


def mark_spans(question: str, chunks: list[Chunk], readings: list[Reading], which: set[int], settings: Settings,
               kind: str | None) -> list[Reading]:
    """The readings with the spans of those at `which` chosen again: for a name question by the span reader when it
    ships and is on (the reader's verdicts kept), else by re-reading the best span's sentence, else as read."""
    if kind == "name" and settings.span_reader and span_reader_installed():
        return _read_again(chunks, readings, which,
                           lambda items: load_span_reader().mark_many(question, items, settings.reread_sentence))
    if settings.reread_sentence:
        return reread_passages(question, chunks, readings, which)
    return readings


def reread_passages(question: str, chunks: list[Chunk], readings: list[Reading], which: set[int]) -> list[Reading]:
    """The readings, those at `which` with their best span's sentence read again alone to choose the span in it
    (SQuAD 1k in qa: span EM/F1 0.703/0.772 -> 0.720/0.786)."""
    return _read_again(chunks, readings, which, lambda items: load_reader().reread_many(question, items))


def _read_again(chunks: list[Chunk], readings: list[Reading], which: set[int],
                again: Callable[[list[tuple[str, list[tuple[int, int]], Reading]]], list[Reading]]) -> list[Reading]:
    """The readings, those at `which` replaced by what `again` makes of their (text, sentences, reading)."""
    if not which:
        return readings
    order = sorted(which)
    out = list(readings)
    for i, r in zip(order, again([(chunks[i].text, _local_sentences(chunks[i]), readings[i]) for i in order])):
        out[i] = r
    return out


class Asked(NamedTuple):
    """What a question asks, worked out once for all its passages: its words, the names it gives, the answer kind."""

    words: frozenset[str]
    names: frozenset[str]
    kind: str | None
    question: str


def asked_for(question: str, kind: str | None) -> Asked:
    """The question's answer words and the capitalised names after its first word ("Witkoff" in "who ... Witkoff?")."""
    names = answer_words(" ".join(t for t in question.split()[1:] if t[:1].isupper()))
    return Asked(frozenset(answer_words(question)), frozenset(names), kind, question)


def reading_extraction(chunk: Chunk, reading: Reading, span: tuple[int, int] | None,
                       span_threshold: float) -> Extraction:
    """The reader's span (from reader_span) when it is sure enough that the passage answers, with its sentence."""
    sentences = _local_sentences(chunk)
    if span is None:
        s, e = sentences[0] if sentences else (0, len(chunk.text))
        return Extraction(s, e, None)
    start, end = span
    s, e = next(((s, e) for s, e in sentences if s <= start < e), (0, len(chunk.text)))
    answer = (start, end) if reading.has_answer >= span_threshold and end > start else None
    return Extraction(s, e, answer)


def reader_span(chunk: Chunk, reading: Reading, asked: Asked) -> tuple[int, int] | None:
    """The reader's best span that does not merely repeat the question ("Steven Witkoff" for "who drafted the plan
    with Witkoff?"), for a name question does not restate it ("Witkoff drafted the plan with input from …" for "who
    drafted the plan?"), and for a figure/date question is of that kind ("peacetime cap of 85,000" rather than
    "peacetime" for "what army cap"), among its spans within TYPE_MARGIN logits of the best; else its best span
    (or none, if that only repeats the question)."""
    if reading.start is None:
        return None
    kind = asked.kind

    def echoes(text: str) -> bool:
        words = answer_words(text)
        if kind == "name":  # "Steven Witkoff" names the person the question already names
            named = answer_words(" ".join(t for t in text.split() if t[:1].isupper()))
            if named & asked.names:
                return True
        return bool(words) and words <= asked.words

    best = trim_span(chunk.text, reading.start, reading.end)
    spans = reading.alternatives or ((reading.start, reading.end, reading.span_score),)
    for s, e, score in spans:
        if spans[0][2] - score > TYPE_MARGIN:
            break
        s, e = trim_span(chunk.text, s, e)
        text = chunk.text[s:e]
        if echoes(text):
            continue
        if kind in ("number", "date") and not span_fits(asked.question, kind, text):
            continue
        if kind == "name" and restates(text, asked.words):
            continue
        return s, e
    return None if echoes(chunk.text[best[0]:best[1]]) else best


def restates(span: str, question_words: frozenset[str]) -> bool:
    """Whether a span uses a content word of the question in lower case ("drafted", "plan"): a clause that restates
    the question around its answer, not a name."""
    lowered = answer_words(" ".join(t for t in span.split() if not t[:1].isupper()))
    return bool((lowered - STOPWORDS) & question_words)


def fuse_scores(rerank_probability: float, has_answer: float, reader_weight: float) -> float:
    """A passage's 0-1 score: the cross-encoder's relevance blended with the reader's "the answer is here"."""
    return (1.0 - reader_weight) * rerank_probability + reader_weight * has_answer


def sentence_texts(chunk: Chunk) -> list[str]:
    """The chunk's sentences as text."""
    return [chunk.text[s:e] for s, e in _local_sentences(chunk)]


def _local_sentences(chunk: Chunk) -> list[tuple[int, int]]:
    return [(s - chunk.start, e - chunk.start) for s, e in chunk.sentences]


def decide(confidence: float, threshold: float, passages: list[Passage], kind: str | None,
           names_unknown: bool, top_span_fits: bool | None = None) -> Decision:
    """Stage 4: penalise the confidence when the question names something the corpus never mentions, or asks for a
    figure or date the best passage lacks; answer only when the result reaches the threshold.

    `top_span_fits` is the reader's verdict (its best span in the top passage is of the asked kind); without the
    reader, the best passage lacks the figure when the extractor found no span in it.
    """
    if names_unknown:
        confidence *= UNKNOWN_NAME_PENALTY
    if top_span_fits is None:
        top_span_fits = not (kind in ("number", "date") and passages and passages[0].answer is None)
    if not top_span_fits:
        confidence *= NO_SPAN_PENALTY  # asked "how many" / "when", and the best passage holds no such figure
    return Decision(confidence, bool(passages) and confidence >= threshold)


def group_answers(passages: list[Passage], threshold: float, reranked: bool) -> list[AnswerGroup]:
    """Stage 5: group the passages that support the answer (reranked ones must reach the threshold themselves, on
    the cross-encoder's relevance: the reader alone finds some answer in almost any passage)."""
    def relevance(p: Passage) -> float:
        return p.relevance if p.relevance is not None else p.score

    return _groups([p for p in passages if not reranked or relevance(p) >= threshold])


def merge_chunks(a: Chunk, b: Chunk) -> Chunk:
    """One chunk spanning two overlapping chunks of the same document (text stays verbatim)."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.end <= first.end:
        return first
    text = first.text + second.text[first.end - second.start:]
    sentences = sorted(set(map(tuple, first.sentences)) | set(map(tuple, second.sentences)))
    return first.model_copy(update={"end": second.end, "text": text, "sentences": sentences})


def _passage(index: Index, chunk, ex, score: float, rank: int, answer_score: float | None = None,
             relevance: float | None = None) -> Passage:
    """The whole chunk is the cited passage; the best sentence and the answer span are marked inside it."""
    source = index.source(chunk.doc)
    page, page_end = source.page_range(chunk.start, chunk.end) if source else (None, None)
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
        answer_score=None if answer_score is None else round(float(answer_score), 4),
        relevance=None if relevance is None else round(float(relevance), 4),
        citation=Citation(
            doc=chunk.doc, start=chunk.start, end=chunk.end, line_start=chunk.line_start,
            line_end=chunk.line_start + chunk.text.count("\n"),
            title=source.title if source else None, date=source.date if source else None,
            author=source.author if source else None,
            format=source.format if source else "text", page=page, page_end=page_end,
        ),
    )


def _groups(passages: list[Passage]) -> list[AnswerGroup]:
    """Group passages by the answer they give, so agreeing sources sit together and disagreement shows.

    Two answers agree when they give the same figure ("cap of 85,000 personnel" and "85,000 troops") or the words
    of one are all among the other's ("Dmitriev" and "Kirill Dmitriev"); differing figures never do ("85,000" and
    "800,000").
    """
    groups: list[tuple[frozenset[str], AnswerGroup]] = []
    for p in passages:
        if not p.answer:
            continue
        words = answer_words(p.answer)
        if not words:
            continue
        for n, (key, g) in enumerate(groups):
            if answers_agree(words, key):
                if p.citation.doc not in g.docs:
                    g.docs.append(p.citation.doc)
                g.ranks.append(p.rank)
                groups[n] = (key | words, g)
                break
        else:
            groups.append((words, AnswerGroup(answer=p.answer, docs=[p.citation.doc], ranks=[p.rank])))
    return [g for _, g in groups]


def answers_agree(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two answers' words agree: the same figure when both give figures, else the words of one among the other's."""
    figures_a = {w for w in a if any(ch.isdigit() for ch in w)}
    figures_b = {w for w in b if any(ch.isdigit() for ch in w)}
    if figures_a and figures_b:
        return bool(figures_a & figures_b)
    return a <= b or b <= a


def corpus_path(index: Index, doc: str) -> Path:
    """Absolute path of a cited document."""
    return index.corpus_root / doc


def document_text(index: Index, doc: str) -> str:
    """The text a citation of `doc` indexes: the .txt/.md file itself, or the text layer of a PDF, HTML, DOCX or
    EPUB file. QAError when the document is not in the index or its text cannot be read."""
    source = index.source(doc)
    if source is None or source.skipped:
        raise QAError(f"{doc} is not in the index" + (f" (skipped: {source.skipped})" if source else ""))
    try:
        return index.text(doc)
    except (OSError, UnicodeDecodeError) as exc:
        raise QAError(f"cannot read {doc}: {getattr(exc, 'strerror', None) or exc}") from None
