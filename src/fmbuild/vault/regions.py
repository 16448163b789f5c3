"""The regions of a note where nothing is Obsidian syntax: fenced and indented code, code spans,
HTML comments and `%% … %%` comments.

One left-to-right scan finds them, so that whichever construct opens first wins (a backtick
inside a comment is not a code span). `code_free` blanks them out (same length, newlines kept)
so that every offset in the result still points into the original text.
"""

from __future__ import annotations

import re
from typing import Iterator

# The characters that may open a region (a backtick or tilde run, `<!--`, `%%`): one character
# class, which the regex engine scans for at C speed; what was found is sorted out in Python.
_OPENER = re.compile(r"[`~<%]")
_RUN = {"`": re.compile(r"`+"), "~": re.compile(r"~+")}
# What may stand before a fence on its line: indentation (list items) and block-quote markers.
_FENCE_PREFIX = re.compile(r"[ \t]*(?:>[ \t]?)*")
_INDENTED = re.compile(r"\n(?: {4}|\t)[^\n]*\S")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_NOT_NEWLINE = re.compile(r"[^\n]")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_TICK_CLOSERS: dict[int, re.Pattern[str]] = {}


def _tick_closer(n: int) -> re.Pattern[str]:
    pattern = _TICK_CLOSERS.get(n)
    if pattern is None:
        pattern = _TICK_CLOSERS[n] = re.compile(r"(?<!`)`{%d}(?!`)" % n)
    return pattern


def _fence_end(text: str, fence: str, start: int) -> int:
    """Offset just past the closing fence line (or the end of the text if it never closes)."""
    closer = re.compile(r"^[ \t]*(?:>[ \t]?)*%s%s*[ \t]*$" % (re.escape(fence[0]), re.escape(fence)), re.M)
    m = closer.search(text, start)
    return len(text) if m is None else m.end()


def _excluded_inline(text: str, start: int) -> list[tuple[int, int]]:
    """Spans of fenced code, code spans and comments from `start` on, in text order."""
    spans: list[tuple[int, int]] = []
    pos = start
    n = len(text)
    while pos < n:
        m = _OPENER.search(text, pos)
        if m is None:
            break
        at = m.start()
        char = text[at]
        if char == "<" or char == "%":
            opener, closer = ("<!--", "-->") if char == "<" else ("%%", "%%")
            if not text.startswith(opener, at):
                pos = at + 1
                continue
            # An HTML comment ends at -->; an Obsidian comment at the next %% (or the end).
            close = text.find(closer, at + len(opener))
            end = n if close < 0 else close + len(closer)
            spans.append((at, end))
            pos = end
            continue
        run_end = _RUN[char].match(text, at).end()  # type: ignore[union-attr]
        run = text[at:run_end]
        if len(run) >= 3 and _opens_line(text, at):
            line_end = text.find("\n", run_end)
            line_end = n if line_end < 0 else line_end
            if char == "~" or "`" not in text[run_end:line_end]:
                end = _fence_end(text, run, line_end)
                spans.append((text.rfind("\n", 0, at) + 1, end))
                pos = end
                continue
            # A backtick fence's info string cannot hold a backtick: this is inline code.
        if char == "~":
            pos = run_end  # tildes inside a line are text
            continue
        end = _span_for_ticks(text, at, len(run))
        if end is None:
            pos = run_end  # a backtick run that never closes is literal text
            continue
        spans.append((at, end))
        pos = end
    return spans


def _opens_line(text: str, offset: int) -> bool:
    """Whether only indentation or block-quote markers stand before `offset` on its line."""
    line_start = text.rfind("\n", 0, offset) + 1
    return offset == line_start or _FENCE_PREFIX.fullmatch(text, line_start, offset) is not None


def _span_for_ticks(text: str, start: int, n: int) -> int | None:
    """End of the code span opened by `n` backticks at `start`, or None when it never closes.

    A code span cannot run over a blank line (it would leave its paragraph)."""
    closer = _tick_closer(n).search(text, start + n)
    if closer is None:
        return None
    blank = _BLANK_LINE.search(text, start, closer.start())
    if blank is not None:
        return None
    return closer.end()


def _indented_code(text: str, start: int, excluded: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Indented code blocks: 4+ spaces or a tab after a blank line, outside list items.

    CommonMark's rule without the full block parser: an indented line opens a code block only
    after a blank line (or at the start of the body), and only when the block before it is not
    a list item (whose continuation lines are indented too)."""
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _indented_lines(text, start):
        if m[0] < pos or _inside(m[0], excluded):
            continue
        line_start, line_end = m
        if line_start > start:
            prev_end = line_start - 1  # the '\n' ending the previous line
            prev_start = text.rfind("\n", 0, prev_end) + 1
            if text[prev_start:prev_end].strip():
                continue  # a paragraph continuation or a nested list line, not code
            if _after_list(text, prev_start, start):
                continue
        # Extend over following indented or blank lines.
        end = line_end
        n = len(text)
        while end < n:
            next_start = end + 1
            next_end = text.find("\n", next_start)
            if next_end < 0:
                next_end = n
            line = text[next_start:next_end]
            if line.strip() and not (line.startswith("    ") or line.startswith("\t")):
                break
            end = next_end
        spans.append((line_start, end))
        pos = end
    return spans


def _indented_lines(text: str, start: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-blank line indented by 4 spaces or a tab, from `start` on."""
    if text.startswith(("    ", "\t"), start):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            yield start, end
    for m in _INDENTED.finditer(text, start):
        yield m.start() + 1, m.end()


def _after_list(text: str, blank_start: int, body_start: int) -> bool:
    """Whether the nearest non-blank, non-indented line above `blank_start` is a list item."""
    end = blank_start - 1
    while end > body_start:
        line_start = text.rfind("\n", 0, end) + 1
        line = text[line_start:end]
        if line.strip() and not (line.startswith("    ") or line.startswith("\t")):
            return _LIST_ITEM.match(line) is not None
        if line.strip() and _LIST_ITEM.match(line):
            return True
        end = line_start - 1
    return False


def _inside(offset: int, spans: list[tuple[int, int]]) -> bool:
    for s, e in spans:
        if s <= offset < e:
            return True
        if s > offset:
            return False
    return False


def _merge(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(a + b) if b else a


def blank_out(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with every span replaced by spaces (newlines kept), so offsets stay valid."""
    if not spans:
        return text
    parts: list[str] = []
    last = 0
    for s, e in spans:
        if s < last:
            s = last
        if e <= s:
            continue
        parts.append(text[last:s])
        segment = text[s:e]
        parts.append(_NOT_NEWLINE.sub(" ", segment) if "\n" in segment else " " * len(segment))
        last = e
    parts.append(text[last:])
    return "".join(parts)


def code_free(text: str, body_start: int = 0) -> str:
    """The text with code, comments (and everything before `body_start`) blanked out.

    Other stages (the site converter) use this to know where Obsidian syntax is live."""
    spans = _excluded_inline(text, body_start)
    spans = _merge(spans, _indented_code(text, body_start, spans))
    if body_start:
        spans = [(0, body_start)] + spans
    return blank_out(text, spans)


def excluded_spans(text: str, body_start: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Where nothing counts, from `body_start` on: (fenced code, code spans and comments in text
    order; indented code blocks). A fence's span starts at its line start; a comment's span
    starts with `%%` or `<!--`."""
    spans = _excluded_inline(text, body_start)
    return spans, _indented_code(text, body_start, spans)
