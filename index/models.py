"""Records that cross the index boundary: documents, chunks, build parameters and the manifest."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FORMAT_VERSION = 2  # 2: chunk records read on demand (chunk_offsets.npy), tokens reused from the postings


class IndexCorrupt(Exception):
    """The index folder exists but cannot be read; rebuilding fixes it."""


class IndexOutdated(IndexCorrupt):
    """The index was written by another version of qa, in a format this one does not read."""


class Span(BaseModel):
    """A half-open character range [start, end) in a document's original text."""

    start: int
    end: int


class Document(BaseModel):
    """One source file: its original text, the ranges cleaning hides, and metadata found in it."""

    doc: str = Field(description="path relative to the corpus root")
    text: str = Field(description="the file's text, decoded as UTF-8 with newlines untouched")
    hidden: list[Span] = Field(default_factory=list, description="scrape artifacts: never shown, never searched")
    markup: list[Span] = Field(default_factory=list, description="formatting marks hidden from scoring only")
    title: str | None = None
    date: str | None = None
    author: str | None = None


class Chunk(BaseModel):
    """A passage of a few sentences; `text == document.text[start:end]`."""

    id: int
    doc: str
    start: int
    end: int
    text: str
    search_text: str = Field(description="text with markup blanked, what BM25 and embeddings see")
    line_start: int = Field(description="1-based line of `start`")
    sentences: list[tuple[int, int]] = Field(description="sentence ranges inside the chunk, in file offsets")
    hash: str = Field(description="hash of search_text, the key of the embedding cache")


class ChunkParams(BaseModel):
    """How documents are cut into passages."""

    max_chars: int = 600
    overlap_sentences: int = 1


class BM25Params(BaseModel):
    """BM25+ parameters (rank_bm25.BM25Plus defaults)."""

    k1: float = 1.5
    b: float = 0.75
    delta: float = 1.0


PassageEncoder = Literal["onnx", "onnx-int8", "sentence-transformers"]


class DenseParams(BaseModel):
    """How passages are embedded and how their vectors are searched (exact, or HNSW above a size)."""

    encoder: PassageEncoder = "onnx-int8"
    ann: Literal["hnsw", "off"] = "hnsw"
    ann_above: int = Field(default=200_000, ge=0, description="more chunks than this get an approximate index")
    hnsw_m: int = Field(default=32, ge=4, le=128)
    hnsw_ef_construction: int = Field(default=80, ge=8)
    hnsw_ef_search: int = Field(default=512, ge=8)


class SourceFile(BaseModel):
    """A corpus file as it was when indexed."""

    doc: str
    size: int
    mtime_ns: int
    sha256: str
    title: str | None = None
    date: str | None = None
    author: str | None = None
    chunks: int = 0
    skipped: str | None = Field(default=None, description="why the file was not indexed, if it was not")
    ctime_ns: int | None = Field(default=None, description="with size, mtime and inode: the change-detection stamp")
    inode: int | None = None
    format: str = Field(default="text", description=(
        "text (.txt/.md: offsets index the file itself), pdf, html, docx or epub (offsets index the text layer)"))
    layer: str | None = Field(default=None, description="file name of the stored text layer in the generation folder")
    pages: list[int] | None = Field(default=None, description="PDF: offset in the text layer where each page begins")
    extractor_version: int | None = Field(default=None, description="non-text formats: version of the extractors that "
                                                                 "made the layer (a new version re-reads the file)")

    def page_range(self, start: int, end: int) -> tuple[int | None, int | None]:
        """1-based pages holding text-layer offsets [start, end) (PDF only; else None, None)."""
        if not self.pages:
            return None, None
        import bisect

        return bisect.bisect_right(self.pages, start), bisect.bisect_right(self.pages, max(start, end - 1))


class FileCheck(BaseModel):
    """A generation file's size and SHA-256, as written by its build."""

    size: int
    sha256: str


class Manifest(BaseModel):
    """What an index was built from and how; compared against the corpus before every use."""

    format_version: int = FORMAT_VERSION
    corpus_root: str
    model_name: str
    model_dim: int
    chunking: ChunkParams
    bm25: BM25Params
    files: list[SourceFile]
    num_chunks: int
    onnx_vectors: int = Field(default=0, description=(
        "chunks embedded by the int8 ONNX twin of the model (a rebuild embeds a few changed chunks with it instead "
        "of loading sentence-transformers); the other chunks' vectors are sentence-transformers'"))
    encoder: str = Field(default="sentence-transformers", description=(
        "what embedded the passages (indexes written before this field were built with sentence-transformers)"))
    dense_index: str = Field(default="flat", description="the FAISS index: flat (exact) or hnsw-m..-efc..-efs..")
    built_at: str
    build_seconds: float
    started_ns: int = Field(default=0, description="when the build began (ns since the epoch): files stamped within "
                                                   "the racy window of it are always hashed by the stale check")
    checks: dict[str, FileCheck] = Field(default_factory=dict, description=(
        "every other file of the generation: size and SHA-256, verified when it is loaded (indexes written before "
        "this field have none)"))
