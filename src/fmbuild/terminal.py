"""Text for a terminal: control characters from notes and runs shown, never obeyed.

A module's log or a note's link text can hold `ESC c` (reset the terminal), cursor moves and
screen clears, OSC 8 hyperlinks that hide where they point, a bell, other C0 and C1 controls,
or bidi overrides that make a line read differently from what it says. Every command's text
output passes such text through `printable`, which writes each of these characters as a
visible escape (`\\x1b`, `\\u202e`), as the site escapes logs. Newlines and tabs stay (output is
line-based); JSON output is left to `json.dumps`, which escapes C0 itself, so it stays exact.
"""

from __future__ import annotations

import re

# C0 but tab and newline, DEL, C1; bidi embeddings, overrides and isolates, the invisible
# direction marks; line and paragraph separators (a line break the terminal does not see as one).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    # `\uXXXX` above ASCII: inside a JSON string (where json.dumps leaves C1 and bidi characters
    # raw) it is the same character again, so JSON output stays exact; C0 never reaches JSON raw.
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` with every terminal control character written as a visible escape."""
    value = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_visible, value) if _UNSAFE.search(value) else value


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` for anything that may quote a note, a record or a run's output."""
    import click

    click.echo(printable(message), err=err, nl=nl)
