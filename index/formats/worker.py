"""Read non-text files in a worker process, one at a time, each under a time and memory limit.

The worker is `python -m index.formats.worker`: it reads one JSON path a line on stdin and answers one JSON line
(`{"ok": Extracted}` or `{"skip": reason}`). A file that outlasts the time limit gets the worker killed (and a new
one started for the next file); a crash of the worker skips only the file it was reading.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

from . import MEMORY_BYTES, TIMEOUT_SECONDS, Extracted, SkippedFile, extract, format_of


class Extractor:
    """Reads files: text in this process, everything else through the worker (started on first need)."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS, memory: int = MEMORY_BYTES) -> None:
        self.timeout = timeout
        self.memory = memory
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, path: Path) -> Extracted:
        """The file's text layer; SkippedFile with a one-line reason when it cannot be read in time."""
        if format_of(path) == "text":
            return extract(path)
        proc = self._start()
        try:
            proc.stdin.write(json.dumps(str(path)) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            line = proc.stdout.readline() if ready else None
        except (BrokenPipeError, OSError):
            line = ""
        if line is None:
            self.close()
            raise SkippedFile(f"reading took longer than {self.timeout:g} s")
        if not line:
            self.close()
            raise SkippedFile("the extractor crashed on it")
        reply = json.loads(line)
        if "skip" in reply:
            raise SkippedFile(reply["skip"])
        return Extracted.model_validate(reply["ok"])

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "index.formats.worker", str(self.memory)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, encoding="utf-8", env=env)
        return self._proc

    def close(self) -> None:
        """Stop the worker (killed: it may be stuck in a file)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:160]


def serve(memory: int) -> None:
    """The worker's loop: one path in, one JSON reply out, until stdin closes."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):
        pass
    for line in sys.stdin:
        path = Path(json.loads(line))
        try:
            reply = {"ok": extract(path).model_dump()}
        except SkippedFile as exc:
            reply = {"skip": str(exc)}
        except MemoryError:
            reply = {"skip": "needs more memory than extraction may use"}
        except RecursionError:
            reply = {"skip": "nested too deeply to read"}
        except Exception as exc:  # a library's own error on a malformed file: skip the file, keep serving
            reply = {"skip": f"unreadable ({type(exc).__name__}: {_first_line(exc)})"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 3 << 30)
