"""One note's text → `Note`: frontmatter, headings, block ids, tags, links and metric references.

The fast path. A full CommonMark parse runs at about 1 MB/s in Python, too slow for a
10,000-note vault, so this module does what Obsidian's link index needs and nothing more:

1. Find the regions where nothing is a link: the frontmatter, fenced and indented code, inline
   code spans, HTML comments and `%% … %%` comments. One left-to-right scan, so that whichever
   construct opens first wins (a backtick inside a comment is not a code span).
2. Blank those regions out (same length, newlines kept) so that every offset still points into
   the original text.
3. Run precompiled regexes over the blanked text; turn offsets into 1-based line and column.

Frontmatter is read with libyaml's safe loader through python-frontmatter's YAML handler.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any, Iterator
from html import unescape
from urllib.parse import unquote

import yaml
from frontmatter.default_handlers import YAMLHandler

from fmbuild.diagnostics import Diagnostic, error, warning
from fmbuild.vault.model import Block, Hazard, Heading, Link, LinkKind, MetricRef, Note, Tag

_YAML = YAMLHandler()


class _FrontmatterLoader(yaml.CSafeLoader):  # type: ignore[misc]
    """libyaml's safe loader, except that a date YAML cannot build (`2026-13-01`) stays text,
    so the schema rule can say which field is wrong instead of the whole block failing."""


def _timestamp_or_text(loader: yaml.CSafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_FrontmatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)

# --- regions where nothing counts -------------------------------------------------------------

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


# --- the syntax that counts -------------------------------------------------------------------

_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+([^\n]*?))?(?:[ \t]+#+)?[ \t]*$", re.M)
_HEADING_HASHES = re.compile(r"\n {0,3}(#{1,6})(?=[ \t\n]|$)")
_BLOCK_ID = re.compile(r"\^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*$", re.M)
_WIKILINK = re.compile(r"\[\[([^\[\]\n]+)\]\]")
# `[text](url "title")`; atomic groups keep a failed match from backtracking.
_MD_LINK = re.compile(
    r"\[((?>[^\[\]\n]+|\[[^\[\]\n]*\])*)\]\(\s*(<[^<>\n]*>|(?>[^\s()]+|\([^\s()]*\))*)"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"
)
# Obsidian tags: after whitespace or at a line start; letters, digits, _ - / (nesting) and
# non-ASCII symbols; at least one character that is not a digit.
_TAG = re.compile(r"#([^\s!-,.:-@\[-\^`{-~]+)")
_METRIC = re.compile(r"\{\{\s*evidence:([^{}\s:]+)(?::([^{}]*?))?\s*\}\}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FM_KEY = re.compile(r"^(?:\"([^\"\n]+)\"|'([^'\n]+)'|([^\s#:\-\"'][^:\n]*?|-[^\s:][^:\n]*?))[ \t]*:(?=[ \t]|$)", re.M)
_FM_WIKILINK = re.compile(r"\[\[([^\[\]\n]+)\]\]")
_TAG_SPLIT = re.compile(r"[,\s]+")


class _Lines:
    """Offset → (line, column), 1-based."""

    __slots__ = ("starts",)

    def __init__(self, text: str) -> None:
        starts = [0]
        find = text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self.starts = starts

    def pos(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def line(self, offset: int) -> int:
        return bisect_right(self.starts, offset)


def split_target(inner: str) -> tuple[str, str | None, str | None, str | None]:
    """`target#heading|alias` → (target, heading, block, alias), as Obsidian splits a wikilink."""
    alias: str | None = None
    bar = inner.find("|")
    if bar >= 0:
        alias = inner[bar + 1 :].strip()
        inner = inner[:bar]
        if inner.endswith("\\"):  # `[[note\|alias]]` inside a table
            inner = inner[:-1]
    heading: str | None = None
    block: str | None = None
    hash_at = inner.find("#")
    if hash_at >= 0:
        sub = inner[hash_at + 1 :].strip()
        inner = inner[:hash_at]
        if sub.startswith("^"):
            block = sub[1:].strip()
        else:
            heading = sub
    return inner.strip(), heading, block, alias


def _wikilinks(masked: str, lines: _Lines) -> Iterator[Link]:
    for m in _WIKILINK.finditer(masked):
        inner = m.group(1)
        if not inner.strip():
            continue
        target, heading, block, alias = split_target(inner)
        if not target and heading is None and block is None:
            continue
        start = m.start()
        embed = start > 0 and masked[start - 1] == "!"
        if embed:
            start -= 1
        line, col = lines.pos(start)
        kind = LinkKind.EMBED if embed else LinkKind.WIKILINK
        yield Link(kind, target, heading, block, alias, line, col, masked[start : m.end()])


def _markdown_links(masked: str, lines: _Lines, hazards: list[Hazard]) -> Iterator[Link]:
    """Markdown links to vault files; a `javascript:` URL goes to `hazards` instead."""
    for m in _MD_LINK.finditer(masked):
        url = m.group(2)
        if url.startswith("<"):
            url = url[1:-1]
        if not url or _SCHEME.match(url) or url.startswith("//"):
            if url and _script_url(unquote(url)):
                line, col = lines.pos(m.start() - (m.start() > 0 and masked[m.start() - 1] == "!"))
                hazards.append(Hazard("javascript-url", masked[m.start() : m.end()][:60], line, col))
            continue  # external (http:, mailto:, obsidian:, ...) or empty
        path, _, fragment = url.partition("#")
        path = unquote(path)
        heading: str | None = None
        block: str | None = None
        if fragment:
            fragment = unquote(fragment).strip()
            if fragment.startswith("^"):
                block = fragment[1:]
            else:
                heading = fragment
        elif not path:
            continue
        start = m.start()
        image = start > 0 and masked[start - 1] == "!"
        if image:
            start -= 1
        line, col = lines.pos(start)
        yield Link(
            LinkKind.MARKDOWN, path.strip(), heading, block, m.group(1) or None, line, col,
            masked[start : m.end()], image=image,
        )


def _headings(text: str, masked: str, lines: _Lines) -> list[Heading]:
    found: list[Heading] = []
    starts = [m.start() + 1 for m in _HEADING_HASHES.finditer(masked)]
    if masked.lstrip(" ").startswith("#"):
        starts.insert(0, 0)
    for line_start in starts:
        line_end = masked.find("\n", line_start)
        line_end = len(masked) if line_end < 0 else line_end
        if not _HEADING.match(masked, line_start, line_end):
            continue  # blanked out (code), or more than six #
        om = _HEADING.match(text, line_start, line_end)  # the original line: inline code kept
        if om is None:
            continue
        found.append(Heading(len(om.group(1)), (om.group(2) or "").strip(), lines.line(line_start)))
    return found


def _is_tag(name: str) -> bool:
    return not name.replace("/", "").isdigit() and not name.startswith("/") and not name.endswith("/")


def _inline_tags(masked: str, lines: _Lines) -> Iterator[Tag]:
    for m in _TAG.finditer(masked):
        name = m.group(1)
        start = m.start()
        if start > 0 and not masked[start - 1].isspace():
            continue  # `a#b`, `[[n#h]]`, URLs: a tag starts after whitespace or at a line start
        if _is_tag(name):
            line, col = lines.pos(m.start())
            yield Tag(name, line, col, True)


def _metric_refs(masked: str, lines: _Lines) -> Iterator[MetricRef]:
    for m in _METRIC.finditer(masked):
        ref = m.group(1)
        module: str | None = None
        if "/" in ref:
            module, ref = ref.rsplit("/", 1)
            if module.startswith("evidence/"):
                module = module[len("evidence/") :]
        fmt = m.group(2)
        line, col = lines.pos(m.start())
        yield MetricRef(module, ref, fmt.strip() if fmt else None, line, col, m.group(0))


# --- raw HTML that would run in a reader's browser -----------------------------------------------

_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>?", re.S)
_ATTRIBUTE = re.compile(
    r"""(?:^|\s|/)([^\s"'<>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""", re.S
)
_RUNNING_ELEMENTS = {"script": "script", "iframe": "iframe", "frame": "iframe", "object": "iframe", "embed": "iframe"}
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "poster", "background"}
_SCRIPT_SCHEME = re.compile(r"^(?:javascript|vbscript|data\s*:\s*text/html)\s*:?", re.I)
_CONTROL = re.compile(r"[\x00-\x20]+")


