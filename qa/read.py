"""Reading stage: the trained extractive reader (int8 ONNX in qa/data/reader) marks the answer span of a passage.

The model gives start and end logits per token; [CLS] (token 0) stands for "no answer in this passage". A span must
lie inside one sentence and be at most `max_answer_tokens` long. Each (question, passage) pair runs alone, so a
passage's reading never depends on its neighbours (int8 dynamic quantisation scales by the whole batch).
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

READER_DIR = Path(__file__).resolve().parent / "data" / "reader"
HEAD_FILE = "answerability.npz"  # the answerability head (train/answerability.py)
MAX_TOKENS = 192
MAX_QUESTION_TOKENS = 48
MAX_ANSWER_TOKENS = 30
REREAD_MARGIN = 1.0  # logits: the sentences of spans this close to the best span are read again alone too
REREAD_SENTENCES = 3  # at most this many sentences a passage


@dataclass(frozen=True)
class Reading:
    """What the reader found in one passage: the best span (offsets into the passage) and how sure it is.

    `has_answer` is the probability that the passage holds the answer at all (best span against "not here");
    `span_score` is the best span's start+end logit and `null_score` the [CLS] one; `alternatives` are the next
    best spans (start, end, score), best first.
    """

    start: int | None
    end: int | None
    has_answer: float
    span_score: float
    null_score: float
    alternatives: tuple[tuple[int, int, float], ...] = ()
    margin: float | None = None  # the logits' own best span minus [CLS], where the head gives has_answer


class ReaderMissing(Exception):
    """The reader model is not installed next to the package."""


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: list[tuple[int, int]],
              passage_tokens: range, sentences: list[tuple[int, int]], max_answer_tokens: int = MAX_ANSWER_TOKENS
              ) -> tuple[int, int, float] | None:
    """The highest-scoring (start, end) character span whose tokens lie in one sentence; None if no token qualifies."""
    spans = top_spans(start_logits, end_logits, offsets, passage_tokens, sentences, max_answer_tokens, k=1)
    return spans[0] if spans else None


def top_spans(start_logits: np.ndarray, end_logits: np.ndarray, offsets: list[tuple[int, int]],
              passage_tokens: range, sentences: list[tuple[int, int]], max_answer_tokens: int = MAX_ANSWER_TOKENS,
              k: int = 10) -> list[tuple[int, int, float]]:
    """The k highest-scoring (start, end, score) character spans whose tokens lie in one sentence, best first.

    `offsets` are character offsets of every token in the passage, `passage_tokens` the token positions that belong
    to the passage, `sentences` the passage's sentence spans (character offsets into the passage).
    """
    sentence_of = {}
    for t in passage_tokens:
        a, b = offsets[t]
        if b <= a:
            continue
        for n, (s, e) in enumerate(sentences):
            if s <= a < e:
                sentence_of[t] = n
                break
    tokens = sorted(sentence_of)
    if not tokens:
        return []
    idx = np.array(tokens)
    s_l, e_l = start_logits[idx], end_logits[idx]
    sent = np.array([sentence_of[t] for t in tokens])
    # score[i, j] = start i + end j, allowed when j >= i, within max length and in the same sentence
    score = s_l[:, None] + e_l[None, :]
    pos = idx
    valid = (pos[None, :] >= pos[:, None]) & (pos[None, :] - pos[:, None] < max_answer_tokens) & \
            (sent[:, None] == sent[None, :])
    score = np.where(valid, score, -np.inf).ravel()
    best = np.argsort(-score, kind="stable")[:k]
    out = []
    for flat in best:
        if not np.isfinite(score[flat]):
            break
        i, j = divmod(int(flat), len(tokens))
        out.append((offsets[tokens[i]][0], offsets[tokens[j]][1], float(score[flat])))
    return out


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Whole words only (a word-piece span grows to its words), minus surrounding spaces and trailing punctuation."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    while start < end and text[start] in " \t\n\"'“‘(":
        start += 1
    while end > start and text[end - 1] in " \t\n,;:.\"'”’)":
        if text[end - 1] == ")" and "(" in text[start:end]:
            break
        if text[end - 1] == "." and end - start > 1 and text[end - 2].isupper() and " " not in text[start:end][-3:]:
            break  # keep the full stop of an initial or abbreviation ("U.S.")
        end -= 1
    return start, end


def answerability_features(start: np.ndarray, end: np.ndarray, hidden: np.ndarray, passage: range,
                           span_score: float) -> np.ndarray:
    """What the answerability head reads in one window: the [CLS] state, the passage states weighted by where the
    start and end distributions point, and the logits' own verdict (best span, [CLS], their margin)."""
    idx = np.arange(passage.start, passage.stop)
    null = float(start[0] + end[0])
    feats = [hidden[0]]
    for logits in (start, end):
        z = np.concatenate([[logits[0]], logits[idx]])
        p = np.exp(z - z.max())
        p /= p.sum()
        w = p[1:] / max(p[1:].sum(), 1e-12)
        feats.append(w @ hidden[idx] if len(idx) else np.zeros(hidden.shape[1]))
        feats.append([np.log(max(p[0], 1e-12)), float(logits[idx].max()) if len(idx) else 0.0])
    best = span_score if math.isfinite(span_score) else null - 30.0
    feats.append([math.log(max(1, len(idx))), best, null, best - null])
    return np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in feats])


