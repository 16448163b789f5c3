"""MkDocs hooks fmbuild's `mkdocs.yml` names (`hooks:`): the content allow-list, run on each
page's rendered Markdown before the page template and the search index see it.

What a note's Markdown renders to (raw HTML, `attr_list` attributes, recorded metrics) goes
through `harden.CONTENT` here; the whole page goes through `harden.PAGE` after MkDocs wrote it.
MkDocs loads this file by path (a module of its own), so the findings are kept in `harden`.
"""

from __future__ import annotations

from typing import Any

from fmbuild.site import harden, urls


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    # Which page MkDocs is rendering, so that a failure inside Python-Markdown can be named.
    harden.RENDERING[:] = [getattr(getattr(page, "file", None), "src_uri", "?")]
    return markdown


def on_page_content(html: str, page: Any, **_: Any) -> str:
    where = getattr(getattr(page, "file", None), "src_uri", "?")
    # A generated page (graph, coverage, ...) sits on a path no note may take (the build
    # refuses such a note), so its own controls and data scripts may stay.
    policy = harden.GENERATED if urls.is_reserved(where) else harden.CONTENT
    cleaned, removed = harden.clean_html(html, policy)
    harden.CONTENT_REMOVED.extend(f"{where}: removed from the page: {what}" for what in removed)
    return cleaned
