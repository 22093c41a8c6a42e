"""The one path every caller takes: open a fresh index, then answer(question) -> Answer."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from index.backend import SearchBackend
from index.bm25 import tokenize
from index.models import Chunk
from index.store import (Index, IndexCorrupt, IndexOutdated, Progress, Warn, build_index, load_index,
                         nothing_to_search, scan_corpus, stale_reason)

from .errors import BackendError, CorpusError, EmptyCorpusError, IndexWriteError, QAError, UsageError
from .extract import Extraction, answer_type, extract_answer, span_fits, unknown_names
from .span_metrics import answer_words
from .confidence import CLIP, ConfidenceModel, key_term_coverage, passage_features
from .read import Reading, load_reader, reader_installed, trim_span
from .models import Answer, AnswerGroup, Citation, Passage
from .retrieve import cosine, cover_nominees, rerank_pool, retrieve
from .rerank import rerank
from .settings import Settings

NO_ANSWER = "no answer found in the documents"
MAX_PER_DOC = 2
UNKNOWN_NAME_PENALTY = 0.1  # confidence factor when the question names something absent from the corpus
NO_SPAN_PENALTY = 0.1
KIND_MARGIN = 2.0  # logits: how far below the reader's best a span of the asked kind may score and still be taken
ANSWERS = 0.5  # a passage "answers" (and may join "Sources differ") when its answer is more likely right than wrong


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
    """Whether to answer, and the confidence it rests on (the calibrated probability with the reader, else the
    retrieval confidence after its penalties)."""

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
    kind = answer_type(question) or (answer_type(search) if search != question else None)
    if reading:
        model = load_confidence_model()
        candidates = scored_candidates(question, search, index, settings, choices, kind, model)
        texts: dict[str, str | None] = {}
        candidates = [c for c in candidates if still_cited(index, c.chunk, texts)][:settings.top_k]
        threshold = settings.answer_threshold if settings.answer_threshold is not None else model.threshold
        passages = [candidate_passage(index, c, n, threshold) for n, c in enumerate(candidates, 1)]
        confidence = candidates[0].probability if candidates else 0.0
        decision = Decision(confidence, bool(candidates) and confidence >= threshold)
        groups = _groups([p for p, c in zip(passages, candidates) if c.probability >= ANSWERS]) \
            if decision.answered else []
    else:
        chosen = [(passage_chunk(c.ids, index.chunk), c.score) for c in choices]
        texts = {}
        chosen = [(chunk, score) for chunk, score in chosen if still_cited(index, chunk, texts)]
        spans = extract_spans(question, [chunk for chunk, _ in chosen], term_weights(index, search), kind)
        scored = [(chunk, score, ex, None, score if ranking.reranked else None)
                  for (chunk, score), ex in zip(chosen, spans)]
        passages = [_passage(index, chunk, ex, score, n, read, relevance)
                    for n, (chunk, score, ex, read, relevance) in enumerate(scored, 1)]
        decision = decide(ranking.confidence, ranking.threshold, passages, kind,
                          names_unknown=bool(unknown_names(question, index.terms)))
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
        calibrated=bool(reading),
        query=search if search != question else None,
        corpus=str(index.corpus_root),
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


def still_cited(index: Index, chunk: Chunk, texts: dict[str, str | None]) -> bool:
    """Whether the chunk's text is still what its file (or the file's stored text layer) holds at its offsets: a
    file edited or removed since the index was built is never cited from the index's copy (`texts` keeps each
    document read once per answer)."""
    if chunk.doc not in texts:
        try:
            texts[chunk.doc] = index.text(chunk.doc)
        except OSError:
            texts[chunk.doc] = None
    text = texts[chunk.doc]
    return text is not None and text[chunk.start:chunk.end] == chunk.text


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


@dataclass
class Candidate:
    """One candidate passage on its way through the stages; each stage fills in its part.

    `relevance` is the cross-encoder's probability (the choice score when reranked), `reading` what the reader found,
    `span` the span shown (offsets local to the chunk's text), `features` and `probability` the calibrated
    confidence's inputs and its estimate that this passage's span answers the question.
    """

    chunk: Chunk
    relevance: float
    reading: Reading | None = None
    span: tuple[int, int] | None = None
    features: list[float] = field(default_factory=list)
    probability: float = 0.0


def scored_candidates(question: str, search: str, index: Index, settings: Settings, choices: list[Choice],
                      kind: str | None, model: ConfidenceModel) -> list[Candidate]:
    """The reader's stages over the chosen passages: read, pick spans, score; most likely answer first."""
    candidates = [Candidate(passage_chunk(c.ids, index.chunk), c.score) for c in choices]
    candidates = read_candidates(search, candidates, settings)
    candidates = pick_spans(candidates, question, kind, settings.span_kind)
    candidates = score_candidates(candidates, term_weights(index, search), question, kind, model,
                                  names_unknown=bool(unknown_names(question, index.terms)))
    return sorted(candidates, key=lambda c: -c.probability)


def candidates_for(question: str, index: Index, settings: Settings) -> list[Candidate]:
    """Every read candidate of a question with its confidence features (fitting the confidence: bench.calibrate)."""
    ranking = rank(index, question, settings)
    hits = [Hit(i, *index.extent(i), score) for i, score in ranking.hits]
    choices = choose_passages(hits, max(settings.top_k, settings.read_candidates), 2 * settings.chunk_max_chars)
    return scored_candidates(question, question, index, settings, choices, answer_type(question), load_confidence_model())


def read_candidates(question: str, candidates: list[Candidate], settings: Settings) -> list[Candidate]:
    """Stage: the reader reads every candidate; the sentence of the best span is read again alone where a span may
    show (the most answerable passage, and those past span_threshold)."""
    readings = read_passages(question, [c.chunk for c in candidates])
    if settings.reread_sentence and readings:
        top = max(range(len(readings)), key=lambda i: readings[i].has_answer)
        shown = {i for i, r in enumerate(readings) if i == top or r.has_answer >= settings.span_threshold}
        readings = reread_passages(question, [c.chunk for c in candidates], readings, shown)
    return [replace(c, reading=r) for c, r in zip(candidates, readings)]


def pick_spans(candidates: list[Candidate], question: str, kind: str | None, prefer_kind: bool = True
               ) -> list[Candidate]:
    """Stage: each candidate's span to show: the reader's best span (after re-reading), trimmed of edge punctuation;
    for a figure or date question (with `prefer_kind`) its best span of that kind within KIND_MARGIN logits of the
    best ("peacetime cap of 85,000 active personnel" rather than "peacetime" for "what army cap …")."""
    def choose(c: Candidate) -> tuple[int, int] | None:
        r = c.reading
        if r.start is None:
            return None
        best = trim_span(c.chunk.text, r.start, r.end)
        if not prefer_kind or kind not in ("number", "date"):
            return best
        spans = r.alternatives or ((r.start, r.end, r.span_score),)
        for s, e, score in spans:
            if spans[0][2] - score > KIND_MARGIN:
                break
            s, e = trim_span(c.chunk.text, s, e)
            if span_fits(question, kind, c.chunk.text[s:e]):
                return s, e
        return best
    return [replace(c, span=choose(c)) for c in candidates]


def score_candidates(candidates: list[Candidate], question_terms: dict[str, float], question: str,
                     kind: str | None, model: ConfidenceModel, names_unknown: bool = False) -> list[Candidate]:
    """Stage: the calibrated probability that each candidate's span answers (qa.confidence)."""
    heaviest = max(question_terms.values(), default=0.0)
    weights = {t: (w if w > 0 else heaviest + 1.0) for t, w in question_terms.items()}  # unknown terms weigh most
    out = []
    for c in candidates:
        text = c.chunk.text[c.span[0]:c.span[1]] if c.span else None
        coverage = key_term_coverage(weights, set(tokenize(c.chunk.text)))
        has_answer = c.reading.has_answer if c.reading and c.span else 0.0
        margin = c.reading.margin if c.reading and c.span and c.reading.margin is not None else -CLIP
        feats = passage_features(has_answer, margin, c.relevance, coverage, span_fits(question, kind, text),
                                 names_unknown)
        out.append(replace(c, features=feats, probability=model.probability(feats)))
    return out


def candidate_passage(index: Index, c: Candidate, rank: int, threshold: float) -> Passage:
    """A candidate as a cited passage: its span shown only when it is likely enough to be the answer."""
    sentences = _local_sentences(c.chunk)
    if c.span is None:
        s, e = sentences[0] if sentences else (0, len(c.chunk.text))
        ex = Extraction(s, e, None)
    else:
        s, e = next(((s, e) for s, e in sentences if s <= c.span[0] < e), (0, len(c.chunk.text)))
        show = c.probability >= threshold and c.span[1] > c.span[0]
        ex = Extraction(s, e, c.span if show else None)
    return _passage(index, c.chunk, ex, c.probability, rank, c.reading.has_answer if c.reading else None,
                    c.relevance)


_confidence_model: ConfidenceModel | None = None


def load_confidence_model() -> ConfidenceModel:
    """The shipped calibrated confidence (qa/data/confidence.json), read once."""
    global _confidence_model
    if _confidence_model is None:
        _confidence_model = ConfidenceModel.load()
    return _confidence_model


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