def _script_url(value: str) -> bool:
    """Whether a URL runs script once a browser has decoded entities and dropped blanks."""
    return bool(_SCRIPT_SCHEME.match(_CONTROL.sub("", unescape(value))))


def _hazards(masked: str, lines: _Lines) -> Iterator[Hazard]:
    for m in _HTML_TAG.finditer(masked):
        if m.group(1):
            continue  # closing tag
        name = m.group(2).lower()
        line, col = lines.pos(m.start())
        snippet = m.group(0)[:60]
        if name in _RUNNING_ELEMENTS:
            yield Hazard(_RUNNING_ELEMENTS[name], snippet, line, col)
        for a in _ATTRIBUTE.finditer(m.group(3)):
            attr = a.group(1).lower()
            value = (a.group(2) or "").strip("\"'")
            if attr.startswith("on") and len(attr) > 2:
                yield Hazard("event-handler", snippet, line, col)
            elif attr in _URL_ATTRIBUTES and value and _script_url(value):
                yield Hazard("javascript-url", snippet, line, col)


# --- tables ---------------------------------------------------------------------------------------

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


def _table_rows(text: str, masked: str, lines: _Lines) -> list[int]:
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


# --- frontmatter --------------------------------------------------------------------------------

_FM_OPEN = re.compile(r"---[ \t]*\n")
_FM_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)


