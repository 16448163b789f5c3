"""Which lines of a note are body rows of a GFM table (outside code): a playbook's tables of
wikilinks declare what it covers and applies. Agrees with markdown-it's table rule on the
cases the Field Manual meets (outer pipes or none, alignment colons, escaped pipes, tables in
block quotes and lists, lazy rows, the block starts that end a table)."""

from __future__ import annotations

import re

from fmbuild.vault.lines import Lines

_DELIM_HINT = re.compile(r"\|[ \t]*:?-|-[ \t]*:?\|")
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
    for hint in _DELIM_HINT.finditer(masked):
        number = lines.line(hint.start())
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


def _line(text: str, starts: list[int], number: int) -> str:
    start = starts[number - 1]
    end = starts[number] - 1 if number < len(starts) else len(text)
    return text[start:end]
