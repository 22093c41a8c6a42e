"""ONNX Runtime sessions that start fast: the graph is optimised once, saved in the user cache, then reused.

Optimising a MiniLM graph costs 0.1-0.2 s at every session start; a pre-optimised copy (level EXTENDED, which
ONNX Runtime writes portably) loads in a third of that time and runs as fast.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


def cache_home() -> Path:
    """qa's folder in the user cache ($XDG_CACHE_HOME or ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa-offline"


def optimised_path(model: Path, ort_version: str) -> Path:
    """Where the optimised copy of a model lives: keyed by its path, size, mtime and the runtime's version."""
    st = model.stat()
    key = f"{model.resolve()}\n{st.st_size}\n{st.st_mtime_ns}\n{ort_version}"
    return cache_home() / "onnx" / f"{model.stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.onnx"


def open_session(model: Path, threads: int = 1):
    """An InferenceSession for a model file, from its cached optimised copy when there is one."""
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
