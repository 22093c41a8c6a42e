"""The Milvus backend: an index generation held as collections on a Milvus server, reached through pymilvus.

A generation is two collections: `<alias>_g<ns>` holds the passages (doc, offsets, line, text, search text,
sentences, file hash), their embeddings (FLAT, inner product: exact, like the embedded FAISS index) and their BM25
terms (Milvus's BM25 function over the terms index.bm25 makes, so stemming and stopwords are ours); `<...>_meta`
holds the manifest, one record per file, the text layers of PDF/HTML/DOCX/EPUB files and each term's document
frequency. Readers go through the alias, switched to a new generation only once it is completely written.

pymilvus is imported here only, and this module only when the backend is chosen (`pip install -e '.[milvus]'`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from .backend import BackendUnavailable, BM25Ranking, ManifestFiles
from .bm25 import tokenize
from .dense import MODEL_DIM
from .ingest import SkippedFile, read_text
from .models import Chunk, Manifest, SourceFile

if TYPE_CHECKING:
    from .store import Index

RECORD_FIELDS = ["doc", "start", "end", "text", "search_text", "line_start", "sentences", "hash"]
INSERT_BATCH = 256  # rows per insert request
LAYER_PIECE = 16_000  # characters of a text layer per meta row (VARCHAR holds at most 65,535 bytes)
TEXT_BYTES = 65_535
RECORD_CACHE = 20_000  # passage records kept per process (search results fill it)
TERM_CACHE = 50_000
KEEP_GENERATIONS = 2  # the current one and the one the alias pointed at before (readers still on it finish)
_SAFE = re.compile(r"[^a-z0-9]")
# pymilvus pings every 10 s; a gRPC server's default policy (Milvus Lite's) answers pings more often than every
# 5 minutes without calls with GOAWAY "too_many_pings", and the connection is lost while qa reranks or embeds
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 330_000, "grpc.keepalive_permit_without_calls": False}


def escape_term(term: str) -> str:
    """One index.bm25 term as a single word any Milvus analyzer keeps whole ("3.5" -> "3_2e_5")."""
    return _SAFE.sub(lambda m: f"_{ord(m.group()):x}_", term)


def bm25_text(terms: Iterable[str]) -> str:
    """The text Milvus's BM25 function analyses: our terms, escaped, one space apart."""
    return " ".join(escape_term(t) for t in terms)


def collection_name(name: str) -> str:
    """A valid collection or alias name made from any label (letters, digits and underscores, a letter first); a
    valid name stays as it is."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not (cleaned[:1].isalpha() or cleaned[:1] == "_"):
        cleaned = "qa_" + cleaned
    return cleaned[:180]


def literal(text: str) -> str:
    """A string as a Milvus filter literal: quotes and backslashes escaped, non-ASCII as it is (no \\u escapes)."""
    return json.dumps(text, ensure_ascii=False)


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
_SECRET_PARAM = re.compile(r"([?&](?:token|password|passwd|api_key|apikey|secret)=)[^&#\s]*", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """A URI as messages show it: user:password@ and token=/password= parameters replaced by ***."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", uri))


def _one_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0][:200]


