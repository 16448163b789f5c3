"""Where things live in the staged docs folder and in the built site, and links between them.

Markdown links are written as relative `.md` paths so that MkDocs resolves and validates them;
raw HTML (panels, tables) carries final URLs, computed here the way MkDocs computes them with
`use_directory_urls` on (`techniques/evasion.md` is served at `techniques/evasion/`).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from functools import lru_cache
from urllib.parse import quote as _quote

_PLAIN = re.compile(r"[A-Za-z0-9_.\-/~]*")


def quote(path: str) -> str:
    """Percent-encode a path for a link; most paths need nothing, so skip the work for them."""
    return path if _PLAIN.fullmatch(path) else _quote(path)

# Generated pages, by role; a vault note may not occupy one of these paths.
HOME = "index.md"
GROWTH_MAP = "growth-map.md"
COVERAGE = "coverage.md"
ATLAS_MATRIX = "atlas-matrix.md"
GRAPH = "graph.md"
EVIDENCE_REPORT = "evidence.md"
TAGS_INDEX = "tags/index.md"
EDITIONS = "editions.md"
ASSETS_DIR = "assets/fmbuild"
RUNS_DIR = "runs"  # published evidence logs and artifacts: runs/<module>/...

RESERVED_FILES = frozenset({HOME, GROWTH_MAP, COVERAGE, ATLAS_MATRIX, GRAPH, EVIDENCE_REPORT, EDITIONS})
RESERVED_DIRS = ("tags/", "assets/", f"{RUNS_DIR}/", "editions/", "search/")


def is_reserved(docs_path: str) -> bool:
    lowered = docs_path.lower()
    return lowered in RESERVED_FILES or lowered.startswith(RESERVED_DIRS)


_UNSAFE_SEGMENT = re.compile(r"[^\w\-]+")


@lru_cache(maxsize=10_000)
def tag_page(tag: str) -> str:
    """`target/ml-model` -> `tags/target/ml-model.md` (nesting kept, so no two tags collide).
    A segment with characters that do not belong in a path is slugged, with a short hash of
    the original so that two such tags still get two pages."""
    parts = []
    for segment in tag.split("/"):
        clean = _UNSAFE_SEGMENT.sub("-", segment).strip("-")
        if clean != segment or not clean:
            clean = f"{clean or 'tag'}-{hashlib.sha256(segment.encode()).hexdigest()[:6]}"
        parts.append(clean)
    return "tags/" + "/".join(parts) + ".md"


def page_url(docs_path: str) -> str:
    """The URL (relative to the site root, '' for the home page) MkDocs gives a docs file."""
    if not docs_path.endswith(".md"):
        return docs_path
    stem = docs_path[:-3]
    folder, _, name = stem.rpartition("/")
    if name.lower() in ("index", "readme"):
        return f"{folder}/" if folder else ""
    return f"{stem}/"


def _dir_of_url(url: str) -> str:
    """The folder a page URL is served from ('' for the root)."""
    if url.endswith("/") or url == "":
        return url.rstrip("/")
    return posixpath.dirname(url)


@lru_cache(maxsize=200_000)
def _relpath(target: str, start: str) -> str:
    """`posixpath.relpath` for clean relative paths (no `.`/`..` parts), without its calls to
    `os.getcwd`: a large vault asks for tens of thousands of these."""
    t = [p for p in target.split("/") if p]
    s = [p for p in start.split("/") if p and p != "."]
    common = 0
    while common < min(len(t), len(s)) and t[common] == s[common]:
        common += 1
    parts = [".."] * (len(s) - common) + t[common:]
    return "/".join(parts) or "."


@lru_cache(maxsize=200_000)
def relative_md(from_docs: str, to_docs: str) -> str:
    """A relative link between two docs files, as written in Markdown (MkDocs rewrites it)."""
    return quote(_relpath(to_docs, posixpath.dirname(from_docs)))


def relative_url(from_docs: str, to: str, *, to_is_docs: bool = True) -> str:
    """A relative URL from the page built from `from_docs` to a docs page or a plain file."""
    base = _dir_of_url(page_url(from_docs)) or "."
    target = page_url(to) if to_is_docs else to
    rel = _relpath(target, "" if base == "." else base)
    if (target.endswith("/") or target == "") and not rel.endswith("/"):
        rel += "/"
    return quote(rel)
