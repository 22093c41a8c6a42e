"""Ingestion speed of one large file: reading, cleaning and chunking (and BM25 tokens) as a function of its size,
with embedding as a separate, estimated figure.

    python -m bench.ingest                        # 0.5, 1, 2, 4 and 50 MB
    python -m bench.ingest --sizes 1,4 --embed-sample 0

Each file is made deterministically from the seed articles (and SQuAD's, when present), paragraph by paragraph,
each later copy of a paragraph with one word changed so that pull-quote detection has near-duplicates to sift.
Embedding is timed on a sample of the file's chunks with the index-time encoder (sentence-transformers) and scaled
to all of them. Results go to bench/ingest_results.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def source_paragraphs() -> list[str]:
    from bench.corpus import SEEDS_DIR, SQUAD_DIR

    files = sorted(SEEDS_DIR.glob("*.txt")) + sorted((SQUAD_DIR / "corpus").glob("*.txt"))
    return [p for f in files for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]


def make_file(path: Path, megabytes: float, paragraphs: list[str]) -> Path:
    """About `megabytes` MB of prose (UTF-8), reused when already made."""
    target = int(megabytes * 1_000_000)
    if path.exists() and abs(path.stat().st_size - target) < 1000:
        return path
    rnd = random.Random(f"ingest:{megabytes}")
    parts, size, k = [], 0, 0
    while size < target:
        words = paragraphs[k % len(paragraphs)].split(" ")
        if k >= len(paragraphs):
            i = rnd.randrange(len(words))
            words[i] += str(rnd.randrange(1000))
        piece = " ".join(words) + "\n\n"
        parts.append(piece)
        size += len(piece.encode())
        k += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(parts).encode()[:target].decode("utf-8", "ignore").encode())
    return path


def measure(path: Path, embed_sample: int) -> dict:
    from index.bm25 import tokenize
    from index.chunk import make_chunks
    from index.ingest import clean_document, read_text
    from index.models import ChunkParams

    t0 = time.perf_counter()
    text = read_text(path)
    t1 = time.perf_counter()
    document = clean_document(path.name, text)
    t2 = time.perf_counter()
    chunks = make_chunks(document, ChunkParams())
    t3 = time.perf_counter()
    for c in chunks:
        tokenize(c.search_text)
    t4 = time.perf_counter()
    out = {"megabytes": round(path.stat().st_size / 1e6, 2), "chunks": len(chunks), "read_s": round(t1 - t0, 2),
           "clean_s": round(t2 - t1, 2), "chunk_s": round(t3 - t2, 2), "tokenize_s": round(t4 - t3, 2),
           "ingest_and_chunk_s": round(t3 - t0, 2)}
    if embed_sample:
        from index.dense import load_encoder

        encoder = load_encoder("sentence-transformers")
        sample = [c.search_text for c in random.Random(0).sample(chunks, min(embed_sample, len(chunks)))]
        encoder.encode(sample[:16])  # warm-up
        t5 = time.perf_counter()
        encoder.encode(sample)
        per_chunk = (time.perf_counter() - t5) / len(sample)
        out["embed_sample"] = len(sample)
        out["embedding_est_s"] = round(per_chunk * len(chunks), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="0.5,1,2,4,50", help="file sizes in MB, comma separated")
    ap.add_argument("--embed-sample", type=int, default=256, help="chunks embedded to estimate embedding (0: skip)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/qa-bench/ingest"), help="where the files are made")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "ingest_results.json")
    args = ap.parse_args(argv)
    paragraphs = source_paragraphs()
    rows = []
    print(f"{'MB':>6} {'chunks':>7} {'read':>6} {'clean':>6} {'chunk':>6} {'ingest+chunk':>13} {'tokens':>7} "
          f"{'embedding (est.)':>17}")
    for size in (float(s) for s in args.sizes.split(",")):
        path = make_file(args.dir / f"prose-{size:g}MB.txt", size, paragraphs)
        r = measure(path, args.embed_sample if size == max(float(s) for s in args.sizes.split(",")) else 0)
        rows.append(r)
        est = f"{r['embedding_est_s']:.0f} s" if "embedding_est_s" in r else "—"
        print(f"{r['megabytes']:>6} {r['chunks']:>7} {r['read_s']:>6} {r['clean_s']:>6} {r['chunk_s']:>6} "
              f"{r['ingest_and_chunk_s']:>13} {r['tokenize_s']:>7} {est:>17}", flush=True)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
