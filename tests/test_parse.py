"""The note parser: every link form Obsidian knows, and every place where nothing is a link."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fmbuild.vault.model import LinkKind
from fmbuild.vault.parse import code_free, parse_note, split_target

SEED_004 = Path("/work/shared/seeds/004_8ea49dce9f142474.txt")


def links(text: str) -> list[tuple[str, str, str | None, str | None, str | None]]:
    note = parse_note("n.md", text)
    return [(l.kind.value, l.target, l.heading, l.block, l.alias) for l in note.links]


def raws(text: str) -> list[str]:
    return [l.raw for l in parse_note("n.md", text).links]


# --- wikilinks and embeds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[[note]]", ("wikilink", "note", None, None, None)),
        ("[[folder/note]]", ("wikilink", "folder/note", None, None, None)),
        ("[[note|alias text]]", ("wikilink", "note", None, None, "alias text")),
        ("[[note#Heading]]", ("wikilink", "note", "Heading", None, None)),
        ("[[note#Heading|alias]]", ("wikilink", "note", "Heading", None, "alias")),
        ("[[note#^block-id]]", ("wikilink", "note", None, "block-id", None)),
        ("[[#Heading]]", ("wikilink", "", "Heading", None, None)),
        ("[[#^blk]]", ("wikilink", "", None, "blk", None)),
        ("[[note#A#B]]", ("wikilink", "note", "A#B", None, None)),
        ("[[note.md]]", ("wikilink", "note.md", None, None, None)),
        ("[[../up/note]]", ("wikilink", "../up/note", None, None, None)),
        ("![[note]]", ("embed", "note", None, None, None)),
        ("![[note#Heading]]", ("embed", "note", "Heading", None, None)),
        ("![[image.png|300]]", ("embed", "image.png", None, None, "300")),
        ("![[image.png|300x200]]", ("embed", "image.png", None, None, "300x200")),
        ("| [[techniques/x\\|X]] |", ("wikilink", "techniques/x", None, None, "X")),
    ],
)
def test_wikilink_forms(text: str, expected: tuple) -> None:
    assert links(text) == [expected]


def test_split_target_keeps_first_bar_and_hash() -> None:
    assert split_target("a/b#H 1|alias|more") == ("a/b", "H 1", None, "alias|more")
    assert split_target(" spaced name ") == ("spaced name", None, None, None)


def test_empty_wikilinks_are_not_links() -> None:
    assert links("[[]] and [[ ]] and [[|x]]") == []


# --- markdown links -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, target, heading, block",
    [
        ("[t](folder/note.md)", "folder/note.md", None, None),
        ("[t](My%20Note.md)", "My Note.md", None, None),
        ("[t](<My Note.md>)", "My Note.md", None, None),
        ("[t](note.md#Some%20Heading)", "note.md", "Some Heading", None),
        ("[t](note.md#^blk)", "note.md", None, "blk"),
        ("[t](#Local)", "", "Local", None),
        ('[t](note.md "a title")', "note.md", None, None),
        ("[t](../up/note.md)", "../up/note.md", None, None),
    ],
)
def test_markdown_links(text: str, target: str, heading: str | None, block: str | None) -> None:
    (link,) = parse_note("n.md", text).links
    assert link.kind is LinkKind.MARKDOWN
    assert (link.target, link.heading, link.block) == (target, heading, block)


def test_markdown_image_is_an_embed() -> None:
    (link,) = parse_note("n.md", "![diagram](img/d.png)").links
    assert link.kind is LinkKind.MARKDOWN and link.image and link.is_embed
    assert link.target == "img/d.png" and link.alias == "diagram"


@pytest.mark.parametrize(
    "text",
    ["[x](https://example.org/a.md)", "[x](mailto:a@b.c)", "[x](obsidian://open?vault=v)", "[x](//cdn/x.md)", "[x]()"],
)
def test_external_and_empty_markdown_links_are_not_vault_links(text: str) -> None:
    assert links(text) == []


# --- positions ---------------------------------------------------------------------------------------


def test_positions_are_one_based_lines_and_columns_in_the_file() -> None:
    text = "---\ntitle: x\n---\nfirst line\nab [[one]] cd ![[two]]\n\t[m](three.md)\n"
    found = [(l.raw, l.line, l.column) for l in parse_note("n.md", text).links]
    assert found == [("[[one]]", 5, 4), ("![[two]]", 5, 15), ("[m](three.md)", 6, 2)]


def test_crlf_line_endings_and_bom() -> None:
    text = "\ufeff---\r\ntitle: x\r\n---\r\n\r\nsee [[a]]\r\n"
    note = parse_note("n.md", text)
    assert note.frontmatter == {"title": "x"}
    assert [(l.target, l.line, l.column) for l in note.links] == [("a", 5, 5)]


# --- what is not a link --------------------------------------------------------------------------------


NOT_LINKS = """\
Inline `[[code span]]` and ``[[double `tick` span]]`` and `![[embed]]`.
<!-- [[html comment]] -->
<!--
[[multi-line html comment]]
-->
%% [[obsidian comment]] %%
%%
[[multi-line obsidian comment]]
%%

