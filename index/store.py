"""The index folder: build aside and switch atomically under a lock; load and check it against the corpus.

A generation folder holds manifest.json; chunks.jsonl with chunk_offsets.npy (records read on demand, see
records.py); chunk_hashes.npy (each chunk's embedding-cache key) and vectors_onnx.npy (which vectors came from the
ONNX twin); bm25_vocab.json and bm25_*.npy (postings, which a rebuild reuses for unchanged files instead of
re-tokenising them); vectors.faiss. Nothing is pickled.

A rebuild embeds only chunks whose text hash is new, with the passage encoder of DenseParams (manifest.encoder):
by default the ONNX model, batched by length. With encoder "sentence-transformers", up to ONNX_REEMBED_MAX new chunks
(an edited file or two) are embedded with its ONNX twin instead (cosine ~0.999, no torch import). manifest.onnx_vectors
counts the vectors the ONNX model made. Above DenseParams.ann_above chunks vectors.faiss is an HNSW graph
(manifest.dense_index); a change of encoder or of index layout makes the index stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, KeysView
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import ValidationError

from . import bm25 as bm25_mod
from . import dense, formats, ingest
from .backend import BM25Ranking, ManifestFiles
from .chunk import make_chunks
from .ingest import SkippedFile, clean_document, decode_text, doc_name, find_files, read_text
from .models import (FORMAT_VERSION, BM25Params, Chunk, ChunkParams, DenseParams, FileCheck, IndexCorrupt,
                     IndexOutdated, Manifest, SourceFile)
from .formats import Extractor
from .records import CHUNKS, OFFSETS, ChunkStore, ChunkWriter

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Warn = Callable[[str], None]
HASHES = "chunk_hashes.npy"
ONNX_FLAGS = "vectors_onnx.npy"
ONNX_REEMBED_MAX = 256  # a rebuild with at most this many new chunks embeds them with the ONNX twin
EMBED_STEP = 64  # texts per encode call (and per progress tick)
HASH_DTYPE = "S40"  # sha1 hex of a chunk's search_text
BIG_FILE = 1 << 20  # files at least this large get a progress line of their own before they are read
RACY_NS = 2_000_000_000  # coarsest common timestamp granularity (FAT: 2 s): a file changed this close to a build
#                          may have been changed again within the same tick, so its content is always compared

__all__ = ["IndexCorrupt", "IndexOutdated", "Index", "build_index", "load_index", "nothing_to_search", "read_manifest",
           "scan_corpus", "stale_reason"]


@dataclass
class CorpusFile:
    """A file found in the corpus, before reading it."""

    path: Path
    doc: str
    size: int
    mtime_ns: int
    ctime_ns: int = 0
    inode: int = 0


@dataclass
class Index(ManifestFiles):
    """A loaded index: manifest, chunk records (a sequence of dicts read on demand), BM25 postings, FAISS vectors.

    The vectors are read on first use (a `qa index` that finds nothing to do never reads them) from a file handle
    opened and checked at load.
    """

    folder: Path
    manifest: Manifest
    records: ChunkStore
    bm25: bm25_mod.BM25Index
    _faiss: object | None = field(default=None, repr=False)
    _faiss_file: BinaryIO | None = field(default=None, repr=False)
    _sources: dict[str, SourceFile] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def faiss(self):
        if self._faiss is None:
            with self._lock:
                if self._faiss is None:
                    self._faiss = self._read_faiss()
                    self._faiss_file.close()
        return self._faiss

    def _read_faiss(self):
        """The vectors, from their path, or from the handle opened at load if a newer build removed the folder."""
        try:
            try:
                return dense.load_faiss(self.folder / "vectors.faiss")
            except RuntimeError:
                if self.folder.exists():
                    raise
                return dense.read_faiss(self._faiss_file)
        except Exception as exc:  # faiss raises RuntimeError with C++ text
            raise IndexCorrupt(f"vectors.faiss unreadable: {_first_line(exc)}") from None

    def chunk(self, i: int) -> Chunk:
        return Chunk.model_construct(**self.records[i])

    def extent(self, i: int) -> tuple[str, int, int]:
        """(doc, start, end) of chunk i, without building a Chunk (cheap enough for every candidate)."""
        record = self.records[i]
        return record["doc"], record["start"], record["end"]

    def search_text(self, i: int) -> str:
        """The text chunk i was indexed and scored by (artifacts and markup blanked)."""
        return self.records[i]["search_text"]

    def load_vectors(self) -> None:
        """Read the vectors now (a one-shot run reads them while the query encoder may still be loading)."""
        self.faiss  # noqa: B018 - lazy property

    def dense_search(self, query_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k chunk ids nearest the query vector and their cosine scores (ids are -1 past the last chunk)."""
        return dense.dense_search(self.faiss, query_vec, k)

    def dense_scores(self, ids: np.ndarray, query_vec: np.ndarray) -> np.ndarray:
        """Cosine of the query vector with each of the chunks `ids`."""
        return dense.stored_vectors(self.faiss)[ids] @ query_vec

    def vector(self, i: int) -> np.ndarray:
        """The stored (normalised) embedding of chunk i."""
        return self.faiss.reconstruct(int(i))

    def bm25_scores(self, tokens: list[str]) -> np.ndarray:
        """BM25+ score of every chunk for the query tokens."""
        return self.bm25.scores(tokens)

    def bm25_rank(self, terms: list[str], k: int, also: np.ndarray | None = None) -> BM25Ranking:
        """The k best chunks by BM25+ (ties by id) and the scores of `also`, from one pass over the postings."""
        scores = self.bm25.scores(terms)
        ids = bm25_mod.top_indices(scores, k)
        return BM25Ranking(ids, scores[ids], scores[also] if also is not None else np.zeros(0))

    def term_idf(self, token: str) -> float | None:
        """BM25 idf of a (stemmed) term, None when no chunk contains it."""
        t = self.bm25.vocab.get(token)
        return None if t is None else self.bm25.idf(t)

    @property
    def terms(self) -> KeysView[str]:
        """Every term of the corpus (stemmed BM25 tokens), read-only."""
        return self.bm25.vocab.keys()

    def text(self, doc: str) -> str:
        """The text citations of `doc` index: the file itself for .txt/.md, else its stored text layer.

        OSError when it cannot be read (a text file removed, or the generation pruned by a newer build)."""
        source = self.source(doc)
        if source is not None and source.layer:
            return (self.folder / source.layer).read_text(encoding="utf-8")
        try:
            return read_text(self.corpus_root / doc)  # decoded exactly as it was for indexing
        except SkippedFile as exc:
            raise OSError(f"{doc}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def scan_corpus(paths: list[Path], warn: Warn | None = None) -> tuple[Path, list[CorpusFile]]:
    """The corpus root and its text files with size and mtime (cheap: no reading). A file that cannot be listed or
    stat'ed is left out (with a warning when warn is given: the build's scan warns, the stale check is silent)."""
    root, files = find_files(paths, warn)
    out = []
    for p in files:
        try:
            st = p.stat()
        except FileNotFoundError:  # removed since it was listed: not part of the corpus any more
            continue
        except OSError as exc:  # a name too long to open, a link loop: skipped, never the whole corpus
            if warn:
                warn(f"skipped {doc_name(p, root)}: {exc.strerror or exc}")
            continue
        doc = doc_name(p, root)
        out.append(CorpusFile(path=p, doc=doc, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
                              inode=st.st_ino))
    return root, out


def _sha256(path: Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read (it then counts as changed)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def content_may_differ(old: SourceFile, f: CorpusFile, racy_from_ns: int) -> bool:
    """Whether a file whose size is unchanged must be hashed to know if its content changed.

    The rule: size, mtime, ctime and inode all as recorded means unchanged, unless the file's mtime or ctime falls
    within RACY_NS of the start of the build that recorded it (a second change inside the same timestamp tick would
    leave every stamp as it was). Copies that keep the mtime (`cp -p`, `rsync -t`, a restored backup) still change
    the ctime or the inode, which no tool can set back.
    """
    if old.ctime_ns is None or old.inode is None:
        return True  # recorded before ctime and inode were: compare content
    if (old.mtime_ns, old.ctime_ns, old.inode) != (f.mtime_ns, f.ctime_ns, f.inode):
        return True
    return racy_from_ns > 0 and max(f.mtime_ns, f.ctime_ns) >= racy_from_ns - RACY_NS


def stale_reason(manifest: Manifest, root: Path, files: list[CorpusFile],
                 chunking: ChunkParams, bm25: BM25Params, verify: bool = False,
                 dense_params: DenseParams | None = None) -> str | None:
    """Why the index no longer matches the corpus or settings, or None when it does.

    A file counts as changed when its size differs, or when content_may_differ and its SHA-256 differs (`verify`
    hashes every file).
    """
    if manifest.format_version != FORMAT_VERSION:
        return f"index format {manifest.format_version} != {FORMAT_VERSION}"
    if manifest.model_name != dense.MODEL_NAME or manifest.model_dim != dense.MODEL_DIM:
        return "embedding model changed"
    if manifest.chunking != chunking or manifest.bm25 != bm25:
        return "chunking or BM25 parameters changed"
    dense_params = dense_params or DenseParams()
    if manifest.encoder != dense_params.encoder:
        return f"passage encoder changed ({manifest.encoder} -> {dense_params.encoder})"
    if manifest.dense_index != dense.index_layout(manifest.num_chunks, dense_params):
        return f"dense index changed ({manifest.dense_index} -> {dense.index_layout(manifest.num_chunks, dense_params)})"
    if Path(manifest.corpus_root) != root:
        return f"corpus root changed ({manifest.corpus_root} -> {root})"
    if any(f.ctime_ns is None for f in manifest.files if f.skipped is None):
        return "index predates ctime and inode stamps"  # a refresh reuses every chunk and records them
    known = {f.doc: f for f in manifest.files}
    for f in manifest.files:
        if f.format != "text" and f.extractor_version != formats.EXTRACTOR_VERSION:
            return f"the {f.format} extractor changed ({f.doc})"
    current = {f.doc for f in files}
    for doc in sorted(set(known) - current):
        return f"{doc} was removed"
    for f in files:
        old = known.get(f.doc)
        if old is None:
            return f"{f.doc} was added"
        if old.size != f.size:
            return f"{f.doc} changed"
        if old.skipped and not old.sha256:  # skipped unread (unreadable, too large, binary): its stamps decide
            if old.ctime_ns is None or (old.mtime_ns, old.ctime_ns, old.inode) != (f.mtime_ns, f.ctime_ns, f.inode):
                return f"{f.doc} changed"
            continue  # a skipped file that keeps failing is not a change (it was rebuilt on every question)
        if (verify or content_may_differ(old, f, manifest.started_ns)) and old.sha256 != _sha256(f.path):
            return f"{f.doc} changed"
    return None


# --- reading ---------------------------------------------------------------------------------

def current_generation(index_dir: Path) -> Path | None:
    """The generation folder CURRENT points at, or None when no index was ever built here."""
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


def _read_manifest(folder: Path) -> Manifest:
    try:
        return Manifest.model_validate_json((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        raise IndexCorrupt(f"manifest.json unreadable: {_first_line(exc)}") from None


def read_manifest(index_dir: Path) -> Manifest | None:
    """The current manifest, or None when no index was ever built here."""
    folder = current_generation(index_dir)
    return None if folder is None else _read_manifest(folder)


def load_index(index_dir: Path) -> Index | None:
    """Load the current generation; IndexCorrupt if any of its files is missing or malformed."""
    folder = current_generation(index_dir)
    if folder is None:
        return None
    manifest = _read_manifest(folder)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexOutdated(f"index format {manifest.format_version} is from another version (this one reads "
                            f"{FORMAT_VERSION})")
    verify_generation(folder, manifest)
    return _open_generation(folder, manifest)


def _open_generation(folder: Path, manifest: Manifest, bm25: bm25_mod.BM25Index | None = None,
                     faiss_index: object | None = None) -> Index:
    """An Index over a generation folder, its files checked against the manifest (records are not parsed)."""
    n = manifest.num_chunks
    if sum(f.chunks for f in manifest.files if f.skipped is None) != n:
        raise IndexCorrupt("the manifest's per-file chunk counts do not add up")
    records = ChunkStore.open(folder, n)
    if bm25 is None:
        try:
            bm25 = bm25_mod.BM25Index.load(folder, manifest.bm25)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise IndexCorrupt(_first_line(exc) or type(exc).__name__) from None
    if bm25.num_docs != n:
        raise IndexCorrupt("chunk count does not match the manifest")
    faiss_file = None
    if faiss_index is None:
        path = folder / "vectors.faiss"
        try:
            faiss_file = open(path, "rb")  # noqa: SIM115 - read (and closed) on first use of index.faiss
            shape = dense.faiss_shape(path)
        except Exception as exc:  # faiss raises RuntimeError with C++ text
            if faiss_file is not None:
                faiss_file.close()
            raise IndexCorrupt(f"vectors.faiss unreadable: {_first_line(exc)}") from None
    else:
        shape = (faiss_index.ntotal, faiss_index.d)
    if shape != (n, dense.MODEL_DIM):
        if faiss_file is not None:
            faiss_file.close()
        raise IndexCorrupt("vectors.faiss does not match the manifest")
    return Index(folder=folder, manifest=manifest, records=records, bm25=bm25, _faiss=faiss_index,
                 _faiss_file=faiss_file)


# --- writing ---------------------------------------------------------------------------------

class LockTimeout(TimeoutError):
    """Another process has held the build lock of this index folder for longer than the timeout (an OSError, so
    qa says "cannot write index at DIR: another build …", exit 1)."""


@contextlib.contextmanager
def build_lock(index_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Serialise builds of one index folder across processes; LockTimeout (one line) after `timeout` seconds
    (default: ingest.OPTIONS.lock_timeout) of waiting for another build."""
    index_dir.mkdir(parents=True, exist_ok=True)
    timeout = ingest.OPTIONS.lock_timeout if timeout is None else timeout
    with open(index_dir / ".lock", "a+") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            fcntl = None
        if fcntl is not None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"another build has held its lock for more than {timeout:g} s; try "
                                          "again when it is done (QA_LOCK_TIMEOUT sets the wait)") from None
                    time.sleep(0.05)
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
    """Remove superseded generations and leftovers of interrupted builds (half-written generations, CURRENT
    pointers never switched to); runs under the build lock, so no other build is writing them."""
    for child in index_dir.iterdir():
        if child.is_dir() and child.name.startswith(("gen-", ".building-")) and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(".CURRENT.") and child.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                child.unlink()


@dataclass
class Previous:
    """What a rebuild takes from the generation it replaces: unchanged files' chunks, postings and vectors."""

    index: Index
    files: dict[str, tuple[SourceFile, int, int]]  # doc -> (source, first chunk, end chunk) when chunks are reusable
    hashes: np.ndarray  # each chunk's embedding-cache key
    onnx: np.ndarray  # whether its vector came from the ONNX twin


@dataclass
class Collected:
    """The new generation's chunks in order: where each came from and its hash."""

    sources: list[SourceFile] = field(default_factory=list)
    old_rows: list[np.ndarray] = field(default_factory=list)  # per file: previous chunk ids, -1 for new chunks
    hashes: list[np.ndarray] = field(default_factory=list)
    count: int = 0


def _load_previous(index_dir: Path, chunking: ChunkParams, bm25_params: BM25Params,
                   encoder: str) -> Previous | None:
    """The current generation, as a source of reusable chunks and vectors (None when missing, corrupt, or embedded
    by another encoder)."""
    try:
        index = load_index(index_dir)
        if index is None or index.manifest.model_name != dense.MODEL_NAME or index.manifest.encoder != encoder:
            return None
        n = index.manifest.num_chunks
        hashes = np.load(index.folder / HASHES, allow_pickle=False)
        onnx = np.load(index.folder / ONNX_FLAGS, allow_pickle=False)
    except (IndexCorrupt, OSError, ValueError, EOFError):
        return None
    if hashes.shape != (n,) or hashes.dtype != np.dtype(HASH_DTYPE) or onnx.shape != (n,) or onnx.dtype != bool:
        return None
    same = index.manifest.chunking == chunking and index.manifest.bm25 == bm25_params
    return Previous(index=index, files=_file_ranges(index.manifest) if same else {}, hashes=hashes, onnx=onnx)


def _file_ranges(manifest: Manifest) -> dict[str, tuple[SourceFile, int, int]]:
    """Each indexed file's chunk id range (chunks are stored file by file, in manifest order)."""
    out = {}
    lo = 0
    for source in manifest.files:
        if source.skipped is None:
            out[source.doc] = (source, lo, lo + source.chunks)
            lo += source.chunks
    return out


def layer_name(sha256: str) -> str:
    """File name of a document's text layer in a generation folder (content-addressed: reused while unchanged)."""
    return f"layer-{sha256[:40]}.txt"


def _reuse_layer(previous: Previous, source: SourceFile, building: Path) -> bool:
    """Link (or copy) an unchanged document's text layer into the new generation; False if it is missing."""
    if not source.layer:
        return True
    old = previous.index.folder / source.layer
    try:
        try:
            os.link(old, building / source.layer)
        except OSError:
            shutil.copyfile(old, building / source.layer)
    except OSError:
        return False
    return True


def _write_layer(building: Path, name: str, text: str) -> None:
    with open(building / name, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _read_stable(f: CorpusFile, text: bool = True) -> tuple[bytes, str, os.stat_result]:
    """The file's bytes (text files only: others are hashed and left to the extractor), their SHA-256 and its stat,
    read again once if it changed while being read; opened without blocking and checked to be a regular file, read
    in blocks under the size limit of its kind.

    OSError when it vanished or cannot be read; SkippedFile when it is too large, binary or not a regular file
    (a FIFO swapped in); _Unsettled when it kept changing.
    """
    limit = ingest.OPTIONS.max_text_bytes if text else formats.MAX_FILE_BYTES
    for _ in range(2):
        h = hashlib.sha256()
        data, before = ingest.read_bounded(f.path, limit, sniff_binary=text, hasher=h, keep=text)
        after = f.path.stat()
        if (before.st_size, before.st_mtime_ns, before.st_ino) == (after.st_size, after.st_mtime_ns, after.st_ino):
            return data, h.hexdigest(), before
    raise _Unsettled("it changed while being read")


class _Unsettled(Exception):
    """A file that kept changing while the build read it."""


def _collect(files: list[CorpusFile], previous: Previous | None, chunking: ChunkParams, writer: ChunkWriter,
             postings: bm25_mod.PostingsBuilder, progress: Progress | None, warn: Warn | None,
             building: Path, extractor: Extractor) -> Collected:
    """Read every file (or reuse its previous chunks when its content is unchanged), writing records as we go.

    Each file is read once (its hash and its text come from the same bytes). A file removed during the build is
    left out with a warning; one that keeps changing while read is recorded as skipped, so the next run reads it.
    PDF, HTML, DOCX and EPUB files are read by the extractor (a worker with a time limit) into a text layer stored
    in the generation, and count as changed while read when their stamps moved during extraction; a file skipped
    before with the same content is skipped again without extracting it. Any other error while one file is read,
    decoded, cleaned or chunked skips that file (recorded with its stamps), never the build; only a failure to
    write the index (a full disk) ends it.
    """
    out = Collected()
    reusable = previous.files if previous is not None else {}
    skipped_before = ({s.doc: s for s in previous.index.manifest.files
                       if s.skipped and s.format != "text" and s.extractor_version == formats.EXTRACTOR_VERSION}
                      if previous is not None else {})

    def one(n: int, f: CorpusFile) -> None:
        """Read (or reuse) file n; any failure of its own is recorded as a skip by the loop below."""
        if progress and f.size >= BIG_FILE:
            progress(f"reading {f.doc} ({f.size / 1e6:.1f} MB)", n - 1, len(files))
        text_file = formats.format_of(f.path) in (None, "text")
        try:
            data, sha, st = _read_stable(f, text_file)
        except SkippedFile as exc:  # too large, binary, not a regular file: recorded, the stamps say when it changes
            if warn:
                warn(f"skipped {f.doc}: {exc}")
            out.sources.append(SourceFile(doc=f.doc, size=f.size, mtime_ns=f.mtime_ns, ctime_ns=f.ctime_ns,
                                          inode=f.inode, sha256="", skipped=str(exc),
                                          format=formats.format_of(f.path) or "text",
                                          extractor_version=None if text_file else formats.EXTRACTOR_VERSION))
            if progress:
                progress("reading", n, len(files))
            return
        except (FileNotFoundError, NotADirectoryError) as exc:  # removed (or its folder replaced) since the scan
            if warn:
                warn(f"skipped {f.doc}: it could not be read during the build ({exc.strerror or exc})")
            if progress:
                progress("reading", n, len(files))
            return
        except OSError as exc:  # there but unreadable: recorded, so it is not taken for a new file every time
            if warn:
                warn(f"skipped {f.doc}: unreadable ({exc.strerror or exc})")
            out.sources.append(SourceFile(doc=f.doc, size=f.size, mtime_ns=f.mtime_ns, ctime_ns=f.ctime_ns,
                                          inode=f.inode, sha256="", skipped=f"unreadable ({exc.strerror or exc})"))
            if progress:
                progress("reading", n, len(files))
            return
        except _Unsettled as exc:
            if warn:
                warn(f"skipped {f.doc}: {exc}; it will be read again next time")
            out.sources.append(SourceFile(doc=f.doc, size=-1, mtime_ns=f.mtime_ns, sha256="", skipped=str(exc)))
            if progress:
                progress("reading", n, len(files))
            return
        stamps = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}
        old = reusable.get(f.doc)
        if old is not None and old[0].format != "text" and old[0].extractor_version != formats.EXTRACTOR_VERSION:
            old = None  # made by another version of the extractors: read it again
        was_skipped = skipped_before.get(f.doc)
        if was_skipped is not None and was_skipped.sha256 == sha:
            if warn:
                warn(f"skipped {f.doc}: {was_skipped.skipped}")
            out.sources.append(was_skipped.model_copy(update=stamps))
        elif old is not None and old[0].sha256 == sha and _reuse_layer(previous, old[0], building):
            source, lo, hi = old
            writer.copy(previous.index.records, lo, hi)
            postings.add_base(lo, hi)
            out.old_rows.append(np.arange(lo, hi, dtype=np.int64))
            out.hashes.append(previous.hashes[lo:hi])
            out.sources.append(source.model_copy(update=stamps))
            out.count += hi - lo
        else:
            try:
                if text_file:
                    extracted = formats.Extracted(text=decode_text(data), format="text")
                else:
                    extracted = extractor.read(f.path)
                    after = f.path.stat()
                    if (after.st_size, after.st_mtime_ns, after.st_ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
                        raise _Unsettled("it changed while being read")
            except SkippedFile as exc:
                if warn:
                    warn(f"skipped {f.doc}: {exc}")
                fmt = formats.format_of(f.path) or "text"
                out.sources.append(SourceFile(doc=f.doc, sha256=sha, skipped=str(exc), format=fmt,
                                              extractor_version=None if fmt == "text" else formats.EXTRACTOR_VERSION,
                                              **stamps))
                if progress:
                    progress("reading", n, len(files))
                return
            except (_Unsettled, OSError) as exc:  # changed or removed while the extractor read it
                reason = str(exc) if isinstance(exc, _Unsettled) else "it could not be read during the build"
                if warn:
                    warn(f"skipped {f.doc}: {reason}; it will be read again next time")
                out.sources.append(SourceFile(doc=f.doc, size=-1, mtime_ns=f.mtime_ns, sha256="", skipped=reason))
                if progress:
                    progress("reading", n, len(files))
                return
            del data
            document = clean_document(f.doc, extracted.text)
            layer = None
            if extracted.format != "text":
                layer = layer_name(sha)
                _write_layer(building, layer, extracted.text)
                document = document.model_copy(update={k: getattr(extracted, k) or getattr(document, k)
                                                       for k in ("title", "author", "date")})
            chunks = make_chunks(document, chunking)
            tokens = [bm25_mod.tokenize(c.search_text) for c in chunks]
            writer.add([c.model_dump() for c in chunks])
            postings.add_tokens(tokens)
            out.old_rows.append(np.full(len(chunks), -1, dtype=np.int64))
            out.hashes.append(np.array([c.hash for c in chunks], dtype=HASH_DTYPE))
            out.sources.append(SourceFile(doc=f.doc, sha256=sha, title=document.title, date=document.date,
                                          author=document.author, chunks=len(chunks), format=extracted.format,
                                          layer=layer, pages=extracted.pages,
                                          extractor_version=None if layer is None else formats.EXTRACTOR_VERSION,
                                          **stamps))
            out.count += len(chunks)
        if progress:
            progress("reading", n, len(files))

    for n, f in enumerate(files, 1):
        written, sources = writer.written, len(out.sources)
        try:
            one(n, f)
        except Exception as exc:  # noqa: BLE001 - one file never sinks the corpus: any other failure is a skip
            if writer.written != written or len(out.sources) != sources:  # failed while writing: not the file's fault
                raise
            if isinstance(exc, OSError) and exc.errno in _INDEX_WRITE_ERRORS:  # the index folder's disk, not the file
                raise
            reason = f"could not be indexed ({type(exc).__name__}: {_first_line(exc)})"
            if warn:
                warn(f"skipped {f.doc}: {reason}")
            out.sources.append(SourceFile(doc=f.doc, size=f.size, mtime_ns=f.mtime_ns, ctime_ns=f.ctime_ns,
                                          inode=f.inode, sha256="", skipped=reason))
            if progress:
                progress("reading", n, len(files))
    return out


_INDEX_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _vectors(collected: Collected, hashes: np.ndarray, records: ChunkStore, previous: Previous | None,
             progress: Progress | None, params: DenseParams, block: int = 1024) -> tuple[object, np.ndarray]:
    """The new FAISS index and which vectors came from the ONNX twin: reused by position or hash, else embedded.

    Vectors go into the index a block of rows at a time, the new ones embedded as their block comes up with their
    text read back from the records just written, so no list of texts or array of new vectors is held beside it.
    """
    rows = _concat(collected.old_rows, np.int64)
    onnx = np.zeros(collected.count, dtype=bool)
    old_faiss = None
    if previous is not None and previous.index.manifest.num_chunks:
        old_faiss = previous.index.faiss
        fresh = np.flatnonzero(rows < 0)
        if len(fresh):
            cache = {h: i for i, h in enumerate(previous.hashes.tolist())}
            rows[fresh] = [cache.get(h, -1) for h in hashes[fresh].tolist()]
        onnx[rows >= 0] = previous.onnx[rows[rows >= 0]]
    missing = int((rows < 0).sum())
    encoder, use_onnx = (_encoder(params.encoder, old_faiss is not None and missing <= ONNX_REEMBED_MAX, progress,
                                  missing) if missing else (None, False))
    onnx[rows < 0] = use_onnx
    step = EMBED_STEP if params.encoder == "sentence-transformers" else block  # ONNX batches a block by length
    index = dense.new_faiss(dense.index_layout(collected.count, params))
    done = 0
    for lo in range(0, len(rows), block):
        old = rows[lo:lo + block]
        vectors = np.empty((len(old), dense.MODEL_DIM), dtype=np.float32)
        reused = old >= 0
        if reused.any():
            vectors[reused] = dense.stored_vectors(old_faiss)[old[reused]]
        new = np.flatnonzero(~reused)
        for k in range(0, len(new), step):
            at = new[k:k + step]
            vectors[at] = encoder.encode([records[lo + int(i)]["search_text"] for i in at])
            done += len(at)
            if progress:
                progress("embedding", done, missing)
        dense.add_vectors(index, vectors)
    return index, onnx


def _encoder(kind: str, use_onnx: bool, progress: Progress | None, total: int):
    """The encoder for new chunks and whether it is an ONNX one. With kind "sentence-transformers", a few chunks
    (use_onnx) go to the ONNX twin, unless it is not installed."""
    if progress:
        progress("loading model", 0, total)
    if kind == "onnx":
        return dense.load_encoder("onnx", threads=dense.build_threads()), True
    if kind == "onnx-int8":
        return dense.load_encoder("onnx-int8", threads=dense.build_threads()), True
    if use_onnx:
        try:
            return dense.load_encoder("onnx"), True
        except dense.ModelMissing:
            pass  # the reference model does it, slower to load
    return dense.load_encoder("sentence-transformers"), False


def _fsync_files(folder: Path) -> None:
    for child in folder.iterdir():
        with open(child, "rb") as fh:
            os.fsync(fh.fileno())


def build_index(paths: list[Path], index_dir: Path, chunking: ChunkParams, bm25_params: BM25Params,
                progress: Progress | None = None, warn: Warn | None = None,
                dense_params: DenseParams | None = None) -> tuple[Index, float]:
    """Build (reusing unchanged files' chunks and embeddings) and switch to it; returns the index and seconds."""
    dense_params = dense_params or DenseParams()
    t0 = time.perf_counter()
    started_ns = time.time_ns()
    root, files = scan_corpus(paths, warn)
    with build_lock(index_dir):
        previous = _load_previous(index_dir, chunking, bm25_params, dense_params.encoder)  # again under the lock
        building = index_dir / f".building-{time.time_ns()}-{os.getpid()}"
        building.mkdir()
        try:
            generation, manifest, bm25, faiss_index = _write_generation(
                building, root, files, previous, chunking, bm25_params, t0, progress, warn, started_ns, dense_params)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        _switch_to(index_dir, generation)
        _prune(index_dir, keep={generation.name} | ({previous.index.folder.name} if previous else set()))
        index = _open_generation(generation, manifest, bm25, faiss_index)
    return index, time.perf_counter() - t0


def _write_generation(building: Path, root: Path, files: list[CorpusFile], previous: Previous | None,
                      chunking: ChunkParams, bm25_params: BM25Params, t0: float, progress: Progress | None,
                      warn: Warn | None, started_ns: int = 0, dense_params: DenseParams | None = None):
    """Write every file of a new generation into `building`, then rename it to its final gen- name."""
    postings = bm25_mod.PostingsBuilder(previous.index.bm25 if previous and previous.files else None)
    with open(building / CHUNKS, "wb") as fh, Extractor() as extractor:
        writer = ChunkWriter(fh)
        collected = _collect(files, previous, chunking, writer, postings, progress, warn, building, extractor)
    np.save(building / OFFSETS, writer.offsets())
    hashes = _concat(collected.hashes, HASH_DTYPE)
    np.save(building / HASHES, hashes)
    bm25 = postings.build(bm25_params)
    del postings  # its per-chunk parts: the built index holds the same postings
    bm25.save(building)
    records = ChunkStore.open(building, collected.count)
    try:
        faiss_index, onnx = _vectors(collected, hashes, records, previous, progress, dense_params or DenseParams())
    finally:
        records.close()
    np.save(building / ONNX_FLAGS, onnx)
    try:
        dense.save_faiss(faiss_index, building / "vectors.faiss")
    except RuntimeError as exc:  # faiss reports a failed write (a full disk) as RuntimeError with C++ text
        why = "no space left on device" if "No space left" in str(exc) else _first_line(exc)
        raise OSError(f"vectors.faiss: {why}") from None
    checks = _checksums(building)
    manifest = Manifest(
        checks=checks, corpus_root=str(root), model_name=dense.MODEL_NAME, model_dim=dense.MODEL_DIM, chunking=chunking,
        bm25=bm25_params, files=collected.sources, num_chunks=collected.count, onnx_vectors=int(onnx.sum()),
        encoder=(dense_params or DenseParams()).encoder,
        dense_index=dense.index_layout(collected.count, dense_params or DenseParams()),
        built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - t0, 3), started_ns=started_ns,
    )
    (building / "manifest.json").write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
    _fsync_files(building)
    _write_verified(building, checks)
    generation = building.parent / building.name.replace(".building-", "gen-", 1)
    os.rename(building, generation)
    return generation, manifest, bm25, faiss_index


VERIFIED = ".verified.json"  # the stamps of each file when its checksum last matched: loads compare stamps only


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checksums(folder: Path) -> dict[str, FileCheck]:
    return {child.name: FileCheck(size=child.stat().st_size, sha256=_sha256_file(child))
            for child in sorted(folder.iterdir()) if child.is_file() and child.name not in ("manifest.json", VERIFIED)}


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _write_verified(folder: Path, checks: dict[str, FileCheck]) -> None:
    stamps = {name: _stamp((folder / name).stat()) for name in checks}
    with contextlib.suppress(OSError):  # only a cache: without it a load hashes the files again
        (folder / VERIFIED).write_text(json.dumps(stamps), encoding="utf-8")


def verify_generation(folder: Path, manifest: Manifest) -> None:
    """IndexCorrupt unless every file the manifest lists has its size and checksum. Cheap: a file whose size,
    mtime, ctime and inode are those it had when its checksum last matched is not read again (any write changes
    them); only a file touched since is hashed."""
    if not manifest.checks:
        return  # written before checksums were
    try:
        stamps = json.loads((folder / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamps = {}
    for name, check in manifest.checks.items():
        try:
            st = (folder / name).stat()
        except OSError:
            raise IndexCorrupt(f"{name} is missing") from None
        if st.st_size != check.size:
            raise IndexCorrupt(f"{name} is {st.st_size} bytes, the manifest says {check.size}")
        if isinstance(stamps, dict) and stamps.get(name) == _stamp(st):
            continue
        try:
            digest = _sha256_file(folder / name)
        except OSError as exc:
            raise IndexCorrupt(f"{name} unreadable ({exc.strerror or exc})") from None
        if digest != check.sha256:
            raise IndexCorrupt(f"{name} does not match its checksum (damaged since it was written)")


def nothing_to_search(manifest: Manifest) -> str | None:
    """The one line that says why an index holds no passage, or None when it holds some."""
    from .ingest import SUFFIXES

    if manifest.num_chunks:
        return None
    root, sources = manifest.corpus_root, manifest.files
    if not sources:
        return f"no indexable files in {root} (looked for {', '.join(SUFFIXES)})"
    reasons: dict[str, int] = {}
    for f in sources:
        why = (f.skipped or "no text").split(" (")[0]
        reasons[why] = reasons.get(why, 0) + 1
    return (f"no indexable files in {root}: {len(sources)} skipped ("
            + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items())) + ")")
