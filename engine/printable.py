"""Text from a store or a client, made safe to show on a terminal or in a spreadsheet.

Object keys, metadata and servers' error texts are written by someone else: an
escape sequence in a key would otherwise repaint, retitle or blank the
operator's terminal, and a cell starting with `=` would run as a formula when
an export is opened. Everything that shows such text goes through here.
"""

from __future__ import annotations

import unicodedata

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """`text` with control and bidi-override characters shown as escapes (`\\x1b`, `\\u202e`).

    Plain text, including any non-ASCII letters, comes back unchanged, so the
    common case costs one scan."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if unicodedata.category(ch) == "Zs":
        return ch
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def spreadsheet_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text instead of evaluating (OWASP's rule)."""
    return "'" + text if text.startswith(_FORMULA_START) else text
