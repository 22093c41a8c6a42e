"""`qa`: ask (one question or a stdin batch), index, eval, chat. Errors are one line on stderr, never a traceback."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from index.terminal import PASSAGE_CONTROLS as _PASSAGE_CONTROLS  # the one sanitiser: index/terminal.py
from index.terminal import escape_controls

from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, PartialFailure, QAError, UsageError, exit_code_for


class ArgParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exits 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, action="append", metavar="DIR",
                   help="files or folders to answer from (default: ./seeds; env QA_CORPUS)")
    p.add_argument("--index-dir", type=Path, metavar="DIR", help="where the index lives (env QA_INDEX_DIR)")
    p.add_argument("--mode", choices=["bm25", "dense", "hybrid"], help="retrieval mode (default: hybrid)")
    p.add_argument("--no-rerank", action="store_true", help="skip the cross-encoder reranker")
    _links_option(p)
    _backend_options(p)


def _links_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--follow-links", action="store_true", default=None,
                   help="follow links to files outside the corpus folder (default: skip them; env QA_FOLLOW_LINKS)")


def _backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["embedded", "milvus"],
                   help="where passages are searched (default: embedded, the index folder; env QA_BACKEND)")
    p.add_argument("--milvus-uri", metavar="URI", help="the Milvus server, http://host:port (env QA_MILVUS_URI; "
                   "credentials only from QA_MILVUS_TOKEN)")
    p.add_argument("--milvus-collection", metavar="NAME", help="the alias to search and publish to (env "
                   "QA_MILVUS_COLLECTION; default: qa_ + the index folder's name)")


def build_parser() -> ArgParser:
    parser = ArgParser(prog="qa", description="Answer questions from a folder of documents with cited passages.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=ArgParser)

    ask = sub.add_parser("ask", help="answer a question (or one per stdin line)")
    ask.add_argument("question", nargs="*", help="the question; '-' or nothing reads questions from stdin")
    ask.add_argument("--json", action="store_true", help="print JSON (one object per question)")
    ask.add_argument("-k", "--top-k", type=int, metavar="N", help="passages to show (default 5)")
    ask.add_argument("--conversation", action="store_true",
                     help="stdin lines are one conversation: a line may follow up the lines before it "
                          "(a blank line starts a new conversation)")
    _common(ask)

    idx = sub.add_parser("index", help="build or update the index")
    idx.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the corpus)")
    idx.add_argument("--index-dir", type=Path, metavar="DIR")
    idx.add_argument("--force", action="store_true", help="rebuild even when up to date")
    idx.add_argument("--verify", action="store_true",
                     help="compare every file's content, not only those whose size or stamps changed")
    _links_option(idx)
    _backend_options(idx)

    ev = sub.add_parser("eval", help="score answers against a gold question set")
    ev.add_argument("gold", type=Path)
    _common(ev)
    ev.add_argument("--limit", type=int, metavar="N", help="evaluate a seeded random sample of N questions")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--json", action="store_true", help="print the full report as JSON")
    ev.add_argument("--compare", action="store_true", help="bm25, dense, hybrid and hybrid+rerank side by side")
    ev.add_argument("--min-hit1", type=float, metavar="X", help="exit 1 when hit@1 is below X")
    ev.add_argument("--misses", type=int, default=20, metavar="N", help="misses to list (default 20)")

    chat = sub.add_parser("chat", help="open the chat app")
    _common(chat)

    text = sub.add_parser("text", help="print the text a document's citations index (a PDF's, HTML's, DOCX's or "
                                       "EPUB's text layer; a .txt/.md file as it is)")
    text.add_argument("doc", help="the document as citations name it (path relative to the corpus root)")
    text.add_argument("--corpus", type=Path, action="append", metavar="DIR")
    text.add_argument("--index-dir", type=Path, metavar="DIR")
    _links_option(text)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qa-offline")
    except PackageNotFoundError:
        return "unknown (not installed)"


def settings_from(args: argparse.Namespace, **extra):
    from .settings import Settings

    overrides = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "corpus", None):
        overrides["corpus"] = args.corpus
    if getattr(args, "index_dir", None):
        overrides["index_dir"] = args.index_dir
    if getattr(args, "mode", None):
        overrides["mode"] = args.mode
    if getattr(args, "backend", None):
        overrides["backend"] = args.backend
    if getattr(args, "milvus_uri", None):
        overrides["milvus_uri"] = args.milvus_uri
    if getattr(args, "milvus_collection", None):
        overrides["milvus_collection"] = args.milvus_collection
    if getattr(args, "no_rerank", False):
        overrides["rerank"] = False
    if getattr(args, "follow_links", None):
        overrides["follow_links"] = True
    if getattr(args, "top_k", None) is not None:
        if args.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        overrides["top_k"] = args.top_k
    from pydantic import ValidationError

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"bad setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    settings.configure_index()
    return settings


class StderrProgress:
    """Build progress on stderr: a tqdm bar for embedding on a terminal, plain lines (no `\\r` frames) otherwise;
    one line per stage, per big file, and every few seconds while reading many files."""

    EVERY = 2.0  # seconds between plain progress lines of one stage

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.bar = None
        self.stage = None
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "embedding" and self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="embedding chunks", unit="chunk", file=self.stream, leave=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if stage in ("embedding", "reading"):
            what = "embedding chunks" if stage == "embedding" else "reading files"
            first = stage != self.stage
            self.stage = stage
            if first or done == total or now - self.last >= self.EVERY:
                self.last = now
                print(f"qa: {what}: {done}/{total}", file=self.stream, flush=True)
            return
        if stage != self.stage:
            self.stage = stage
            self.last = now
            print(f"qa: {escape_controls(stage)}…", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def warn(message: str) -> None:
    """One line on stderr; file names and document text in it are shown with their controls escaped."""
    print(f"qa: {escape_controls(message)}", file=sys.stderr, flush=True)


def _open(settings, rebuild: bool = False):
    from .answering import open_index

    progress = StderrProgress()
    try:
        return open_index(settings, progress=progress, warn=warn, rebuild=rebuild)
    finally:
        progress.close()


def _safe_passage(p):
    """A passage whose text shows controls escaped, its span and sentence offsets moved to match."""
    text = p.text
    if not _PASSAGE_CONTROLS.search(text):
        return p
    base = p.citation.start
    new_at = [0] * (len(text) + 1)
    pieces = []
    at = 0
    for i, ch in enumerate(text):
        new_at[i] = at
        piece = escape_controls(ch, _PASSAGE_CONTROLS)
        pieces.append(piece)
        at += len(piece)
    new_at[len(text)] = at

    def move(offset):
        return None if offset is None else base + new_at[offset - base]

    return p.model_copy(update={
        "text": "".join(pieces), "answer": escape_controls(p.answer) if p.answer is not None else None,
        "answer_start": move(p.answer_start), "answer_end": move(p.answer_end),
        "sentence_start": move(p.sentence_start), "sentence_end": move(p.sentence_end),
        "citation": p.citation.model_copy(update={
            k: escape_controls(v) for k in ("doc", "title", "date", "author") if (v := getattr(p.citation, k))}),
    })


def safe_for_terminal(ans):
    """The answer as text mode prints it: every string from the question or the files with controls escaped."""
    return ans.model_copy(update={
        "question": escape_controls(ans.question),
        "query": escape_controls(ans.query) if ans.query else ans.query,
        "answer": escape_controls(ans.answer) if ans.answer else ans.answer,
        "groups": [g.model_copy(update={"answer": escape_controls(g.answer), "docs": [escape_controls(d) for d in g.docs]})
                   for g in ans.groups],
        "passages": [_safe_passage(p) for p in ans.passages],
    })


_SURROGATE = re.compile("[\ud800-\udfff]")


def _bounded_lines(stream, max_bytes: int | None) -> Iterator[str | bytes]:
    """The stream's lines, each at most max_bytes long: the rest of a longer line is read and dropped a block at a
    time (a file piped in by mistake is not held whole)."""
    if max_bytes is None or not hasattr(stream, "readline"):
        yield from stream
        return
    while True:
        line = stream.readline(max_bytes)
        if not line:
            return
        if len(line) == max_bytes and not line.endswith(b"\n" if isinstance(line, bytes) else "\n"):
            while True:  # drop the rest of the line
                rest = stream.readline(1 << 16)
                if not rest or rest.endswith(b"\n" if isinstance(rest, bytes) else "\n"):
                    break
            if isinstance(line, bytes):  # a character cut at the limit is dropped, not reported as a bad byte
                line = line[:len(line) - _partial_utf8_tail(line)]
        yield line


def _partial_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of data start a UTF-8 character they do not finish."""
    for k in range(1, min(4, len(data)) + 1):
        b = data[-k]
        if b & 0xC0 != 0x80:  # a lead byte (or ASCII): does the character it starts fit in k bytes?
            need = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            return k if need > k else 0
    return 0


