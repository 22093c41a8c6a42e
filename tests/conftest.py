"""Shared fixtures: one copy of the seed corpus and one index over it per test session.

Nothing here touches ~/.cache: the index lives in a session temp folder and XDG_CACHE_HOME points into it.
Models load once per session (sentence-transformers for building, ONNX for queries and reranking).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))
QA_BIN = Path(sys.executable).parent / "qa"
SAMPLE_QUESTION = "what army cap did Istanbul 2022 propose?"
OFF_TOPIC_QUESTION = "what is the boiling point of mercury?"


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """No QA_* setting from the developer's shell leaks in, and any default cache goes to a temp folder."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    mp = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("QA_"):
            mp.delenv(key)
    mp.setenv("XDG_CACHE_HOME", str(cache))
    yield cache
    mp.undo()


@pytest.fixture(scope="session")
def seed_corpus(tmp_path_factory) -> Path:
    """A private copy of the five seed articles (the question sets are not corpus)."""
    folder = tmp_path_factory.mktemp("corpus")
    for f in SEED_FILES:
        shutil.copyfile(f, folder / f.name)
    return folder


@pytest.fixture(scope="session")
def seed_settings(seed_corpus, tmp_path_factory):
    from qa import Settings

    return Settings(corpus=[seed_corpus], index_dir=tmp_path_factory.mktemp("seed-index") / "index")


@pytest.fixture(scope="session")
def seed_index(seed_settings):
    """The index over the seed copy, built once. Treat as read-only: tests that change it work on a copy."""
    from qa import open_index

    return open_index(seed_settings)


@pytest.fixture(scope="session")
def seed_documents():
    """Each seed file read and cleaned exactly as the indexer does, keyed by file name."""
    from index.ingest import clean_document, read_text

    return {f.name: clean_document(f.name, read_text(f)) for f in SEED_FILES}


@pytest.fixture(scope="session")
def seed_chunks(seed_documents):
    from index.chunk import make_chunks
    from index.models import ChunkParams

    return {name: make_chunks(doc, ChunkParams()) for name, doc in seed_documents.items()}


def copy_index(src: Path, dst: Path) -> Path:
    """A private copy of an index folder, safe to break."""
    shutil.copytree(src, dst)
    return dst


def current_generation(index_dir: Path) -> Path:
    return index_dir / json.loads((index_dir / "CURRENT").read_text(encoding="utf-8"))["generation"]


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Create a corpus folder from {relative path: text or bytes}."""
    for rel, content in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return folder


# Two short real-looking articles: small enough to embed in well under a second once the model is loaded.
SMALL_CORPUS = {
    "energy.md": (
        "# Grid under strain\n\n"
        "Russian strikes have damaged Ukraine's transmission network. Three nuclear power plants "
        "had to limit their output after their connections were cut.\n\n"
        "Engineers work around the clock, but repairs take weeks. Outage schedules were discarded "
        "in some regions.\n"
    ),
    "notes/minerals.txt": (
        "The minerals deal 2.0 was signed in April.\n"
        "It gives the U.S. a share of revenue from new extraction projects. Critics said the first "
        "draft offered no security guarantees.\n"
    ),
}


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus", SMALL_CORPUS)


def cli_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(XDG_CACHE_HOME=str(cache), NO_COLOR="1")
    return env


def run_qa(args: list[str], cache: Path, stdin: str | None = None, timeout: float = 180,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed `qa` entry point as a user would."""
    return subprocess.run([str(QA_BIN), *args], input=stdin if stdin is not None else "", capture_output=True,
                          text=True, env=cli_env(cache), timeout=timeout, cwd=cwd or REPO)


def assert_citations_exact(ans, corpus: Path) -> None:
    """Every cited passage, its first line number and its answer span are exactly what the source file holds."""
    for p in ans.passages:
        text = (corpus / p.citation.doc).read_bytes().decode("utf-8")
        assert text[p.citation.start:p.citation.end] == p.text
        assert p.citation.line_start == text.count("\n", 0, p.citation.start) + 1
        if p.answer is not None:
            assert text[p.answer_start:p.answer_end] == p.answer
