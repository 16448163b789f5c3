"""The relations a note declares, read from the vault model.

Relations are declared once, on the control: a pattern's `mitigates`, an anti-pattern's
`enables`, a playbook's `covers` / `applies` (frontmatter lists, or wikilinks in the rows of its
tables). Each declaration keeps the link as written (with its line and column, from the
property link the parser found in the frontmatter) so that `check` can point at it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fmbuild.graph.model import DECLARED_FIELDS, EdgeType
from fmbuild.vault.model import Link, LinkKind, Note

_WIKILINK = re.compile(r"!?\[\[([^\[\]\n]+?)\]\]")


class Resolution(Protocol):
    status: str  # 'ok' | 'broken' | 'ambiguous'
    path: str | None


class LinkResolver(Protocol):
    def resolve_link(self, link: Link, note: Note) -> Resolution: ...


@dataclass(frozen=True, slots=True)
class Declaration:
    """One declared relation: `source` says `type` of the note `link` points at."""

    type: EdgeType | None  # None for a table link: the edge type follows the target's type
    source: str  # the declaring note's path
    field: str  # 'mitigates', ..., or 'table' for a link in a table row
    index: int  # position in the frontmatter list (0 for table links)
    link: Link | None  # None when the item names no link at all
    use: str | None  # why the edge holds (mitigates / enables items)
    problem: str | None = None  # what is wrong with the item's shape, when no link could be read

    @property
    def line(self) -> int:
        return self.link.line if self.link else 0

    @property
    def column(self) -> int:
        return self.link.column if self.link else 0


def split_target(inner: str) -> tuple[str, str | None, str | None, str | None]:
    """`target#heading|alias` -> (target, heading, block, alias), as Obsidian splits a link."""
    from fmbuild.vault.parse import split_target as _split

    return _split(inner)


def _link_from_string(value: str, note: Note, field: str, used: set[int]) -> Link | None:
    """The property link the parser found for this frontmatter value, or one made from the
    value itself (a bare `techniques/x` path, or a link the parser did not see)."""
    match = _WIKILINK.search(value)
    raw = match.group(0) if match else value.strip()
    for i, link in enumerate(note.property_links):
        if i in used or link.field != field:
            continue
        if link.raw == raw:
            used.add(i)
            return link
    if not raw:
        return None
    inner = match.group(1) if match else raw
    target, heading, block, alias = split_target(inner)
    if not target and heading is None and block is None:
        return None
    return Link(LinkKind.PROPERTY, target, heading, block, alias, note.line_of(field), 1, raw, field=field)


def frontmatter_declarations(note: Note) -> list[Declaration]:
    """Every item of the note's `mitigates` / `enables` / `covers` / `applies` fields."""
    found: list[Declaration] = []
    used: set[int] = set()
    for field, (edge_type, _source_type, _target_type, key) in DECLARED_FIELDS.items():
        if field not in note.frontmatter:
            continue
        value = note.frontmatter[field]
        items: list[Any] = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            found.append(_declaration(note, field, edge_type, key, index, item, used))
    return found


def _declaration(
    note: Note, field: str, edge_type: EdgeType, key: str, index: int, item: Any, used: set[int]
) -> Declaration:
    use: str | None = None
    if isinstance(item, dict):
        use_value = item.get("use")
        use = " ".join(use_value.split()) if isinstance(use_value, str) and use_value.strip() else None
        target_value = item.get(key)
        if not isinstance(target_value, str) or not target_value.strip():
            problem = f"{field}[{index}] has no '{key}' link: write {key}: \"[[{_folder(key)}/...]]\""
            return Declaration(edge_type, note.path, field, index, None, use, problem)
    elif isinstance(item, str) and item.strip():
        target_value = item
    elif item is None:
        problem = f"{field}[{index}] is empty: write a link such as \"[[{_folder(key)}/...]]\""
        return Declaration(edge_type, note.path, field, index, None, None, problem)
    else:
        problem = f"{field}[{index}] is a {type(item).__name__}, not a link or a {{{key}: ..., use: ...}} mapping"
        return Declaration(edge_type, note.path, field, index, None, None, problem)
    link = _link_from_string(target_value, note, field, used)
    if link is None:
        problem = f"{field}[{index}] names no note: write \"[[{_folder(key)}/...]]\""
        return Declaration(edge_type, note.path, field, index, None, use, problem)
    return Declaration(edge_type, note.path, field, index, link, use)


def _folder(key: str) -> str:
    return {"technique": "techniques", "pattern": "patterns"}.get(key, key)


def table_declarations(note: Note, table_rows: set[int]) -> list[Declaration]:
    """Body wikilinks that sit in table rows: candidate `covers` / `applies` edges."""
    return [
        Declaration(None, note.path, "table", 0, link, None)
        for link in note.table_links
        if link.kind in (LinkKind.WIKILINK, LinkKind.MARKDOWN)
        and not link.is_embed
        and link.line in table_rows
        and link.target  # a same-note heading link is no relation
    ]


def declared_links(declarations: Iterable[Declaration]) -> set[int]:
    """ids of the Link objects consumed by declarations, so they are not also `links-to`."""
    return {id(d.link) for d in declarations if d.link is not None}