```python
x = [[1, 2], [3, 4]]  # [[fenced]]
```

~~~
[[tilde fence]]
~~~

````md
```
[[nested fence]]
```
````

- item
  ```
  [[fence in a list]]
  ```

> ```
> [[fence in a quote]]
> ```

Paragraph.

    [[indented code]]
    ![[indented embed]]

After.
"""


def test_nothing_inside_code_or_comments_counts() -> None:
    note = parse_note("n.md", NOT_LINKS + "\nreal [[link]] #tag ^blk\n")
    assert [l.raw for l in note.links] == ["[[link]]"]
    assert [t.name for t in note.tags] == ["tag"]
    assert [b.id for b in note.blocks] == ["blk"]


def test_unclosed_fence_and_comment_run_to_the_end() -> None:
    assert raws("[[a]]\n```\n[[b]]\n") == ["[[a]]"]
    assert raws("[[a]] %% [[b]]\n\n[[c]]\n") == ["[[a]]"]
    assert raws("[[a]] <!-- [[b]]\n[[c]]\n") == ["[[a]]"]


def test_lone_backtick_is_text_and_code_span_stops_at_blank_line() -> None:
    assert raws("a ` b [[x]]") == ["[[x]]"]
    assert raws("a `b\n\n[[x]] c` d") == ["[[x]]"]


def test_indented_lines_in_lists_are_not_code() -> None:
    text = "- item\n\n    continued [[in-list]]\n\n1. first\n    - [[nested]]\n\tmore [[tabbed]]\n"
    assert raws(text) == ["[[in-list]]", "[[nested]]", "[[tabbed]]"]


def test_indented_code_needs_a_blank_line_before_it() -> None:
    assert raws("para\n    [[lazy continuation]]\n") == ["[[lazy continuation]]"]
    assert raws("para\n\n    [[code]]\n") == []


def test_code_free_keeps_offsets() -> None:
    text = "a `x` b\n```\ny\n```\nc"
    masked = code_free(text)
    assert len(masked) == len(text) and masked.count("\n") == text.count("\n")
    assert masked.startswith("a     b")


# --- headings, blocks, tags, metric references ------------------------------------------------


def test_headings_keep_inline_markup_and_drop_closing_hashes() -> None:
    note = parse_note("n.md", "# Title `code` here\n## Step 1: Prep! ##\n####### not\n#hashtag\n   ### Indented\n")
    assert [(h.level, h.text, h.line) for h in note.headings] == [
        (1, "Title `code` here", 1), (2, "Step 1: Prep!", 2), (3, "Indented", 5),
    ]


def test_block_ids() -> None:
    note = parse_note("n.md", "para text ^abc-1\n\n- item ^Item2\n\n^standalone\n\nnot^inword\n")
    assert [(b.id, b.line) for b in note.blocks] == [("abc-1", 1), ("Item2", 3), ("standalone", 5)]


def test_tags_inline_and_frontmatter() -> None:
    text = "---\ntags:\n  - type/technique\n  - '#target/llm'\n---\n#top and #nested/deep/tag, #123 not, a#b not, #y2k yes\n"
    note = parse_note("n.md", text)
    assert [(t.name, t.inline, t.line) for t in note.tags] == [
        ("type/technique", False, 3), ("target/llm", False, 4),
        ("top", True, 6), ("nested/deep/tag", True, 6), ("y2k", True, 6),
    ]


def test_frontmatter_tags_as_a_string() -> None:
    note = parse_note("n.md", "---\ntags: a, b/c  d\n---\n")
    assert note.tag_names == ["a", "b/c", "d"]


def test_heading_is_not_a_tag_and_url_fragment_is_not_a_tag() -> None:
    assert parse_note("n.md", "# Heading\nsee https://x.org/#frag and [[n#h]]\n").tags == []


def test_metric_references() -> None:
    note = parse_note("n.md", "acc {{evidence:clean_accuracy:.1%}} and {{ evidence:evasion-fgsm/fgsm.accuracy }} `{{evidence:x}}`")
    assert [(m.module, m.metric, m.fmt) for m in note.metric_refs] == [
        (None, "clean_accuracy", ".1%"), ("evasion-fgsm", "fgsm.accuracy", None),
    ]


# --- frontmatter ------------------------------------------------------------------------------------


def test_frontmatter_fields_lines_dates_and_property_links() -> None:
    text = (
        "---\n"
        "title: \"A: B\"\n"
        "created: 2026-02-14\n"
        "successor: \"[[techniques/new|New]]\"\n"
        "mitigates:\n"
        "  - technique: \"[[techniques/evasion]]\"\n"
        "    use: why\n"
        "---\n"
        "# Body\n"
    )
    note = parse_note("n.md", text)
    assert note.frontmatter["title"] == "A: B"
    assert note.frontmatter["created"] == dt.date(2026, 2, 14)
    assert note.field_lines == {"title": 2, "created": 3, "successor": 4, "mitigates": 5}
    assert note.body_line == 9
    props = [(l.kind, l.target, l.alias, l.field, l.line, l.column) for l in note.links]
    assert props == [
        (LinkKind.PROPERTY, "techniques/new", "New", "successor", 4, 13),
        (LinkKind.PROPERTY, "techniques/evasion", None, "mitigates", 6, 17),
    ]
    assert note.problems == []


def test_malformed_yaml_is_one_diagnostic_with_its_position() -> None:
    note = parse_note("bad.md", "---\ntitle: ok\ntags: [a, b\nmaturity: draft\n---\n[[still-parsed]]\n")
    (problem,) = note.problems
    assert problem.code == "frontmatter-invalid" and problem.severity == "error"
    assert problem.path == "bad.md" and problem.line >= 3
    assert note.frontmatter == {}
    assert [l.target for l in note.links] == ["still-parsed"]


def test_frontmatter_that_is_not_a_mapping() -> None:
    (problem,) = parse_note("n.md", "---\n- a\n- b\n---\n").problems
    assert (problem.code, problem.line, problem.column) == ("frontmatter-invalid", 2, 1)
    assert "mapping" in problem.message


def test_unclosed_frontmatter_is_a_warning() -> None:
    (problem,) = parse_note("n.md", "---\ntitle: x\n\n# Body\n").problems
    assert (problem.code, problem.severity, problem.line) == ("frontmatter-invalid", "warning", 1)


def test_yaml_alias_bomb_is_refused() -> None:
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    bomb += "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    bomb += "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n---\n"
    note = parse_note("n.md", bomb)
    assert [p.code for p in note.problems] == ["frontmatter-invalid"]
    assert note.frontmatter == {}


def test_yaml_is_read_safely() -> None:
    note = parse_note("n.md", "---\nx: !!python/object/apply:os.system ['echo pwned']\n---\n")
    assert [p.code for p in note.problems] == ["frontmatter-invalid"]


# --- unsafe HTML is recorded (the security rule reports it) --------------------------------------


def test_hazards_outside_code_only() -> None:
    text = (
        "<script>alert(1)</script>\n"
        "<iframe src=x></iframe>\n"
        "<img src=x onerror=\"alert(1)\">\n"
        "<a href=\"jav&#x61;script:alert(1)\">x</a>\n"
        "[click](javascript:alert(1))\n"
        "`<script>in code</script>`\n"
        "```html\n<script>fenced</script>\n```\n"
        "<div class=\"note\">plain</div> <b onclick=x>bold</b>\n"
        "a < b and a<b, javascript: in prose\n"
    )
    found = [(h.kind, h.line) for h in parse_note("n.md", text).hazards]
    assert found == [
        ("script", 1), ("iframe", 2), ("event-handler", 3), ("javascript-url", 4), ("javascript-url", 5),
        ("event-handler", 10),
    ]


# --- the seed note, exactly as the vault holds notes -------------------------------------------------


@pytest.mark.skipif(not SEED_004.exists(), reason="the seeds are beside the repository")
def test_seed_004_parses_as_obsidian_reads_it() -> None:
    note = parse_note("playbooks/mlsecops.md", SEED_004.read_text(encoding="utf-8"))
    assert note.problems == []
    assert note.type == "playbook"
    assert note.maturity == "draft"
    assert note.frontmatter["created"] == dt.date(2026, 2, 14)
    targets = [l.target for l in note.links]
    assert "techniques/data-poisoning-attacks" in targets
    assert "sources/bibliography" in targets
    assert all("[[" not in l.target and "`" not in l.raw for l in note.links)
    # Nothing from the code fences (e.g. `if np.mean(...)`, the YAML workflow) became a link or tag.
    assert all(t.name.startswith(("type/", "target/", "source/")) for t in note.tags)
    table_links = [l for l in note.links if l.alias == "Data Poisoning"]
    assert table_links and table_links[0].target == "techniques/data-poisoning-attacks"
    assert [h.text for h in note.headings if h.level == 2][:3] == ["Overview", "Scope & Prerequisites", "Methodology"]


# --- table rows (a playbook's tables of wikilinks declare its edges) ------------------------------


@pytest.mark.parametrize(
    "text, rows",
    [
        ("| a | b |\n| --- | --- |\n| [[x]] | y |\n| z | w |\n\nafter\n", [3, 4]),
        ("| a | b |\n|---|---|\n| 1 | 2 |\nlazy row\n- list breaks it\n", [3, 4]),
        ("a | b\n--|--\n1 | 2\n", [3]),
        ("| a | b |\n| --- |\n| 1 | 2 |\n", []),  # header and delimiter disagree
        ("para\n| a | b |\n| - | - |\n| 1 | 2 |\n", [4]),
        ("| a |\n| - |\n| 1 |\n# Heading\n", [3]),
        ("a\n-\nb\n", []),  # a setext heading, not a table
        ("> | a |\n> | - |\n> | 1 |\n", [3]),
        ("| a \\| b | c |\n| - | - |\n| 1 | 2 |\n", [3]),
        ("```\n| a |\n| - |\n| 1 |\n```\n", []),
        ("---\nx: 1\n---\n| a | b |\n| :-- | --: |\n| 1 | 2 |\n", [6]),
    ],
)
def test_table_rows(text: str, rows: list[int]) -> None:
    assert parse_note("n.md", text).table_rows == rows


@pytest.mark.parametrize("text, expected", [
    # Obsidian reads the link before the code span inside it.
    ("See [[#`move`|move]].", [("", "`move`", "move")]),
    ("See [[a#`x` and `y`]].", [("a", "`x` and `y`", None)]),
    ("![[pic `1`.png]]", [("pic `1`.png", None, None)]),
    # A link inside a code span, or whose brackets a code span holds, is no link.
    ("Code: `[[not-a-link]]`.", []),
    ("`x [[` y]] and `[[a` b]]`", []),
    ("%% [[hidden `x`]] %%", []),
])
def test_code_spans_inside_a_wikilink(text: str, expected: list) -> None:
    note = parse_note("n.md", text)
    assert [(l.target, l.heading, l.alias) for l in note.links] == expected
    for link in note.links:  # the raw text is the note's own, so the site can find and replace it
        assert link.raw in text
