"""Zip containers (DOCX, EPUB) opened only after their members' sizes pass the limits (no zip bombs)."""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..ingest import SkippedFile
from . import MAX_RATIO, MAX_UNZIPPED_BYTES, read_head, sniff

MAX_MEMBERS = 20_000


def _a(what: str) -> str:
    return f"an {what}" if what[:1] in "AEIOU" else f"a {what}"


def open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """The archive, checked: a zip at all, few enough members, bounded expanded size and compression ratio."""
    head = read_head(path, 8)
    if not head.startswith(b"PK\x03\x04"):
        raise SkippedFile(f"not {_a(what)} (the file is {sniff(read_head(path))})")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SkippedFile(f"corrupt {what} ({exc})") from None
    infos = z.infolist()
    total = sum(i.file_size for i in infos)
    if len(infos) > MAX_MEMBERS:
        z.close()
        raise SkippedFile(f"{what} with {len(infos):,} members (the limit is {MAX_MEMBERS:,})")
    if total > MAX_UNZIPPED_BYTES:
        z.close()
        raise SkippedFile(f"expands to {total >> 20:,} MB (a zip bomb? the limit is {MAX_UNZIPPED_BYTES >> 20} MB)")
    for i in infos:
        if i.file_size > (1 << 20) and i.file_size > MAX_RATIO * max(1, i.compress_size):
            z.close()
            raise SkippedFile(f"{i.filename} is compressed {i.file_size // max(1, i.compress_size):,} to 1 "
                              f"(a zip bomb? the limit is {MAX_RATIO} to 1)")
    return z


READ_BLOCK = 1 << 16


def read_member(z: zipfile.ZipFile, name: str, what: str) -> bytes:
    """One member's bytes, inflated by streaming a block at a time: what it declares is never trusted, so a member
    that inflates past its declared size, past MAX_UNZIPPED_BYTES for the whole archive, or (past 1 MB) more than
    MAX_RATIO times its compressed size is refused as soon as it does, holding at most one block more."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise SkippedFile(f"not {_a(what)} ({name} is missing)") from None
    inflated = getattr(z, "_qa_inflated", 0)
    blocks: list[bytes] = []
    size = 0
    try:
        with z.open(info) as member:
            while True:
                block = member.read(READ_BLOCK)
                if not block:
                    break
                size += len(block)
                if inflated + size > MAX_UNZIPPED_BYTES:
                    raise SkippedFile(f"expands past {MAX_UNZIPPED_BYTES >> 20} MB (a zip bomb? the limit is "
                                      f"{MAX_UNZIPPED_BYTES >> 20} MB)")
                if size > (1 << 20) and size > MAX_RATIO * max(1, info.compress_size):
                    raise SkippedFile(f"{name} is compressed more than {MAX_RATIO} to 1 (a zip bomb?)")
                if size > info.file_size:
                    raise SkippedFile(f"corrupt {what} ({name} inflates past its declared size)")
                blocks.append(block)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise SkippedFile(f"corrupt {what} ({name}: {exc})") from None
    z._qa_inflated = inflated + size
    return b"".join(blocks)
