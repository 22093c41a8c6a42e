"""Everything qa hands to users, scripts and the UI; these models are the JSON schema."""
from __future__ import annotations

from pydantic import BaseModel, Field


class Citation(BaseModel):
    """Where a passage comes from: `open(root / doc).read()[start:end] == passage.text`."""

    doc: str = Field(description="file path relative to the corpus root")
    start: int
    end: int
    line_start: int = Field(description="1-based")
    line_end: int
    title: str | None = None
    date: str | None = None
    author: str | None = None


class Passage(BaseModel):
    """One cited, verbatim passage and the answer span found in it."""

    rank: int
    text: str
    answer: str | None = Field(default=None, description="the answer span inside text, when the question asks for one")
    answer_start: int | None = Field(default=None, description="offset of the span in the file")
    answer_end: int | None = None
    score: float = Field(description="reranker probability, or fused retrieval score without reranking")
    citation: Citation
    context_start: int = Field(description="offsets of the surrounding chunk in the file")
    context_end: int


class AnswerGroup(BaseModel):
    """Passages that give the same answer; several groups mean the sources disagree."""

    answer: str
    docs: list[str]
    ranks: list[int]


class Answer(BaseModel):
    """The reply to one question."""

    question: str
    answered: bool
    confidence: float
    passages: list[Passage]
    message: str | None = Field(default=None, description="'no answer found in the documents' when answered is false")
    answer: str | None = Field(default=None, description="the top passage's answer span")
    groups: list[AnswerGroup] = Field(default_factory=list)
    disagreement: bool = False
    query: str | None = Field(default=None, description="what was searched, when a follow-up was expanded")
    mode: str
    reranked: bool
    seconds: float


class AnswerError(BaseModel):
    """A batch line that could not be answered keeps its place with this object."""

    question: str
    error: str
