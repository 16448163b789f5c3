"""`fmbuild.site.live`: the search index `serve` keeps right across MkDocs' dirty rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmbuild.site import live


def write_index(site: Path, docs: list[dict]) -> None:
    (site / "search").mkdir(parents=True, exist_ok=True)
    (site / "search" / "search_index.json").write_text(json.dumps({"config": {"lang": ["en"]}, "docs": docs}))


def read_index(site: Path) -> list[dict]:
    return json.loads((site / "search" / "search_index.json").read_text())["docs"]


def entry(page: str, text: str, anchor: str = "") -> dict:
    return {"location": f"{page}#{anchor}" if anchor else page, "title": page or "home", "text": text}


@pytest.fixture
def serving():
    live.start()
    yield
    live.stop()


def build(site: Path, pages: list[str], rendered: dict[str, list[dict]], written: list[dict]) -> dict:
    """One MkDocs build as the hooks see it: the pages, what the search plugin indexed for each
    page rendered, and the index file the plugin then wrote (with its own merge)."""
    live.files_seen(pages)
    plugin_entries: list[dict] = []
    for url, entries in rendered.items():
        plugin_entries += entries
        live.page_rendered(url, live.entries_of(plugin_entries, url))
    write_index(site, written)
    return live.build_finished(site)


def test_dirty_rebuild_of_several_pages_and_the_home_page(tmp_path: Path, serving: None) -> None:
    pages = ["", "a/", "b/", "c/"]
    v1 = {"": [entry("", "home v1")], "a/": [entry("a/", "a v1"), entry("a/", "a sec", "s")],
          "b/": [entry("b/", "b v1")], "c/": [entry("c/", "c v1")]}
    build(tmp_path, pages, v1, [e for es in v1.values() for e in es])
    # A dirty build of "" and "b/": Material's merge (one page per rebuild) keeps the old "b/"
    # entries beside the new ones and drops everything under "" (every location starts with it).
    v2 = {"": [entry("", "home v2")], "b/": [entry("b/", "b v2"), entry("b/", "b new sec", "n")]}
    summary = build(tmp_path, pages, v2, [entry("b/", "b v1"), entry("", "home v2"), entry("b/", "b v2"),
                                          entry("b/", "b new sec", "n")])
    assert [(e["location"], e["text"]) for e in read_index(tmp_path)] == [
        ("", "home v2"), ("a/", "a v1"), ("a/#s", "a sec"), ("b/", "b v2"), ("b/#n", "b new sec"), ("c/", "c v1")]
    assert summary == {"rebuilt": 2, "removed": 0}
    assert live.builds() == 2


def test_entries_of_takes_only_the_last_page_run() -> None:
    entries = [entry("a/", "1"), entry("b/", "2"), entry("a/", "3"), entry("a/", "4", "x")]
    assert [e["text"] for e in live.entries_of(entries, "a/")] == ["3", "4"]
    assert live.entries_of(entries, "c/") == []


def test_a_page_that_is_gone_leaves_the_index_and_the_site(tmp_path: Path, serving: None) -> None:
    build(tmp_path, ["a/", "b/"], {"a/": [entry("a/", "a")], "b/": [entry("b/", "b")]}, [entry("a/", "a"), entry("b/", "b")])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "index.html").write_text("old page")
    summary = build(tmp_path, ["a/"], {}, [entry("a/", "a"), entry("b/", "b")])
    assert [e["location"] for e in read_index(tmp_path)] == ["a/"]
    assert summary["removed"] == 1 and not (tmp_path / "b" / "index.html").exists()


def test_a_page_outside_the_site_is_never_removed(tmp_path: Path, serving: None) -> None:
    outside = tmp_path / "outside.html"
    outside.write_text("keep me")
    site = tmp_path / "site"
    build(site, ["../outside.html"], {"../outside.html": [entry("../outside.html", "x")]}, [])
    build(site, [], {}, [])
    assert outside.read_text() == "keep me"


def test_inactive_outside_serve(tmp_path: Path) -> None:
    live.stop()
    write_index(tmp_path, [entry("a/", "a")])
    assert live.build_finished(tmp_path) == {}
    assert read_index(tmp_path) == [entry("a/", "a")]
