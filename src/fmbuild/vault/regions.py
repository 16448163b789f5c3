"""The regions of a note where nothing is Obsidian syntax: fenced and indented code, code spans,
HTML comments and `%% … %%` comments.

One left-to-right scan finds them, so that whichever construct opens first wins (a backtick
inside a comment is not a code span). `code_free` blanks them out (same length, newlines kept)
so that every offset in the result still points into the original text.
"""

from __future__ import annotations

import re
from typing import Iterator

# What may open a region: a backtick run, `<!--`, `%%`, a run of three or more tildes. Each is
# looked for with `str.find` (memchr speed, where a regex for all four tests every character
# against a set), and only where a region can open (not at every `<`, `%` or lone `~`).
_OPENERS = ("`", "<!--", "%%", "~~~")
_RUN = {"`": re.compile(r"`+"), "~": re.compile(r"~+")}
# What may stand before a fence on its line: indentation (list items) and block-quote markers.
_FENCE_PREFIX = re.compile(r"[ \t]*(?:>[ \t]?)*")
_INDENTED = re.compile(r"\n(?: {4}|\t)[^\n]*\S")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_TICK_CLOSERS: dict[int, re.Pattern[str]] = {}
_FENCE_CLOSERS: dict[str, re.Pattern[str]] = {}


def _tick_closer(n: int) -> re.Pattern[str]:
    """Exactly `n` backticks, not part of a longer run.

    The run is written out as literals, with the look-behind after it, so that the pattern
    starts with a literal prefix the regex engine searches for at C speed (a leading
    look-behind would make it try every offset)."""
    pattern = _TICK_CLOSERS.get(n)
    if pattern is None:
        pattern = _TICK_CLOSERS[n] = re.compile(r"%s(?<!`{%d})(?!`)" % ("`" * n, n + 1))
    return pattern


def _fence_closer(fence: str) -> re.Pattern[str]:
    """A whole line that closes `fence`: at least as many of its characters, nothing else but
    indentation, block-quote markers and trailing blanks."""
    pattern = _FENCE_CLOSERS.get(fence)
    if pattern is None:
        pattern = _FENCE_CLOSERS[fence] = re.compile(
            r"[ \t]*(?:>[ \t]?)*%s%s*[ \t]*" % (re.escape(fence[0]), re.escape(fence))
        )
    return pattern


def _fence_end(text: str, fence: str, start: int) -> int:
    """Offset just past the closing fence line (or the end of the text if it never closes).

    `start` is the end of the opening line. Only a line holding the fence string can close it,
    so `str.find` jumps between those lines instead of a multiline regex trying every line."""
    closer = _fence_closer(fence)
    n = len(text)
    at = text.find(fence, start)
    while at >= 0:
        line_start = text.rfind("\n", 0, at) + 1
        line_end = text.find("\n", at)
        if line_end < 0:
            line_end = n
        if closer.fullmatch(text, line_start, line_end):
            return line_end
        at = text.find(fence, line_end)
    return n


def _excluded_inline(text: str, start: int) -> list[tuple[int, int]]:
    """Spans of fenced code, code spans and comments from `start` on, in text order."""
    spans: list[tuple[int, int]] = []
    pos = start
    n = len(text)
    find = text.find
    # Where each opener next occurs at or after `pos` (n: nowhere). One is looked up again only
    # once `pos` has passed it, so the text is scanned once per opener. An opener whose first
    # character the text lacks is never looked up: a one-character search runs at memchr speed,
    # several times faster than a search for `<!--` or `~~~`.
    ahead = [n if find(opener[0], start) < 0 else -1 for opener in _OPENERS]
    while True:
        for k, at in enumerate(ahead):
            if at < pos:
                at = find(_OPENERS[k], pos)
                ahead[k] = n if at < 0 else at
        at = min(ahead)
        if at >= n:
            break
        char = text[at]
        if char == "<" or char == "%":
            opener, closer = ("<!--", "-->") if char == "<" else ("%%", "%%")
            # An HTML comment ends at -->; an Obsidian comment at the next %% (or the end).
            close = find(closer, at + len(opener))
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
        if "\n" in segment:
            # One run of spaces per line, joined by the newlines: C-level calls only, where a
            # character-by-character regex substitution is slow on a long frontmatter.
            parts.append("\n".join(map(" ".__mul__, map(len, segment.split("\n")))))
        else:
            parts.append(" " * len(segment))
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
