"""Everything qa hands to users, scripts and the UI; these models are the JSON schema."""
from __future__ import annotations

from pydantic import BaseModel, Field


class Citation(BaseModel):
    """Where a passage comes from: `document_text(index, doc)[start:end] == passage.text`.

    For `format` "text" (.txt, .md) that text is the file itself, read as UTF-8; for pdf, html, docx and epub it is
    the document's text layer (one paragraph a line), stored in the index and printed by `qa text DOC`.
    """

    doc: str = Field(description="file path relative to the corpus root")
    start: int = Field(description="character offset in the file (format text) or in its text layer (other formats)")
    end: int
    line_start: int = Field(description="1-based line of the file, or of the text layer")
    line_end: int
    format: str = Field(default="text", description="text, pdf, html, docx or epub: which text start/end index")
    page: int | None = Field(default=None, description="PDF: 1-based page where the passage starts")
    page_end: int | None = Field(default=None, description="PDF: page where it ends (> page when it crosses a break)")
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
    sentence_start: int = Field(description="file offsets of the sentence that best answers, inside text")
    sentence_end: int
    score: float = Field(description="0-1: with the reader on, the calibrated probability that this passage's "
                                     "answer is right; else the reranker probability or the fused retrieval score")
    relevance: float | None = Field(default=None, description="the cross-encoder's probability that the passage is "
                                                                "relevant (null without reranking)")
    answer_score: float | None = Field(default=None, description="the reader's probability that this passage "
                                                                   "holds the answer (null when the reader is off)")
    citation: Citation


class AnswerGroup(BaseModel):
    """Passages that give the same answer; several groups mean the sources disagree."""

    answer: str
    docs: list[str]
    ranks: list[int]


class Answer(BaseModel):
    """The reply to one question."""

    question: str
    answered: bool
    confidence: float = Field(description="with the reader on (calibrated true): the estimated probability that the "
                                          "answer is right; else an uncalibrated 0-1 score")
    passages: list[Passage]
    message: str | None = Field(default=None, description="'no answer found in the documents' when answered is false")
    answer: str | None = Field(default=None, description="the top passage's answer span")
    groups: list[AnswerGroup] = Field(default_factory=list)
    disagreement: bool = False
    calibrated: bool = Field(default=False, description="whether confidence is the calibrated probability "
                                                        "(reader and reranking on)")
    query: str | None = Field(default=None, description="what was searched, when a follow-up was expanded")
    corpus: str | None = Field(default=None, description="the corpus root the answer came from (citations' doc is "
                                                         "relative to it)")
    mode: str
    reranked: bool
    seconds: float


class AnswerError(BaseModel):
    """A batch line that could not be answered keeps its place with this object."""

    question: str
    error: str


class GoldItem(BaseModel):
    """One gold question: accepted answers as they occur in the text, supporting docs and one evidence per doc."""

    model_config = {"extra": "allow"}

    id: str
    question: str = Field(min_length=1)
    answers: list[str] = Field(default_factory=list, description="empty for an unanswerable question")
    doc: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    type: str | None = None
    difficulty: str | None = None
    notes: str | None = None
    conflict: bool | None = Field(default=None, description="true when the sources do disagree on the answer")

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


class ItemResult(BaseModel):
    """How one gold question fared."""

    id: str
    question: str
    answerable: bool
    answered: bool
    confidence: float
    hit_rank: int | None = Field(description="rank of the first passage that counts, within the top 5")
    doc_recall: float | None = None
    span_hit: bool | None = None
    span_em: float | None = Field(default=None, description="SQuAD exact match of the top passage's span")
    span_f1: float | None = Field(default=None, description="SQuAD token F1 of the top passage's span")
    expected: list[str]
    expected_docs: list[str]
    got: str | None = Field(default=None, description="the first passage's answer span, else its text")
    got_citation: str | None = None
    right: bool = Field(default=False, description="the shown answer is right: a gold answer inside the top span, "
                                                    "from a gold document (never, for an unanswerable question)")
    disagreement: bool = Field(default=False, description="the reply said the sources differ")
    conflict: bool | None = Field(default=None, description="the gold item's own word: its sources do differ")
    error: str | None = None


class EvalReport(BaseModel):
    """Retrieval, answer, faithfulness and speed figures for one configuration over a gold set."""

    gold: str
    config: dict
    questions: int
    answerable: int
    unanswerable: int
    hit_at_1: float
    hit_at_3: float
    hit_at_5: float
    mrr_at_5: float
    doc_recall_at_5: float
    span_hit_at_1: float
    span_em: float = 0.0
    span_f1: float = 0.0
    abstain_precision: float | None
    abstain_recall: float | None
    false_abstain_rate: float
    answered_precision: float | None = Field(default=None, description="share of answered questions whose shown "
                                                                         "answer is right")
    ece: float | None = Field(default=None, description="expected calibration error of the confidence against "
                                                         "'the shown answer is right', ten equal bins")
    reliability: list[dict] = Field(default_factory=list, description="per confidence bin: count, mean "
                                                                       "confidence, share right")
    false_conflict_rate: float | None = Field(default=None, description="share of right answers that said the "
                                                                          "sources differ without a gold conflict")
    conflict_precision: float | None = None
    conflict_recall: float | None = None
    faithfulness: float
    unfaithful: list[str] = Field(default_factory=list)
    errors: int = 0
    questions_per_second: float
    seconds: float
    items: list[ItemResult] = Field(default_factory=list)
