"""Command palette entries (ctrl+p): rebuild the index, reranking on/off, retrieval mode, export, clear."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

MODES = ("bm25", "dense", "hybrid")


class QACommands(Provider):
    """The chat app's own commands."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        app = self.app
        settings = getattr(app, "settings", None)
        if settings is None:
            return
        yield ("Rebuild the index", app.action_rebuild, "read the corpus again and rebuild the index from scratch")
        state = "off" if settings.rerank else "on"
        yield (f"Reranking: turn {state}", app.action_toggle_rerank,
               f"the cross-encoder reranker is {'on' if settings.rerank else 'off'}")
        for mode in MODES:
            current = " (current)" if settings.mode == mode else ""
            yield (f"Retrieval mode: {mode}{current}", partial(app.set_mode, mode),
                   {"bm25": "keywords only", "dense": "embeddings only",
                    "hybrid": "keywords and embeddings fused"}[mode])
        yield ("Export the conversation to Markdown", app.action_export, "asks where to write qa-chat-….md")
        yield ("Reopen the last conversation", app.action_reopen, "the questions and answers of the last run")
        yield ("Clear the conversation", app.action_clear, "also forgets the context used for follow-ups")

    async def discover(self) -> Hits:
        for name, command, help_text in self._commands():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, command, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, text=name, help=help_text)
