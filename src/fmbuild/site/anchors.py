"""Heading and block anchors, computed with MkDocs' own slug function.

Every heading of a staged page is written with an explicit id (`## Text { #text }`), computed
here with Python-Markdown's `toc.slugify` and `toc.unique` from the heading's displayed text,
in page order. Links from other pages use the same table, so a link and its anchor can never
disagree, and MkDocs' anchor validation checks the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown.extensions.toc import slugify, unique

from fmbuild.vault.model import Note

_WIKILINK = re.compile(r"!?\[\[([^\]|#]*)(?:#([^\]|]*))?(?:\|([^\]]*))?\]\]")
_MDLINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_CODE = re.compile(r"(`+)(.+?)\1")
_TAG = re.compile(r"<[^>]+>")
_MARKS = re.compile(r"(\*\*|__|==|~~|\*|(?<!\w)_|_(?!\w))")
_METRIC = re.compile(r"\{\{evidence:[^}]*\}\}")


def display_text(heading_text: str) -> str:
    """The text a heading shows once converted: links become their labels, markup goes."""

    def wikilink(m: re.Match[str]) -> str:
        target, sub, alias = m.group(1), m.group(2), m.group(3)
        if alias:
            return alias
        sub = (sub or "").lstrip("^")
        if target and sub:
            return f"{target} > {sub}"
        return target or sub

    text = _WIKILINK.sub(wikilink, heading_text)
    text = _MDLINK.sub(lambda m: m.group(1), text)
    text = _CODE.sub(lambda m: m.group(2).strip(), text)
    text = _METRIC.sub("", text)
    text = _TAG.sub("", text)
    text = _MARKS.sub("", text)
    return text.strip()


def slug(text: str) -> str:
    return slugify(display_text(text), "-")


def block_anchor(block_id: str) -> str:
    """Obsidian's `^abc123` as an HTML id; a prefix keeps it clear of heading slugs."""
    return f"block-{block_id}"


@dataclass
class PageIds:
    """The ids already used on one page; hands out new ones the way MkDocs' toc would."""

    used: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)

    def allocate(self, base: str) -> str:
        return unique(base, self.used, self.counters)

    def reserve(self, anchor: str) -> None:
        self.used.add(anchor)


@dataclass
class NoteAnchors:
    """The anchors a note's page will carry: one per heading (in `note.headings` order), one
    per block id, and whether the page gets a generated title heading."""

    title_heading: bool
    title_id: str | None
    headings: list[str]
    blocks: dict[str, str]
    ids: PageIds

    def heading(self, index: int) -> str:
        return self.headings[index]


def plan_anchors(note: Note, title: str, lines: list[str]) -> NoteAnchors:
    """Allocate the page's title heading (when the body does not open with an H1) and then the
    body's headings, in order, exactly as they will be written. `lines` is the whole file."""
    ids = PageIds()
    title_heading = not opens_with_h1(note, lines)
    title_id = ids.allocate(slug(title)) if title_heading else None
    headings = [ids.allocate(slug(h.text)) for h in note.headings]
    blocks = {}
    for block in note.blocks:
        anchor = block_anchor(block.id)
        ids.reserve(anchor)
        blocks[block.id] = anchor
    return NoteAnchors(title_heading, title_id, headings, blocks, ids)


def opens_with_h1(note: Note, lines: list[str]) -> bool:
    """True when the first non-blank line of the body is the note's first heading, an H1."""
    if not note.headings or note.headings[0].level != 1:
        return False
    for number in range(note.body_line, len(lines) + 1):
        if lines[number - 1].strip():
            return number == note.headings[0].line
    return False