def _split_frontmatter(text: str) -> tuple[int, int, int] | None:
    """(yaml_start, yaml_end, body_start) offsets when the text opens with a frontmatter block."""
    if not _FM_OPEN.match(text):
        return None
    yaml_start = text.index("\n") + 1
    close = _FM_CLOSE.search(text, yaml_start)
    if close is None:
        return None
    body_start = close.end() + 1 if close.end() < len(text) else close.end()
    return yaml_start, close.start(), body_start


def _field_lines(fm_text: str, first_line: int) -> dict[str, int]:
    lines: dict[str, int] = {}
    line_no = first_line
    last = 0
    for m in _FM_KEY.finditer(fm_text):
        line_no += fm_text.count("\n", last, m.start())
        last = m.start()
        key = m.group(1) or m.group(2) or m.group(3)
        lines.setdefault(key.strip(), line_no)
    return lines


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_strings(item)


class _FrontmatterLocator:
    """Finds where a value from a frontmatter field sits in the raw YAML, for positions."""

    def __init__(self, text: str, yaml_start: int, yaml_end: int, lines: _Lines, field_lines: dict[str, int]):
        self.text = text
        self.yaml_start = yaml_start
        self.yaml_end = yaml_end
        self.lines = lines
        self.field_lines = field_lines
        self.cursor: dict[str, int] = {}

    def find(self, key: str, needle: str) -> tuple[int, int]:
        """Line and column of the next occurrence of `needle` within field `key`."""
        start = self.cursor.get(key)
        if start is None:
            line = self.field_lines.get(key)
            start = self.lines.starts[line - 1] if line else self.yaml_start
        at = self.text.find(needle, start, self.yaml_end)
        if at < 0:
            line = self.field_lines.get(key, self.lines.line(self.yaml_start) - 1)
            return line, 1
        self.cursor[key] = at + len(needle)
        return self.lines.pos(at)


def _frontmatter_tags(value: Any, key: str, locate: _FrontmatterLocator) -> Iterator[Tag]:
    if isinstance(value, str):
        items: list[Any] = [t for t in _TAG_SPLIT.split(value) if t]
    elif isinstance(value, list):
        items = value
    else:
        return
    for item in items:
        if not isinstance(item, str):
            continue  # the schema rule reports non-string tags
        name = item.strip().lstrip("#")
        if not name:
            continue
        line, col = locate.find(key, name)
        yield Tag(name, line, col, False)


def _property_links(frontmatter: dict[str, Any], locate: _FrontmatterLocator) -> Iterator[Link]:
    for key, value in frontmatter.items():
        if not isinstance(key, str):
            continue
        for string in _walk_strings(value):
            for m in _FM_WIKILINK.finditer(string):
                target, heading, block, alias = split_target(m.group(1))
                if not target and heading is None and block is None:
                    continue
                line, col = locate.find(key, m.group(0))
                yield Link(LinkKind.PROPERTY, target, heading, block, alias, line, col, m.group(0), field=key)


