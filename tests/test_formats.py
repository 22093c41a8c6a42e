"""PDF, HTML, DOCX and EPUB documents, made from the seed texts: answered and cited as exactly as .txt files."""
from __future__ import annotations

import json
import os
import re
import shutil
import zipfile

import numpy as np
import pytest

from bench.make_formats import make_docx, make_epub, make_html, make_pdf, paragraphs
from conftest import SAMPLE_QUESTION, SEEDS, run_qa

SEED = {p.name[:3]: p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))}
BOILERPLATE = ["cookie", "Related articles", "All rights reserved", "Subscribe", "Privacy policy", "Newsletters",
               "Sign up", "Ten things to know", "dataLayer", "The Daily Ledger"]
TABLE = [["Proposal", "Army cap"], ["Istanbul 2022", "85,000"], ["European counterproposal", "800,000"]]


def squashed(s: str) -> str:
    return " ".join(s.split())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, isolated_environment):
    """A corpus of five documents in five formats, indexed once by the real `qa index`."""
    folder = tmp_path_factory.mktemp("mixed")
    make_pdf(SEED["003"], folder / "report.pdf")
    make_html(SEED["000"], folder / "saved page.html")
    make_docx(SEED["001"], folder / "memo.docx", table=TABLE)
    make_epub(SEED["002"], folder / "book.epub")
    shutil.copyfile(next(SEEDS.glob("004_*.txt")), folder / "notes.md")
    index_dir = tmp_path_factory.mktemp("mixed-index") / "index"
    r = run_qa(["index", str(folder), "--index-dir", str(index_dir)], isolated_environment, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "5 files" in r.stdout and "0 skipped" in r.stdout
    return folder, index_dir


def ask(question: str, folder, index_dir, cache) -> dict:
    r = run_qa(["ask", "--json", "--corpus", str(folder), "--index-dir", str(index_dir), question], cache)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def pdf_page_texts(path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return [squashed(pdf[i].get_textpage().get_text_range()) for i in range(len(pdf))]
    finally:
        pdf.close()


def test_sample_question_is_answered_from_the_pdf_with_its_page(mixed, isolated_environment):
    folder, index_dir = mixed
    reply = ask(SAMPLE_QUESTION, folder, index_dir, isolated_environment)
    assert reply["answered"] and "85,000" in reply["answer"]
    cited = [p for p in reply["passages"] if p["citation"]["doc"] == "report.pdf" and "85,000" in p["text"]]
    assert cited, [p["citation"]["doc"] for p in reply["passages"]]
    pages = pdf_page_texts(folder / "report.pdf")
    assert len(pages) >= 2
    for p in cited:
        c = p["citation"]
        assert c["format"] == "pdf" and c["page"] is not None
        first_words = " ".join(p["text"].split()[:8])
        assert first_words in pages[c["page"] - 1], (c["page"], first_words)
        last_words = " ".join(p["text"].split()[-6:])
        assert last_words in pages[c["page_end"] - 1]
    # the running header and page numbers never reach a passage
    assert all("Weekly Briefing" not in p["text"] and not re.search(r"\bPage \d", p["text"]) for p in cited)


def test_html_is_answered_from_the_article_and_never_cites_boilerplate(tmp_path, isolated_environment):
    folder = tmp_path / "web"
    folder.mkdir()
    make_html(SEED["000"], folder / "article.html", author="Matthew Luxmoore", date="2025-11-29")
    index_dir = tmp_path / "index"
    reply = ask(SAMPLE_QUESTION, folder, index_dir, isolated_environment)
    # the article's passage with the Istanbul draft's cap is shown, cited to the page (which figure the reader marks
    # there, 85,000 or the US plan's 800,000 one sentence on, is the reader's to get right: docs/reader.md)
    assert any("85,000 troops" in p["text"] for p in reply["passages"])
    top = reply["passages"][0]
    assert top["citation"]["doc"] == "article.html" and top["citation"]["format"] == "html"
    assert top["citation"]["author"] == "Matthew Luxmoore" and top["citation"]["date"] == "2025-11-29"
    for question in (SAMPLE_QUESTION, "how do I accept cookies?", "what are the related articles?",
                     "who owns the rights to the site?"):
        for p in ask(question, folder, index_dir, isolated_environment)["passages"]:
            assert not any(b.lower() in p["text"].lower() for b in BOILERPLATE), (question, p["text"][:200])
    r = run_qa(["text", "article.html", "--corpus", str(folder), "--index-dir", str(index_dir)], isolated_environment)
    assert r.returncode == 0, r.stderr
    assert not any(b.lower() in r.stdout.lower() for b in BOILERPLATE)
    assert [squashed(ln) for ln in r.stdout.splitlines()] == [squashed(p) for p in paragraphs(SEED["000"])]


def test_every_passage_of_every_format_indexes_its_text_layer(mixed, isolated_environment):
    from index.store import load_index

    folder, index_dir = mixed
    index = load_index(index_dir)
    formats = {s.doc: s.format for s in index.manifest.files}
    assert formats == {"report.pdf": "pdf", "saved page.html": "html", "memo.docx": "docx", "book.epub": "epub",
                       "notes.md": "text"}
    texts = {doc: index.text(doc) for doc in formats}
    seen = set()
    for i in range(index.manifest.num_chunks):
        c = index.chunk(i)
        assert texts[c.doc][c.start:c.end] == c.text
        assert texts[c.doc].count("\n", 0, c.start) + 1 == c.line_start
        seen.add(c.doc)
    assert seen == set(formats)
    # .md keeps offsets into the file itself; the others into their stored layer, which `qa text` prints
    assert texts["notes.md"] == (folder / "notes.md").read_text(encoding="utf-8")
    for doc in ("report.pdf", "memo.docx", "book.epub"):
        r = run_qa(["text", doc, "--corpus", str(folder), "--index-dir", str(index_dir)], isolated_environment)
        assert r.returncode == 0 and r.stdout == texts[doc]
    # each layer holds every paragraph of its seed, in order, and nothing it should not
    for doc, seed in (("report.pdf", "003"), ("memo.docx", "001"), ("book.epub", "002")):
        layer = [squashed(ln) for ln in texts[doc].splitlines()]
        body = [ln for ln in layer if ln in {squashed(p) for p in paragraphs(SEED[seed])}]
        assert body == [squashed(p) for p in paragraphs(SEED[seed])], doc
    assert "Istanbul 2022 | 85,000" in texts["memo.docx"]  # a table row as a line
    assert texts["book.epub"].index("Part 2") < texts["book.epub"].index("Part 3")  # spine order, not manifest order


def test_answers_from_docx_and_epub_cite_their_layers(mixed, isolated_environment):
    folder, index_dir = mixed
    from index.store import load_index

    index = load_index(index_dir)
    for question, doc in (("What did the European counterproposal cap the army at, according to the table?",
                           "memo.docx"),
                          ("What does the Shadow Negotiation article deconstruct?", "book.epub")):
        reply = ask(question, folder, index_dir, isolated_environment)
        ps = [p for p in reply["passages"] if p["citation"]["doc"] == doc]
        assert ps, (question, [p["citation"]["doc"] for p in reply["passages"]])
        for p in reply["passages"]:
            c = p["citation"]
            layer = index.text(c["doc"])
            assert layer[c["start"]:c["end"]] == p["text"]
            if p["answer"] is not None:
                assert layer[p["answer_start"]:p["answer_end"]] == p["answer"]


def test_unchanged_documents_reuse_their_layers_and_an_edited_one_is_reread(mixed, tmp_path, isolated_environment):
    from index.store import load_index

    src_folder, src_index = mixed
    folder = tmp_path / "corpus"
    shutil.copytree(src_folder, folder)
    index_dir = tmp_path / "index"
    shutil.copytree(src_index, index_dir)
    # the copy moved the corpus root and mtimes: one rebuild settles it, reusing every file's chunks
    r = run_qa(["index", str(folder), "--index-dir", str(index_dir)], isolated_environment)
    assert r.returncode == 0, r.stderr
    before = load_index(index_dir)
    os.utime(folder / "report.pdf")  # touched, not changed
    r = run_qa(["index", str(folder), "--index-dir", str(index_dir)], isolated_environment)
    assert r.stdout.startswith("up to date"), r.stdout
    make_docx(SEED["001"] + "\nThe memo was amended to add a paragraph about grain corridors.\n",
              folder / "memo.docx", table=TABLE)
    r = run_qa(["index", str(folder), "--index-dir", str(index_dir)], isolated_environment)
    assert r.returncode == 0 and r.stdout.startswith("built"), r.stdout + r.stderr
    after = load_index(index_dir)
    assert after.folder != before.folder
    old = {s.doc: s for s in before.manifest.files}
    new = {s.doc: s for s in after.manifest.files}
    assert new["memo.docx"].layer != old["memo.docx"].layer
    assert "grain corridors" in after.text("memo.docx")
    for doc in ("report.pdf", "saved page.html", "book.epub"):
        assert new[doc].layer == old[doc].layer and new[doc].pages == old[doc].pages
        assert after.text(doc) == before.text(doc)
    # the other documents' chunks kept their vectors: only the edited file's new chunks were embedded
    from index import dense

    old_vectors = dict(zip((r["hash"] for r in before.records), dense.faiss_vectors(before.faiss)))
    vectors = dense.faiss_vectors(after.faiss)
    kept = [i for i, r in enumerate(after.records) if r["doc"] != "memo.docx"]
    assert kept and all(np.array_equal(vectors[i], old_vectors[after.records[i]["hash"]]) for i in kept)
    assert not (after.folder / old["memo.docx"].layer).exists()


def test_a_new_extractor_version_rereads_only_non_text_files(mixed, tmp_path, monkeypatch):
    from index import formats
    from qa import Settings, open_index

    src_folder, src_index = mixed
    folder, index_dir = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(src_folder, folder)
    shutil.copytree(src_index, index_dir)
    settings = Settings(corpus=[folder], index_dir=index_dir)
    before = open_index(settings)  # settles the moved root, reusing everything
    monkeypatch.setattr(formats, "EXTRACTOR_VERSION", formats.EXTRACTOR_VERSION + 1)
    messages = []
    after = open_index(settings, progress=lambda stage, done, total: messages.append(stage))
    assert after.folder != before.folder
    versions = {s.doc: s.extractor_version for s in after.manifest.files}
    assert versions == {"report.pdf": formats.EXTRACTOR_VERSION, "saved page.html": formats.EXTRACTOR_VERSION,
                        "memo.docx": formats.EXTRACTOR_VERSION, "book.epub": formats.EXTRACTOR_VERSION, "notes.md": None}
    assert "embedding" not in messages  # same text again: every vector is reused by its chunk hash
    for doc in versions:
        assert after.text(doc) == before.text(doc)


# --- bad files: skipped with one line naming the file and the reason ---------------------------------------------

def _encrypted_pdf(path):
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), encrypt="secret")
    c.drawString(72, 720, "Confidential: the army cap is 85,000.")
    c.save()


