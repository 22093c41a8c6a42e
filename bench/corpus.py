"""Deterministic benchmark corpora: the seeds, and replicas of seeds + SQuAD articles scaled to N chunks.

Sources (read in place, never copied into the repository):
  * the 5 seed articles, seeds/*.txt;
  * the 48 SQuAD v1.1 dev articles, ../shared/bench/squad_v1.1_dev/corpus/*.txt (CC BY-SA 4.0),
    or $QA_BENCH_SQUAD.

A scaled corpus is built replica by replica, each replica holding every source once, in sorted order:
    r000/seeds/<seed>.txt, r000/squad/<article>.txt, r001/seeds/..., ...
until the text written reaches target_chunks * bytes_per_chunk bytes (the last replica is partial), where
bytes_per_chunk is measured by chunking the sources with the chunking parameters in force (index.chunk, e.g.
~270 bytes at 500-character chunks, ~350 at 600).
Replica 0 is the sources verbatim, so gold questions stay answerable. Every later replica is perturbed with
random.Random(f"{SEED}:{replica}:{group}/{name}") so that (almost) no chunk text repeats, since identical
chunks would share cached embeddings and flatter the build and re-index figures:
  * the paragraphs after the first (the first holds metadata such as a seed's leading date) are shuffled;
  * the document's capitalised words (names, places; not words that also occur lower-cased) are permuted
    among themselves, consistently within the document;
  * each number is, with probability 1/2, replaced by a random number of the same number of digits;
  * a sentence that none of this changed gets two adjacent words (after its first) swapped.
The text stays English-like with the sources' vocabulary, so tokenisation, chunking, BM25 postings and
embedding cost scale like a real corpus of that size (vocabulary grows more slowly than a real one's).

Generated corpora are cached in $QA_BENCH_DIR (default /tmp/qa-bench)/corpora/<name>/ with a
generation.json of the parameters and source hashes; a corpus is reused when they match.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS_DIR = REPO / "seeds"
# $QA_BENCH_SQUAD, else ../shared beside the repository
SQUAD_DIR = Path(os.environ.get("QA_BENCH_SQUAD") or REPO.parent / "shared/bench/squad_v1.1_dev")
GENERATOR_VERSION = 2
SEED = 20240601
BYTES_PER_CHUNK: int | None = None  # None: measured from the sources with the chunking parameters (tests pin it)


def bench_dir() -> Path:
    return Path(os.environ.get("QA_BENCH_DIR") or "/tmp/qa-bench")


@dataclass(frozen=True)
class Source:
    group: str  # "seeds" or "squad"
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def sources() -> list[Source]:
    out = [Source("seeds", p) for p in sorted(SEEDS_DIR.glob("*.txt"))]
    out += [Source("squad", p) for p in sorted((SQUAD_DIR / "corpus").glob("*.txt"))]
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- perturbation ------------------------------------------------------------------------------

_PARA_SPLIT = re.compile(r"\n[ \t]*\n")
_SENT_SPLIT = re.compile(r"(?<=[.!?])(\s+)(?=[\"“A-Z0-9])")
_NAME = re.compile(r"\b[A-Z][a-z]{2,}\b")
_NUMBER = re.compile(r"(?<![\w.,])\d+(?![\w])")
_WORD = re.compile(r"\S+")


def _name_map(text: str, rng: random.Random) -> dict[str, str]:
    lower = set(re.findall(r"\b[a-z]+\b", text))
    names = sorted({n for n in _NAME.findall(text) if n.lower() not in lower})
    shuffled = names[:]
    rng.shuffle(shuffled)
    return dict(zip(names, shuffled))


def _perturb_number(m: re.Match, rng: random.Random) -> str:
    s = m.group()
    if rng.random() >= 0.5:
        return s
    if len(s) == 1:
        return str(rng.randrange(10))
    return str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(len(s) - 1))


def _swap_words(sentence: str, rng: random.Random) -> str:
    words = list(_WORD.finditer(sentence))
    if len(words) < 3:
        return sentence
    i = rng.randrange(1, len(words) - 1)
    a, b = words[i], words[i + 1]
    return sentence[:a.start()] + b.group() + sentence[a.end():b.start()] + a.group() + sentence[b.end():]


def perturb(text: str, rng: random.Random) -> str:
    """A replica of `text`: paragraphs shuffled, names permuted, numbers changed, every sentence altered."""
    names = _name_map(text, rng)
    name_re = _NAME

    def sub_sentence(sentence: str) -> str:
        out = name_re.sub(lambda m: names.get(m.group(), m.group()), sentence)
        out = _NUMBER.sub(lambda m: _perturb_number(m, rng), out)
        if out == sentence:
            out = _swap_words(sentence, rng)
        return out

    paragraphs = _PARA_SPLIT.split(text.strip("\n"))
    head, rest = paragraphs[:1], paragraphs[1:]
    rng.shuffle(rest)
    new = []
    for para in head + rest:
        parts = _SENT_SPLIT.split(para)  # sentence, separator, sentence, ...
        new.append("".join(p if k % 2 else sub_sentence(p) for k, p in enumerate(parts)))
    return "\n\n".join(new) + "\n"


# --- corpora -----------------------------------------------------------------------------------

def parse_size(size: str) -> int | None:
    """'seeds' -> None; '10k' -> 10000; '2500' -> 2500 (target chunks)."""
    s = size.strip().lower()
    if s == "seeds":
        return None
    mult = 1
    if s.endswith("k"):
        s, mult = s[:-1], 1000
    elif s.endswith("m"):
        s, mult = s[:-1], 1_000_000
    try:
        n = int(float(s) * mult)
    except ValueError:
        raise ValueError(f"bad size {size!r}: use seeds, 10k, 100k or a number of chunks") from None
    if n < 1:
        raise ValueError(f"bad size {size!r}")
    return n


def bytes_per_chunk(srcs: list[Source], max_chars: int, overlap_sentences: int) -> int:
    """Bytes of source text per chunk, with the chunker and parameters the index will use."""
    from index.chunk import make_chunks
    from index.ingest import clean_document
    from index.models import ChunkParams

    params = ChunkParams(max_chars=max_chars, overlap_sentences=overlap_sentences)
    total = chunks = 0
    for s in srcs:
        text = s.path.read_text(encoding="utf-8")
        total += len(text.encode("utf-8"))
        chunks += len(make_chunks(clean_document(s.name, text), params))
    return max(1, round(total / max(1, chunks)))


def generation_params(target_chunks: int | None, max_chars: int = 500, overlap_sentences: int = 1) -> dict:
    srcs = sources() if target_chunks else [s for s in sources() if s.group == "seeds"]
    per_chunk = None
    if target_chunks:
        per_chunk = BYTES_PER_CHUNK or bytes_per_chunk(srcs, max_chars, overlap_sentences)
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": SEED,
        "target_chunks": target_chunks,
        "chunking": {"max_chars": max_chars, "overlap_sentences": overlap_sentences},
        "bytes_per_chunk": per_chunk,
        "target_bytes": target_chunks * per_chunk if target_chunks else None,
        "sources": [{"group": s.group, "name": s.name, "sha256": _sha256(s.path)} for s in srcs],
    }


def _write(path: Path, text: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(data)
    return len(data)


def generate(target_chunks: int | None, out_dir: Path, max_chars: int = 500, overlap_sentences: int = 1) -> dict:
    """Write the corpus into out_dir (which must not exist); returns the generation record."""
    params = generation_params(target_chunks, max_chars, overlap_sentences)
    srcs = sources()
    if target_chunks is None:
        files, total = 0, 0
        for s in srcs:
            if s.group == "seeds":
                total += _write(out_dir / s.name, s.path.read_text(encoding="utf-8"))
                files += 1
        return {**params, "files": files, "bytes": total, "replicas": 1}
    if not any(s.group == "squad" for s in srcs):
        raise FileNotFoundError(f"no SQuAD articles under {SQUAD_DIR / 'corpus'} (set QA_BENCH_SQUAD)")
    texts = {(s.group, s.name): s.path.read_text(encoding="utf-8") for s in srcs}
    target = params["target_bytes"]
    files = total = 0
    replica = 0
    while total < target:
        for s in srcs:
            if total >= target:
                break
            text = texts[(s.group, s.name)]
            if replica:
                text = perturb(text, random.Random(f"{SEED}:{replica}:{s.group}/{s.name}"))
            total += _write(out_dir / f"r{replica:03d}" / s.group / s.name, text)
            files += 1
        replica += 1
    return {**params, "files": files, "bytes": total, "replicas": replica}


def corpus_name(target_chunks: int | None) -> str:
    if target_chunks is None:
        return "seeds"
    return f"{target_chunks // 1000}k" if target_chunks % 1000 == 0 else str(target_chunks)


def ensure_corpus(target_chunks: int | None, root: Path | None = None, max_chars: int = 500,
                  overlap_sentences: int = 1) -> tuple[Path, dict]:
    """The cached corpus folder for this size (generated when missing or stale) and its generation record."""
    root = (root or bench_dir()) / "corpora" / corpus_name(target_chunks)
    record_path = root / "generation.json"
    params = generation_params(target_chunks, max_chars, overlap_sentences)
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except ValueError:
            record = None
        if record and all(record.get(k) == v for k, v in params.items()) and (root / "corpus").is_dir():
            return root / "corpus", record
    if root.exists():
        shutil.rmtree(root)
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    record = generate(target_chunks, tmp / "corpus", max_chars, overlap_sentences)
    (tmp / "generation.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, root)
    return root / "corpus", record


def corpus_digest(folder: Path) -> str:
    """sha256 over the sorted relative paths and contents (determinism checks)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.txt")):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()
