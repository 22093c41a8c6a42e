"""The index folder: build aside and switch atomically under a lock; load and check it against the corpus."""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from . import bm25 as bm25_mod
from . import dense
from .chunk import make_chunks
from .ingest import SkippedFile, clean_document, find_files, read_text
from .models import FORMAT_VERSION, BM25Params, Chunk, ChunkParams, Manifest, SourceFile

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Warn = Callable[[str], None]


class IndexCorrupt(Exception):
    """The index folder exists but cannot be read; rebuilding fixes it."""


@dataclass
class CorpusFile:
    """A file found in the corpus, before reading it."""

    path: Path
    doc: str
    size: int
    mtime_ns: int


@dataclass
class Index:
    """A loaded index: manifest, chunk records, BM25 postings and (lazily) the FAISS vectors."""

    folder: Path
    manifest: Manifest
    records: list[dict]
    bm25: bm25_mod.BM25Index
    _faiss: object | None = field(default=None, repr=False)
    _sources: dict[str, SourceFile] | None = field(default=None, repr=False)

    @property
    def faiss(self):
        if self._faiss is None:
            try:
                self._faiss = dense.load_faiss(self.folder / "vectors.faiss")
            except Exception as exc:  # faiss raises RuntimeError with C++ text
                raise IndexCorrupt(f"vectors.faiss unreadable: {str(exc).splitlines()[0][:120]}") from None
        return self._faiss

    def chunk(self, i: int) -> Chunk:
        return Chunk.model_construct(**self.records[i])

    @property
    def corpus_root(self) -> Path:
        return Path(self.manifest.corpus_root)

    def source(self, doc: str) -> SourceFile | None:
        if self._sources is None:
            self._sources = {f.doc: f for f in self.manifest.files}
        return self._sources.get(doc)


def scan_corpus(paths: list[Path]) -> tuple[Path, list[CorpusFile]]:
    """The corpus root and its text files with size and mtime (cheap: no reading)."""
    root, files = find_files(paths)
    out = []
    for p in files:
        st = p.stat()
        doc = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name
        out.append(CorpusFile(path=p, doc=doc, size=st.st_size, mtime_ns=st.st_mtime_ns))
    return root, out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stale_reason(manifest: Manifest, root: Path, files: list[CorpusFile],
                 chunking: ChunkParams, bm25: BM25Params) -> str | None:
    """Why the index no longer matches the corpus or settings, or None when it does."""
    if manifest.format_version != FORMAT_VERSION:
        return f"index format {manifest.format_version} != {FORMAT_VERSION}"
    if manifest.model_name != dense.MODEL_NAME or manifest.model_dim != dense.MODEL_DIM:
        return "embedding model changed"
    if manifest.chunking != chunking or manifest.bm25 != bm25:
        return "chunking or BM25 parameters changed"
    if Path(manifest.corpus_root) != root:
        return f"corpus root changed ({manifest.corpus_root} -> {root})"
    known = {f.doc: f for f in manifest.files}
    current = {f.doc for f in files}
    for doc in sorted(set(known) - current):
        return f"{doc} was removed"
    for f in files:
        old = known.get(f.doc)
        if old is None:
            return f"{f.doc} was added"
        if old.size != f.size:
            return f"{f.doc} changed"
        if old.mtime_ns != f.mtime_ns and old.sha256 != _sha256(f.path):
            return f"{f.doc} changed"
    return None


# --- reading ---------------------------------------------------------------------------------

def _current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / "CURRENT"
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["generation"]
    except (ValueError, KeyError, TypeError, OSError):
        raise IndexCorrupt(f"{pointer} is unreadable") from None
    folder = index_dir / name
    if not folder.is_dir() or "/" in name or name.startswith("."):
        raise IndexCorrupt(f"{pointer} points to a missing generation {name!r}")
    return folder


