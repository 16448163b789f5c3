"""The vault model: plain data that every command reads (check, verify, graph, site, editions).

Nothing here parses text; `fmbuild.vault.parse` fills these objects and
`fmbuild.vault.resolve` answers where links point. Paths are vault-relative POSIX strings
(`techniques/evasion.md`); lines and columns are 1-based.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.diagnostics import Diagnostic


class LinkKind(StrEnum):
    WIKILINK = "wikilink"  # [[target#heading|alias]]
    EMBED = "embed"  # ![[target#heading|alias-or-size]]
    MARKDOWN = "markdown"  # [text](target.md#heading) — and ![alt](image.png)
    PROPERTY = "property"  # a wikilink inside a frontmatter value


@dataclass(slots=True)
class Link:
    kind: LinkKind
    target: str  # the path part as written ('' for same-note links); %-decoded for markdown links
    heading: str | None  # text after '#' (None when absent); never the '^block' form
    block: str | None  # block id after '#^'
    alias: str | None  # display text, or an image embed's size spec ('300', '300x200')
    line: int
    column: int
    raw: str  # the link exactly as written
    field: str | None = None  # the frontmatter property holding it, for PROPERTY links
    image: bool = False  # markdown image syntax ![..](..)

    @property
    def is_embed(self) -> bool:
        return self.kind is LinkKind.EMBED or self.image


def link_file_name(target: str) -> str | None:
    """The file name (lower case) that a link target can resolve to: resolution, however it
    goes, lands on a file bearing the target's last path component (`.md` optional). '' for a
    same-note link; None when only resolving can tell (`.`, `..`)."""
    name = target.strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()
    return name if name not in (".", "..") else None


@dataclass(slots=True)
class Heading:
    level: int
    text: str  # the heading text as Obsidian matches it (inline markup kept, trailing #s removed)
    line: int


@dataclass(slots=True)
class Block:
    id: str  # without the caret
    line: int


@dataclass(slots=True)
class Tag:
    name: str  # without '#', nesting kept: 'target/ml-model'
    line: int
    column: int
    inline: bool  # False when declared in frontmatter


@dataclass(slots=True)
class MetricRef:
    """A number cited in prose by reference: `{{evidence:metric.path}}`,
    `{{evidence:metric:.1%}}` or `{{evidence:module-name/metric}}`."""

    module: str | None  # None = the note's own evidence module
    metric: str  # dotted path into metrics.json
    fmt: str | None  # Python format spec, e.g. '.3f', '.1%'
    line: int
    column: int
    raw: str


@dataclass(slots=True)
class LogRef:
    """A log excerpt cited by reference, alone on its line: `{{log:EVENT}}` (the first recorded
    line whose JSON `event` is EVENT), `{{log:EVENT:N}}` (the first N) or `{{log:module/EVENT}}`."""

    module: str | None  # None = the note's own evidence module
    event: str
    count: int  # how many lines
    line: int
    column: int
    raw: str
    problem: str = ""  # why the reference is malformed ('' when it is fine)


@dataclass(slots=True)
class Hazard:
    """Raw HTML in a note that would run in a reader's browser (outside code and comments)."""

    kind: str  # 'script', 'iframe', 'event-handler', 'javascript-url'
    text: str  # the offending snippet, shortened
    line: int
    column: int


@dataclass(slots=True)
class Note:
    path: str  # vault-relative, with '.md'
    frontmatter: dict[str, Any]
    field_lines: dict[str, int]  # line of each top-level frontmatter key
    body_line: int  # first line of the body (after the closing '---')
    headings: list[Heading] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    metric_refs: list[MetricRef] = field(default_factory=list)
    log_refs: list[LogRef] = field(default_factory=list)
    hazards: list[Hazard] = field(default_factory=list)
    # Lines that are body rows of a markdown table (header rows excluded), outside code: a
    # playbook's tables of wikilinks declare what it covers and applies.
    table_rows: list[int] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)  # found while reading/parsing
    sha256: str = ""  # of the raw bytes
    size: int = 0

    @property
    def stem(self) -> str:
        return self.path.rsplit("/", 1)[-1][:-3]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def title(self) -> str:
        value = self.frontmatter.get("title")
        if isinstance(value, str) and value.strip():
            return value.strip()
        for heading in self.headings:
            if heading.level == 1:
                return heading.text
        return self.stem

    @property
    def id(self) -> str | None:
        value = self.frontmatter.get("id")
        return str(value) if value is not None else None

    @property
    def maturity(self) -> str | None:
        value = self.frontmatter.get("maturity")
        return value if isinstance(value, str) else None

    @property
    def link_names(self) -> frozenset[str | None]:
        """`link_file_name` of every link target: which files this note can link to at all."""
        return frozenset(link_file_name(link.target) for link in self.links)

    @property
    def table_links(self) -> list[Link]:
        """Body links on table rows (a playbook's declarations): the same objects as in `links`."""
        if not self.table_rows:
            return []
        rows = set(self.table_rows)
        return [link for link in self.links if link.line in rows and link.kind is not LinkKind.PROPERTY]

    @property
    def property_links(self) -> list[Link]:
        """The links in frontmatter values (Obsidian properties): the same objects as in `links`."""
        return [link for link in self.links if link.kind is LinkKind.PROPERTY]

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    @property
    def type(self) -> str | None:
        """The note's type from its `type/…` tag (as in seed 004), else None."""
        for tag in self.tags:
            if not tag.inline and tag.name.startswith("type/"):
                return tag.name[5:]
        for tag in self.tags:
            if tag.name.startswith("type/"):
                return tag.name[5:]
        return None

    @property
    def evidence(self) -> dict[str, Any] | None:
        value = self.frontmatter.get("evidence")
        return value if isinstance(value, dict) else None

    def date(self, key: str) -> _dt.date | None:
        value = self.frontmatter.get(key)
        if isinstance(value, _dt.datetime):
            return value.date()
        if isinstance(value, _dt.date):
            return value
        return None

    def line_of(self, key: str) -> int:
        return self.field_lines.get(key, 1)


@dataclass(slots=True)
class Vault:
    root: Path
    notes: dict[str, Note]  # by vault-relative path
    attachments: set[str]  # every non-note file (vault-relative), for embeds and links
    problems: list[Diagnostic]  # files that could not become notes (unreadable, escaping, ...)
    config: Config | None  # None for a plain Obsidian vault without fmbuild.toml
    folders: set[str] = field(default_factory=set)
    # Notes that exist but could not be parsed (too large, not UTF-8, unreadable): links to them
    # resolve, their headings cannot be checked; `problems` says why each was skipped.
    unparsed: set[str] = field(default_factory=set)
    cache_dir: Path | None = None  # where derived data may be cached (`.fmbuild/`); None: no caching
    # What the loader's analyser found in each note parsed in this run (`load_vault(analyse=)`),
    # by path; notes read from the cache have none.
    analysis: dict[str, Any] = field(default_factory=dict)

    def note(self, path: str) -> Note | None:
        return self.notes.get(path)

    def by_id(self) -> dict[str, Note]:
        return {n.id: n for n in self.notes.values() if n.id is not None}
