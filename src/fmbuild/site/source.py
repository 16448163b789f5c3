"""A note's text as the parser saw it, with the regions the rewriting pass must respect.

The model keeps positions (1-based line and column) but not the text; the converter reads the
file once, normalises it the way `fmbuild.vault.parse` does (BOM dropped, CRLF to LF) so that
those positions point at the same characters, and asks the parser's own region finder where
code and comments are, so that "nothing inside code is markup" means the same thing here as
in `check`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from fmbuild.vault import parse
from fmbuild.vault.model import Note


@dataclass
class Source:
    text: str
    starts: list[int]  # offset of each line's first character (index 0 = line 1)
    body_start: int  # offset of the body (after the frontmatter)
    code: list[tuple[int, int]]  # fenced, indented and inline code: never rewritten
    comments: list[tuple[int, int]]  # `%% %%` and `<!-- -->`: removed
    fences: list[tuple[int, int]]  # fenced and indented code blocks only (line-level code)

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column - 1

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def line_span(self, line: int) -> tuple[int, int]:
        """Start and end (before the newline) of a 1-based line."""
        start = self.starts[line - 1]
        end = self.text.find("\n", start)
        return start, len(self.text) if end < 0 else end

    def protected(self, start: int, end: int) -> bool:
        return _overlaps(self.code, start, end) or _overlaps(self.comments, start, end)


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    for a, b in spans:
        if a >= end:
            return False
        if start < b:
            return True
    return False


def normalise(raw: str) -> str:
    raw = raw.removeprefix("\ufeff")
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    return raw


def read_source(vault_root: Path, note: Note) -> Source:
    text = normalise((vault_root / note.path).read_bytes().decode("utf-8"))
    return source_of(text, note.body_line)


def source_of(text: str, body_line: int) -> Source:
    starts = [0]
    i = text.find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = text.find("\n", i + 1)
    body_start = starts[body_line - 1] if body_line - 1 < len(starts) else len(text)
    spans = parse._excluded_inline(text, body_start)
    indented = parse._indented_code(text, body_start, spans)
    code: list[tuple[int, int]] = []
    comments: list[tuple[int, int]] = []
    fences: list[tuple[int, int]] = list(indented)
    for start, end in spans:
        head = text[start : start + 4]
        if head.startswith(("%%", "<!--")):
            comments.append((start, end))
        else:
            code.append((start, end))
            opening = text[start : start + 64].lstrip(" \t>")
            at_line_start = start == 0 or text[start - 1] == "\n"
            if at_line_start and opening[:3] in ("```", "~~~"):  # a fenced block, not a code span
                fences.append((start, end))
    code = sorted(code + indented)
    return Source(text, starts, body_start, code, sorted(comments), sorted(fences))