def read_manifest(index_dir: Path) -> Manifest | None:
    """The current manifest, or None when no index was ever built here."""
    folder = _current_generation(index_dir)
    if folder is None:
        return None
    try:
        return Manifest.model_validate_json((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        raise IndexCorrupt(f"manifest.json unreadable: {str(exc).splitlines()[0][:120]}") from None


def load_index(index_dir: Path) -> Index | None:
    """Load the current generation; IndexCorrupt if any of its files is missing or malformed."""
    folder = _current_generation(index_dir)
    if folder is None:
        return None
    manifest = read_manifest(index_dir)
    try:
        with open(folder / "chunks.jsonl", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        bm25 = bm25_mod.BM25Index.load(folder, manifest.bm25)
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"{str(exc).splitlines()[0][:160]}") from None
    if len(records) != manifest.num_chunks or bm25.num_docs != manifest.num_chunks:
        raise IndexCorrupt("chunk count does not match the manifest")
    if not all(isinstance(r, dict) and "text" in r and "doc" in r for r in records):
        raise IndexCorrupt("chunks.jsonl holds malformed records")
    index = Index(folder=folder, manifest=manifest, records=records, bm25=bm25)
    if index.faiss.ntotal != manifest.num_chunks:
        raise IndexCorrupt("vectors.faiss does not match the manifest")
    return index


# --- writing ---------------------------------------------------------------------------------

@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Serialise builds of one index folder across processes."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no cross-process lock
            pass
        yield


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _switch_to(index_dir: Path, generation: Path) -> None:
    """Atomically point CURRENT at a fully written generation folder."""
    tmp = index_dir / f".CURRENT.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"generation": generation.name}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / "CURRENT")
    _fsync_dir(index_dir)


def _prune(index_dir: Path, keep: set[str]) -> None:
    """Remove superseded generations and leftovers of interrupted builds."""
    for child in index_dir.iterdir():
        if child.is_dir() and child.name.startswith(("gen-", ".building-")) and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


def build_index(paths: list[Path], index_dir: Path, chunking: ChunkParams, bm25_params: BM25Params,
                progress: Progress | None = None, warn: Warn | None = None) -> tuple[Index, float]:
    """Build (reusing unchanged files' chunks and embeddings) and switch to it; returns the index and seconds."""
    t0 = time.perf_counter()
    root, files = scan_corpus(paths)
    with build_lock(index_dir):
        try:
            previous = load_index(index_dir)
        except IndexCorrupt:
            previous = None
        if previous is not None and (previous.manifest.chunking != chunking or previous.manifest.bm25 != bm25_params
                                     or previous.manifest.model_name != dense.MODEL_NAME):
            reuse_chunks = {}
        else:
            reuse_chunks = _chunks_by_file(previous)
        cached_vectors = _vectors_by_hash(previous)

        sources: list[SourceFile] = []
        records: list[dict] = []
        tokens: list[list[str]] = []
        for n, f in enumerate(files, 1):
            sha = _sha256(f.path)
            old = reuse_chunks.get(f.doc)
            if old is not None and old[0].sha256 == sha:
                source, file_records, file_tokens = old
                source = source.model_copy(update={"size": f.size, "mtime_ns": f.mtime_ns})
            else:
                try:
                    text = read_text(f.path)
                except SkippedFile as exc:
                    if warn:
                        warn(f"skipped {f.doc}: {exc}")
                    sources.append(SourceFile(doc=f.doc, size=f.size, mtime_ns=f.mtime_ns, sha256=sha, skipped=str(exc)))
                    continue
                document = clean_document(f.doc, text)
                chunks = make_chunks(document, chunking)
                file_records = [c.model_dump() for c in chunks]
                file_tokens = [bm25_mod.tokenize(c.search_text) for c in chunks]
                source = SourceFile(doc=f.doc, size=f.size, mtime_ns=f.mtime_ns, sha256=sha, title=document.title,
                                    date=document.date, author=document.author, chunks=len(chunks))
            for rec in file_records:
                records.append({**rec, "id": len(records)})
            tokens.extend(file_tokens)
            sources.append(source)
            if progress:
                progress("reading", n, len(files))

        vectors = _embed(records, cached_vectors, progress)
        bm25 = bm25_mod.build_bm25(tokens, bm25_params)
        manifest = Manifest(
            corpus_root=str(root), model_name=dense.MODEL_NAME, model_dim=dense.MODEL_DIM, chunking=chunking,
            bm25=bm25_params, files=sources, num_chunks=len(records),
            built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - t0, 3),
        )
        building = index_dir / f".building-{time.time_ns()}-{os.getpid()}"
        building.mkdir()
        with open(building / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        with open(building / "tokens.jsonl", "w", encoding="utf-8") as fh:
            for toks in tokens:
                fh.write(json.dumps(toks, ensure_ascii=False) + "\n")
        bm25.save(building)
        dense.save_faiss(dense.build_faiss(vectors), building / "vectors.faiss")
        (building / "manifest.json").write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
        for child in building.iterdir():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())
        generation = index_dir / building.name.replace(".building-", "gen-", 1)
        os.rename(building, generation)
        _switch_to(index_dir, generation)
        _prune(index_dir, keep={generation.name} | ({previous.folder.name} if previous else set()))
        index = load_index(index_dir)
    return index, time.perf_counter() - t0


def _chunks_by_file(previous: Index | None) -> dict[str, tuple[SourceFile, list[dict], list[list[str]]]]:
    """Chunk records and tokens of the previous build, per file, for files that did not change."""
    if previous is None:
        return {}
    try:
        with open(previous.folder / "tokens.jsonl", encoding="utf-8") as fh:
            tokens = [json.loads(line) for line in fh]
    except (OSError, ValueError):
        return {}
    if len(tokens) != len(previous.records):
        return {}
    by_doc: dict[str, tuple[list[dict], list[list[str]]]] = {}
    for rec, toks in zip(previous.records, tokens):
        recs, tks = by_doc.setdefault(rec["doc"], ([], []))
        recs.append(rec)
        tks.append(toks)
    out = {}
    for source in previous.manifest.files:
        if source.skipped is None:
            recs, tks = by_doc.get(source.doc, ([], []))
            out[source.doc] = (source, recs, tks)
    return out


def _vectors_by_hash(previous: Index | None) -> dict[str, np.ndarray]:
    if previous is None:
        return {}
    try:
        vectors = dense.faiss_vectors(previous.faiss)
    except IndexCorrupt:
        return {}
    if len(vectors) != len(previous.records):
        return {}
    return {rec["hash"]: vectors[i] for i, rec in enumerate(previous.records)}


def _embed(records: list[dict], cached: dict[str, np.ndarray], progress: Progress | None) -> np.ndarray:
    """Embeddings for all chunks: cached by text hash, the rest encoded with sentence-transformers."""
    vectors = np.zeros((len(records), dense.MODEL_DIM), dtype=np.float32)
    missing = []
    for i, rec in enumerate(records):
        vec = cached.get(rec["hash"])
        if vec is None:
            missing.append(i)
        else:
            vectors[i] = vec
    if missing:
        if progress:
            progress("loading model", 0, len(missing))
        encoder = dense.load_encoder("sentence-transformers")
        step = 64
        for lo in range(0, len(missing), step):
            batch = missing[lo:lo + step]
            vectors[batch] = encoder.encode([records[i]["search_text"] for i in batch])
            if progress:
                progress("embedding", min(lo + step, len(missing)), len(missing))
    return vectors
