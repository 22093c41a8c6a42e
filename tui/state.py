"""What the chat app keeps between runs, under the user's state directory: question history, the last conversation,
clipboard fallbacks and default exports. Reading never raises: a missing or damaged file reads as empty."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from pydantic import ValidationError

from qa import Answer

APP_DIR = "qa-offline"
HISTORY_FILE = "history.jsonl"
CONVERSATION_FILE = "last-conversation.jsonl"
CLIPBOARD_FILE = "clipboard.txt"
HISTORY_LIMIT = 1000


def state_dir(env: dict[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/qa-offline, or ~/.local/state/qa-offline (the XDG default)."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base).expanduser() if base and Path(base).expanduser().is_absolute() else \
        Path.home() / ".local" / "state"
    return root / APP_DIR


def documents_dir(env: dict[str, str] | None = None) -> Path | None:
    """The user's documents folder when it exists ($XDG_DOCUMENTS_DIR or ~/Documents), else None."""
    env = os.environ if env is None else env
    for candidate in (env.get("XDG_DOCUMENTS_DIR"), str(Path.home() / "Documents")):
        if candidate and Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser()
    return None


def default_export_path(when: dt.datetime | None = None, env: dict[str, str] | None = None) -> Path:
    """Where an export goes unless the user says otherwise: the documents folder, else the state directory."""
    when = when or dt.datetime.now()
    folder = documents_dir(env) or state_dir(env) / "exports"
    return folder / f"qa-chat-{when:%Y%m%d-%H%M%S}.md"


def _read_lines(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def load_history(folder: Path | None = None) -> list[str]:
    """Questions asked in earlier runs, oldest first."""
    items = _read_lines((folder or state_dir()) / HISTORY_FILE)
    return [i["question"] for i in items if isinstance(i.get("question"), str) and i["question"].strip()]


def append_history(question: str, corpus: str, folder: Path | None = None) -> None:
    """Add one question to the history file (trimmed to the last HISTORY_LIMIT questions now and then)."""
    folder = folder or state_dir()
    path = folder / HISTORY_FILE
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"question": question, "corpus": corpus, "time": dt.datetime.now().isoformat(timespec="seconds")},
                      ensure_ascii=False)
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    if path.stat().st_size > 400 * HISTORY_LIMIT:
        kept = path.read_text(encoding="utf-8").splitlines()[-HISTORY_LIMIT:]
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def save_conversation(turns: list[tuple[str, Answer | None, str | None]], corpus: str,
                      folder: Path | None = None) -> Path:
    """Write the conversation (question, reply or error per turn) so the next run can reopen it."""
    folder = folder or state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONVERSATION_FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for question, reply, error in turns:
            item = {"question": question, "corpus": corpus, "error": error,
                    "reply": reply.model_dump(mode="json") if reply is not None else None}
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def load_conversation(folder: Path | None = None) -> list[tuple[str, Answer | None, str | None]]:
    """The conversation saved by the last run; turns that no longer parse are left out."""
    out = []
    for item in _read_lines((folder or state_dir()) / CONVERSATION_FILE):
        question = item.get("question")
        if not isinstance(question, str):
            continue
        reply = None
        if item.get("reply") is not None:
            try:
                reply = Answer.model_validate(item["reply"])
            except ValidationError:
                continue
        error = item.get("error") if isinstance(item.get("error"), str) else None
        if reply is None and error is None:
            continue
        out.append((question, reply, error))
    return out


def save_clipboard(text: str, folder: Path | None = None) -> Path:
    """The copy fallback: the copied text in a file of its own, replaced at each copy."""
    folder = folder or state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLIPBOARD_FILE
    path.write_text(text + "\n", encoding="utf-8")
    return path