def _quiet() -> None:
    """pymilvus logs failed calls with their traceback and gRPC its connection chatter; qa reports failures as one
    line instead. Called after importing pymilvus, which sets up its own logging."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


class MilvusStore:
    """A connection to one Milvus server and the generations of one alias on it (the GenerationWriter)."""

    def __init__(self, uri: str, alias: str, timeout: float = 10.0, token: str = "") -> None:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # read when grpc loads
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise BackendUnavailable("the Milvus backend needs pymilvus: pip install -e '.[milvus]'") from None
        _quiet()
        self.uri = redact_uri(uri)  # what messages name: never its credentials
        self.alias = collection_name(alias)
        try:
            self.client = MilvusClient(uri=uri, token=token, timeout=timeout, grpc_options=GRPC_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - MilvusException, grpc errors, bad URIs: one line each
            raise BackendUnavailable(f"cannot reach Milvus at {self.uri}: "
                                     f"{_one_line(exc).replace(uri, self.uri)}") from None

    def _call(self, what: str, fn, *args, **kwargs):
        """One request to the server; any failure becomes BackendUnavailable naming the server and the request."""
        try:
            return fn(*args, **kwargs)
        except BackendUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendUnavailable(f"Milvus at {self.uri} failed to {what}: {_one_line(exc)}") from None

    # --- reading ---------------------------------------------------------------------------------

    def current(self) -> str | None:
        """The collection the alias points at, None before the first generation."""
        if self.alias not in self._call("list aliases", self.client.list_aliases).get("aliases", []):
            return None
        return self._call("describe the alias", self.client.describe_alias, self.alias)["collection_name"]

    def open(self) -> MilvusIndex | None:
        """The current generation, None when there is none yet."""
        name = self.current()
        if name is None:
            return None
        self._call("load the collection", self.client.load_collection, name)
        self._call("load the collection", self.client.load_collection, name + "_meta")
        rows = self._query(name + "_meta", 'kind == "manifest"', ["body"])
        if not rows:
            return None  # written by something else: treated as missing
        try:
            manifest = Manifest.model_validate_json(rows[0]["body"])
            files = [SourceFile.model_validate_json(r["body"])
                     for r in sorted(self._query(name + "_meta", 'kind == "file"', ["key", "body"]),
                                     key=lambda r: r["key"])]
        except ValidationError:
            return None  # written by another version of qa: a new generation replaces it
        return MilvusIndex(store=self, collection=name, manifest=manifest.model_copy(update={"files": files}))

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        """Every row matching expr (read in batches: a server caps one query's result window)."""
        it = self._call("query", self.client.query_iterator, collection, batch_size=1000, filter=expr,
                        output_fields=fields)
        out: list[dict] = []
        try:
            while batch := self._call("query", it.next):
                out.extend(batch)
        finally:
            it.close()
        return out

    # --- writing ---------------------------------------------------------------------------------

    def _schemas(self):
        from pymilvus import DataType, Function, FunctionType

        passages = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        passages.add_field("id", DataType.INT64, is_primary=True)
        passages.add_field("doc", DataType.VARCHAR, max_length=4096)
        passages.add_field("start", DataType.INT64)
        passages.add_field("end", DataType.INT64)
        passages.add_field("line_start", DataType.INT64)
        passages.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
        passages.add_field("search_text", DataType.VARCHAR, max_length=TEXT_BYTES)
        passages.add_field("sentences", DataType.JSON)
        passages.add_field("hash", DataType.VARCHAR, max_length=64)
        passages.add_field("file_hash", DataType.VARCHAR, max_length=64)
        passages.add_field("terms", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True,
                           analyzer_params={"tokenizer": "standard"})
        passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        passages.add_field("vector", DataType.FLOAT_VECTOR, dim=MODEL_DIM)
        passages.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                       output_field_names=["sparse"]))
        meta = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        meta.add_field("key", DataType.VARCHAR, is_primary=True, max_length=8192)
        meta.add_field("kind", DataType.VARCHAR, max_length=16)
        meta.add_field("body", DataType.VARCHAR, max_length=TEXT_BYTES)
        meta.add_field("pad", DataType.FLOAT_VECTOR, dim=2)  # every collection needs a vector field
        return passages, meta

    def _index_params(self, k1: float, b: float):
        passages = self.client.prepare_index_params()
        passages.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                           params={"bm25_k1": k1, "bm25_b": b})
        passages.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        meta = self.client.prepare_index_params()
        meta.add_index(field_name="pad", index_type="FLAT", metric_type="IP")
        return passages, meta

    def write_generation(self, source: Index) -> str:
        """Write a complete generation aside from an embedded one (passages with their vectors and terms, then the
        manifest, file records, text layers and term frequencies); returns its name. Readers see nothing of it until
        switch_generation."""
        from .dense import stored_vectors

        manifest = source.manifest
        name = f"{self.alias}_g{time.time_ns()}"
        passages, meta = self._schemas()
        passage_index, meta_index = self._index_params(manifest.bm25.k1, manifest.bm25.b)
        self._call("create a collection", self.client.create_collection, name, schema=passages,
                   index_params=passage_index)
        self._call("create a collection", self.client.create_collection, name + "_meta", schema=meta,
                   index_params=meta_index)
        file_hash = {f.doc: f.sha256 for f in manifest.files}
        vectors = stored_vectors(source.faiss) if manifest.num_chunks else np.zeros((0, MODEL_DIM), np.float32)
        rows = (_passage_row(i, record, vectors[i], file_hash.get(record["doc"], ""))
                for i, record in enumerate(source.records))
        self._insert(name, rows)
        bm25 = source.bm25
        counts = np.diff(bm25.indptr)
        doc_freqs = ((term, int(counts[t])) for term, t in bm25.vocab.items())
        layers = ((f.doc, (source.folder / f.layer).read_text(encoding="utf-8"))
                  for f in manifest.files if f.layer and not f.skipped)
        self._insert(name + "_meta", _meta_rows(manifest, doc_freqs, layers))
        for collection in (name, name + "_meta"):
            self._call("flush", self.client.flush, collection)
            self._call("load the collection", self.client.load_collection, collection)
        return name

    def publish(self, source: Index) -> MilvusIndex:
        """Write `source` as a new generation, switch the alias to it, and open it."""
        self.switch_generation(self.write_generation(source))
        index = self.open()
        if index is None:
            raise BackendUnavailable(f"Milvus at {self.uri}: the generation just written cannot be read back")
        index.written = True
        return index

    def _insert(self, collection: str, rows: Iterable[dict]) -> None:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) == INSERT_BATCH:
                self._call("insert", self.client.insert, collection, batch)
                batch = []
        if batch:
            self._call("insert", self.client.insert, collection, batch)

    def switch_generation(self, name: str) -> None:
        """Point the alias at generation `name` in one step, then drop every generation but it and the one the alias
        pointed at before (readers still on it finish their requests)."""
        before = self.current()
        if before is None:
            self._call("create the alias", self.client.create_alias, name, self.alias)
        else:
            self._call("switch the alias", self.client.alter_alias, name, self.alias)
        self.prune(keep=name, previous=before)

    def generations(self) -> list[str]:
        """This alias's passage collections, oldest first."""
        pattern = re.compile(re.escape(self.alias) + r"_g(\d+)$")
        found = [n for n in self._call("list collections", self.client.list_collections) if pattern.match(n)]
        return sorted(found, key=lambda n: int(pattern.match(n).group(1)))

    def prune(self, keep: str, previous: str | None = None) -> None:
        """Drop this alias's generations but `keep` and `previous` (the one readers may still be on).

        Generations are told apart by what the alias pointed at, never by age: a publish killed part way leaves a
        half-written generation newer than the live one, and keeping "the last two by time" kept it and dropped the
        generation readers were on. Half-written ones (never pointed at) are dropped here.
        """
        kept = {keep} | ({previous} if previous else set())
        existing = set(self._call("list collections", self.client.list_collections))
        for n in self.generations():
            if n not in kept:
                for collection in (n, n + "_meta"):
                    if collection in existing:
                        self._call("drop a collection", self.client.drop_collection, collection)

    def delete_document(self, doc: str) -> int:
        """Remove the passages of `doc` from the current generation (the manifest keeps it, so it reads stale)."""
        name = self.current()
        if name is None:
            return 0
        result = self._call("delete", self.client.delete, name, filter=f"doc == {literal(doc)}")
        return int(result.get("delete_count", 0)) if isinstance(result, dict) else len(result)


