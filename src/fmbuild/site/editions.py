"""Editions on the site: the Editions page, each Edition's compiled manual published under
`editions/<NAME>/` with a banner, and `versions.json` (mike's format) for the version selector.

An Edition folder holds `manifest.json` (`name`, `date`, `commit`), `CHANGELOG.md` and
`manual.html`. Editions are read, never written: the site copies what is committed.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

from fmbuild.site import urls
from fmbuild.site.pages import Page

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


@dataclass
class Edition:
    name: str
    date: str
    commit: str
    folder: Path
    changelog: str  # Markdown, as committed ('' when absent)

    @property
    def manual(self) -> Path:
        return self.folder / "manual.html"


def find_editions(root: Path | None) -> tuple[list[Edition], list[str]]:
    """The Editions under `root`, newest first, and a message for each folder that is not one."""
    if root is None or not root.is_dir():
        return [], []
    found, problems = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not _NAME.match(folder.name):
            problems.append(f"editions/{folder.name}: not a usable Edition name (letters, digits, . _ -)")
            continue
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"editions/{folder.name}/manifest.json: cannot be read ({exc.__class__.__name__})")
            continue
        if not isinstance(manifest, dict):
            problems.append(f"editions/{folder.name}/manifest.json: not a JSON object")
            continue
        try:
            changelog = (folder / "CHANGELOG.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            changelog = ""
        found.append(Edition(
            name=folder.name,
            date=str(manifest.get("date") or ""),
            commit=str(manifest.get("commit") or ""),
            folder=folder,
            changelog=changelog,
        ))
    found.sort(key=lambda e: (e.date, e.name), reverse=True)
    return found, problems


def _changelog_html(text: str) -> str:
    # Raw HTML off, and no links or images: a changelog is text, and nothing in it may load.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").disable(["image", "link"])
    return md.render(text)


def editions_page(editions: list[Edition]) -> Page:
    page = urls.EDITIONS
    lines = [
        "# Editions { #editions }",
        "",
        ("An Edition is the manual frozen at one moment: every note, every evidence record and the "
         "tool's versions, hashed and never rewritten. Cite an Edition; read the living manual."),
        "",
    ]
    if not editions:
        lines.append("No Edition has been cut yet. `fmbuild edition cut NAME` freezes the current manual as one.")
        return Page(page, "Editions", "\n".join(lines))
    for e in editions:
        href = urls.relative_url(page, f"editions/{e.name}/", to_is_docs=False)
        lines += [f"## Edition {e.name} {{ #edition-{e.name.replace('.', '-')} }}", ""]
        facts = [f"frozen on {html.escape(e.date)}" if e.date else "", f"commit <code>{html.escape(e.commit[:12])}</code>" if e.commit else ""]
        lines.append('<p class="fm-edition">' + " · ".join(f for f in facts if f) +
                     (f' · <a href="{href}">read this Edition</a>' if e.manual.is_file() else " · no compiled manual") + "</p>")
        lines.append("")
        if e.changelog.strip():
            lines += [f'<details class="fm-changelog"><summary>Changes in {html.escape(e.name)}</summary>',
                      _changelog_html(e.changelog), "</details>", ""]
    return Page(page, "Editions", "\n".join(lines))


def versions(editions: list[Edition]) -> list[dict[str, object]]:
    """`versions.json` as mike writes it: the living manual first, then each Edition."""
    found = [{"version": ".", "title": "Living manual", "aliases": ["latest"]}]
    for e in editions:
        if e.manual.is_file():
            found.append({"version": f"editions/{e.name}", "title": f"Edition {e.name}", "aliases": []})
    return found


def banner(edition: Edition) -> str:
    date = f", frozen on {html.escape(edition.date)}" if edition.date else ""
    return (
        '<div id="fm-edition-banner" role="note" style="position:sticky;top:0;z-index:1000;'
        "background:#263238;color:#fff;padding:.6em 1em;font:15px/1.4 system-ui,sans-serif;"
        'text-align:center">'
        f"Edition {html.escape(edition.name)}{date}; "
        '<a href="../../" style="color:#ffd54f">the living manual is here</a>.'
        "</div>"
    )


def publish(editions: list[Edition], output: Path) -> list[str]:
    """Write each Edition's manual (with its banner) and `versions.json` into the built site."""
    written = []
    for e in editions:
        if not e.manual.is_file():
            continue
        text = e.manual.read_text(encoding="utf-8", errors="replace")
        m = _BODY_OPEN.search(text)
        text = text[: m.end()] + banner(e) + text[m.end():] if m else banner(e) + text
        target = output / "editions" / e.name / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target.relative_to(output).as_posix())
    (output / "versions.json").write_text(json.dumps(versions(editions), indent=2) + "\n", encoding="utf-8")
    written.append("versions.json")
    return written