def _scanned_pdf(path):
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path))
    for _ in range(2):
        c.rect(72, 72, 400, 600, fill=1)  # a page that is all picture, no text layer
        c.showPage()
    c.save()


def _zip_bomb(path, inner: str):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open(inner, "w") as f:
            block = b"\0" * (1 << 20)
            for _ in range(64):
                f.write(block)


BAD_FILES = {
    "locked.pdf": (_encrypted_pdf, "encrypted"),
    "scan.pdf": (_scanned_pdf, "no text layer"),
    "truncated.pdf": (lambda p: p.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n"), "corrupt PDF"),
    "bomb.docx": (lambda p: _zip_bomb(p, "word/document.xml"), "zip bomb"),
    "bomb.epub": (lambda p: _zip_bomb(p, "OEBPS/ch1.xhtml"), "zip bomb"),
    "really a pdf.epub": (lambda p: make_pdf(SEED["004"], p), "not an EPUB (the file is a PDF)"),
    "really text.docx": (lambda p: p.write_text("Just some notes, not a Word file.\n"), "not a DOCX"),
    "really a zip.html": (lambda p: make_epub(SEED["002"], p), "not HTML (the file is a zip archive)"),
    "menu only.html": (lambda p: p.write_text("<html><body><nav><a href='/'>Home</a> <a href='/a'>About</a></nav>"
                                              "<footer>© 2025</footer></body></html>"), "no main content"),
    "not a pdf.pdf": (lambda p: p.write_text("<html><body><p>hello</p></body></html>"), "not a PDF"),
}


def test_bad_files_are_skipped_with_one_line_each(tmp_path, isolated_environment):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, (make, _) in BAD_FILES.items():
        make(folder / name)
    (folder / "good.txt").write_text("The Istanbul draft of 2022 capped Ukraine's army at 85,000 troops.\n")
    r = run_qa(["index", str(folder), "--index-dir", str(tmp_path / "index")], isolated_environment, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"1 file, 1 chunk, {len(BAD_FILES)} skipped" in r.stdout
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("qa: skipped ")]
    assert len(lines) == len(BAD_FILES), r.stderr
    for name, (_, reason) in BAD_FILES.items():
        line = next((ln for ln in lines if ln.startswith(f"qa: skipped {name}: ")), None)
        assert line is not None and reason in line, (name, line)


def test_a_file_that_outlasts_the_time_limit_is_skipped_and_reading_goes_on(tmp_path):
    from index.formats import Extractor, SkippedFile

    pdf = make_pdf(SEED["003"], tmp_path / "slow.pdf")
    with Extractor(timeout=0.001) as ex:  # no worker starts that fast: the limit always trips
        with pytest.raises(SkippedFile, match="took longer than"):
            ex.read(pdf)
        ex.timeout = 60
        assert "Istanbul" in ex.read(pdf).text  # a fresh worker reads the next file


def test_pdf_line_end_hyphens_page_breaks_headers_and_page_numbers(tmp_path):
    from reportlab.pdfgen import canvas

    from index.formats import extract

    path = tmp_path / "wrapped.pdf"
    c = canvas.Canvas(str(path))
    pages = [["The delegations resumed the nego-", "tiation in Istanbul, where Russia asked for a cap on the",
              "size of the army. The talks went on for weeks and", "were then"],
             ["broken off in April 2022.", "", "A new paragraph starts after a blank line."]]
    for number, lines in enumerate(pages, 1):
        c.drawString(72, 750, "Istanbul Talks · Briefing Notes")
        for k, line in enumerate(lines):
            c.drawString(72, 720 - 14 * k, line)
        c.drawString(300, 40, str(number))
        c.showPage()
    c.save()
    out = extract(path)
    assert out.text == ("The delegations resumed the negotiation in Istanbul, where Russia asked for a cap on the size "
                        "of the army. The talks went on for weeks and were then broken off in April 2022.\n"
                        "A new paragraph starts after a blank line.\n")
    assert out.pages == [0, out.text.index("broken off")]


def test_layout_rules():
    from index.formats.layout import is_page_number, join_lines, running_lines

    assert join_lines(["the nego-", "tiation went on", "  for weeks"]) == "the negotiation went on for weeks"
    assert join_lines(["a well-", "Known case"]) == "a well- Known case"  # not a broken word
    assert join_lines(["soft\u00ad", "ware"]) == "software" and join_lines(["nego\x02", "tiation"]) == "negotiation"
    assert join_lines(["a soft\u00adly hidden hyphen"]) == "a softly hidden hyphen"
    assert all(is_page_number(s) for s in ("12", "- 3 -", "Page 4 of 9", "iv", "p. 7"))
    assert not any(is_page_number(s) for s in ("12 troops", "Page one", "2022 talks"))
    edges = [["Weekly Briefing", f"Page {i}"] for i in range(1, 5)]
    edges[2] = ["Weekly Briefing", "A line only once"]
    assert running_lines(edges) == {"weekly briefing", "page #"}


def test_the_viewer_opens_a_pdf_passage_in_its_text_layer_with_the_page(mixed):
    import asyncio

    from qa import Settings, document_text, open_index
    from tui.app import QAChatApp
    from tui.viewer import DocumentScreen, DocView
    from tui.widgets import AnswerCard, PassageItem

    folder, index_dir = mixed
    settings = Settings(corpus=[folder], index_dir=index_dir)
    layer = document_text(open_index(settings), "report.pdf")

    async def run() -> None:
        app = QAChatApp(settings, warm_up=False)
        async with app.run_test(size=(110, 40)) as pilot:
            await app.workers.wait_for_complete()
            app.chat.question_input.value = SAMPLE_QUESTION
            await pilot.press("enter")
            for _ in range(600):
                await pilot.pause(0.1)
                if app.chat.query(AnswerCard):
                    break
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("tab")
            for _ in range(6):
                await pilot.pause()
                if isinstance(app.focused, PassageItem) and app.focused.passage.citation.doc == "report.pdf":
                    break
                await pilot.press("down")
            passage = app.focused.passage
            assert passage.citation.doc == "report.pdf"
            if not app.focused.expanded:  # a folded passage: enter unfolds it, a second enter opens the source
                await pilot.press("enter")
                await pilot.pause(0.2)
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert isinstance(app.screen, DocumentScreen)
            view = app.screen.query_one(DocView)
            c = passage.citation
            assert view.text == layer and view.text[c.start:c.end] == passage.text
            assert c.line_start in view.visible_lines()
            info = str(app.screen.query_one("#doc-info").content)
            assert f"page {c.page}" in info and "PDF text layer" in info

    asyncio.run(run())


def test_an_entity_bomb_in_a_docx_is_not_expanded(tmp_path):
    from index.formats import SkippedFile, extract

    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    xml = (f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
           '<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p><w:p><w:r><w:t>Real text.</w:t></w:r></w:p></w:body></w:document>')
    path = tmp_path / "laughs.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", xml)
    try:
        text = extract(path).text
    except SkippedFile as exc:
        assert "DOCX" in str(exc)
    else:
        assert len(text) < 1000  # 10^9 "lol"s never materialise
