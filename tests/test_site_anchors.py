"""Heading anchors: fmbuild writes explicit ids, and they must be the ids MkDocs itself would
give the same headings (Python-Markdown's toc with MkDocs' defaults), duplicates included."""

from __future__ import annotations

import markdown

from fmbuild.site.anchors import display_text, plan_anchors
from fmbuild.vault.parse import parse_note

HEADINGS = [
    "Overview",
    "How it works",
    "How it works",
    "Step 1: load the *model*",
    "The `pickle` problem",
    "Žlutý kůň & <friends>",
    "Why [[x|the alias]] matters",
    "[A link](other.md) first",
    "Trailing hashes ##",
    "100% accuracy?!",
    "==Highlighted== words",
]


def mkdocs_ids(lines: list[str]) -> list[str]:
    """The ids MkDocs' toc gives headings written in plain Markdown (no explicit ids)."""
    md = markdown.Markdown(extensions=["toc", "attr_list"])
    html = md.convert("\n\n".join(lines))
    return [token["id"] for token in _flatten(md.toc_tokens)] if html else []


def _flatten(tokens: list[dict]) -> list[dict]:
    out = []
    for t in tokens:
        out.append(t)
        out.extend(_flatten(t["children"]))
    return out


def test_planned_anchors_equal_mkdocs_own() -> None:
    text = "---\ntitle: T\n---\n" + "\n\n".join(f"## {h}" for h in HEADINGS) + "\n"
    note = parse_note("n.md", text)
    plan = plan_anchors(note, "T", text.split("\n"))
    # What MkDocs sees once the converter has turned Obsidian markup into Markdown:
    converted = ["# T"] + [f"## {display_text(h)}" if "[[" in h or "==" in h else f"## {h}" for h in HEADINGS]
    expected = mkdocs_ids(converted)
    assert [plan.title_id, *plan.headings] == expected


def test_body_opening_with_h1_gets_no_second_title() -> None:
    text = "---\ntitle: T\n---\n\n# Title\n\n## Part\n"
    note = parse_note("n.md", text)
    plan = plan_anchors(note, "T", text.split("\n"))
    assert plan.title_heading is False and plan.headings == ["title", "part"]
