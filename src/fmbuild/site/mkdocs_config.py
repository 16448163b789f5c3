"""The `mkdocs.yml` fmbuild writes next to the staged docs.

Material's defaults are tightened so that the site makes no third-party request: no Google
Fonts (`font: false`), no `repo_url` (Material would ask GitHub's API for stars and forks from the
reader's browser; the repository is linked in the footer instead), no CDN-loaded extensions
(no Mermaid, MathJax or emoji images). MkDocs' own link and anchor validation is on, at warning
level, so a conversion mistake is a build warning (and with `--strict` a failure).
"""

from __future__ import annotations

import html
import json
import posixpath
from pathlib import Path
from typing import Any

from fmbuild.site import mkdocs_hooks, urls
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, title_of

FOLDER_ORDER = ("techniques", "patterns", "playbooks", "tools", "sources")

MARKDOWN_EXTENSIONS: list[Any] = [
    {"toc": {"permalink": True}},
    "tables",
    "attr_list",
    "md_in_html",
    "admonition",
    "footnotes",
    "def_list",
    "pymdownx.details",
    {"pymdownx.highlight": {"use_pygments": True, "anchor_linenums": False}},
    "pymdownx.inlinehilite",
    "pymdownx.superfences",
    {"pymdownx.tasklist": {"custom_checkbox": True}},
    "pymdownx.tilde",
]


def nav(ctx: SiteContext) -> list[Any]:
    entries: list[Any] = [{"Home": urls.HOME}]
    if ctx.config and ctx.config.chapters:
        entries.append({"Growth Map": urls.GROWTH_MAP})
    tree: dict[str, Any] = {}
    for note in ctx.vault.notes.values():
        parts = docs_path(note).split("/")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        node[parts[-1]] = note
    top = sorted(
        (k for k in tree if k.endswith("/")),
        key=lambda k: (FOLDER_ORDER.index(k[:-1]) if k[:-1] in FOLDER_ORDER else len(FOLDER_ORDER), k.lower()),
    )
    for folder in top:
        entries.append({_text(_folder_title(folder)): _nav_items(tree[folder])})
    loose = {k: v for k, v in tree.items() if not k.endswith("/")}
    if loose:
        entries.append({"Notes": _nav_items(loose)})
    entries.append({
        "Manual": [
            {"Coverage matrix": urls.COVERAGE},
            {"ATLAS matrix": urls.ATLAS_MATRIX},
            {"Graph": urls.GRAPH},
            {"Evidence report": urls.EVIDENCE_REPORT},
            {"Tags": urls.TAGS_INDEX},
            {"Editions": urls.EDITIONS},
        ]
    })
    return entries


def _text(value: str) -> str:
    """Author text for a place where MkDocs and Material print HTML (nav, titles, meta tags)."""
    return html.escape(value, quote=True)


def _folder_title(folder: str) -> str:
    return folder.rstrip("/").replace("-", " ").replace("_", " ").capitalize()


def _nav_items(node: dict[str, Any]) -> list[Any]:
    notes = sorted(((title_of(v), docs_path(v)) for k, v in node.items() if not k.endswith("/")), key=lambda t: t[0].lower())
    items: list[Any] = [{_text(title): path} for title, path in notes]
    for folder in sorted(k for k in node if k.endswith("/")):
        items.append({_text(_folder_title(folder)): _nav_items(node[folder])})
    return items


def mkdocs_config(ctx: SiteContext, docs_dir: Path, site_dir: Path) -> dict[str, Any]:
    settings = ctx.config.site if ctx.config else None
    config: dict[str, Any] = {
        "site_name": _text(ctx.site_name),
        "docs_dir": str(docs_dir),
        "site_dir": str(site_dir),
        "use_directory_urls": True,
        "theme": {
            "name": "material",
            "font": False,
            "language": "en",
            "features": [
                "navigation.sections",
                "navigation.top",
                "navigation.tracking",
                "search.highlight",
                "search.suggest",
                "content.code.copy",
                "toc.follow",
            ],
            "palette": [
                {"scheme": "default", "primary": "blue grey", "accent": "amber",
                 "toggle": {"icon": "material/weather-night", "name": "Dark mode"}},
                {"scheme": "slate", "primary": "blue grey", "accent": "amber",
                 "toggle": {"icon": "material/weather-sunny", "name": "Light mode"}},
            ],
        },
        "plugins": ["search"],
        "hooks": [str(Path(mkdocs_hooks.__file__).resolve())],
        "markdown_extensions": MARKDOWN_EXTENSIONS,
        "extra_css": [posixpath.join(urls.ASSETS_DIR, "fmbuild.css")],
        "extra_javascript": [posixpath.join(urls.ASSETS_DIR, "fmbuild.js")],
        "extra": {"generator": False},
        "validation": {
            "nav": {"omitted_files": "info", "not_found": "warn", "absolute_links": "warn"},
            "links": {"not_found": "warn", "absolute_links": "warn", "unrecognized_links": "warn", "anchors": "warn"},
        },
        "not_in_nav": "/tags/\n/runs/",
        "nav": nav(ctx),
    }
    if settings is not None:
        if settings.description:
            config["site_description"] = _text(settings.description)
        if settings.url:
            config["site_url"] = settings.url
        if settings.repo_url:
            config["copyright"] = _text(f"Source: {settings.repo_url}")
    return config


def write_mkdocs_yml(config: dict[str, Any], path: Path) -> bool:
    # JSON is YAML (flow style) and writes a thousand-page nav far faster than yaml.safe_dump.
    text = "# Written by fmbuild build; regenerated on every build.\n" + json.dumps(config, indent=1, ensure_ascii=False) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
