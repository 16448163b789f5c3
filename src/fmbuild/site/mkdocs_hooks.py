"""MkDocs hooks fmbuild's `mkdocs.yml` names (`hooks:`): the content allow-list, run on each
page's rendered Markdown before the page template and the search index see it.

What a note's Markdown renders to (raw HTML, `attr_list` attributes, recorded metrics) goes
through `harden.CONTENT` here; the whole page goes through `harden.PAGE` after MkDocs wrote it.
MkDocs loads this file by path (a module of its own), so the findings are kept in `harden`,
and what `fmbuild serve` tracks across dirty rebuilds in `live` (inactive in `fmbuild build`).
"""

from __future__ import annotations

from typing import Any

from fmbuild.site import harden, live, urls


def on_config(config: Any, **_: Any) -> Any:
    live.configure(config)
    return config


def on_env(env: Any, **_: Any) -> Any:
    return live.environment(env)


def on_serve(server: Any, **_: Any) -> Any:
    return live.serving(server)


def on_files(files: Any, **_: Any) -> Any:
    live.files_seen([f.url for f in files.documentation_pages()])
    return files


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


def on_page_context(context: Any, page: Any, config: Any, **_: Any) -> Any:
    # Only pages MkDocs renders in this build reach this hook, after the search plugin (hooks
    # run after plugins) has indexed them.
    if live.active():
        search = next((p for name, p in config["plugins"].items() if name.split("/")[-1] == "search"), None)
        entries = getattr(getattr(search, "search_index", None), "entries", None)
        live.page_rendered(page.url, live.entries_of(entries, page.url) if isinstance(entries, list) else None)
    return context


def on_post_build(config: Any, **_: Any) -> None:
    live.build_finished(config["site_dir"])
