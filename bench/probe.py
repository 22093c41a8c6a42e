"""In-process timings, run by `python -m bench` in a fresh subprocess: `python -m bench.probe load|phases CORPUS INDEX`.

load:   open_index on an existing fresh index (scan + stale check + chunk offsets + BM25 arrays), then the FAISS
        file (loaded lazily on the first query), with a breakdown (scan + stale check, one record read, BM25 arrays, load_index).
phases: where a one-shot `qa ask` spends its time: imports, settings, open_index, FAISS, the ONNX query encoder,
        the reranker, then the first and later answers.
Prints one JSON object on stdout.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

QUESTION = "what army cap did Istanbul 2022 propose?"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(corpus: Path, index_dir: Path) -> dict:
    t = time.perf_counter()
    from qa import Settings, open_index
    from index import bm25 as bm25_mod
    from index.store import load_index, read_manifest, scan_corpus, stale_reason
    out = {"import_s": time.perf_counter() - t}

    t = time.perf_counter()
    settings = Settings(corpus=[corpus], index_dir=index_dir)
    out["settings_s"] = time.perf_counter() - t
    warned = []
    t = time.perf_counter()
    index = open_index(settings, warn=warned.append)
    out["open_index_s"] = time.perf_counter() - t
    if warned:  # the index was (re)built: the figure is not a load time
        out["warning"] = "; ".join(warned)
    t = time.perf_counter()
    index.faiss  # noqa: B018 - lazy property: loads vectors.faiss
    out["faiss_s"] = time.perf_counter() - t
    out["load_total_s"] = out["open_index_s"] + out["faiss_s"]
    out["rss_after_load_mb"] = _rss_mb()

    # breakdown (page cache warm now)
    t = time.perf_counter()
    root, files = scan_corpus(settings.corpus)
    manifest = read_manifest(index_dir)
    stale_reason(manifest, root, files, settings.chunking, settings.bm25)
    out["scan_and_stale_check_s"] = time.perf_counter() - t
    folder = index.folder
    out["num_chunks"] = len(index.records)
    t = time.perf_counter()
    index.records[len(index.records) // 2]  # noqa: B018 - records are read on demand: time one
    out["one_record_read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    bm25_mod.BM25Index.load(folder, manifest.bm25)
    out["bm25_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    load_index(index_dir)
    out["load_index_s"] = time.perf_counter() - t
    return out


def phases(corpus: Path, index_dir: Path) -> dict:
    out = {}
    t = time.perf_counter()
    import numpy  # noqa: F401
    out["import_numpy_s"] = time.perf_counter() - t
    t = time.perf_counter()
    import pydantic  # noqa: F401
    out["import_pydantic_s"] = time.perf_counter() - t
    t = time.perf_counter()
    from qa import Settings, answer, open_index
    from qa.rerank import load_reranker
    from index.dense import load_encoder
    out["import_qa_s"] = time.perf_counter() - t
    t = time.perf_counter()
    settings = Settings(corpus=[corpus], index_dir=index_dir)
    out["settings_s"] = time.perf_counter() - t
    t = time.perf_counter()
    index = open_index(settings)
    out["open_index_s"] = time.perf_counter() - t
    t = time.perf_counter()
    index.faiss  # noqa: B018
    out["faiss_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    import onnxruntime  # noqa: F401
    import tokenizers  # noqa: F401
    out["import_onnxruntime_tokenizers_s"] = time.perf_counter() - t
    t = time.perf_counter()
    load_encoder(settings.query_encoder)
    out["query_encoder_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    load_reranker(settings.rerank_max_tokens)
    out["reranker_load_s"] = time.perf_counter() - t
    no_rerank = settings.model_copy(update={"rerank": False})
    t = time.perf_counter()
    answer(QUESTION, index, settings)
    out["first_answer_rerank_s"] = time.perf_counter() - t
    t = time.perf_counter()
    answer(QUESTION, index, settings)
    out["second_answer_rerank_s"] = time.perf_counter() - t
    t = time.perf_counter()
    answer(QUESTION, index, no_rerank)
    out["answer_no_rerank_s"] = time.perf_counter() - t
    out["rss_mb"] = _rss_mb()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    what, corpus, index_dir = argv[0], Path(argv[1]), Path(argv[2])
    result = {"load": load, "phases": phases}[what](corpus, index_dir)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
