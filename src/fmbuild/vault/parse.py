"""One note's text → `Note`: frontmatter, headings, block ids, tags, links and metric references.

The fast path. A full CommonMark parse runs at about 1 MB/s in Python, too slow for a
10,000-note vault, so this module does what Obsidian's link index needs and nothing more:

1. Blank out the regions where nothing counts (`fmbuild.vault.regions`): the frontmatter,
   code and comments, keeping every offset valid.
2. Run precompiled regexes over the blanked text; each starts with a literal character, so the
   regex engine skips plain text at C speed. Offsets become 1-based line and column numbers.

Frontmatter is read by `fmbuild.vault.frontmatter`; raw HTML hazards by `fmbuild.vault.html`;
table rows by `fmbuild.vault.tables`.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from operator import attrgetter
from typing import Any, Iterator
from urllib.parse import unquote

import yaml

from fmbuild.diagnostics import Diagnostic, error, warning
from fmbuild.vault.frontmatter import (
    FM_OPEN,
    MAX_FM_NODES,
    FrontmatterLocator,
    duplicate_problem,
    load_yaml_checked,
    field_lines as _field_lines,
    small_enough,
    split_frontmatter,
    walk_strings,
    yaml_kind,
    yaml_problem,
)
from fmbuild.vault.html import find_attr_list_hazards, find_hazards, script_url
from fmbuild.vault.lines import Lines
from fmbuild.vault.model import Block, Hazard, Heading, Link, LinkKind, LogRef, MetricRef, Note, Tag
from fmbuild.vault import regions as _regions
from fmbuild.vault.regions import code_free
from fmbuild.vault.tables import table_rows as _table_rows

# Kept importable from here for code written before the regions had their own module
# (fmbuild.site.source); new code should use fmbuild.vault.regions.excluded_spans.
_excluded_inline = _regions._excluded_inline
_indented_code = _regions._indented_code

# --- the syntax that counts -------------------------------------------------------------------

# An ATX heading line: up to three spaces, one to six #s, then the end of the line or a blank
# and the rest (group 2), from which `_heading_text` takes the text. (The same lines and text as
# ` {0,3}(#{1,6})(?:[ \t]+([^\n]*?))?(?:[ \t]+#+)?[ \t]*$`, whose lazy group costs a regex
# step per character.)
_HEADING = re.compile(r" {0,3}(#{1,6})((?:[ \t][^\n]*)?)$", re.M)
# `_HEADING` on every line but the first, found in one pass: the leading newline is a literal
# the regex engine searches for at C speed (a multiline `^` would make it try every offset).
_HEADING_LINE = re.compile(r"\n {0,3}(#{1,6})((?:[ \t][^\n]*)?)$", re.M)
# A block id counts after whitespace or at the text start; the look-behind sits after the `^` so
# that the pattern keeps its literal first character.
_BLOCK_ID = re.compile(r"\^(?<![^ \t\n]\^)([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*$", re.M)
# `[[target#subpath|alias]]`, split as `split_target` splits it: the target ends at the first `#`
# or `|`, the subpath at the first `|`; the alias is the rest.
_WIKILINK = re.compile(r"\[\[([^\[\]\n#|]*)(?:#([^\[\]\n|]*))?(?:\|([^\[\]\n]*))?\]\]")
# `[text](url "title")`; atomic groups keep a failed match from backtracking.
_MD_LINK = re.compile(
    r"\[((?>[^\[\]\n]+|\[[^\[\]\n]*\])*)\]\(\s*(<[^<>\n]*>|(?>[^\s()]+|\([^\s()]*\))*)"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"
)
# Obsidian tags: after whitespace or at a line start; letters, digits, _ - / (nesting) and
# non-ASCII symbols; at least one character that is not a digit.
# The look-behind (a tag starts after whitespace or at the text start) comes after the `#` so
# that the pattern keeps its literal first character; a name holds no `#`, so skipping a match
# here never uncovers another one inside it.
_TAG = re.compile(r"#(?<!\S#)([^\s!-,.:-@\[-\^`{-~]+)")
_METRIC = re.compile(r"\{\{\s*evidence:([^{}\s:]+)(?::([^{}]*?))?\s*\}\}")
_LOG = re.compile(r"\{\{\s*log:([^{}\n]*?)\s*\}\}")
_LOG_EVENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FM_WIKILINK = re.compile(r"\[\[([^\[\]\n]+)\]\]")
_TAG_SPLIT = re.compile(r"[,\s]+")


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


_LINK_CANDIDATE = re.compile(r"!?\[\[[^\[\]\n]*\]\]")


def links_live(text: str, masked: str) -> str:
    """`masked` with the inside of every live wikilink put back: Obsidian reads a link before
    the code spans inside it, so ``[[#`move`|move]]`` links to the heading `` `move` ``, while a
    link inside a code span, or one whose brackets a code span swallows, stays dead."""
    if "`" not in text or "[[" not in text:
        return masked
    pieces: list[str] = []
    pos = 0
    for m in _LINK_CANDIDATE.finditer(text):
        start, end = m.span()
        if masked[start:end] == text[start:end]:
            continue  # nothing inside was blanked
        opening = start + (text[start] == "!")
        if masked[opening : opening + 2] != "[[" or masked[end - 2 : end] != "]]":
            continue  # the brackets themselves are in code or a comment: no link
        pieces += (masked[pos:start], text[start:end])
        pos = end
    if not pieces:
        return masked
    pieces.append(masked[pos:])
    return "".join(pieces)


def _wikilinks(masked: str, lines: Lines) -> list[Link]:
    """The body's wikilinks and embeds; `split_target`'s split, done by `_WIKILINK`'s groups.

    This loop runs once per link, the most frequent syntax: names are bound locally and
    one-character tests are slices, which cost less than global look-ups and method calls."""
    found: list[Link] = []
    append = found.append
    starts = lines.starts
    embed, wikilink, new_link, line_of = LinkKind.EMBED, LinkKind.WIKILINK, Link, bisect_right
    for m in _WIKILINK.finditer(masked):
        target, sub, alias = m.groups()
        if alias is not None:
            alias = alias.strip()
            # `[[note\|alias]]` inside a table: the backslash escapes the table's pipe.
            if sub is not None:
                if sub[-1:] == "\\":
                    sub = sub[:-1]
            elif target[-1:] == "\\":
                target = target[:-1]
        target = target.strip()
        if sub is None:
            if not target:
                continue  # `[[ ]]`, `[[|alias]]`: nothing to link to
            heading = block = None
        else:
            sub = sub.strip()
            if sub[:1] == "^":
                heading, block = None, sub[1:].strip()
            else:
                heading, block = sub, None
        start, end = m.span()
        if start and masked[start - 1] == "!":
            start -= 1
            kind = embed
        else:
            kind = wikilink
        line = line_of(starts, start)  # Lines.pos, without a call per link
        column = start - starts[line - 1] + 1
        append(new_link(kind, target, heading, block, alias, line, column, masked[start:end]))
    return found


def _markdown_links(masked: str, lines: Lines, hazards: list[Hazard]) -> Iterator[Link]:
    """Markdown links to vault files; a `javascript:` URL goes to `hazards` instead."""
    for m in _md_link_matches(masked):
        url = m.group(2)
        if url.startswith("<"):
            url = url[1:-1]
        if not url or _SCHEME.match(url) or url.startswith("//"):
            if url and script_url(unquote(url)):
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


def _md_link_matches(masked: str) -> Iterator[re.Match[str]]:
    """`_MD_LINK.finditer(masked)`, without scanning the lines that cannot hold a link's start.

    A match's `[text]` stays on one line and ends with `](`, so the next match starts on the
    line of the next `](` or later: searching from that line's start finds the same match as
    searching from the end of the last one, and skips every `[` (wikilinks) in between."""
    pos = 0
    find = masked.find
    while True:
        at = find("](", pos)
        if at < 0:
            return
        # The line start, looked for back to `pos` only: a long line of many links stays linear.
        m = _MD_LINK.search(masked, max(pos, masked.rfind("\n", pos, at) + 1))
        if m is None:
            return
        yield m
        pos = m.end()  # a match is never empty (it holds `[`, `](` and `)`)


def _headings(text: str, masked: str, lines: Lines) -> list[Heading]:
    """ATX headings outside code; the text comes from the original line (inline code kept)."""
    found: list[Heading] = []
    starts = lines.starts
    first = _HEADING.match(masked)
    matches: list[re.Match[str]] = [first] if first else []
    matches.extend(_HEADING_LINE.finditer(masked))
    for m in matches:
        start, end = m.span()
        line_start = start if m is first else start + 1
        if not text.startswith(m.group(), start):
            # Something on the line was blanked out: read the original line.
            m = _HEADING.match(text, line_start, end)  # type: ignore[assignment]
            if m is None:
                continue
        level, rest = m.groups()
        found.append(Heading(len(level), _heading_text(rest), bisect_right(starts, line_start)))
    return found


def _heading_text(rest: str) -> str:
    """A heading's text from what follows its #s: blanks around it and a closing run of #s
    (one that a blank precedes) removed, then stripped."""
    text = rest.lstrip(" \t").rstrip(" \t")
    bare = text.rstrip("#")
    if len(bare) < len(text) and bare[-1:] in (" ", "\t"):
        text = bare.rstrip(" \t")
    return text.strip()


def _inline_tags(masked: str, lines: Lines) -> list[Tag]:
    """`#tags` in the body; `_TAG` already leaves out `a#b`, `[[n#h]]` and URLs (a tag starts
    after whitespace or at the text start)."""
    found: list[Tag] = []
    starts = lines.starts
    for m in _TAG.finditer(masked):
        name = m.group(1)
        # Not a tag: all digits (`#1`, `#2/3`), or a leading or trailing `/`.
        if name[0] == "/" or name[-1] == "/" or name.replace("/", "").isdigit():
            continue
        start = m.start()
        line = bisect_right(starts, start)
        found.append(Tag(name, line, start - starts[line - 1] + 1, True))
    return found


def _metric_refs(masked: str, lines: Lines) -> Iterator[MetricRef]:
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


def _log_refs(masked: str, lines: Lines) -> Iterator[LogRef]:
    for m in _LOG.finditer(masked):
        line, col = lines.pos(m.start())
        yield _log_ref(m.group(1), masked, m.start(), m.end(), line, col, m.group(0))


def _log_ref(inner: str, masked: str, start: int, end: int, line: int, col: int, raw: str) -> LogRef:
    module: str | None = None
    count, problem = 1, ""
    head, sep, tail = inner.rpartition(":")
    if sep:
        inner = head
        if not tail.strip().isdigit() or int(tail) < 1:
            problem = f"{tail.strip()!r} is not a number of lines (write {{{{log:EVENT:3}}}} for the first three)"
        else:
            count = int(tail)
    if "/" in inner:
        module, inner = inner.rsplit("/", 1)
        module = module.strip()
        if module.startswith("evidence/"):
            module = module[len("evidence/") :]
    event = inner.strip()
    if not problem and not _LOG_EVENT.fullmatch(event):
        problem = f"{event!r} is not an event name (letters, digits, '_', '.', '-')"
    line_start = masked.rfind("\n", 0, start) + 1
    line_end = masked.find("\n", end)
    if not problem and (masked[line_start:start].strip() or masked[end : len(masked) if line_end < 0 else line_end].strip()):
        problem = "a log excerpt stands alone on its own line (it renders as a code block)"
    return LogRef(module or None, event, count, line, col, raw, problem)


def _frontmatter_tags(value: Any, key: str, locate: FrontmatterLocator) -> Iterator[Tag]:
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


def _property_links(frontmatter: dict[str, Any], locate: FrontmatterLocator) -> Iterator[Link]:
    for key, value in frontmatter.items():
        if not isinstance(key, str):
            continue
        for string in walk_strings(value):
            if "[[" not in string:
                continue  # most values hold no link: skip the regex call
            for m in _FM_WIKILINK.finditer(string):
                target, heading, block, alias = split_target(m.group(1))
                if not target and heading is None and block is None:
                    continue
                line, col = locate.find(key, m.group(0))
                yield Link(LinkKind.PROPERTY, target, heading, block, alias, line, col, m.group(0), field=key)


# --- the note --------------------------------------------------------------------------------------

_LINK_ORDER = attrgetter("line", "column")  # (line, column), computed in C


def parse_note(path: str, text: str, *, sha256: str = "", size: int = 0) -> Note:
    """Parse one note. `path` is vault-relative; problems found go to `note.problems`."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = Lines(text)
    frontmatter: dict[str, Any] = {}
    field_lines: dict[str, int] = {}
    problems: list[Diagnostic] = []
    tags: list[Tag] = []
    links: list[Link] = []

    split = split_frontmatter(text)
    body_start = 0
    if split is None:
        if FM_OPEN.match(text):
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
            data, duplicates = load_yaml_checked(fm_text) if fm_text.strip() else ({}, [])
            problems.extend(duplicate_problem(path, d, first_line) for d in duplicates)
        except yaml.YAMLError as exc:
            problems.append(yaml_problem(path, exc, first_line))
            data = {}
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Values libyaml parses but Python cannot build (e.g. nesting too deep).
            problems.append(error(path, first_line, 1, "frontmatter-invalid",
                                  f"frontmatter cannot be read: {exc}"))
            data = {}
        if data is None:
            data = {}
        if isinstance(data, dict) and not small_enough(data):
            problems.append(
                error(path, first_line, 1, "frontmatter-invalid",
                      f"frontmatter expands to more than {MAX_FM_NODES} values (YAML aliases?): "
                      "write the fields out plainly")
            )
            data = {}
        if not isinstance(data, dict):
            problems.append(
                error(path, first_line, 1, "frontmatter-invalid",
                      f"frontmatter must be a mapping of fields (key: value), not a {yaml_kind(data)}")
            )
            data = {}
        frontmatter = data
        locate = FrontmatterLocator(text, yaml_start, yaml_end, lines, field_lines)
        for key in ("tags", "tag"):
            if key in frontmatter:
                tags.extend(_frontmatter_tags(frontmatter[key], key, locate))
        links.extend(_property_links(frontmatter, locate))

    masked = code_free(text, body_start)
    headings = _headings(text, masked, lines)
    starts = lines.starts
    blocks = [Block(m.group(1), bisect_right(starts, m.start())) for m in _BLOCK_ID.finditer(masked)]
    tags.extend(_inline_tags(masked, lines))
    body_links = _wikilinks(links_live(text, masked), lines)
    hazards: list[Hazard] = []
    body_links.extend(_markdown_links(masked, lines, hazards))
    body_links.sort(key=_LINK_ORDER)
    links.extend(body_links)
    # `"{" in` first: a one-character search is several times faster than one for "{{".
    braces = "{" in masked and "{{" in masked
    metric_refs = list(_metric_refs(masked, lines)) if braces else []
    log_refs = list(_log_refs(masked, lines)) if braces and "log:" in masked else []
    table_rows = _table_rows(text, masked, lines) if "|" in masked else []
    if "<" in masked:
        hazards.extend(find_hazards(masked, lines))
    if "=" in masked and "{" in masked:
        hazards.extend(find_attr_list_hazards(masked, lines))
    if hazards:
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
        log_refs=log_refs,
        hazards=hazards,
        table_rows=table_rows,
        problems=problems,
        sha256=sha256,
        size=size,
    )
