"""Bench vectors: the scaled corpus's passages embedded once by the real encoder, cached in shards, resumable.

    python -m bench.vectors build [--size 1m] [--encoder onnx]   # a rerun continues where the last one stopped
    python -m bench.vectors status [--size 1m]

The passages are those of bench/corpus.py's scaled corpus, replica by replica (replica 0 verbatim, replicas 1+
perturbed with the same seeds), chunked with qa's default chunking: the text `python -m bench --sizes 1m` would
write, without writing it. Replicas are embedded in order until their chunks reach the size; the row takes the
first SIZE vectors.

Cache: <bench-dir>/vectors/<size>-<encoder>/ (bench-dir: --bench-dir, $QA_BENCH_DIR or /tmp/qa-bench), never in the
repository:
  meta.json    what the shards were made from (generator version, seed, chunking, sources' sha256, encoder,
               model); a shard folder whose meta differs is started over
  rNNN.npy     float16 (n, 384) normalised vectors of replica NNN's chunks, in corpus order; written to a
               temporary name and renamed, so a killed run loses at most the replica it was embedding
At ~150 passages/s (2 idle cores) 1M passages take ~2 hours; `nice -n 19 nohup python -m bench.vectors build &`
lets it run beside other work.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from .corpus import GENERATOR_VERSION, SEED, bench_dir, corpus_name, parse_size, perturb, sources
from .corpus import _sha256 as sha256_file

SHARD_DTYPE = np.float16  # halves the cache (768 MB at 1M); cosines move by < 1e-3


def shard_dir(root: Path, target: int, encoder: str) -> Path:
    return root / "vectors" / f"{corpus_name(target)}-{encoder}"


def cache_meta(target: int, encoder: str) -> dict:
    """What the shards depend on: a change starts the cache over."""
    from index import dense
    from qa.settings import Settings

    settings = Settings(corpus=[Path(".")], index_dir=Path("."))
    return {
        "generator_version": GENERATOR_VERSION, "seed": SEED, "target_vectors": target, "encoder": encoder,
        "model": dense.MODEL_NAME, "dim": dense.MODEL_DIM, "shard_dtype": np.dtype(SHARD_DTYPE).name,
        "chunking": settings.chunking.model_dump(),
        "sources": [{"group": s.group, "name": s.name, "sha256": sha256_file(s.path)} for s in sources()],
    }


def replica_passages(replica: int, chunking) -> list[str]:
    """The search texts of one replica's chunks, in corpus order (bench/corpus.py's generate() writes the same)."""
    from index.chunk import make_chunks
    from index.ingest import clean_document

    out = []
    for s in sources():
        text = s.path.read_text(encoding="utf-8")
        if replica:
            text = perturb(text, random.Random(f"{SEED}:{replica}:{s.group}/{s.name}"))
        out += [c.search_text for c in make_chunks(clean_document(s.name, text), chunking)]
    return out


def shard_path(folder: Path, replica: int) -> Path:
    return folder / f"r{replica:03d}.npy"


def done_shards(folder: Path) -> list[tuple[int, int]]:
    """(replica, vectors) of every finished shard, in order, up to the first missing one."""
    out = []
    replica = 0
    while (path := shard_path(folder, replica)).exists():
        out.append((replica, int(np.load(path, mmap_mode="r").shape[0])))
        replica += 1
    return out


def open_cache(root: Path, target: int, encoder: str) -> Path:
    """The shard folder, emptied when its meta.json describes other inputs."""
    folder = shard_dir(root, target, encoder)
    meta = cache_meta(target, encoder)
    meta_path = folder / "meta.json"
    if folder.exists():
        try:
            same = json.loads(meta_path.read_text(encoding="utf-8")) == meta
        except (OSError, ValueError):
            same = False
        if not same:
            for p in folder.glob("*.npy"):
                p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, meta_path)
    return folder


def build(root: Path, target: int, encoder_kind: str, log) -> Path:
    """Embed replicas until SIZE vectors exist; each finished replica is one atomically written shard."""
    from index import dense
    from qa.settings import Settings

    folder = open_cache(root, target, encoder_kind)
    chunking = Settings(corpus=[Path(".")], index_dir=Path(".")).chunking
    done = done_shards(folder)
    have = sum(n for _, n in done)
    replica = len(done)
    log(f"{folder}: {have} vectors in {replica} shards, target {target}")
    if have >= target:
        return folder
    encoder = dense.load_encoder(encoder_kind, threads=dense.build_threads())
    while have < target:
        t0 = time.perf_counter()
        texts = replica_passages(replica, chunking)
        vectors = encoder.encode(texts).astype(SHARD_DTYPE)
        path = shard_path(folder, replica)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)
        have += len(texts)
        seconds = time.perf_counter() - t0
        log(f"r{replica:03d}: {len(texts)} passages in {seconds:.1f} s ({len(texts) / seconds:.1f}/s), "
            f"{have}/{target}, load {os.getloadavg()[0]:.2f}")
        replica += 1
    return folder


def load_vectors(root: Path, target: int, encoder: str, limit: int | None = None) -> np.ndarray:
    """The first min(limit, target) cached vectors as float32 (fewer when the cache is not complete)."""
    folder = shard_dir(root, target, encoder)
    want = min(limit or target, target)
    parts, have = [], 0
    for replica, n in done_shards(folder):
        if have >= want:
            break
        take = min(n, want - have)
        parts.append(np.load(shard_path(folder, replica), mmap_mode="r")[:take].astype(np.float32))
        have += take
    if not parts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.vectors", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["build", "status"])
    ap.add_argument("--size", default="1m", help="vectors wanted (1m, 250k, or a count)")
    ap.add_argument("--encoder", default="onnx-int8", choices=["onnx", "onnx-int8", "sentence-transformers"])
    ap.add_argument("--bench-dir", type=Path, help="cache root (env QA_BENCH_DIR, default /tmp/qa-bench)")
    args = ap.parse_args(argv)
    target = parse_size(args.size)
    if target is None:
        ap.error("--size must be a count of vectors")
    root = (args.bench_dir or bench_dir()).resolve()

    def log(msg: str) -> None:
        print(f"bench.vectors: {msg}", file=sys.stderr, flush=True)

    if args.command == "build":
        build(root, target, args.encoder, log)
    folder = shard_dir(root, target, args.encoder)
    done = done_shards(folder) if folder.exists() else []
    have = sum(n for _, n in done)
    print(json.dumps({"folder": str(folder), "shards": len(done), "vectors": have, "target": target,
                      "complete": have >= target}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
