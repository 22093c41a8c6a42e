"""The one sanitiser for text that reaches a terminal: file names, warnings, progress lines, passages, documents.

A file's text or name may hold C0/C1 control characters (ESC starts the sequences that set a window title, write
the clipboard, or recolour the screen), the bidirectional overrides that reorder what a terminal shows, or lone
surrogates (a file name's undecodable bytes, which cannot even be printed). Two presentations of one rule:

- `escape_controls` (plain output, warnings, errors): each such character as `\\xNN` or `\\uNNNN` (a file name's
  undecodable byte as the `\\xNN` of that byte); tab and newline stay.
- `visible_controls` (the chat app, which keeps offsets into the text): the same characters replaced one for one,
  so every offset still holds: the whitespace controls (CR, VT, FF, the separators \\x1c-\\x1f, NEL) by a space,
  the other C0 controls and DEL by their control pictures (␛ for ESC), C1 controls, bidirectional overrides and
  lone surrogates by U+FFFD.
"""
from __future__ import annotations

import re

# C0 and C1 controls (but tab and newline), DEL, the bidirectional overrides and isolates, lone surrogates
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# in passages the whitespace controls (\r, \x0b, \x0c, \x1c-\x1f, \x85) are left: rendering folds them into spaces
PASSAGE_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_WHITESPACE_CONTROLS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x1f\x85")


def _escaped(m: re.Match) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, controls: re.Pattern = CONTROLS) -> str:
    """Control characters and escape sequences shown as \\xNN / \\uNNNN, so text can never drive the terminal."""
    return controls.sub(_escaped, text)


def _picture(m: re.Match) -> str:
    ch = m.group()
    if ch in _WHITESPACE_CONTROLS:
        return " "
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def visible_controls(text: str) -> str:
    """The text with every control character replaced by one visible (or blank) character: same length."""
    return CONTROLS.sub(_picture, text)


def has_controls(text: str) -> bool:
    return CONTROLS.search(text) is not None
