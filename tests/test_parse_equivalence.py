"""Edge cases of the note parser's fast paths, pinned to the outputs of the implementation they
replaced (written out here, not computed): closing #s of headings, wikilink splitting, tag and
block-id boundaries, markdown links whose start sits far from their `](`, delimiter rows without
a hint, and the regions where nothing counts (fences, code spans, comments)."""

from __future__ import annotations

import pytest

from fmbuild.vault.lines import Lines
from fmbuild.vault.parse import parse_note
from fmbuild.vault.regions import code_free, excluded_spans

# Each dict: note text -> what parse_note (or the regions) gave before the fast paths.
HEADINGS = {
    "# a #b": [(1, "a #b", 1)],
    "# #": [(1, "#", 1)],
    "## a ## ##": [(2, "a ##", 1)],
    "# foo# ": [(1, "foo#", 1)],
    "#\t#\t": [(1, "#", 1)],
    "#": [(1, "", 1)],
    "####### seven": [],
    "   ### x ###   ": [(3, "x", 1)],
    "    # four": [],
    "# a `b` #": [(1, "a `b`", 1)],
    "#`x`": [],
    "# \xa0#": [(1, "#", 1)],
    "# x \x0b#": [(1, "x \x0b#", 1)],
    "x\n# title ##  \n## `code # here` ##\n###\tTabs\t#\t": [(1, "title", 2), (2, "`code # here`", 3), (3, "Tabs", 4)],
}
WIKILINKS = {
    "[[a\\|b]]": [("wikilink", "a", None, None, "b", 1, 1, "[[a\\|b]]", False)],
    "[[a#h\\|b]]": [("wikilink", "a", "h", None, "b", 1, 1, "[[a#h\\|b]]", False)],
    "[[a\\#h]]": [("wikilink", "a\\", "h", None, None, 1, 1, "[[a\\#h]]", False)],
    "[[ #^ blk | al ]]": [("wikilink", "", None, "blk", "al", 1, 1, "[[ #^ blk | al ]]", False)],
    "[[#]]": [("wikilink", "", "", None, None, 1, 1, "[[#]]", False)],
    "[[|]] [[ ]] [[]] [[|alias]]": [],
    "[[a#b#c|d|e]]": [("wikilink", "a", "b#c", None, "d|e", 1, 1, "[[a#b#c|d|e]]", False)],
    "x ![[img.png|300]]": [("embed", "img.png", None, None, "300", 1, 3, "![[img.png|300]]", False)],
    "!![[x]]": [("embed", "x", None, None, None, 1, 2, "![[x]]", False)],
    "[[x![[y]]": [("embed", "y", None, None, None, 1, 4, "![[y]]", False)],
    "[[a\\]] [[b\\|]]": [
        ("wikilink", "a\\", None, None, None, 1, 1, "[[a\\]]", False),
        ("wikilink", "b", None, None, "", 1, 8, "[[b\\|]]", False),
    ],
    "[[ note .md # Head | Alias ]]": [
        ("wikilink", "note .md", "Head", None, "Alias", 1, 1, "[[ note .md # Head | Alias ]]", False)
    ],
}
TAGS = {
    "#start a#b #c [[n#h]] #1/2 #/x #x/ #ok/y": [("start", 1, 1), ("c", 1, 12), ("ok/y", 1, 36)],
    "a\xa0#nbsp \x1c#fs x\u3000#ideo": [("nbsp", 1, 3), ("fs", 1, 10), ("ideo", 1, 16)],
    "`#code` %% #comment %% #end#more": [("end", 1, 24)],
}
BLOCKS = {
    "para ^id-1\nx^no\n^start\na ^b^c\nt ^tab\t": [("id-1", 1), ("start", 3), ("tab", 5)],
}
MDLINKS = {
    "[a [b](c)](d.md)": ([("markdown", "d.md", None, None, "a [b](c)", 1, 1, "[a [b](c)](d.md)", False)], []),
    "x [a](b.md\n'title') y": ([("markdown", "b.md", None, None, "a", 1, 3, "[a](b.md\n'title')", False)], []),
    "[x](\n[a](b.md#Sec)": ([("markdown", "b.md", "Sec", None, "a", 2, 1, "[a](b.md#Sec)", False)], []),
    "[[w]] [t](<sp ace.md>) [[v]](u.md)": (
        [
            ("wikilink", "w", None, None, None, 1, 1, "[[w]]", False),
            ("markdown", "sp ace.md", None, None, "t", 1, 7, "[t](<sp ace.md>)", False),
            ("wikilink", "v", None, None, None, 1, 24, "[[v]]", False),
            ("markdown", "u.md", None, None, "[v]", 1, 24, "[[v]](u.md)", False),
        ],
        [],
    ),
    "[js](javascript:alert(1)) ![i](p.png)": (
        [("markdown", "p.png", None, None, "i", 1, 27, "![i](p.png)", True)],
        [("javascript-url", 1, 1)],
    ),
    "a](b [c](d.md#^blk)": ([("markdown", "d.md", None, "blk", "c", 1, 6, "[c](d.md#^blk)", False)], []),
}
TABLES = {
    "a |\n--: |\nc |\n": [],
    "| a | b |\n| --- | :-: |\n| c \\| d | e |\n| f | g |\n\nx\n": [3, 4],
    "```\n| a | b |\n| - | - |\n| c | d |\n```\n": [],
    "a | b\n-|-\nc|d\n# h\ne|f\n": [3],
}
# The same rows after a long paragraph, where pipes are few (another way to find the hints).
PROSE = "word " * 400 + "\n\n"
SPARSE_TABLES = {
    PROSE + "| a | b |\n| --- | --- |\n| c | d |\n": [5],
    PROSE + "a |\n--: |\nc |\n": [],
    PROSE + "a | b\n-|-\nc|d\n": [5],
}
REGIONS = {
    "a <b %c ~~d ~~~e\n": (([], []), "a <b %c ~~d ~~~e\n"),
    "%%%x%%": (([(0, 6)], []), "      "),
    "<!---->z": (([(0, 7)], []), "       z"),
    "```py\ncode\n```\nafter": (([(0, 14)], []), "     \n    \n   \nafter"),
    "``` `x`\nnot a fence": (([(4, 7)], []), "```    \nnot a fence"),
    "~~~\na\n  ~~~~\nb": (([(0, 12)], []), "   \n \n      \nb"),
    "```\nnever closed\n": (([(0, 17)], []), "   \n            \n"),
    "> ```\n> x\n> ```\ny": (([(0, 15)], []), "     \n   \n     \ny"),
    "``a`b``": (([(0, 7)], []), "       "),
    "`a``b`": (([(0, 6)], []), "      "),
    "`a\n\nb`": (([], []), "`a\n\nb`"),
    "```\n a ``` b\n```\nc": (([(0, 16)], []), "   \n        \n   \nc"),
    "x `` ` `` y": (([(2, 9)], []), "x         y"),
    "~~ a ~~~ b\n~~~~\nin\n~~~~~\nout": (([(11, 24)], []), "~~ a ~~~ b\n    \n  \n     \nout"),
    "\n    code\n\ntext\n- item\n\n    cont\n": (([], [(1, 10)]), "\n        \n\ntext\n- item\n\n    cont\n"),
}