def _passage_row(i: int, record: dict, vector: np.ndarray, file_hash: str) -> dict:
    for field in ("text", "search_text"):
        if len(record[field].encode()) > TEXT_BYTES:
            raise BackendUnavailable(f"passage {i} of {record['doc']} is longer than Milvus's {TEXT_BYTES}-byte "
                                     f"text field")
    return {"id": i, **{k: record[k] for k in RECORD_FIELDS}, "file_hash": file_hash,
            "terms": bm25_text(tokenize(record["search_text"]))[:TEXT_BYTES],
            "vector": np.asarray(vector, dtype=np.float32).tolist()}


def _meta_rows(manifest: Manifest, doc_freqs: Iterable[tuple[str, int]],
               layers: Iterable[tuple[str, str]]) -> Iterator[dict]:
    pad = [0.0, 0.0]
    yield {"key": "manifest", "kind": "manifest", "body": manifest.model_copy(update={"files": []}).model_dump_json(),
           "pad": pad}
    for n, source in enumerate(manifest.files):
        yield {"key": f"file:{n:09d}", "kind": "file", "body": source.model_dump_json(), "pad": pad}
    for doc, text in layers:
        for part, lo in enumerate(range(0, max(len(text), 1), LAYER_PIECE)):
            yield {"key": f"layer:{part:06d}:{doc}", "kind": "layer", "body": text[lo:lo + LAYER_PIECE], "pad": pad}
    for term, df in doc_freqs:
        yield {"key": f"term:{term}", "kind": "term", "body": str(int(df)), "pad": pad}


