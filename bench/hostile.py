"""A hostile corpus: the files of the hostile-input audit (docs/robustness.md), made on demand so tests and CI run them.

`python -m bench.hostile DIR [--big]` writes every case into DIR beside a copy of the seeds, builds and asks the
sample question with the installed `qa`, and prints time, peak RSS and the outcome. Without --big the sparse files
are 4 GB and 64 GB (they take no disk space) and the zip bomb inflates to 256 MB; with --big the bomb inflates to
2 GB as in the audit. Tests use the same functions with small sizes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

OSC_TITLE = "\x1b]2;PWNED-TITLE\x07"
OSC_CLIPBOARD = "\x1b]52;c;UFdORUQtQ0xJUEJPQVJE\x07"  # base64 of PWNED-CLIPBOARD
SAMPLE_QUESTION = "what army cap did Istanbul 2022 propose?"


def make_deep_file(folder: Path, levels: int) -> None:
    """deep.txt under `levels` nested folders of 250-character names, made with directory descriptors (its own path
    is too long for any path-based call once levels × 251 passes PATH_MAX)."""
    deep = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d" * 250, dir_fd=deep)
            nxt = os.open("d" * 250, os.O_RDONLY, dir_fd=deep)
            os.close(deep)
            deep = nxt
        fd = os.open("deep.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=deep)
        os.write(fd, b"Too deep to open by its path.\n")
        os.close(fd)
    finally:
        os.close(deep)


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (all NULs when read)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def lying_zip(path: Path, members: dict[str, bytes | tuple[int, int]], lie: dict[str, int] | None = None) -> Path:
    """A zip file; a member given as (inflated_bytes, declared_bytes) is that many spaces, deflated by streaming,
    whose central directory entry declares `declared_bytes` (the audit's DOCX: declares 500 KB, inflates to 2 GB)."""
    entries = []
    with open(path, "wb") as fh:
        for name, content in members.items():
            raw_name = name.encode("utf-8")
            offset = fh.tell()
            comp = zlib.compressobj(9, zlib.DEFLATED, -15)
            crc, body = 0, []
            if isinstance(content, bytes):
                inflated, declared = len(content), len(content)
                crc = zlib.crc32(content)
                body.append(comp.compress(content))
            else:
                inflated, declared = content
                block = b" " * (1 << 20)
                left = inflated
                while left:
                    piece = block[:min(left, len(block))]
                    crc = zlib.crc32(piece, crc)
                    body.append(comp.compress(piece))
                    left -= len(piece)
            body.append(comp.flush())
            data = b"".join(body)
            declared = (lie or {}).get(name, declared)
            header = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), declared,
                                 len(raw_name), 0)
            fh.write(header + raw_name + data)
            entries.append((raw_name, crc, len(data), declared, offset))
        start = fh.tell()
        for raw_name, crc, csize, declared, offset in entries:
            fh.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, csize, declared,
                                 len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
        end = fh.tell()
        fh.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), end - start, start, 0))
    return path


DOCX_TYPES = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
              b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
              b'wordprocessingml.document.main+xml"/></Types>')


def docx_bomb(path: Path, inflated: int, declared: int = 500_000) -> Path:
    """A DOCX whose document.xml declares `declared` bytes and inflates to `inflated`."""
    return lying_zip(path, {"[Content_Types].xml": DOCX_TYPES, "word/document.xml": (inflated, declared)})


def write_hostile(folder: Path, big: bool = False) -> list[str]:
    """Every hostile case of the audit in `folder`; returns what was made (some need a POSIX file system)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []

    def note(what: str) -> None:
        made.append(what)

    (folder / f"clip{OSC_CLIPBOARD}.txt").write_bytes(b"\x00binary, with a name that writes the clipboard")
    note("a file name holding OSC 52 (clipboard)")
    (folder / f"title{OSC_TITLE}.md").write_text(f"A title{OSC_TITLE} and colours \x1b[31mred\x1b[0m inside.\n",
                                                 encoding="utf-8")
    note("a file name and text holding OSC 2 (window title) and SGR colours")
    with open(os.fsencode(folder) + b"/bad\xff\xfename.txt", "wb") as fh:
        fh.write(b"A file whose name is not UTF-8.\n")
    note("a file name with invalid UTF-8 bytes")
    sparse(folder / "sparse-4g.txt", 4 << 30)
    note("a sparse 4 GB .txt")
    sparse(folder / "sparse-64g.txt", 64 << 30)
    note("a sparse 64 GB .txt")
    sparse(folder / "huge.pdf", 3 << 30)
    note("a sparse 3 GB .pdf")
    docx_bomb(folder / "bomb.docx", (2 << 30) if big else (256 << 20))
    note("a DOCX whose member declares 500 KB and inflates to " + ("2 GB" if big else "256 MB"))
    fifo = folder / "fifo.txt"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
        note("a FIFO named .txt")
    outside = folder.parent / f"{folder.name}-outside.txt"
    outside.write_text("A secret outside the corpus: the vault code is 4711.\n", encoding="utf-8")
    (folder / "link-out.txt").symlink_to(outside)
    note("a link to a file outside the corpus")
    make_deep_file(folder, levels=20)  # a path longer than PATH_MAX (4096)
    note("a file whose path is longer than PATH_MAX")
    return made


def _peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run cmd; its result, seconds and peak RSS in MB (the largest child's so far: run the larger step last)."""
    import resource

    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - t0
    return proc, seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--big", action="store_true", help="the audit's 2 GB zip bomb")
    args = parser.parse_args(argv)
    corpus = args.folder / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    shutil.copytree(Path(__file__).resolve().parent.parent / "seeds", corpus)
    for what in write_hostile(corpus, args.big):
        print(f"made: {what}")
    qa = str(Path(sys.executable).with_name("qa"))
    env = {**os.environ, "XDG_CACHE_HOME": str(args.folder / "cache"), "NO_COLOR": "1"}
    for cmd in (["index", str(corpus), "--force"], ["ask", "--corpus", str(corpus), SAMPLE_QUESTION]):
        proc, seconds, rss = _peak_rss([qa, *cmd], env)
        raw = any(ch == "\x1b" for ch in proc.stdout + proc.stderr)
        print(f"qa {cmd[0]}: rc {proc.returncode}, {seconds:.1f} s, peak RSS {rss:.0f} MB, "
              f"raw escapes {'YES' if raw else 'none'}")
        for line in (proc.stdout + proc.stderr).splitlines()[:40]:
            print("    " + line[:200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
