"""What `fmbuild serve` adds to MkDocs' dirty rebuilds: a correct search index, and a signal
when a rebuild is done.

Under `mkdocs serve --dirty` MkDocs renders only the pages whose source changed, and Material's
search plugin then merges the previous index with the new entries on the assumption that exactly
one page was rebuilt (mkdocs-material issue #7638): with several pages rebuilt, entries are
duplicated or lost, and a rebuilt home page (location "") wipes the rest. Here the index is kept
per page: each rendered page's entries are taken from the search plugin as it indexes the page
(before any merge), and after every build the written index is replaced by the previous build's
entries for the pages not rebuilt, the fresh ones for the pages that were, and nothing for pages
that are gone, in the navigation's order. Only active while serving (`start`), so `fmbuild build` is
untouched. The hooks in `mkdocs_hooks` call in here; MkDocs loads that file as a module of its
own, so the state lives in this one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import jinja2

_state: dict[str, Any] = {"active": False}
_lock = threading.Lock()
built = threading.Condition(_lock)  # notified after each build; `builds` counts them


def start() -> None:
    with _lock:
        _state.update(active=True, pages=[], rebuilt=set(), fresh={}, index={}, builds=0)


def stop() -> None:
    with _lock:
        _state.clear()
        _state["active"] = False


def active() -> bool:
    return bool(_state.get("active"))


def builds() -> int:
    with _lock:
        return int(_state.get("builds", 0))


def wait_for_build(after: int, timeout: float) -> bool:
    """Wait until more than `after` builds have finished; False on timeout."""
    with built:
        return built.wait_for(lambda: _state.get("builds", 0) > after, timeout=timeout)


class _MemoryBytecode(jinja2.BytecodeCache):
    """Compiled theme templates kept between rebuilds (MkDocs makes a new Jinja environment
    for each one); Jinja checks each template's source checksum, so an edited one recompiles."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._store.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._store[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _MemoryBytecode()
# Rendered from the whole navigation on every build, dirty or not; while serving they are
# needed once (the navigation a dirty rebuild cannot refresh elsewhere either).
_ONCE_PER_SERVE = ("404.html", "sitemap.xml", "sitemap.xml.gz")


def configure(config: Any) -> None:
    """MkDocs' on_config: after the first build, skip the whole-site static templates."""
    if active() and builds() > 0:
        static = getattr(config.theme, "static_templates", None)
        if isinstance(static, set):
            static.difference_update(_ONCE_PER_SERVE)


def environment(env: jinja2.Environment) -> jinja2.Environment:
    if active():
        env.bytecode_cache = _BYTECODE
    return env


def serving(server: Any) -> Any:
    """MkDocs' on_serve: rebuild as soon as the staged files settle. fmbuild writes each
    re-staging at once, so MkDocs' own wait for a burst of changes (0.1 s) is not needed."""
    if active() and hasattr(server, "build_delay"):
        server.build_delay = 0.02
    return server


def files_seen(page_urls: list[str]) -> None:
    """Every documentation page of this build, in MkDocs' order."""
    if active():
        with _lock:
            _state["pages"] = list(page_urls)
            _state["rebuilt"] = set()
            _state["fresh"] = {}


def page_rendered(url: str, entries: list[dict[str, Any]] | None) -> None:
    """A page MkDocs rendered in this build, with the entries the search plugin made for it
    (None: no search plugin)."""
    if active():
        with _lock:
            _state["rebuilt"].add(url)
            if entries is not None:
                _state["fresh"][url] = list(entries)


def entries_of(search_entries: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    """The entries the plugin has just appended for `url` (a page's entries are contiguous)."""
    i = len(search_entries)
    while i and page_of(str(search_entries[i - 1].get("location", ""))) == url:
        i -= 1
    return search_entries[i:]


def page_of(location: str) -> str:
    return location.split("#", 1)[0]


def build_finished(site_dir: str | Path) -> dict[str, int]:
    """Rewrite the search index from the per-page store; returns what changed (for the log)."""
    if not active():
        return {}
    path = Path(site_dir) / "search" / "search_index.json"
    with built:
        summary = {"rebuilt": len(_state["rebuilt"]), "removed": 0}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None  # no search plugin (or it failed): nothing to correct
        if isinstance(data, dict) and isinstance(data.get("docs"), list):
            fresh: dict[str, list[dict[str, Any]]] = _state["fresh"]
            index: dict[str, list[dict[str, Any]]] = _state["index"]
            live = set(_state["pages"])
            gone = [p for p in index if p not in live]
            summary["removed"] = len(gone)
            for page in gone:
                del index[page]
                _remove_page(Path(site_dir), page)
            for page in _state["rebuilt"]:
                index[page] = fresh.get(page, [])
            data["docs"] = [e for page in _state["pages"] for e in index.get(page, [])]
            path.write_text(json.dumps(data, separators=(",", ":"), default=str), encoding="utf-8")
        _state["builds"] += 1
        built.notify_all()
    return summary


def _remove_page(site_dir: Path, url: str) -> None:
    """A page whose note is gone: its built HTML goes too, so the preview cannot serve it."""
    parts = [p for p in url.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return
    target = site_dir.joinpath(*parts, "index.html") if url.endswith("/") or not url else site_dir.joinpath(*parts)
    if target.is_file() and not target.is_symlink() and site_dir.resolve() in target.resolve().parents:
        target.unlink()
