"""A new note's text: frontmatter with every required field filled (or visibly marked), then the
section skeleton. Values are written as JSON strings, which YAML reads as they are."""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from dataclasses import dataclass, field

from fmbuild.scaffold.skeletons import body

# A new note's chapter when none is given: where WRITING.md and seed 001 put most of its kind.
DEFAULT_CHAPTER = {"technique": 4, "pattern": 5, "anti-pattern": 5, "playbook": 11, "reference": 1}
ID_PREFIX = "fm-"


@dataclass
class Edge:
    target: str  # vault path without '.md': 'techniques/evasion-fgsm'
    use: str


@dataclass
class NoteSpec:
    kind: str  # technique | pattern | anti-pattern | playbook | reference
    title: str
    note_id: str
    date: str  # YYYY-MM-DD, or an Obsidian placeholder
    chapter: int | str  # a number, or a placeholder in templates
    chapter_marked: bool = False  # True when the chapter is a default the author should confirm
    tags: list[str] = field(default_factory=list)  # besides type/<kind>
    atlas: list[str] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)  # mitigates / enables
    covers: list[str] = field(default_factory=list)  # playbooks
    applies: list[str] = field(default_factory=list)
    module: str | None = None  # 'evidence/<name>' for techniques, patterns, anti-patterns; optional for references


def slugify(title: str, limit: int = 60) -> str:
    """A file name from a title: ASCII, lower case, words joined by '-'."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(text) > limit:
        text = text[:limit].rsplit("-", 1)[0] or text[:limit]
    return text


def fresh_id(taken: set[str]) -> str:
    while True:
        candidate = ID_PREFIX + secrets.token_hex(4)
        if candidate not in taken:
            return candidate


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def frontmatter(spec: NoteSpec) -> list[str]:
    lines = ["---", f"title: {_q(spec.title)}", f"id: {spec.note_id}", "tags:", f"  - type/{spec.kind}"]
    lines += [f"  - {tag}" for tag in spec.tags]
    lines += ["maturity: draft", f"created: {spec.date}", f"updated: {spec.date}"]
    chapter = f"chapter: {spec.chapter}"
    if spec.chapter_marked:
        chapter += "  # confirm: the chapter of the table of contents (fmbuild.toml [[chapters]])"
    lines.append(chapter)
    if spec.kind == "technique":
        lines.append("atlas:")
        lines += [f"  - {i}" for i in spec.atlas]
    if spec.kind in ("pattern", "anti-pattern"):
        lines.append("mitigates:" if spec.kind == "pattern" else "enables:")
        for edge in spec.edges:
            lines += [f"  - technique: {_q('[[' + edge.target + ']]')}", f"    use: {_q(edge.use)}"]
    if spec.kind == "playbook":
        if spec.covers:
            lines.append("covers:")
            lines += [f"  - {_q('[[' + t + ']]')}" for t in spec.covers]
        if spec.applies:
            lines.append("applies:")
            lines += [f"  - {_q('[[' + p + ']]')}" for p in spec.applies]
    if spec.module is not None:
        lines += [
            "evidence:",
            f"  module: {spec.module}",
            "  device: any",
            "  timeout: 600",
            "  # What the run must show, checked against its metrics.json, e.g.  accuracy: \">= 0.95\"",
            "  claims: {}",
        ]
    lines.append("---")
    return lines


def render_note(spec: NoteSpec) -> str:
    tables = {"Techniques covered": spec.covers, "Controls applied": spec.applies} if spec.kind == "playbook" else None
    return "\n".join(frontmatter(spec)) + "\n\n" + body(spec.kind, spec.title, spec.module, tables)
