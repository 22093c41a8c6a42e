"""The search backend protocol: what qa/ asks of an index, whichever engine holds it (embedded files, or Milvus).

Two backends implement it: `index.store.Index` (the default: plain files in the index folder, BM25 postings as .npy,
exact FAISS) and `index.milvus.MilvusIndex` (a collection on a Milvus server, reached through pymilvus). Fusion,
reranking and reading stay in qa/, so both give the same answers from the same rankings.
"""
from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from .models import Chunk, Manifest, SourceFile

BACKENDS = ("embedded", "milvus")


class BackendUnavailable(Exception):
    """The search engine cannot be reached or refused a request; the message is one line naming where."""


class BM25Ranking(NamedTuple):
    """BM25's top chunk ids with their scores, and the scores of other chunks asked for (0 where no term matches)."""

    ids: np.ndarray
    scores: np.ndarray
    also: np.ndarray


class ManifestFiles:
    """The corpus's root and per-file records, read from a backend's manifest (both backends keep one)."""

    manifest: Manifest
    _sources: dict[str, SourceFile] | None

    @property
    def corpus_root(self) -> Path:
        return Path(self.manifest.corpus_root)

    def source(self, doc: str) -> SourceFile | None:
        if self._sources is None:
            self._sources = {f.doc: f for f in self.manifest.files}
        return self._sources.get(doc)


class SearchBackend(Protocol):
    """The read side of an index generation: rankings, scores for given ids, and the passage records."""

    manifest: Manifest

    def bm25_rank(self, terms: list[str], k: int, also: np.ndarray | None = None) -> BM25Ranking:
        """The k best chunks by BM25 for the query terms (tokenised by index.bm25), plus the scores of `also`."""

    def dense_search(self, query_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k chunk ids nearest the query vector and their cosine scores (ids are -1 past the last chunk)."""

    def dense_scores(self, ids: np.ndarray, query_vec: np.ndarray) -> np.ndarray:
        """Cosine of the query vector with each of the chunks `ids`."""

    def vector(self, i: int) -> np.ndarray:
        """The stored (normalised) embedding of chunk i."""

    def load_vectors(self) -> None:
        """Make dense search ready (a no-op where a server holds the vectors)."""

    def chunk(self, i: int) -> Chunk:
        """The passage record of chunk i."""

    def extent(self, i: int) -> tuple[str, int, int]:
        """(doc, start, end) of chunk i."""

    def search_text(self, i: int) -> str:
        """The text chunk i was indexed and scored by."""

    def term_idf(self, token: str) -> float | None:
        """BM25+ idf of a (stemmed) term as index.bm25 computes it, None when no chunk contains it."""

    @property
    def terms(self) -> Container[str]:
        """Every term of the corpus (stemmed BM25 tokens), for membership tests."""

    @property
    def corpus_root(self) -> Path:
        """The folder documents are named relative to."""

    def source(self, doc: str) -> SourceFile | None:
        """The indexed file `doc`, as the manifest records it."""

    def text(self, doc: str) -> str:
        """The text citations of `doc` index; OSError when it cannot be read."""


class GenerationWriter(Protocol):
    """The write side: a new generation written aside, then switched to at once; a document's passages removed."""

    def write_generation(self, source: SearchBackend) -> str:
        """Write every passage, vector and file record of `source` as a new generation; returns its name."""

    def switch_generation(self, name: str) -> None:
        """Point readers at generation `name` atomically (readers of the old one finish their request)."""

    def delete_document(self, doc: str) -> int:
        """Remove the passages of `doc` from the current generation; returns how many were removed."""
