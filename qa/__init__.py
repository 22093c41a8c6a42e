"""Offline question answering over a folder of documents, answered with cited extractive passages.

Public API (the CLI, the TUI and `qa eval` all use it):
    settings = Settings(corpus=[Path("seeds")])
    index = open_index(settings)            # builds or refreshes the index when needed
    reply = answer("what army cap did Istanbul 2022 propose?", index, settings)
"""
from __future__ import annotations

import importlib

# Names are imported on first use (PEP 562), so `qa ask` can start loading models before numpy, faiss and the
# index code are imported (see preload.py).
_EXPORTS = {
    "NO_ANSWER": "answering", "QAError": "errors", "answer": "answering", "corpus_path": "answering",
    "document_text": "answering", "open_index": "answering",
    "Answer": "models", "AnswerError": "models", "AnswerGroup": "models", "Citation": "models", "Passage": "models",
    "Settings": "settings",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