def _yaml_problem(path: str, exc: yaml.YAMLError, first_line: int) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = first_line + mark.line if mark is not None else first_line - 1
    col = mark.column + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else problem
    return error(path, line, col, "frontmatter-invalid", f"frontmatter is not valid YAML: {detail}")


# --- the note --------------------------------------------------------------------------------------


def parse_note(path: str, text: str, *, sha256: str = "", size: int = 0) -> Note:
    """Parse one note. `path` is vault-relative; problems found go to `note.problems`."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = _Lines(text)
    frontmatter: dict[str, Any] = {}
    field_lines: dict[str, int] = {}
    problems: list[Diagnostic] = []
    tags: list[Tag] = []
    links: list[Link] = []

    split = _split_frontmatter(text)
    body_start = 0
    if split is None:
        if _FM_OPEN.match(text):
            problems.append(
                warning(path, 1, 1, "frontmatter-invalid",
                        "the note opens with '---' but the frontmatter is never closed: "
                        "add a '---' line after the last field (or start the note with something else)")
            )
    else:
        yaml_start, yaml_end, body_start = split
        fm_text = text[yaml_start:yaml_end]
        first_line = 2
        field_lines = _field_lines(fm_text, first_line)
        try:
            data = _YAML.load(fm_text, Loader=_FrontmatterLoader) if fm_text.strip() else {}
        except yaml.YAMLError as exc:
            problems.append(_yaml_problem(path, exc, first_line))
            data = {}
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Values libyaml parses but Python cannot build (e.g. nesting too deep).
            problems.append(error(path, first_line, 1, "frontmatter-invalid",
                                  f"frontmatter cannot be read: {exc}"))
            data = {}
        if data is None:
            data = {}
        if isinstance(data, dict) and not _small_enough(data):
            problems.append(
                error(path, first_line, 1, "frontmatter-invalid",
                      f"frontmatter expands to more than {_MAX_FM_NODES} values (YAML aliases?): "
                      "write the fields out plainly")
            )
            data = {}
        if not isinstance(data, dict):
            problems.append(
                error(path, first_line, 1, "frontmatter-invalid",
                      f"frontmatter must be a mapping of fields (key: value), not a {_yaml_kind(data)}")
            )
            data = {}
        frontmatter = data
        locate = _FrontmatterLocator(text, yaml_start, yaml_end, lines, field_lines)
        for key in ("tags", "tag"):
            if key in frontmatter:
                tags.extend(_frontmatter_tags(frontmatter[key], key, locate))
        links.extend(_property_links(frontmatter, locate))

    masked = code_free(text, body_start)
    headings = _headings(text, masked, lines)
    blocks = [
        Block(m.group(1), lines.line(m.start()))
        for m in _BLOCK_ID.finditer(masked)
        if m.start() == 0 or masked[m.start() - 1] in " \t\n"
    ]
    tags.extend(_inline_tags(masked, lines))
    body_links = list(_wikilinks(masked, lines))
    hazards: list[Hazard] = []
    body_links.extend(_markdown_links(masked, lines, hazards))
    body_links.sort(key=lambda link: (link.line, link.column))
    links.extend(body_links)
    metric_refs = list(_metric_refs(masked, lines)) if "{{" in masked else []
    table_rows = _table_rows(text, masked, lines) if "|" in masked else []
    if "<" in masked:
        hazards.extend(_hazards(masked, lines))
        hazards.sort(key=lambda h: (h.line, h.column))

    return Note(
        path=path,
        frontmatter=frontmatter,
        field_lines=field_lines,
        body_line=lines.line(body_start) if body_start < len(text) else len(lines.starts),
        headings=headings,
        blocks=blocks,
        tags=tags,
        links=links,
        metric_refs=metric_refs,
        hazards=hazards,
        table_rows=table_rows,
        problems=problems,
        sha256=sha256,
        size=size,
    )


_MAX_FM_NODES = 20_000


def _small_enough(value: Any) -> bool:
    """Whether the frontmatter, with YAML aliases expanded, stays under `_MAX_FM_NODES` values.

    Aliases let a few lines of YAML stand for billions of values ("billion laughs"); every
    consumer walks the values, so such frontmatter is refused up front."""
    budget = _MAX_FM_NODES
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return True


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