def stdin_questions(stream, report, max_bytes: int | None = None) -> Iterator[str]:
    """Each stdin line as text, stripped, whatever its bytes: invalid UTF-8 becomes U+FFFD and report(n) names the
    line (a bad byte never ends the batch); with max_bytes, a longer line is cut there while it is read."""
    for n, raw in enumerate(_bounded_lines(stream, max_bytes), 1):
        if isinstance(raw, str):  # a text stream: undecodable bytes may sit in it as lone surrogates
            text = raw
            if _SURROGATE.search(text):
                text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                text = _SURROGATE.sub("\ufffd", text)
                report(n)
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                report(n)
        yield (text.lstrip("\ufeff") if n == 1 else text).strip()


def cmd_ask(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    words = args.question
    from_stdin = not words or words == ["-"]
    if not from_stdin:
        question = " ".join(words).strip()
        if not question:
            raise UsageError("empty question")
        if question == "-":
            from_stdin = True
    if args.conversation and not from_stdin:
        raise UsageError("--conversation reads the questions from stdin, one per line")
    if from_stdin and sys.stdin is None:
        raise UsageError("no question given and no stdin to read")
    if from_stdin and sys.stdin.isatty():
        raise UsageError('no question given: qa ask "QUESTION", or pipe questions one per line')
    from .preload import preload_models

    preload_models(settings)
    from . import answer
    from .models import AnswerError
    from .render import render_answer

    index = _open(settings)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = shutil.get_terminal_size((100, 24)).columns
    shortened_once = []

    def note_long(q: str) -> None:
        """In text mode, say once that an over-long question was shortened for the reranker."""
        if args.json or shortened_once or not settings.rerank:
            return
        from .rerank import fitted_question

        fitted = fitted_question(q, settings.rerank_max_tokens)
        if fitted != q:
            shortened_once.append(True)
            warn(f"a question of {len(q.split())} words was shortened to {len(fitted.split())} to fit the reranker "
                 f"(its start and its content words are kept); this is said once")

    def bounded(q: str) -> str:
        """A question cut to max_question_chars before anything reads it (memory per question is bounded)."""
        limit = settings.max_question_chars
        if len(q) <= limit:
            return q
        warn(f"a question longer than {limit:,} characters was cut to its first {limit:,} (QA_MAX_QUESTION_CHARS "
             "sets the limit)")
        return q[:limit].strip()

    def fail(q: str, error: str) -> None:
        out = AnswerError(question=q, error=error)
        print(out.model_dump_json() if args.json else f"Q: {escape_controls(q)}\nerror: {escape_controls(error)}",
              flush=True)

    ask = (lambda q: answer(q, index, settings))
    if args.conversation:
        from .conversation import Conversation

        conversation = Conversation(index, settings)
        ask = conversation.ask

    def emit(q: str) -> bool:
        q = bounded(q)
        try:
            ans = ask(q)
            note_long(q)
        except QAError as exc:
            if not from_stdin:
                raise
            fail(q, str(exc))
            return False
        except Exception as exc:  # one bad line must not lose the others
            if not from_stdin:
                raise
            fail(q, f"{type(exc).__name__}: {exc}")
            return False
        print(ans.model_dump_json() if args.json else render_answer(safe_for_terminal(ans), color, width), flush=True)
        return True

    if not from_stdin:
        emit(question)
        return EXIT_OK

    def bad_bytes(n: int) -> None:
        warn(f"stdin line {n} is not valid UTF-8; its bad bytes were read as U+FFFD")

    failed = total = 0
    first = True
    lines = stdin_questions(getattr(sys.stdin, "buffer", sys.stdin), bad_bytes,
                            max_bytes=4 * settings.max_question_chars + 4)
    if args.conversation:
        def turns(lines):
            for q in lines:
                if q:
                    yield q
                else:
                    conversation.reset()  # a blank line starts a new conversation
        questions = turns(lines)
    else:
        questions = (q for q in lines if q)
    if settings.mode != "bm25" and not args.conversation:  # a follow-up's search waits for the answer before it
        from .retrieve import embed_ahead

        questions = embed_ahead(questions, settings.query_encoder)
        # the embedding thread takes the GIL back after each ONNX run; with the default 5 ms switch interval it
        # waited on the answering thread that long (0.5 ms: ~6% more questions/s on seeds)
        sys.setswitchinterval(0.0005)
    for q in questions:
        if not args.json and not first:
            print("\n" + "─" * min(width, 80) + "\n")
        first = False
        total += 1
        failed += not emit(q)
    if failed:
        raise PartialFailure(f"{failed} of {total} questions failed (each has its error in its place)")
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    from index.store import build_index

    settings = settings_from(args, corpus=args.paths or None)
    index_dir = settings.resolved_index_dir()
    t0 = time.perf_counter()
    if args.force and settings.backend == "milvus":
        index = _open(settings, rebuild=True)
        seconds = time.perf_counter() - t0
        status = "rebuilt"
    elif args.force:
        from index.ingest import IngestError
        from index.store import nothing_to_search

        from .errors import EmptyCorpusError, IndexWriteError

        progress = StderrProgress()
        try:
            index, seconds = build_index(settings.corpus, index_dir, settings.chunking, settings.bm25, progress, warn,
                                         dense_params=settings.dense)
        except IngestError:
            raise
        except OSError as exc:  # the same words and exit code as when `qa ask` builds it
            raise IndexWriteError(f"cannot write index at {index_dir}: {exc.strerror or exc}") from None
        finally:
            progress.close()
        if nothing_to_search(index.manifest):
            raise EmptyCorpusError(nothing_to_search(index.manifest))
        status = "rebuilt"
    else:
        before = _generation(index_dir)
        rebuild = args.verify and _verify_stale(settings, index_dir)
        index = _open(settings, rebuild=rebuild)
        seconds = time.perf_counter() - t0
        written = index.folder != before if settings.backend == "embedded" else index.written
        status = "built" if written else "up to date"
    m = index.manifest
    skipped = [f for f in m.files if f.skipped]
    where = index_dir if settings.backend == "embedded" else f"{index.store.uri} ({index.collection})"
    print(f"{status}: {counted(len(m.files) - len(skipped), 'file')}, {counted(m.num_chunks, 'chunk')}, "
          f"{len(skipped)} skipped, "
          f"{seconds:.2f} s → {escape_controls(str(where))}")
    return EXIT_OK


def _verify_stale(settings, index_dir: Path) -> bool:
    """`qa index --verify`: whether any file's content differs from the index, every file hashed."""
    from index.store import IndexCorrupt, read_manifest, scan_corpus, stale_reason

    try:
        manifest = read_manifest(index_dir)
    except IndexCorrupt:
        return True
    if manifest is None:
        return False  # nothing to verify: open_index builds it
    root, files = scan_corpus(settings.corpus)
    reason = stale_reason(manifest, root, files, settings.chunking, settings.bm25, verify=True,
                          dense_params=settings.dense)
    if reason:
        warn(f"{reason}; rebuilding")
    return reason is not None


def _generation(index_dir: Path) -> Path | None:
    """The index generation in use before a refresh (a new one means the refresh wrote; built_at has only seconds)."""
    from index.store import IndexCorrupt, current_generation

    try:
        return current_generation(index_dir)
    except IndexCorrupt:
        return None


def cmd_eval(args: argparse.Namespace) -> int:
    """The eval command's edge: load gold, open the index, run one or all configurations, print, gate."""
    from .answering import open_index
    from .evaluate import (check_min_hit1, compare_configs, evaluate, format_misses, format_reliability,
                           format_table, gold_warnings, label, load_gold, reports_json, sample)

    settings = settings_from(args)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    from .conversation import is_conversation_file, run_conversation_eval

    if is_conversation_file(args.gold):
        return run_conversation_eval(args, settings, warn)
    lines: dict[str, int] = {}
    items = sample(load_gold(args.gold, lines), args.limit, args.seed)
    index = open_index(settings, warn=warn)
    for message in gold_warnings(items, index, str(args.gold), lines):
        warn(message)
    configs = compare_configs(settings) if args.compare else [settings]
    reports = [evaluate(items, index, cfg, gold_name=str(args.gold), lines=lines) for cfg in configs]
    if args.json:
        print(reports_json(reports))
    else:
        r0 = reports[0]
        def say(text: str) -> None:  # gold questions and document names reach the terminal escaped
            print(escape_controls(text))

        say(f"{args.gold}: {r0.questions} questions ({r0.answerable} answerable, {r0.unanswerable} unanswerable), "
            f"corpus {index.manifest.corpus_root} ({counted(len(index.manifest.files), 'file')}, "
            f"{counted(index.manifest.num_chunks, 'chunk')})")
        say(format_table(reports))
        if reports[-1].ece is not None and reports[-1].reliability:
            say(format_reliability(reports[-1]))
        for r in reports:
            if r.unfaithful:
                say(f"unfaithful citations ({label(r)}): {', '.join(r.unfaithful[:10])}")
        print()
        say(format_misses(reports[-1], args.misses))
    check_min_hit1("hit@1", reports[-1].hit_at_1, args.min_hit1)
    return EXIT_OK


def cmd_text(args: argparse.Namespace) -> int:
    """Print the text a document's citations index (controls escaped on a terminal, exact when piped)."""
    from .answering import document_text

    index = _open(settings_from(args))
    if index.source(args.doc) is None:
        raise UsageError(f"{args.doc} is not in the index (documents are named relative to {index.corpus_root})")
    text = document_text(index, args.doc)
    sys.stdout.write(escape_controls(text) if sys.stdout.isatty() else text)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    try:
        from tui.app import run_app
    except ImportError as exc:
        raise UsageError(f"the chat app is not available: {exc}") from None
    return run_app(settings_from(args))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        if not argv:
            if sys.stdin.isatty() and sys.stdout.isatty():
                argv = ["chat"]
            else:
                argv = ["ask"]
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("no command given (see: qa --help)")
        command = {"ask": cmd_ask, "index": cmd_index, "eval": cmd_eval, "chat": cmd_chat,
                   "text": cmd_text}[args.command]
        return command(args)
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`qa ask … | head -1`): end quietly, as git and ripgrep do
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # every failure: one line, its kind's exit code, never a traceback
        if os.environ.get("QA_DEBUG") and not isinstance(exc, QAError):
            raise
        print(f"qa: error: {_one_line(exc)}", file=sys.stderr)
        return exit_code_for(exc)


def _one_line(exc: BaseException) -> str:
    """The exception as one line: qa's and the index's own messages as they are, others with their type."""
    from index.backend import BackendUnavailable
    from index.ingest import IngestError

    own = isinstance(exc, (QAError, IngestError, BackendUnavailable))
    msg = str(exc) if own else f"{type(exc).__name__}: {exc}"
    first = msg.splitlines()[0] if msg.strip() else type(exc).__name__
    return escape_controls(first)


def run() -> None:
    """The `qa` command: main(), then exit at once.

    Tearing the interpreter down (unloading faiss, onnxruntime, numpy and pydantic's schemas) took ~90 ms, a sixth of
    a one-shot `qa ask`; by the time main() returns every result is printed and every written file closed.
    """
    # qa uses no pydantic plugins; looking for them reads every installed package's entry points (~12 ms a start)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # a reader that went away: what it read was all it wanted
        pass
    except ValueError:  # a closed stream
        code = code or EXIT_RUNTIME
    os._exit(code)


def counted(n: int, noun: str) -> str:
    """'1 file', '5 files': a count with its noun in the right number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that nothing more is written to (or flushed into) a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    run()