class _Terms:
    """The corpus vocabulary as a container: `term in index.terms` asks the server (answers cached)."""

    def __init__(self, index: MilvusIndex) -> None:
        self.index = index

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.index.term_idf(term) is not None


class MilvusIndex(ManifestFiles):
    """One generation on a Milvus server, read through the SearchBackend protocol.

    Searches return the passage records with their ids, so the records the answer then reads are already here.
    """

    def __init__(self, store: MilvusStore, collection: str, manifest: Manifest) -> None:
        self.store = store
        self.collection = collection
        self.manifest = manifest
        self._records: OrderedDict[int, dict] = OrderedDict()
        self._df: dict[str, int | None] = {}
        self._sources: dict[str, SourceFile] | None = None
        self.written = False  # whether this process wrote the generation (`qa index` says "built")

    def __repr__(self) -> str:
        return f"MilvusIndex({self.store.uri}, {self.collection}, {self.manifest.num_chunks} passages)"

    # --- searching -------------------------------------------------------------------------------

    def _search(self, what: str, data, field: str, metric: str, k: int, expr: str = "",
                fields: list[str] | None = None) -> list[dict]:
        hits = self.store._call(what, self.store.client.search, self.collection, data=[data], anns_field=field,
                                limit=k, filter=expr, search_params={"metric_type": metric},
                                output_fields=RECORD_FIELDS if fields is None else fields)
        out = list(hits[0]) if hits else []
        for hit in out:
            entity = hit.get("entity") or {}
            if all(f in entity for f in RECORD_FIELDS):
                self._remember(int(hit["id"]), entity)
        return out

    def _remember(self, i: int, entity: dict) -> None:
        self._records[i] = {"id": i, **{f: entity[f] for f in RECORD_FIELDS}}
        self._records.move_to_end(i)
        while len(self._records) > RECORD_CACHE:
            self._records.popitem(last=False)

    def bm25_rank(self, terms: list[str], k: int, also: np.ndarray | None = None) -> BM25Ranking:
        """Milvus's BM25 top k for our terms, and the scores of `also` (a filtered search; 0 where no term matches).

        Milvus Lite reports BM25 scores as negative distances, a server as positive scores: the magnitude is the score.
        """
        also = np.zeros(0, dtype=np.int64) if also is None else np.asarray(also, dtype=np.int64)
        text = bm25_text(terms)
        if not text or k <= 0:
            return BM25Ranking(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(len(also)))
        hits = self._search("search BM25", text, "sparse", "BM25", k)
        ids = np.array([int(h["id"]) for h in hits], dtype=np.int64)
        scores = np.array([abs(float(h["distance"])) for h in hits], dtype=np.float64)
        known = dict(zip(ids.tolist(), scores.tolist()))
        missing = sorted({int(i) for i in also} - known.keys())
        if missing:
            for h in self._search("score BM25", text, "sparse", "BM25", len(missing),
                                  f"id in {json.dumps(missing)}"):
                known[int(h["id"])] = abs(float(h["distance"]))
        return BM25Ranking(ids, scores, np.array([known.get(int(i), 0.0) for i in also], dtype=np.float64))

    def dense_search(self, query_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        hits = self._search("search vectors", np.asarray(query_vec, dtype=np.float32).tolist(), "vector", "IP", k)
        return (np.array([int(h["id"]) for h in hits], dtype=np.int64),
                np.array([float(h["distance"]) for h in hits], dtype=np.float32))

    def _vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        rows = self.store._call("read vectors", self.store.client.query, self.collection,
                                filter=f"id in {json.dumps(ids)}", output_fields=["vector"])
        return {int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}

    def dense_scores(self, ids: np.ndarray, query_vec: np.ndarray) -> np.ndarray:
        wanted = [int(i) for i in ids]
        vectors = self._vectors(wanted)
        if len(vectors) != len(set(wanted)):
            raise BackendUnavailable(f"Milvus at {self.store.uri}: passages missing from {self.collection}")
        return np.array([vectors[i] @ query_vec for i in wanted], dtype=np.float32)

    def vector(self, i: int) -> np.ndarray:
        found = self._vectors([int(i)])
        if int(i) not in found:
            raise BackendUnavailable(f"Milvus at {self.store.uri}: passage {i} missing from {self.collection}")
        return found[int(i)]

    def load_vectors(self) -> None:
        """The server holds the vectors: nothing to read here."""

    # --- records ---------------------------------------------------------------------------------

    def _record(self, i: int) -> dict:
        i = int(i)
        record = self._records.get(i)
        if record is None:
            rows = self.store._call("read passages", self.store.client.query, self.collection,
                                    filter=f"id == {i}", output_fields=RECORD_FIELDS)
            if not rows:
                raise BackendUnavailable(f"Milvus at {self.store.uri}: passage {i} missing from {self.collection}")
            self._remember(i, rows[0])
            record = self._records[i]
        return record

    def chunk(self, i: int) -> Chunk:
        return Chunk.model_construct(**self._record(i))

    def extent(self, i: int) -> tuple[str, int, int]:
        record = self._record(i)
        return record["doc"], record["start"], record["end"]

    def search_text(self, i: int) -> str:
        return self._record(i)["search_text"]

    def term_idf(self, token: str) -> float | None:
        """BM25+ idf as index.bm25 computes it, log((N + 1) / df), from the document frequencies stored with the
        generation."""
        if token not in self._df:
            rows = self.store._call("read terms", self.store.client.query, self.collection + "_meta",
                                    filter=f"key == {literal('term:' + token)}", output_fields=["body"])
            if len(self._df) >= TERM_CACHE:
                self._df.clear()
            self._df[token] = int(rows[0]["body"]) if rows else None
        df = self._df[token]
        return None if not df else float(math.log((self.manifest.num_chunks + 1) / df))

    @property
    def terms(self) -> _Terms:
        return _Terms(self)

    def text(self, doc: str) -> str:
        """The file itself for .txt/.md; a stored text layer read back from the generation's meta collection."""
        source = self.source(doc)
        if source is not None and source.layer:
            rows = self.store._call("read a text layer", self.store.client.query, self.collection + "_meta",
                                    filter=f'kind == "layer" and key like {literal("layer:%:" + doc)}',
                                    output_fields=["key", "body"])
            rows = [r for r in rows if r["key"].split(":", 2)[2] == doc]
            if not rows:
                raise OSError(f"{doc}: its text layer is missing from {self.collection}_meta")
            return "".join(r["body"] for r in sorted(rows, key=lambda r: r["key"]))
        try:
            return read_text(self.corpus_root / doc)
        except SkippedFile as exc:
            raise OSError(f"{doc}: {exc}") from None
