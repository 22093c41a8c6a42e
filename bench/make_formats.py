"""Write a seed article as a PDF, a saved web page, a Word file or an e-book, the way people keep documents.

Used by the format tests and `python -m bench.formats`; needs the `test` extra (reportlab, python-docx).
Each function takes the seed's text (one paragraph per line, its first line the headline) and writes `out`.
"""
from __future__ import annotations

import html
import zipfile
from pathlib import Path

HEADER = "Geopolitical Review · Weekly Briefing"


def paragraphs(text: str) -> list[str]:
    """The seed's non-blank lines: each is a paragraph."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_title(text: str) -> tuple[str | None, list[str]]:
    """The headline (a short first line without a full stop) and the body paragraphs."""
    paras = paragraphs(text)
    if paras and len(paras[0]) <= 200 and not paras[0].endswith((".", ":", "?", "!")):
        return paras[0], paras[1:]
    return None, paras


def make_pdf(text: str, out: Path, title: str | None = None, header: str = HEADER) -> Path:
    """A letter-size PDF with a running header, the title, the paragraphs and "Page N" at the foot of each page."""
    import reportlab
    from reportlab.lib.pagesizes import LETTER
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    fonts = Path(reportlab.__file__).parent / "fonts"
    pdfmetrics.registerFont(TTFont("Vera", str(fonts / "Vera.ttf")))
    pdfmetrics.registerFont(TTFont("VeraBd", str(fonts / "VeraBd.ttf")))
    body = ParagraphStyle("body", fontName="Vera", fontSize=10.5, leading=14, spaceAfter=8)
    head = ParagraphStyle("head", fontName="VeraBd", fontSize=16, leading=20, spaceAfter=12)

    def decorate(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Vera", 8.5)
        canvas.drawString(72, LETTER[1] - 40, header)
        canvas.drawRightString(LETTER[0] - 72, 30, f"Page {doc.page}")
        canvas.restoreState()

    headline, paras = split_title(text)
    title = title if title is not None else headline
    story = [Paragraph(html.escape(title), head), Spacer(1, 6)] if title else []
    story += [Paragraph(html.escape(p), body) for p in paras]
    pdf = SimpleDocTemplate(str(out), pagesize=LETTER, title=title or "", author="Analyst Desk",
                            topMargin=60, bottomMargin=54)
    pdf.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return out


_MENU = "".join(f'<li><a href="/{s.lower()}">{s}</a></li>' for s in
                ("World", "Politics", "Business", "Opinion", "Podcasts", "Newsletters", "Subscribe"))
_RELATED = [
    "Ten things to know about the ceasefire talks",
    "Opinion: Why sanctions relief is back on the table",
    "Markets rally as oil prices slide on peace hopes",
    "Watch: the week in 90 seconds",
]


def make_html(text: str, out: Path, author: str = "Jane Analyst", date: str = "2025-11-20") -> Path:
    """A saved news page: meta tags, scripts, a menu, a cookie banner, the article, related links and a footer."""
    title, paras = split_title(text)
    h1 = f"<h1>{html.escape(title)}</h1>" if title else ""
    title = title or "World news"
    body = "\n".join(f"      <p>{html.escape(p)}</p>" for p in paras)
    related = "".join(f'<li><a href="/story/{i}">{html.escape(t)}</a></li>' for i, t in enumerate(_RELATED))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)} | The Daily Ledger</title>
  <meta property="og:title" content="{html.escape(title)}">
  <meta name="author" content="{html.escape(author)}">
  <meta property="article:published_time" content="{date}T08:30:00Z">
  <meta name="description" content="{html.escape(paras[0][:150])}">
  <link rel="stylesheet" href="/static/site.css">
  <script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}} gtag('js', new Date());</script>
  <script src="https://cdn.example.com/ads.js" async></script>
  <style>.cookie-banner {{ position: fixed; bottom: 0; }}</style>
</head>
<body>
  <div class="cookie-banner" id="cookie-consent">
    <p>We use cookies to improve your experience and to show you personalised advertising. By continuing to browse
    you accept our use of cookies.</p><button>Accept all cookies</button><button>Manage preferences</button>
  </div>
  <header class="site-header">
    <a class="logo" href="/">The Daily Ledger</a>
    <nav class="main-menu"><ul>{_MENU}</ul></nav>
    <form class="search"><input type="search" placeholder="Search the Ledger"></form>
  </header>
  <main>
    <article class="story">
      {h1}
      <div class="byline">By <a href="/authors/jane">{html.escape(author)}</a> · <time datetime="{date}">{date}</time></div>
{body}
    </article>
    <aside class="related">
      <h2>Related articles</h2>
      <ul>{related}</ul>
    </aside>
    <div class="newsletter"><h3>Get the morning briefing</h3><p>Sign up for our free newsletter and never miss a
    story.</p><button>Sign up</button></div>
  </main>
  <footer class="site-footer">
    <p>© 2025 The Daily Ledger Media Group. All rights reserved.</p>
    <ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li>
    <li><a href="/contact">Contact us</a></li><li><a href="/careers">Careers</a></li></ul>
  </footer>
  <script>document.querySelectorAll('.cookie-banner button').forEach(b => b.onclick = () => b.parentNode.remove());</script>
</body>
</html>
"""
    out.write_text(page, encoding="utf-8")
    return out


def make_docx(text: str, out: Path, table: list[list[str]] | None = None) -> Path:
    """A Word file: the headline as a heading, the paragraphs, and (optionally) a table after the second paragraph."""
    import docx

    title, paras = split_title(text)
    d = docx.Document()
    d.core_properties.author = "Analyst Desk"
    if title:
        d.core_properties.title = title
        d.add_heading(title, level=1)
    for i, p in enumerate(paras):
        d.add_paragraph(p)
        if i == 1 and table:
            t = d.add_table(rows=len(table), cols=len(table[0]))
            for r, row in enumerate(table):
                for c, cell in enumerate(row):
                    t.cell(r, c).text = cell
    d.save(str(out))
    return out


def make_epub(text: str, out: Path, chapters: int = 3) -> Path:
    """An EPUB 3 whose spine holds the paragraphs in `chapters` XHTML files (the manifest lists them out of order)."""
    title, body = split_title(text)
    size = -(-len(body) // chapters)
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml", """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>""")
        items = "".join(f'<item id="ch{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                        for i in reversed(range(len(parts))))
        spine = "".join(f'<itemref idref="ch{i}"/>' for i in range(len(parts)))
        z.writestr("OEBPS/content.opf", f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0000</dc:identifier><dc:title>{html.escape(title or "Untitled")}</dc:title>
    <dc:creator>Analyst Desk</dc:creator><dc:date>2025-11-21</dc:date><dc:language>en</dc:language>
  </metadata>
  <manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>{items}</manifest>
  <spine>{spine}</spine>
</package>""")
        z.writestr("OEBPS/nav.xhtml", '<html xmlns="http://www.w3.org/1999/xhtml"><body><nav><ol><li>Contents</li>'
                                      '</ol></nav></body></html>')
        for i, part in enumerate(parts):
            heading = f"<h1>{html.escape(title)}</h1>" if i == 0 and title else f"<h2>Part {i + 1}</h2>"
            ps = "\n".join(f"<p>{html.escape(p)}</p>" for p in part)
            z.writestr(f"OEBPS/text/ch{i}.xhtml", f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Part {i + 1}</title></head>
<body>{heading}
{ps}
</body></html>""")
    return out
