"""The Obsidian-to-Markdown conversion, construct by construct (no MkDocs run here)."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest

from fmbuild.site.context import make_context
from fmbuild.site.convert import docs_path
from fmbuild.vault.load import load_project

FRONT = "---\ntitle: {title}\n---\n"


def make_vault(root: Path, notes: dict[str, str]) -> Path:
    vault = root / "vault"
    for path, text in notes.items():
        target = vault / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(textwrap.dedent(text), encoding="utf-8")
    return vault


def convert(tmp_path: Path, notes: dict[str, str], which: str) -> str:
    """The converted body of note `which` in a plain vault made of `notes`."""
    _config, vault = load_project(vault=make_vault(tmp_path, notes), use_cache=False)
    ctx = make_context(vault, None)
    note = vault.notes[which]
    ids = copy.deepcopy(ctx.site.anchors_of(note).ids)
    return ctx.converter.page_body(note, docs_path(note), ids)


def test_wikilink_forms_become_relative_links_with_anchors(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "a/source.md": """\
            # Source

            [[target]] [[target|the alias]] [[b/target#Second part]] [[target#^blk]] [[#Local]]

            ## Local
            """,
        "b/target.md": """\
            ---
            title: The Target
            ---
            ## First

            ## Second part

            A paragraph. ^blk
            """,
    }, "a/source.md")
    assert "[The Target](../b/target.md)" in out
    assert "[the alias](../b/target.md)" in out
    assert "[The Target &gt; Second part](../b/target.md#second-part)" in out
    assert "(../b/target.md#block-blk)" in out
    assert "[Local](#local)" in out
    assert "## Local { #local }" in out


def test_bare_name_resolves_to_the_linking_folder_when_names_repeat(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "x/notes.md": "See [[readme]].\n",
        "x/readme.md": FRONT.format(title="X readme"),
        "y/readme.md": FRONT.format(title="Y readme"),
    }, "x/notes.md")
    assert "[X readme](readme.md)" in out


def test_ambiguous_and_broken_links_are_visible_text_not_links(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "z/notes.md": "See [[readme]] and [[nowhere]].\n",
        "x/readme.md": "x\n",
        "y/readme.md": "y\n",
    }, "z/notes.md")
    assert '<span class="fm-broken" title="ambiguous: x/readme.md, y/readme.md">readme</span>' in out
    assert '<span class="fm-broken" title="no such note or file">nowhere</span>' in out


def test_duplicate_headings_get_mkdocs_suffixes_and_links_follow(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "n.md": """\
            # N

            ## Step `one`: go!
            ## Step one: go
            [[#Step one go]]
            """,
    }, "n.md")
    assert "## Step `one`: go! { #step-one-go }" in out
    assert "## Step one: go { #step-one-go_1 }" in out
    assert "[Step one go](#step-one-go)" in out  # Obsidian matches the first such heading


def test_embeds_transclude_note_heading_and_block(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "page.md": """\
            # Page

            ![[part#Wanted]]

            ![[part#^quote]]

            Inline ![[part]] stays a link.
            """,
        "part.md": """\
            # Part

            ## Wanted

            Wanted text with [[page]].

            ## Unwanted

            Unwanted text.

            Quoted line one
            quoted line two ^quote
            """,
    }, "page.md")
    assert '<div class="fm-embed" markdown>' in out
    assert "Wanted text with [Page](page.md)." in out  # links re-based for the embedding page
    assert "## Wanted { #wanted }" in out
    assert "Unwanted text" not in out.split("Quoted line one")[0]
    assert "Quoted line one\nquoted line two" in out
    assert "Inline [Part](part.md) stays a link." in out


def test_embed_cycles_stop_with_a_link(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "a.md": "# A\n\n![[b]]\n",
        "b.md": "# B\n\n![[a]]\n",
    }, "a.md")
    assert out.count('<div class="fm-embed" markdown>') == 1
    assert "[A](a.md)" in out


def test_image_embeds_keep_their_size(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "n.md": "![[plot.png|300]]\n\n![[plot.png|Accuracy|300x200]]\n",
        "img/plot.png": b"\x89PNG\r\n\x1a\n",
    }, "n.md")
    assert '![plot.png](img/plot.png){ width="300" }' in out
    assert '![Accuracy](img/plot.png){ width="300" height="200" }' in out


def test_callouts_become_admonitions_code_untouched(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "n.md": """\
            > [!warning]- Careful *now*
            > Body line.
            > > [!tip]
            > > Inner.

            > [!unknownkind] Odd
            > Text.

            ```
            > [!note] not a callout
            ```
            """,
    }, "n.md")
    assert '??? warning "Careful *now*"\n    Body line.' in out
    assert '    !!! tip "Tip"\n        Inner.' in out
    assert '!!! note "Odd"' in out
    assert "> [!note] not a callout" in out


def test_comments_removed_but_not_inside_code(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "n.md": """\
            Keep %% drop this %% keep.
            %%
            whole block [[gone]]
            %%
            <!-- html comment -->
            `%% code %%` and ==marked== but `==code==`.
            """,
    }, "n.md")
    assert "drop this" not in out and "whole block" not in out and "html comment" not in out
    assert "Keep  keep." in out
    assert "`%% code %%`" in out
    assert "<mark>marked</mark>" in out and "`==code==`" in out


def test_inline_tags_link_to_tag_pages(tmp_path: Path) -> None:
    out = convert(tmp_path, {"folder/n.md": "Tagged #target/ml-model here, not `#code`.\n"}, "folder/n.md")
    assert "[\\#target/ml-model](../tags/target/ml-model.md){ .fm-tag }" in out
    assert "`#code`" in out


def test_block_ids_become_anchors(tmp_path: Path) -> None:
    out = convert(tmp_path, {"n.md": "Para one. ^first\n\nPara two\n\n^second\n"}, "n.md")
    assert 'Para one. <span class="fm-block" id="block-first"></span>' in out
    assert 'Para two <span class="fm-block" id="block-second"></span>' in out
    assert "^second" not in out


def test_metric_without_record_is_marked_not_measured(tmp_path: Path) -> None:
    out = convert(tmp_path, {"n.md": "Accuracy {{evidence:clean_accuracy:.1%}}.\n"}, "n.md")
    assert "fm-not-measured" in out and "not measured" in out
    assert "%" not in out.split("not measured")[0].split("Accuracy")[1].replace('title="', "")


@pytest.mark.parametrize(
    ("source", "forbidden", "kept"),
    [
        ("<script>alert(1)</script>", "<script>", "&lt;script&gt;"),
        ('<img src="https://tracker.example/p.gif">', "<img", "&lt;img"),
        ('<span onclick="x()">hi</span>', "<span onclick", "&lt;span onclick"),
        ('<a href="javascript:alert(1)">x</a>', '<a href="javascript', "&lt;a href"),
        ('<iframe src="/x"></iframe>', "<iframe", "&lt;iframe"),
        ("[click](javascript:alert(1))", "javascript:", "click"),
        ("![remote](https://example.com/x.png)", "![remote]", "[remote](https://example.com/x.png)"),
    ],
)
def test_unsafe_html_and_remote_loads_are_neutralised(tmp_path: Path, source: str, forbidden: str, kept: str) -> None:
    out = convert(tmp_path, {"n.md": f"Before {source} after.\n"}, "n.md")
    assert forbidden not in out
    assert kept in out


def test_harmless_html_is_kept(tmp_path: Path) -> None:
    out = convert(tmp_path, {"n.md": '<span class="x">ok</span> <kbd>Ctrl</kbd> <img src="local.png" width="20">\n'}, "n.md")
    assert '<span class="x">ok</span>' in out and "<kbd>Ctrl</kbd>" in out and '<img src="local.png"' in out


def test_link_labels_cannot_smuggle_html_or_active_links(tmp_path: Path) -> None:
    out = convert(tmp_path, {
        "n.md": "[[t|<img src=https://x.example/p.gif>]] and [[[a](javascript:alert(1))](t.md)\n",
        "t.md": "# T\n",
    }, "n.md")
    assert "<img" not in out and "&lt;img" in out
    assert "javascript:" not in out


def test_highlight_around_a_link(tmp_path: Path) -> None:
    out = convert(tmp_path, {"n.md": "==see [[t]] now==\n", "t.md": "# T\n"}, "n.md")
    assert "<mark>see [T](t.md) now</mark>" in out
