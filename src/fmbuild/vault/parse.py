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
from fmbuild.vault.html import find_hazards, script_url
from fmbuild.vault.lines import Lines
from fmbuild.vault.model import Block, Hazard, Heading, Link, LinkKind, MetricRef, Note, Tag
from fmbuild.vault import regions as _regions
from fmbuild.vault.regions import code_free
from fmbuild.vault.tables import table_rows as _table_rows

# Kept importable from here for code written before the regions had their own module
# (fmbuild.site.source); new code should use fmbuild.vault.regions.excluded_spans.
_excluded_inline = _regions._excluded_inline
_indented_code = _regions._indented_code

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


def _wikilinks(masked: str, lines: Lines) -> Iterator[Link]:
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


def _markdown_links(masked: str, lines: Lines, hazards: list[Hazard]) -> Iterator[Link]:
    """Markdown links to vault files; a `javascript:` URL goes to `hazards` instead."""
    for m in _MD_LINK.finditer(masked):
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


def _headings(text: str, masked: str, lines: Lines) -> list[Heading]:
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


def _inline_tags(masked: str, lines: Lines) -> Iterator[Tag]:
    for m in _TAG.finditer(masked):
        name = m.group(1)
        start = m.start()
        if start > 0 and not masked[start - 1].isspace():
            continue  # `a#b`, `[[n#h]]`, URLs: a tag starts after whitespace or at a line start
        if _is_tag(name):
            line, col = lines.pos(m.start())
            yield Tag(name, line, col, True)


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
            for m in _FM_WIKILINK.finditer(string):
                target, heading, block, alias = split_target(m.group(1))
                if not target and heading is None and block is None:
                    continue
                line, col = locate.find(key, m.group(0))
                yield Link(LinkKind.PROPERTY, target, heading, block, alias, line, col, m.group(0), field=key)


# --- the note --------------------------------------------------------------------------------------


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
        hazards.extend(find_hazards(masked, lines))
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