class AnswerabilityHead:
    """The probability that a window holds the answer, from its answerability_features (one hidden layer)."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as f:
            self.mean, self.std = f["mean"].astype(np.float64), f["std"].astype(np.float64)
            self.w1, self.b1 = f["w1"].astype(np.float64), f["b1"].astype(np.float64)
            self.w2, self.b2 = f["w2"].astype(np.float64), float(f["b2"].ravel()[0])

    def logit(self, features: np.ndarray) -> float:
        h = np.maximum(0.0, ((features - self.mean) / self.std) @ self.w1 + self.b1)
        return float(h @ self.w2 + self.b2)


class Reader:
    """onnxruntime + tokenizers; loaded once per process."""

    def __init__(self, folder: Path = READER_DIR, max_tokens: int = MAX_TOKENS, model_file: str = "model.onnx",
                 head: bool = True) -> None:
        from tokenizers import Tokenizer

        from index.onnx_sessions import open_session

        model = folder / model_file
        if not model.exists():
            raise ReaderMissing(f"reader model not found at {model}")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_tokens = max_tokens
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.session = open_session(model, threads=1)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.head = AnswerabilityHead(folder / HEAD_FILE) if head and "hidden" in self.outputs and \
            (folder / HEAD_FILE).exists() else None
        self.workers = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="read")

    def read_many(self, question: str, passages: list[tuple[str, list[tuple[int, int]]]]) -> list[Reading]:
        """Read each (text, sentences) passage for the question; pairs run side by side, one per run."""
        q_ids = self.question_ids(question)
        return list(self.workers.map(lambda p: self.read(q_ids, p[0], p[1]), passages))

    def reread_many(self, question: str, passages: list[tuple[str, list[tuple[int, int]], Reading]]
                    ) -> list[Reading]:
        """reread() each (text, sentences, reading) passage, side by side."""
        q_ids = self.question_ids(question)
        return list(self.workers.map(lambda p: self.reread(q_ids, *p), passages))

    def question_ids(self, question: str) -> list[int]:
        """The question's token ids as the reader takes them (a long one cut by question_tokens)."""
        return question_tokens(self.tokenizer.encode(question, add_special_tokens=False).ids)

    def read(self, q_ids: list[int], text: str, sentences: list[tuple[int, int]], reread: bool = False) -> Reading:
        """Read one passage; a passage longer than the model's window is read in overlapping windows."""
        best = self._read_passage(q_ids, text, sentences)
        return self.reread(q_ids, text, sentences, best) if reread else best

    def reread(self, q_ids: list[int], text: str, sentences: list[tuple[int, int]], best: Reading) -> Reading:
        """The passage's reading with the sentences of its closest spans read again alone (the best span's, and
        those of spans within REREAD_MARGIN logits of it) and their spans rescored by both readings
        (rescore_in_sentences); whether the passage answers stays the passage's verdict."""
        if best.start is None:
            return best

        def sentence_of(pos: int) -> tuple[int, int]:
            return next(((s, e) for s, e in sentences if s <= pos < e), (0, len(text)))
        chosen = [sentence_of(best.start)]
        top = max((sc for _, _, sc in best.alternatives), default=best.span_score)
        for s, _, sc in best.alternatives:
            if sc < top - REREAD_MARGIN or len(chosen) >= REREAD_SENTENCES:
                break
            if sentence_of(s) not in chosen:
                chosen.append(sentence_of(s))
        alone = [(s0, e0, self._read_passage(q_ids, text[s0:e0], [(0, e0 - s0)]).alternatives) for s0, e0 in chosen]
        spans = rescore_in_sentences(best.alternatives, alone)
        if not spans:
            return best
        s, e, _ = spans[0]
        return Reading(s, e, best.has_answer, best.span_score, best.null_score, tuple(spans), best.margin)

    def _read_passage(self, q_ids: list[int], text: str, sentences: list[tuple[int, int]]) -> Reading:
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        room = self.max_tokens - len(q_ids) - 3
        ids, offsets = enc.ids, enc.offsets
        best: Reading | None = None
        stride = max(1, room - 48)
        first = 0
        while True:
            reading = self._read_window(q_ids, ids[first:first + room], offsets[first:first + room], sentences)
            if best is None or _better(reading, best):
                best = reading
            if first + room >= len(ids):
                break
            first += stride
        return best

    def window_features(self, q_ids: list[int], text: str, sentences: list[tuple[int, int]]) -> np.ndarray:
        """answerability_features of the passage's first window (training the head; needs the hidden output)."""
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        room = self.max_tokens - len(q_ids) - 3
        return self._run_window(q_ids, enc.ids[:room], enc.offsets[:room], sentences)[2]

    def _run_window(self, q_ids, p_ids, p_offsets, sentences):
        """The window's spans, [CLS] score and (with the hidden output) answerability features."""
        input_ids = [self.cls_id] + q_ids + [self.sep_id] + p_ids + [self.sep_id]
        n_q = len(q_ids) + 2
        types = [0] * n_q + [1] * (len(p_ids) + 1)
        feed = {"input_ids": np.array([input_ids], dtype=np.int64),
                "token_type_ids": np.array([types], dtype=np.int64),
                "attention_mask": np.ones((1, len(input_ids)), dtype=np.int64)}
        out = self.session.run(None, feed)
        start, end = out[0][0].astype(np.float64), out[1][0].astype(np.float64)
        offsets = [(0, 0)] * n_q + list(p_offsets) + [(0, 0)]
        null = float(start[0] + end[0])
        passage = range(n_q, n_q + len(p_ids))
        spans = top_spans(start, end, offsets, passage, sentences)
        feats = None
        if len(out) > 2:
            feats = answerability_features(start, end, out[2][0].astype(np.float64), passage,
                                           spans[0][2] if spans else -math.inf)
        return spans, null, feats

    def _read_window(self, q_ids, p_ids, p_offsets, sentences) -> Reading:
        spans, null, feats = self._run_window(q_ids, p_ids, p_offsets, sentences)
        if not spans:
            return Reading(None, None, 0.0, -math.inf, null)
        s, e, score = spans[0]
        if self.head is not None and feats is not None:
            # the head's log-odds stand in for span - [CLS]: null_score is set so that their difference is it
            logit = self.head.logit(feats)
            return Reading(s, e, _sigmoid(logit), score, score - logit, tuple(spans), score - null)
        return Reading(s, e, _sigmoid(score - null), score, null, tuple(spans))


