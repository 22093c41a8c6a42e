"""`qa`: ask (one question or a stdin batch), index, eval, chat. Errors are one line on stderr, never a traceback."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

EXIT_RUNTIME = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments: exit code 2."""


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


def build_parser() -> ArgParser:
    parser = ArgParser(prog="qa", description="Answer questions from a folder of documents with cited passages.")
    sub = parser.add_subparsers(dest="command", parser_class=ArgParser)

    ask = sub.add_parser("ask", help="answer a question (or one per stdin line)")
    ask.add_argument("question", nargs="*", help="the question; '-' or nothing reads questions from stdin")
    ask.add_argument("--json", action="store_true", help="print JSON (one object per question)")
    ask.add_argument("-k", "--top-k", type=int, metavar="N", help="passages to show (default 5)")
    _common(ask)

    idx = sub.add_parser("index", help="build or update the index")
    idx.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the corpus)")
    idx.add_argument("--index-dir", type=Path, metavar="DIR")
    idx.add_argument("--force", action="store_true", help="rebuild even when up to date")

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
    return parser


def settings_from(args: argparse.Namespace, **extra):
    from .settings import Settings

    overrides = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "corpus", None):
        overrides["corpus"] = args.corpus
    if getattr(args, "index_dir", None):
        overrides["index_dir"] = args.index_dir
    if getattr(args, "mode", None):
        overrides["mode"] = args.mode
    if getattr(args, "no_rerank", False):
        overrides["rerank"] = False
    if getattr(args, "top_k", None) is not None:
        if args.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        overrides["top_k"] = args.top_k
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"bad setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


class StderrProgress:
    """Build progress on stderr: a tqdm bar for embedding, one line per stage otherwise."""

    def __init__(self) -> None:
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "embedding":
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="embedding chunks", unit="chunk", file=sys.stderr, leave=False)
            self.bar.update(done - self.bar.n)
            return
        if stage != self.stage:
            self.stage = stage
            print(f"qa: {stage}…", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def warn(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr, flush=True)


def _open(settings):
    from .answering import CorpusError, open_index

    progress = StderrProgress()
    try:
        return open_index(settings, progress=progress, warn=warn)
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    finally:
        progress.close()


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
    if from_stdin and sys.stdin is None:
        raise UsageError("no question given and no stdin to read")
    if from_stdin and sys.stdin.isatty():
        raise UsageError('no question given: qa ask "QUESTION", or pipe questions one per line')
    from .preload import preload_models

    preload_models(settings)
    from . import QAError, answer
    from .models import AnswerError
    from .render import render_answer

    index = _open(settings)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = shutil.get_terminal_size((100, 24)).columns

    def emit(q: str) -> bool:
        try:
            ans = answer(q, index, settings)
        except QAError as exc:
            if not from_stdin:
                raise UsageError(str(exc)) from None
            out = AnswerError(question=q, error=str(exc))
            print(out.model_dump_json() if args.json else f"Q: {q}\nerror: {exc}", flush=True)
            return False
        except Exception as exc:  # one bad line must not lose the others
            if not from_stdin:
                raise
            out = AnswerError(question=q, error=f"{type(exc).__name__}: {exc}")
            print(out.model_dump_json() if args.json else f"Q: {q}\nerror: {out.error}", flush=True)
            return False
        print(ans.model_dump_json() if args.json else render_answer(ans, color, width), flush=True)
        return True

    if not from_stdin:
        emit(question)
        return 0
    ok = True
    first = True
    questions = (q for q in (line.strip() for line in sys.stdin) if q)
    if settings.mode != "bm25":
        from .retrieve import embed_ahead

        questions = embed_ahead(questions, settings.query_encoder)
        # the embedding thread takes the GIL back after each ONNX run; with the default 5 ms switch interval it
        # waited on the answering thread that long (0.5 ms: ~6% more questions/s on seeds)
        sys.setswitchinterval(0.0005)
    for q in questions:
        if not args.json and not first:
            print("\n" + "─" * min(width, 80) + "\n")
        first = False
        ok = emit(q) and ok
    return 0 if ok else EXIT_RUNTIME


def cmd_index(args: argparse.Namespace) -> int:
    from . import QAError
    from index.store import build_index

    settings = settings_from(args, corpus=args.paths or None)
    index_dir = settings.resolved_index_dir()
    if args.force:
        progress = StderrProgress()
        try:
            from index.ingest import IngestError

            index, seconds = build_index(settings.corpus, index_dir, settings.chunking, settings.bm25, progress, warn)
        except IngestError as exc:
            raise UsageError(str(exc)) from None
        finally:
            progress.close()
        status = "rebuilt"
    else:
        import time

        t0 = time.perf_counter()
        before = _manifest_time(index_dir)
        try:
            index = _open(settings)
        except QAError as exc:
            raise UsageError(str(exc)) from None
        seconds = time.perf_counter() - t0
        status = "up to date" if index.manifest.built_at == before else "built"
    m = index.manifest
    skipped = [f for f in m.files if f.skipped]
    print(f"{status}: {len(m.files) - len(skipped)} files, {m.num_chunks} chunks, {len(skipped)} skipped, "
          f"{seconds:.2f} s → {index_dir}")
    return 0


def _manifest_time(index_dir: Path) -> str | None:
    from index.store import IndexCorrupt, read_manifest

    try:
        m = read_manifest(index_dir)
    except IndexCorrupt:
        return None
    return m.built_at if m else None


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import run_eval_command

    return run_eval_command(args, settings_from(args))


def cmd_text(args: argparse.Namespace) -> int:
    from .answering import document_text

    index = _open(settings_from(args))
    if index.source(args.doc) is None:
        raise UsageError(f"{args.doc} is not in the index (documents are named relative to {index.corpus_root})")
    sys.stdout.write(document_text(index, args.doc))
    return 0


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
        command = {"ask": cmd_ask, "index": cmd_index, "eval": cmd_eval, "chat": cmd_chat, "text": cmd_text}[args.command]
        return command(args)
    except UsageError as exc:
        print(f"qa: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_RUNTIME
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if os.environ.get("QA_DEBUG"):
            raise
        from . import QAError

        msg = str(exc) if isinstance(exc, QAError) else f"{type(exc).__name__}: {exc}"
        print(f"qa: error: {msg.splitlines()[0] if msg else type(exc).__name__}", file=sys.stderr)
        return EXIT_RUNTIME


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
    except (BrokenPipeError, ValueError):  # a reader that went away, or a closed stream
        code = code or EXIT_RUNTIME
    os._exit(code)


if __name__ == "__main__":
    run()
