"""Which lines of a note are rows of a markdown table.

The vault model keeps links with their lines but not the tables around them, and a playbook
declares what it covers in tables of wikilinks (seed 004's "Techniques Covered"). A CommonMark
parse with the GFM table rule finds the tables (and ignores `|` lines in code blocks or
paragraphs); the links on those lines then become `covers` / `applies` edges.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Block structure is all that is needed: skip inline parsing (most of the cost).
    return MarkdownIt("commonmark", {"html": False}).enable("table").disable("inline")


def table_row_lines(text: str, body_line: int = 1) -> set[int]:
    """1-based numbers of the lines that are body rows of a table (header rows excluded: they
    name columns, not relations). Lines before `body_line` (the frontmatter) are ignored."""
    text = text.removeprefix("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    skip = max(body_line - 1, 0)
    # Blank the frontmatter out, keeping its lines, so token line numbers match the file.
    body = "\n" * skip + "\n".join(lines[skip:])
    rows: set[int] = set()
    in_body = False
    for token in _parser().parse(body):
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            in_body = False
        elif token.type == "tr_open" and in_body and token.map:
            start, end = token.map
            rows.update(range(start + 1, end + 1))
    return rows
