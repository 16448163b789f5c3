"""Which lines of a note are body rows of a GFM table (outside code): a playbook's tables of
wikilinks declare what it covers and applies. Agrees with markdown-it's table rule on the
cases the Field Manual meets (outer pipes or none, alignment colons, escaped pipes, tables in
block quotes and lists, lazy rows, the block starts that end a table)."""

from __future__ import annotations

import re
from typing import Iterator

from fmbuild.vault.lines import Lines

# What marks a line as a possible delimiter row: `|` then `-`, or `-` then `|` (blanks and an
# alignment colon between). Where pipes are few, both are matched at each `|` found by
# `str.find` (the second on the reversed text), so plain text (`-` is everywhere) is never
# scanned by the regex, which tries every offset.
_DELIM_HINT = re.compile(r"\|[ \t]*:?-|-[ \t]*:?\|")
_PIPE_DASH = re.compile(r"\|[ \t]*:?-")
_DASH_PIPE_REVERSED = re.compile(r"\|:?[ \t]*-")
_DELIM_ROW = re.compile(r"\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?[ \t]*|\|[ \t]*:?-+:?[ \t]*")
_CONTAINER = re.compile(r"[ \t]*(?:>[ \t]?)*")
_ESCAPED_PIPE = re.compile(r"\\\|")
# What ends a table (besides a blank line): another block starting, as in markdown-it.
_TABLE_BREAK = re.compile(r"(?:#{1,6}(?:[ \t]|$)|>|`{3,}|~{3,}|[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|<[A-Za-z/!?])")
_THEMATIC = re.compile(r"(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")


def _cells(row: str) -> int:
    row = _ESCAPED_PIPE.sub("", row.strip())
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    return row.count("|") + 1


def table_rows(text: str, masked: str, lines: Lines) -> list[int]:
    """Body rows of GFM tables (header and delimiter rows excluded), outside code."""
    rows: list[int] = []
    starts = lines.starts
    done_until = 0  # line number up to which rows were already taken
    for hint in _hint_offsets(masked):
        number = lines.line(hint)
        if number <= done_until or number < 2:
            continue
        delim = _line(masked, starts, number)
        body = delim[_CONTAINER.match(delim).end() :]  # type: ignore[union-attr]
        if "-" not in body or not _DELIM_ROW.fullmatch(body.rstrip()):
            continue
        header = _line(masked, starts, number - 1)
        header_body = header[_CONTAINER.match(header).end() :]  # type: ignore[union-attr]
        if not header_body.strip() or "|" not in header_body + body:
            continue
        if _cells(_line(text, starts, number - 1)[len(header) - len(header_body) :]) != _cells(body):
            continue
        row = number + 1
        while row <= len(starts):
            line = _line(masked, starts, row)
            content = line[_CONTAINER.match(line).end() :]  # type: ignore[union-attr]
            stripped = content.strip()
            if not stripped or len(content) - len(content.lstrip(" ")) >= 4:
                break
            if _TABLE_BREAK.match(stripped) or _THEMATIC.match(stripped):
                break
            rows.append(row)
            row += 1
        done_until = row
    return rows


def _hint_offsets(masked: str) -> Iterator[int]:
    """Offsets, in text order, on every line that holds a delimiter-row hint (`|-`, `-|`, blanks
    and a colon allowed between), at least one per such line: only the lines matter to
    `table_rows`, which takes a line's table once or rejects the line the same way each time."""
    if masked.count("|") * 100 > len(masked):
        # Pipes everywhere (tables): one regex pass costs less than a Python step per `|`.
        for m in _DELIM_HINT.finditer(masked):
            yield m.start()
        return
    backwards = masked[::-1]
    last = len(masked) - 1
    find = masked.find
    at = find("|")
    while at >= 0:
        if _PIPE_DASH.match(masked, at) or _DASH_PIPE_REVERSED.match(backwards, last - at):
            yield at
            at = find("\n", at)  # the rest of this line adds nothing
            if at < 0:
                return
        at = find("|", at + 1)


def _line(text: str, starts: list[int], number: int) -> str:
    start = starts[number - 1]
    end = starts[number] - 1 if number < len(starts) else len(text)
    return text[start:end]