def _link(link) -> tuple:
    return (
        link.kind.value,
        link.target,
        link.heading,
        link.block,
        link.alias,
        link.line,
        link.column,
        link.raw,
        link.image,
    )


@pytest.mark.parametrize("text, expected", HEADINGS.items())
def test_headings(text: str, expected: list) -> None:
    # Closing #s count only after a blank; a blank is a space or a tab, not U+00A0 or \x0b.
    assert [(h.level, h.text, h.line) for h in parse_note("n.md", text).headings] == expected


@pytest.mark.parametrize("text, expected", WIKILINKS.items())
def test_wikilinks(text: str, expected: list) -> None:
    # `\|` drops one backslash only before an alias; `[[#]]` links to an empty heading.
    assert [_link(link) for link in parse_note("n.md", text).links] == expected


@pytest.mark.parametrize("text, expected", TAGS.items())
def test_tags(text: str, expected: list) -> None:
    # Any Unicode whitespace (U+00A0, \x1c, U+3000) may stand before a tag.
    assert [(t.name, t.line, t.column) for t in parse_note("n.md", text).tags if t.inline] == expected


@pytest.mark.parametrize("text, expected", BLOCKS.items())
def test_blocks(text: str, expected: list) -> None:
    assert [(b.id, b.line) for b in parse_note("n.md", text).blocks] == expected


@pytest.mark.parametrize("text, expected", MDLINKS.items())
def test_markdown_links(text: str, expected: tuple) -> None:
    # A link's title may sit on the next line; an unclosed `](` on an earlier line hides nothing.
    note = parse_note("n.md", text)
    assert ([_link(link) for link in note.links], [(h.kind, h.line, h.column) for h in note.hazards]) == expected


@pytest.mark.parametrize("text, expected", [*TABLES.items(), *SPARSE_TABLES.items()])
def test_table_rows(text: str, expected: list) -> None:
    # `--: |` is a delimiter row without a `|-`/`-|` hint: no table, as before.
    assert parse_note("n.md", text).table_rows == expected


@pytest.mark.parametrize("text, expected", REGIONS.items())
def test_regions(text: str, expected: tuple) -> None:
    spans, masked = expected
    assert excluded_spans(text) == spans
    assert code_free(text) == masked


def test_line_endings_and_bom() -> None:
    note = parse_note("n.md", "---\ntags: [a]\n---\r\n# h\r\n[[x]] #t\r\n")
    assert [(h.level, h.text, h.line) for h in note.headings] == [(1, "h", 4)]
    assert [(l.target, l.line, l.column) for l in note.links] == [("x", 5, 1)]
    assert [(t.name, t.line, t.column, t.inline) for t in note.tags] == [("a", 2, 2, False), ("t", 5, 7, True)]
    assert note.body_line == 4
    note = parse_note("n.md", "\ufeff# h\r[[x]]")
    assert [(h.text, h.line) for h in note.headings] == [("h", 1)]
    assert [(l.target, l.line, l.column) for l in note.links] == [("x", 2, 1)]


def test_lines() -> None:
    lines = Lines("ab\n\ncd\n")
    assert lines.starts == [0, 3, 4, 7]
    assert [lines.pos(o) for o in (0, 2, 3, 4, 6, 7)] == [(1, 1), (1, 3), (2, 1), (3, 1), (3, 3), (4, 1)]
    assert Lines("").starts == [0]
