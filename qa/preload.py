"""Load the models a question will need on another thread, while the caller imports `qa` and opens the index."""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


def preload_models(settings: Settings) -> threading.Thread:
    """Start loading the query encoder, the reranker and the reader that answer() will use with these settings.

    ONNX Runtime releases the GIL while it builds a session (0.1-0.2 s each), so on two cores a one-shot `qa ask`
    overlaps that with its imports and index loading. The loaders are locked: answer() waits for this load rather
    than repeating it.
    """
    def load() -> None:
        from index import dense

        from .read import load_reader, reader_installed
        from .rerank import load_reranker

        with contextlib.suppress(Exception):  # answer() loads them again and reports any error itself
            if settings.mode != "bm25" or not settings.rerank:
                dense.load_encoder(settings.query_encoder)
            if settings.rerank:
                load_reranker(settings.rerank_max_tokens)
                if settings.reader and reader_installed():
                    load_reader()

    thread = threading.Thread(target=load, name="qa-preload")  # not a daemon: never cut off mid-load at exit
    thread.start()
    return thread
