"""Reading the corpus: scrape artifacts never reach a passage, metadata is found, bad files are skipped loudly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import write_corpus

from index.ingest import IngestError, SkippedFile, clean_document, find_files, read_text, visible_text
from index.store import build_index
from index.models import BM25Params, ChunkParams

ARTIFACTS = {
    "003_341094064a9670fe.txt": ["pic.twitter.com/", "https://t.co/", "t.co/h28QrYk7zn", "/blockquote>",
                                 "(@I_Katchanovski)", "(@bears_with)"],
    "000_a5367d4183c4154e.txt": ["date 2025-11-29", "Write to Matthew Luxmoore", "@wsj.com"],
    "004_68fde38a2c7dbc2d.txt": [
        # publisher footer
        "The Istituto Affari Internazionali (IAI) is a private, independent non-profit think tank",
        "Via dei Montecatini", "I-00186 Rome", "www.iai.it", "ISSN 2532-6570", "Editor:",
        # the list of other commentaries
        "Latest IAI Commentaries", "Riccardo Alcaro", "The African Union-European Union Partnership",
        "Thinking the Unthinkable", "Golden Power",
    ],
}
PULL_QUOTES = [
    "Much has already been written about the plan's content, and there is no need for a point-by-point dissection.",
    "The Ukrainian army is now the most respected and trusted institution in the country.",
]


def all_chunk_text(chunks) -> str:
    return "\n".join(c.text for c in chunks) + "\n" + "\n".join(c.search_text for c in chunks)


@pytest.mark.parametrize("doc, needle", [(d, n) for d, ns in ARTIFACTS.items() for n in ns])
def test_artifact_is_in_the_file_but_in_no_chunk(seed_documents, seed_chunks, doc, needle):
    assert needle in seed_documents[doc].text, "fixture drift: the artifact is not in the seed"
    assert needle not in all_chunk_text(seed_chunks[doc])


def test_artifacts_are_absent_from_the_built_index(seed_index):
    everything = "\n".join(r["text"] + "\n" + r["search_text"] for r in seed_index.records)
    for needles in ARTIFACTS.values():
        for needle in needles:
            assert needle not in everything
    assert "pic.twitter" not in everything and "blockquote" not in everything


def test_leading_date_is_hidden_but_the_first_sentence_is_kept(seed_chunks):
    first = seed_chunks["000_a5367d4183c4154e.txt"][0]
    assert first.text.startswith("A 28-point plan and President Vladimir Putin’s response")


def test_text_around_tweet_links_is_kept(seed_chunks):
    chunks = seed_chunks["003_341094064a9670fe.txt"]
    text = all_chunk_text(chunks)
    assert "All ambiguities of the past 30 years will be…" in text
    assert "Listen to podcast with Jamarl Thomas." in text
    assert any(c.text.startswith("9. European fighter aircraft will be stationed in Poland.") for c in chunks)


def squeeze(search_text: str) -> str:
    """search_text with markup blanked leaves "dissection ." behind; compare words and punctuation only."""
    return re.sub(r"\s+([.,;:!?])", r"\1", search_text)


@pytest.mark.parametrize("quote", PULL_QUOTES)
def test_repeated_pull_quote_is_hidden_but_the_original_stays(seed_documents, seed_chunks, quote):
    doc = seed_documents["004_68fde38a2c7dbc2d.txt"]
    chunks = seed_chunks["004_68fde38a2c7dbc2d.txt"]
    # the standalone repeat is a paragraph of its own, after the original
    standalone = [m.start() for m in re.finditer(r"(?m)^" + re.escape(quote) + r"$", doc.text)]
    assert len(standalone) == 1
    repeat = standalone[0]
    assert not any(c.start <= repeat < c.end for c in chunks), "the repeated pull-quote line is in a passage"
    # the original sentence (inside its paragraph, markup blanked) is still in a passage
    assert any(quote in squeeze(c.search_text) for c in chunks)


@pytest.mark.parametrize("query, quote", [
    ("no need for a point-by-point dissection", PULL_QUOTES[0]),
    ("most respected and trusted institution", PULL_QUOTES[1]),
])
def test_original_of_pull_quote_is_searchable(seed_index, query, quote):
    from index.bm25 import tokenize

    scores = seed_index.bm25.scores(tokenize(query))
    best = seed_index.records[int(scores.argmax())]
    assert best["doc"] == "004_68fde38a2c7dbc2d.txt"
    assert quote in squeeze(best["search_text"])
    text = (Path(seed_index.manifest.corpus_root) / best["doc"]).read_text(encoding="utf-8")
    # the passage is inside the original paragraph, not the standalone repeat line
    line = text.splitlines()[best["line_start"] - 1]
    assert line != quote


def test_metadata_of_seed_articles(seed_index):
    files = {f.doc: f for f in seed_index.manifest.files}
    wsj = files["000_a5367d4183c4154e.txt"]
    assert wsj.date == "2025-11-29"
    assert wsj.author == "Matthew Luxmoore"
    iai = files["004_68fde38a2c7dbc2d.txt"]
    assert iai.title.startswith("The Kremlin Sets Its Sights on Kyiv")
    assert iai.author == "Nona Mikhelidze"
    assert iai.date == "2025-11-25"
    shadow = files["002_90c684f3911e1bde.txt"]
    assert shadow.title == "The Shadow Negotiation: Deconstructing the Reported 28-Point US-Russian Plan for Ukraine"


def test_articles_without_a_headline_get_no_title(seed_documents):
    # 000 starts with a date then a full sentence; 001 and 003 start with prose
    for name in ("000_a5367d4183c4154e.txt", "001_68f307d24029927d.txt", "003_341094064a9670fe.txt"):
        assert seed_documents[name].title is None, name


def test_cleaning_never_changes_the_text(seed_documents):
    for f in sorted(Path(__file__).resolve().parent.parent.joinpath("seeds").glob("*.txt")):
        doc = seed_documents[f.name]
        assert doc.text == f.read_bytes().decode("utf-8")
        assert len(visible_text(doc)) == len(doc.text)


def test_visible_text_keeps_every_newline():
    text = "Some heading\n\n- lowercase item\n"
    doc = clean_document("a.md", text)
    assert visible_text(doc).count("\n") == text.count("\n")


def test_heading_before_markdown_list_is_its_own_sentence():
    from index.chunk import document_sentences

    text = "Some heading\n\n- lowercase item\n"
    doc = clean_document("a.md", text)
    sentences = [text[s:e] for block in document_sentences(doc) for s, e in block]
    assert sentences[0] == "Some heading"


def test_markdown_markup_is_kept_in_text_but_not_searched():
    doc = clean_document("a.md", "# Title here\n\nThe plan is **structurally doomed** today.\n")
    from index.chunk import make_chunks

    chunks = make_chunks(doc, ChunkParams())
    body = [c for c in chunks if "doomed" in c.text][0]
    assert "**structurally doomed**" in body.text
    assert "*" not in body.search_text and "structurally doomed" in body.search_text


# --- reading files ------------------------------------------------------------------------------

GOOD_MD = ("# Peace talks\n\nEnvoy Steve Witkoff drafted the plan with Kirill Dmitriev. "
           "Ukraine's army would be capped at 600,000 troops.\n")


@pytest.fixture
def messy_corpus(tmp_path):
    return write_corpus(tmp_path / "messy", {
        "latin1.txt": "Caf\u00e9 ne sait pas".encode("latin-1") + b" \xff\xfe",
        "image.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "empty.md": b"",
        "blank.txt": b"  \n\n  \n",
        "deep/er/good.md": GOOD_MD,
        "notes.pdf": b"%PDF-1.4 not text we read",
        ".hidden/secret.txt": "Should not be indexed at all.",
    })


def test_read_text_reasons(messy_corpus):
    for name, reason in [("latin1.txt", "UTF-8"), ("image.txt", "binary"), ("empty.md", "empty"),
                         ("blank.txt", "empty")]:
        with pytest.raises(SkippedFile, match=reason):
            read_text(messy_corpus / name)
    assert read_text(messy_corpus / "deep/er/good.md") == GOOD_MD


def test_read_text_keeps_crlf_and_bom(tmp_path):
    p = tmp_path / "w.txt"
    p.write_bytes("\ufeffLine one.\r\nLine two.\r\n".encode("utf-8"))
    text = read_text(p)
    assert text == "\ufeffLine one.\r\nLine two.\r\n"
    from index.chunk import make_chunks

    doc = clean_document("w.txt", text)
    chunks = make_chunks(doc, ChunkParams())
    assert chunks[0].text.startswith("Line one.")
    assert all(c.text == text[c.start:c.end] for c in chunks)


def test_find_files_walks_folders_recursively(messy_corpus, tmp_path):
    extra = write_corpus(tmp_path / "other", {"a/b/c/deep.txt": "Deep text.", "top.md": "Top.", "x.json": "{}"})
    root, files = find_files([messy_corpus])
    names = {f.relative_to(root).as_posix() for f in files}
    assert names == {"latin1.txt", "image.txt", "empty.md", "blank.txt", "deep/er/good.md", "notes.pdf"}
    root, files = find_files([extra])
    assert {f.relative_to(root).as_posix() for f in files} == {"a/b/c/deep.txt", "top.md"}
    # single files are accepted as corpus paths too
    root, files = find_files([extra / "top.md", extra / "a"])
    assert {f.name for f in files} == {"top.md", "deep.txt"}


@pytest.mark.parametrize("path", ["/nonexistent/corpus", "/dev/null"])
def test_find_files_rejects_bad_paths(path):
    with pytest.raises(IngestError):
        find_files([Path(path)])


def test_build_with_bad_files_warns_once_per_file_and_indexes_the_good_one(messy_corpus, tmp_path):
    warnings: list[str] = []
    index, _ = build_index([messy_corpus], tmp_path / "index", ChunkParams(), BM25Params(), warn=warnings.append)
    bad = ["latin1.txt", "image.txt", "empty.md", "blank.txt", "notes.pdf"]  # notes.pdf: a corrupt PDF
    for name in bad:
        assert sum(name in w for w in warnings) == 1, (name, warnings)
    assert len(warnings) == len(bad)
    docs = {r["doc"] for r in index.records}
    assert docs == {"deep/er/good.md"}
    assert any("Witkoff drafted the plan" in r["text"] for r in index.records)
    skipped = {f.doc: f.skipped for f in index.manifest.files if f.skipped}
    assert set(skipped) == set(bad)
