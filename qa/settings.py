"""The one home of configuration: defaults that work, overridable by QA_* environment variables and CLI options."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from index.models import BM25Params, ChunkParams, DenseParams, PassageEncoder
from index.onnx_sessions import cache_home

REPO_SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def default_corpus() -> list[Path]:
    """./seeds when run from a checkout, else the seeds next to the installed package."""
    local = Path.cwd() / "seeds"
    return [local if local.is_dir() else REPO_SEEDS]


ENV_PREFIX = "QA_"
Mode = Literal["bm25", "dense", "hybrid"]
Fusion = Literal["convex", "rrf"]
QueryEncoder = Literal["onnx-int8", "onnx", "sentence-transformers"]
Backend = Literal["embedded", "milvus"]


class RetrievalParams(BaseModel):
    """What first-stage retrieval needs, passed as one value; built by Settings.retrieval (defaults live there)."""

    model_config = ConfigDict(frozen=True)

    mode: Mode
    candidates: int
    fusion: Fusion
    dense_weight: float
    rrf_k: int
    query_encoder: QueryEncoder


class Settings(BaseModel):
    """Every knob of the pipeline, each overridable by a QA_<NAME> environment variable; explicit values win.

    Defaults were chosen with `qa eval seeds/gold.jsonl --compare`. (A plain pydantic model reading the
    environment itself: pydantic-settings cost 50 ms of every one-shot start-up.)
    """

    model_config = ConfigDict(extra="ignore")

    corpus: list[Path] = Field(default_factory=default_corpus, description="files or folders to answer from")
    index_dir: Path | None = Field(default=None, description="default: a folder per corpus under ~/.cache/qa-offline")
    top_k: int = Field(default=5, ge=1, le=100)
    mode: Mode = "hybrid"
    fusion: Fusion = "convex"
    dense_weight: float = Field(default=0.3, ge=0.0, le=1.0, description="convex fusion weight of the dense score")
    rrf_k: int = Field(default=60, ge=1)
    candidates: int = Field(default=50, ge=1, description="chunks taken from each retriever before fusion")
    rerank: bool = True
    rerank_candidates: int = Field(default=8, ge=1, description="fused hits the cross-encoder scores")
    rerank_dense_nominees: int = Field(default=3, ge=0, description="the dense ranking's top N are reranked too, "
                                                                     "wherever fusion put them")
    rerank_cover_nominees: int = Field(default=2, ge=0, description="up to N further hits (of the first 30) with "
                                       "one sentence holding every query term are reranked too")
    rerank_max_tokens: int = Field(default=256, ge=32, le=512)
    abstain_below: float = Field(default=0.1, description="answer only when confidence reaches this (reranked)")
    abstain_below_no_rerank: float = Field(default=0.45, description="the same, when reranking is off")
    reader: bool = Field(default=True, description="the trained reader marks answer spans and re-orders passages "
                                                   "(with reranking on; without it the rule-based extractor runs)")
    read_candidates: int = Field(default=5, ge=1, description="passages the reader reads before the top_k are kept")
    reread_sentence: bool = Field(default=True, description="the reader reads the sentence of its best span again "
                                                               "alone and picks the span by both readings")
    span_kind: bool = Field(default=True, description="for a figure or date question, the shown span is the reader's "
                            "best span of that kind within 2 logits of its best (qa.answering.pick_spans)")
    span_threshold: float = Field(default=0.3, ge=0.0, le=1.0,
                                  description="the reader reads a passage's best sentence again alone when "
                                  "its answerability reaches this (the top passage always)")
    answer_threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="answer only when the "
                                           "calibrated confidence (the estimated probability that the answer is right) "
                                           "reaches this; default: the threshold qa/data/confidence.json was chosen "
                                           "with (reader on)")
    chunk_max_chars: int = Field(default=600, ge=50)
    chunk_overlap_sentences: int = Field(default=1, ge=0)
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    bm25_delta: float = 1.0
    backend: Backend = Field(default="embedded", description="where passages are searched: the index folder (files "
                                                             "and FAISS) or a Milvus server (docs/scale-out.md)")
    milvus_uri: str = Field(default="http://127.0.0.1:19530", description="the Milvus server (backend milvus)")
    milvus_token: SecretStr | None = Field(default=None, description="credentials for an authenticated Milvus "
                                             "(\"user:password\" or an API key; backend milvus); env only, so it never "
                                             "shows in a process list")
    milvus_collection: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,179}$",
        description="the alias readers search (backend milvus): letters, digits, underscores; default qa_ + the index "
                    "folder's name")
    query_encoder: QueryEncoder = Field(
        default="onnx-int8", description="embeds questions: int8 products (fastest), the packaged ONNX model, or the "
                                         "sentence-transformers model (slow start)")
    build_encoder: PassageEncoder = Field(
        default="onnx-int8", description="embeds passages when building: the packaged ONNX model with int8 products, "
                                         "one text at a time on every core (~180 passages/s on 2 cores, the query "
                                         "encoder's twin), the ONNX model in float batched by length (~97/s), or "
                                         "sentence-transformers (~41/s); a change rebuilds the index")
    ann: Literal["hnsw", "off"] = Field(default="hnsw", description="approximate dense index for large corpora")
    ann_above: int = Field(default=200_000, ge=0, description="chunk count above which the dense index is an HNSW "
                                                              "graph instead of exact search")
    hnsw_m: int = Field(default=32, ge=4, le=128, description="HNSW links per vector")
    hnsw_ef_construction: int = Field(default=80, ge=8, description="HNSW candidate list while linking (build)")
    hnsw_ef_search: int = Field(default=512, ge=8, description="HNSW candidate list per query (stored in the index; "
                                                            "512: recall@10 0.991 at 1M vectors, 1 ms)")
    follow_links: bool = Field(default=False, description="follow links inside the corpus to files outside its "
                               "folder (by default they are skipped with a warning)")
    max_text_mb: float = Field(default=128, gt=0, description="a .txt/.md file larger than this (MB) is skipped "
                               "without being read")
    lock_timeout: float = Field(default=600, ge=0, description="seconds to wait for another process's build of the "
                                "same index before giving up")
    max_question_chars: int = Field(default=20_000, ge=16, description="a longer question is cut to this many "
                                    "characters, with a warning, before anything else reads it")

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data):
        """QA_* variables fill every field not given explicitly (pydantic parses their text)."""
        if not isinstance(data, dict):
            return data
        env = {name: os.environ[ENV_PREFIX + name.upper()] for name in cls.model_fields
               if ENV_PREFIX + name.upper() in os.environ}
        return {**env, **data}

    @field_validator("corpus", mode="before")
    @classmethod
    def _split_paths(cls, value):
        if isinstance(value, str):
            return [Path(p) for p in value.split(os.pathsep) if p]
        return value

    @property
    def chunking(self) -> ChunkParams:
        return ChunkParams(max_chars=self.chunk_max_chars, overlap_sentences=self.chunk_overlap_sentences)

    @property
    def bm25(self) -> BM25Params:
        return BM25Params(k1=self.bm25_k1, b=self.bm25_b, delta=self.bm25_delta)

    @property
    def dense(self) -> DenseParams:
        return DenseParams(encoder=self.build_encoder, ann=self.ann, ann_above=self.ann_above, hnsw_m=self.hnsw_m,
                           hnsw_ef_construction=self.hnsw_ef_construction, hnsw_ef_search=self.hnsw_ef_search)

    @property
    def retrieval(self) -> RetrievalParams:
        return RetrievalParams(mode=self.mode, candidates=self.candidates, fusion=self.fusion,
                               dense_weight=self.dense_weight, rrf_k=self.rrf_k, query_encoder=self.query_encoder)

    def configure_index(self) -> None:
        """Hand the ingest knobs (links, file size limit, lock wait) to the index package for this process: the
        build and the stale check of every later open_index walk and read the corpus by them."""
        from index.ingest import configure

        configure(follow_links=self.follow_links, max_text_bytes=int(self.max_text_mb * (1 << 20)),
                  lock_timeout=self.lock_timeout)

    def resolved_index_dir(self) -> Path:
        """The index folder: explicit, or one per corpus (keyed by its absolute paths) in the user cache."""
        if self.index_dir is not None:
            return self.index_dir.expanduser()
        key = "\n".join(sorted(str(p.expanduser().resolve()) for p in self.corpus))
        name = self.corpus[0].expanduser().resolve().name or "corpus"
        return cache_home() / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def resolved_milvus_collection(self) -> str:
        """The Milvus alias of this corpus: explicit, or named after its index folder."""
        return self.milvus_collection or "qa_" + self.resolved_index_dir().name
