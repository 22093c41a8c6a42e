"""Offline question answering over a folder of documents, answered with cited extractive passages.

Public API (the CLI, the TUI and `qa eval` all use it):
    settings = Settings(corpus=[Path("seeds")])
    index = open_index(settings)            # builds or refreshes the index when needed
    reply = answer("what army cap did Istanbul 2022 propose?", index, settings)
"""
from .answer import NO_ANSWER, QAError, answer, corpus_path, open_index
from .models import Answer, AnswerError, AnswerGroup, Citation, Passage
from .settings import Settings

__all__ = ["NO_ANSWER", "QAError", "answer", "corpus_path", "open_index", "Answer", "AnswerError", "AnswerGroup",
           "Citation", "Passage", "Settings"]
