"""Snapshots of the chat app's answer cards, built from hand-made answers (no index, no models)."""
from __future__ import annotations

from pathlib import Path

import pytest
from answers import abstained, agreeing, disagreeing
from textual.app import App
from textual.containers import VerticalScroll

import tui
from qa.models import Answer
from tui.widgets import AnswerCard, QuestionBubble

APP_CSS = Path(tui.__file__).parent / "app.tcss"


class CardApp(App):
    """One question and its answer card, styled as in the chat log."""

    CSS_PATH = APP_CSS

    def __init__(self, reply: Answer) -> None:
        super().__init__()
        self.reply = reply

    def compose(self):
        with VerticalScroll(id="log"):
            yield QuestionBubble(self.reply.question)
            yield AnswerCard(self.reply)


@pytest.mark.parametrize("reply", [agreeing, disagreeing, abstained], ids=lambda f: f.__name__)
def test_snapshot_answer_card(snap_compare, reply):
    assert snap_compare(CardApp(reply()), terminal_size=(100, 24))