def rescore_in_sentences(passage_spans: tuple[tuple[int, int, float], ...],
                         readings: list[tuple[int, int, tuple[tuple[int, int, float], ...]]]
                         ) -> list[tuple[int, int, float]]:
    """The passage's spans with those inside each re-read sentence (start, end, its spans read alone, offsets local
    to it) scored by the mean of the two readings, best first; a span one reading lacks gets that reading's lowest
    score. Two views of the same sentence outvote a passage-level pull towards a name or figure the context primes
    (SQuAD dev 2,000, gold paragraph: EM/F1 78.0/86.3 -> 78.8/87.0); re-reading the sentences of near-tied spans
    too lets the sentence that holds the question's own words win ("Istanbul 2022 | 85,000" over the next row)."""
    if not passage_spans:
        return []
    floor_p = min(sc for _, _, sc in passage_spans)
    rescored: dict[tuple[int, int], float] = {}
    covered: list[tuple[int, int]] = []
    for s0, e0, sentence_spans in readings:
        inside = {(s, e): sc for s, e, sc in passage_spans if s0 <= s < e0}
        alone = {(s + s0, e + s0): sc for s, e, sc in sentence_spans}
        if not inside or not alone:
            continue
        covered.append((s0, e0))
        floor_s = min(alone.values())
        for s, e in inside.keys() | alone:
            rescored[(s, e)] = (inside.get((s, e), floor_p) + alone.get((s, e), floor_s)) / 2
    if not rescored:
        return list(passage_spans)
    out = sorted(((s, e, sc) for (s, e), sc in rescored.items()), key=lambda t: (-t[2], t[0], t[1]))
    return out + [span for span in passage_spans if not any(s0 <= span[0] < e0 for s0, e0 in covered)]


def question_tokens(ids: list[int], limit: int = MAX_QUESTION_TOKENS) -> list[int]:
    """A long question keeps its first third and its end (where a pasted paragraph's actual question sits)."""
    if len(ids) <= limit:
        return ids
    head = limit // 3
    return ids[:head] + ids[len(ids) - (limit - head):]


def _better(a: Reading, b: Reading) -> bool:
    return (a.span_score - a.null_score) > (b.span_score - b.null_score)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


_lock = threading.Lock()
_readers: dict[str, Reader] = {}


def load_reader(model_file: str = "model.onnx") -> Reader:
    """The process's one reader of that model file (threads that ask at once share one load)."""
    with _lock:
        if model_file not in _readers:
            _readers[model_file] = Reader(model_file=model_file)
        return _readers[model_file]


def reader_installed() -> bool:
    """Whether the model file ships with this installation."""
    return (READER_DIR / "model.onnx").exists()
