"""Copying from the chat app: the terminal clipboard (OSC 52) when it is known to work, else a file the user can open.

OSC 52 is a request the terminal may silently ignore, so the app never says "copied" unless the route is known to
work: inside tmux only with `set-clipboard on`, outside tmux only in terminals known to accept it. Otherwise the
text also goes to a file under the state directory and the message names it.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# TERM_PROGRAM values and TERM prefixes of terminals that accept OSC 52 clipboard writes by default.
OSC52_PROGRAMS = frozenset({"iTerm.app", "WezTerm", "ghostty", "vscode", "rio", "contour", "Tabby"})
OSC52_TERMS = ("xterm-kitty", "alacritty", "foot", "wezterm", "xterm-ghostty", "contour", "rio")


@dataclass(frozen=True)
class ClipboardRoute:
    """How a copy will be made: whether to send OSC 52, whether it surely arrives, and why not when it may not."""

    osc52: bool
    reliable: bool
    reason: str = ""


def clipboard_route(env: Mapping[str, str], tmux_set_clipboard: str | None = None) -> ClipboardRoute:
    """Decide from the environment (and tmux's `set-clipboard` option when inside tmux) whether OSC 52 works."""
    if env.get("TMUX"):
        setting = (tmux_set_clipboard or "").strip()
        if setting == "on":
            return ClipboardRoute(True, True)
        shown = setting or "unknown"
        return ClipboardRoute(False, False, f"tmux passes the clipboard on only with set-clipboard on (it is {shown})")
    if env.get("STY"):
        return ClipboardRoute(False, False, "GNU screen does not pass the terminal clipboard on")
    if env.get("WT_SESSION") or env.get("KITTY_WINDOW_ID") or env.get("WEZTERM_PANE"):
        return ClipboardRoute(True, True)
    if env.get("TERM_PROGRAM", "") in OSC52_PROGRAMS:
        return ClipboardRoute(True, True)
    if env.get("TERM", "").startswith(OSC52_TERMS):
        return ClipboardRoute(True, True)
    return ClipboardRoute(True, False, "this terminal is not known to accept clipboard requests (OSC 52)")


def tmux_set_clipboard() -> str | None:
    """The value of tmux's global set-clipboard option, or None when tmux cannot be asked."""
    tmux = shutil.which("tmux")
    if tmux is None:
        return None
    try:
        done = subprocess.run([tmux, "show", "-gv", "set-clipboard"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def copy_message(what: str, route: ClipboardRoute, saved: Path | None) -> str:
    """What the app tells the user after a copy: only what really happened."""
    if route.reliable:
        return f"Copied {what} to the clipboard (OSC 52)"
    lines = []
    if route.osc52:
        lines.append(f"Sent {what} to the terminal clipboard (OSC 52), but {route.reason}")
    else:
        lines.append(f"Not copied to the clipboard: {route.reason}")
    if saved is not None:
        lines.append(f"Saved {what} to {saved}")
    else:
        lines.append("It could not be saved to a file either")
    return ". ".join(lines)
