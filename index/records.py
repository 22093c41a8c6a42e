"""Chunk records read on demand: chunks.jsonl (one JSON object per line) and chunk_offsets.npy (where lines start).

Loading checks the offsets against the file instead of parsing ~100k JSON objects; a record is read (pread) and
parsed when asked for. Lines carry no "id": a record's id is its line number, so a rebuild copies unchanged files'
lines as bytes. Reads go through a file handle opened at load (not a memory map: no page of the file counts against
the process, and a file damaged later gives IndexCorrupt, never SIGBUS).
"""
from __future__ import annotations

import json
import operator
import os
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic_core import from_json

from .models import IndexCorrupt

CHUNKS = "chunks.jsonl"
OFFSETS = "chunk_offsets.npy"
CACHE_SIZE = 2048
SAMPLED_LINE_ENDS = 1024


def encode_record(record: dict) -> bytes:
    """One chunks.jsonl line (without the id, which is the line number)."""
    return (json.dumps({k: v for k, v in record.items() if k != "id"}, ensure_ascii=False) + "\n").encode()


def check_offsets(offsets: np.ndarray, fh: BinaryIO, size: int, count: int) -> None:
    """Raise IndexCorrupt unless offsets delimit `count` lines covering the whole file.

    Line ends are checked for newlines at up to SAMPLED_LINE_ENDS evenly spaced records (all of them in a small
    index), so loading reads a few pages, not the file; damage elsewhere shows when that record is read.
    """
    if offsets.dtype != np.int64 or offsets.ndim != 1 or len(offsets) != count + 1:
        raise IndexCorrupt(f"{OFFSETS} does not hold {count + 1} int64 offsets")
    if offsets[0] != 0 or offsets[-1] != size:
        raise IndexCorrupt(f"{CHUNKS} is {size} bytes, its offsets say {int(offsets[-1])}")
    if not count:
        return
    ends = offsets[1:] - 1
    sample = np.append(ends[::max(1, count // SAMPLED_LINE_ENDS)], ends[-1])
    if np.any(np.diff(offsets) < 2) or any(_pread(fh, 1, int(pos)) != b"\n" for pos in sample):
        raise IndexCorrupt(f"{CHUNKS} lines do not match {OFFSETS}")


_LOCK = threading.Lock()


def _pread(fh: BinaryIO, n: int, offset: int) -> bytes:
    """n bytes at offset, safe to call from several threads at once."""
    if hasattr(os, "pread"):
        return os.pread(fh.fileno(), n, offset)
    with _LOCK:  # pragma: no cover - not POSIX
        fh.seek(offset)
        return fh.read(n)


class ChunkStore(Sequence):
    """The chunk records of one index generation as a read-only sequence of dicts, parsed on demand and cached.

    The file stays open for the store's life, so a long-lived reader keeps working after a newer build prunes
    this generation's folder.
    """

    def __init__(self, fh: BinaryIO, offsets: np.ndarray) -> None:
        self._fh = fh
        self._offsets = offsets
        self._cached = lru_cache(maxsize=CACHE_SIZE)(self._parse)  # thread-safe; callers get copies

    @classmethod
    def open(cls, folder: Path, count: int) -> ChunkStore:
        """Open a generation's records; IndexCorrupt if the files are missing, malformed or hold another count."""
        try:
            offsets = np.load(folder / OFFSETS, allow_pickle=False)
            fh = open(folder / CHUNKS, "rb")  # noqa: SIM115 - kept open by the store
        except (OSError, ValueError, EOFError) as exc:
            raise IndexCorrupt(f"chunk records unreadable: {(str(exc).splitlines() or [type(exc).__name__])[0][:120]}") from None
        try:
            check_offsets(offsets, fh, os.fstat(fh.fileno()).st_size, count)
            store = cls(fh, offsets)
            if count:  # parse the first and last records now, so gross damage shows at load
                store._parse(0)
                store._parse(count - 1)
        except BaseException:
            fh.close()
            raise
        return store

    def close(self) -> None:
        self._fh.close()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._offsets) - 1
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError("chunk index out of range")
        return dict(self._cached(i % n))

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self._parse(i)

    def _parse(self, i: int) -> dict:
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        line = _pread(self._fh, hi - lo, lo)
        try:
            rec = from_json(line)  # pydantic's Rust parser: ~2.5x json.loads on these lines
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or "text" not in rec or "doc" not in rec:
            raise IndexCorrupt(f"{CHUNKS} record {i} is malformed")
        return {"id": i, **rec}

    def raw(self, lo: int, hi: int) -> bytes:
        """The lines of records lo..hi-1, as stored."""
        start, end = int(self._offsets[lo]), int(self._offsets[hi])
        data = _pread(self._fh, end - start, start)
        if len(data) != end - start:
            raise IndexCorrupt(f"{CHUNKS} is shorter than its offsets say")
        return data

    def line_ends(self, lo: int, hi: int) -> np.ndarray:
        """End offsets of records lo..hi-1, relative to the start of record lo."""
        return self._offsets[lo + 1:hi + 1] - self._offsets[lo]


class ChunkWriter:
    """Writes chunks.jsonl from fresh records and byte ranges of an earlier store, keeping the line offsets."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._pos = 0
        self._ends: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]

    def add(self, records: list[dict]) -> None:
        lines = [encode_record(r) for r in records]
        self._fh.write(b"".join(lines))
        ends = np.cumsum([len(line) for line in lines], dtype=np.int64)
        self._ends.append(self._pos + ends)
        self._pos += int(ends[-1]) if len(ends) else 0

    def copy(self, store: ChunkStore, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        self._fh.write(store.raw(lo, hi))
        ends = store.line_ends(lo, hi)
        self._ends.append(self._pos + ends)
        self._pos += int(ends[-1])

    def offsets(self) -> np.ndarray:
        return np.concatenate(self._ends)

    @property
    def written(self) -> int:
        """Bytes written so far (also of a write that failed part way)."""
        return self._fh.tell()
