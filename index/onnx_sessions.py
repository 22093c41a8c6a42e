"""ONNX Runtime sessions that start fast: the graph is optimised once, saved in the user cache, then reused.

Optimising a MiniLM graph costs 0.1-0.2 s at every session start; a pre-optimised copy (level EXTENDED, which
ONNX Runtime writes portably) loads in a third of that time and runs as fast.

quantize_model is the recipe that made the shipped int8 encoder (index/data/encoder/model_int8.onnx, see MODELS.md);
answering and indexing never run it, and it needs the onnx package (the train extra).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path


def cache_home() -> Path:
    """qa's folder in the user cache ($XDG_CACHE_HOME or ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa-offline"


def optimised_path(model: Path, ort_version: str) -> Path:
    """Where the optimised copy of a model lives: keyed by its path, size, mtime and the runtime's version."""
    return _cached_copy(model, [ort_version], "")


QUANTIZE_RECIPE = "matmul-int8-per-channel-v1"  # part of the cache key: change it with the recipe


def quantized_path(model: Path, ort_version: str) -> Path:
    """Where the int8 copy of a model lives, keyed like optimised_path plus the quantisation recipe."""
    return _cached_copy(model, [ort_version, QUANTIZE_RECIPE], "-int8")


def _cached_copy(model: Path, key_parts: list[str], tag: str) -> Path:
    st = model.stat()
    key = "\n".join([str(model.resolve()), str(st.st_size), str(st.st_mtime_ns), *key_parts])
    return cache_home() / "onnx" / f"{model.stem}{tag}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.onnx"


def weight_matmuls(graph) -> list[str]:
    """Names of the MatMul nodes whose second input is a stored weight, in graph order."""
    weights = {init.name for init in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in weights]


def quantize_model(model: Path) -> Path:
    """A copy of a MiniLM graph whose weight products run in int8 (dynamic quantisation), made once into the cache
    and already optimised (open it with optimise=False). Made from dense.onnx_model_path() with ONNX Runtime
    1.32.0, it is byte for byte the shipped dense.int8_model_path().

    The graph is first optimised to plain float32 (the packaged model stores int8 weights that ONNX Runtime turns
    back into float32 products), then every weight MatMul gets per-channel int8 weights. On this machine's AVX-512
    VNNI cores a question embeds in ~3.1 ms instead of ~7 ms, at cosine ~0.995 to the float model (leaving the
    first layer in float32 gained 0.0013 of cosine for 0.5 ms, and no gold or SQuAD metric).
    """
    import onnxruntime as ort

    target = quantized_path(model, ort.__version__)
    if target.exists():
        return target
    import onnx  # ~0.2 s with the quantisation tools: only when the copy is made
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    stem = target.with_name(f".{target.stem}.{os.getpid()}")
    plain, quantized, tmp = (stem.with_suffix(s) for s in (".float.onnx", ".int8.onnx", ".tmp"))
    try:
        optimise(model, plain)
        graph = onnx.load(str(plain))
        with _quiet_root_logger():  # quantize_dynamic logs advice through the root logger
            quantize_dynamic(graph, str(quantized), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             per_channel=True, nodes_to_quantize=weight_matmuls(graph.graph))
        optimise(quantized, tmp)  # fuses each quantise + int8 product into one operator
        os.replace(tmp, target)  # atomic: a concurrent reader sees no file or the whole file
    finally:
        for leftover in (plain, quantized, tmp):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return target


def optimise(model: Path, target: Path) -> None:
    """Write model's graph optimised at level EXTENDED, the highest that ONNX Runtime saves portably."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(target)
    ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _quiet_root_logger():
    """Silence the root logger for a moment; a handler is added so logging.warning() does not install its own."""
    root = logging.getLogger()
    level, quiet = root.level, logging.NullHandler()
    root.addHandler(quiet)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.removeHandler(quiet)


def open_session(model: Path, threads: int = 1, optimise: bool = True):
    """An InferenceSession for a model file, from its cached optimised copy when there is one (or from the file
    itself when it is already optimised)."""
    import onnxruntime as ort

    def options(level) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting threads
        opts.graph_optimization_level = level
        return opts

    providers = ["CPUExecutionProvider"]
    levels = ort.GraphOptimizationLevel
    if not optimise:
        return ort.InferenceSession(str(model), options(levels.ORT_DISABLE_ALL), providers=providers)
    cached = optimised_path(model, ort.__version__)
    if cached.exists():
        try:
            return ort.InferenceSession(str(cached), options(levels.ORT_DISABLE_ALL), providers=providers)
        except Exception:  # a damaged cache file: drop it and optimise again
            with contextlib.suppress(OSError):
                cached.unlink()
    opts = options(levels.ORT_ENABLE_EXTENDED)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        opts.optimized_model_filepath = str(tmp)
        session = ort.InferenceSession(str(model), opts, providers=providers)
        os.replace(tmp, cached)  # atomic: a concurrent reader sees the old state or the whole file
        return session
    except Exception:  # e.g. a read-only cache: optimise in memory every time
        with contextlib.suppress(OSError):
            tmp.unlink()
        return ort.InferenceSession(str(model), options(levels.ORT_ENABLE_ALL), providers=providers)
