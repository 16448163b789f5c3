"""The built site's last line of defence: an allow-list sanitizer over the final HTML.

Every page MkDocs writes is parsed again (the standard library's HTML tokenizer) and rebuilt
from what the allow-list names: an element outside it is dropped (its text kept, escaped), an
attribute outside it is dropped, every attribute value is re-quoted and every text run
re-escaped, so nothing a note or a run wrote can become markup the list does not name. What
the allow-list refuses, whatever the source (raw HTML, Python-Markdown's `attr_list`, a
recorded metric, a title):

- event handlers (`on*`), `srcdoc`, `formaction`, `srcset`, `<base>`, `<meta http-equiv>`,
  `<iframe>`/`<object>`/`<embed>`, MathML and every SVG element but plain shapes;
- URLs with any scheme but http(s)/mailto in links (`javascript:`, `data:`, `vbscript:`, also
  entity-encoded or split by whitespace), and anything but a same-site path where a URL loads
  (`src`, a stylesheet or icon `<link>`): the site requests no other host;
- `style` attributes using `url()`, `expression()`, `@import`, escapes or any function but a
  handful of colour and arithmetic ones;
- scripts, except the theme's own: a `src` under the site's `assets/` script folders, a JSON
  data block (re-serialised, so it cannot close its element), or an inline script whose text is
  one of Material's own inline scripts (read from the installed theme's templates, so a theme
  upgrade keeps working).

Two policies: `CONTENT` for what a note's Markdown renders to (run as a MkDocs hook before the
page template and the search index see it: no scripts at all, no `data-md-*` theme hooks, no
ids or names in the theme's reserved `__` namespace), and `PAGE` for the whole page afterwards.
Tokenizer and browser agree where it matters because the output holds only allowed tags and
escaped text: what the tokenizer took for text cannot become a tag in the browser.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

VOID = frozenset({"area", "br", "col", "hr", "img", "input", "link", "meta", "source", "wbr"})
# Elements dropped together with everything inside them (their text would be noise or code).
DROP_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "embed", "noembed",
                               "noframes", "math", "foreignobject", "xmp", "plaintext"})

_GLOBAL = frozenset({"class", "id", "title", "lang", "dir", "role", "hidden", "tabindex", "style"})
_CONTENT_TAGS: dict[str, frozenset[str]] = {
    t: frozenset() for t in (
        "abbr b blockquote br caption center cite code dd del details dfn div dl dt em figcaption figure "
        "h1 h2 h3 h4 h5 h6 hr i ins kbd li mark ol p pre q s samp small span strong sub summary sup "
        "table tbody td tfoot th thead time tr u ul var article section aside nav header footer main "
        "colgroup col label"
    ).split()
}
_CONTENT_TAGS.update({
    "a": frozenset({"href", "name", "rel", "target"}),
    "img": frozenset({"src", "alt", "width", "height", "loading", "align"}),
    "ol": frozenset({"start", "type", "reversed"}),
    "li": frozenset({"value"}),
    "td": frozenset({"colspan", "rowspan", "align", "style", "data-value"}),
    "th": frozenset({"colspan", "rowspan", "align", "scope", "style", "data-sort"}),
    "col": frozenset({"span", "width"}),
    "details": frozenset({"open"}),
    "time": frozenset({"datetime"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "del": frozenset({"cite", "datetime"}),
    "ins": frozenset({"cite", "datetime"}),
    "div": frozenset({"style", "data-module", "data-playbook", "data-node-count"}),
    "span": frozenset({"style"}),
    "label": frozenset({"for"}),
    # task lists (pymdownx.tasklist): a disabled checkbox, nothing else
    "input": frozenset({"type", "checked", "disabled"}),
    # SVG shapes only (Material's icons, our bars): no <use>, <image>, <a>, <animate>, <style>
    "svg": frozenset({"xmlns", "viewbox", "width", "height", "fill", "aria-hidden", "focusable"}),
    "path": frozenset({"d", "fill", "fill-rule", "clip-rule", "stroke", "stroke-width"}),
    "g": frozenset({"fill", "stroke", "transform"}),
    "circle": frozenset({"cx", "cy", "r", "fill", "stroke", "stroke-width"}),
    "rect": frozenset({"x", "y", "width", "height", "rx", "ry", "fill", "stroke"}),
    "line": frozenset({"x1", "y1", "x2", "y2", "stroke", "stroke-width"}),
    "polyline": frozenset({"points", "fill", "stroke", "stroke-width"}),
    "polygon": frozenset({"points", "fill", "stroke", "stroke-width"}),
})
_CONTENT_INPUT_TYPES = frozenset({"checkbox"})

# The theme's frame around the content (Material 9): the head, header, drawers, search form.
_PAGE_TAGS = dict(_CONTENT_TAGS)
_PAGE_TAGS.update({
    "html": frozenset({"lang", "dir", "class"}),
    "head": frozenset(),
    "body": frozenset({"dir"}),
    "title": frozenset(),
    "meta": frozenset({"charset", "name", "content"}),
    "link": frozenset({"rel", "href", "type", "sizes", "hreflang"}),
    "script": frozenset({"src", "type", "id"}),
    "form": frozenset({"name"}),
    "input": frozenset({"type", "checked", "disabled", "name", "value", "placeholder", "autocapitalize",
                        "autocomplete", "autocorrect", "spellcheck", "required", "aria-label", "for"}),
    "button": frozenset({"type", "aria-label"}),
    "label": frozenset({"for"}),
    "a": _CONTENT_TAGS["a"] | {"aria-label"},
    "nav": frozenset({"aria-label", "aria-labelledby", "aria-expanded"}),
    "p": frozenset({"aria-live"}),
    "ul": frozenset(),
    "tr": frozenset(),
})
_PAGE_INPUT_TYPES = frozenset({"checkbox", "radio", "text", "search"})
# fmbuild's generated pages (graph, coverage, report): their controls and data, no theme hooks.
_GENERATED_TAGS = dict(_CONTENT_TAGS)
_GENERATED_TAGS.update({
    "input": frozenset({"type", "checked", "value", "placeholder", "aria-label"}),
    "button": frozenset({"type", "aria-label"}),
    "script": frozenset({"src", "type", "id"}),
})
_META_NAMES = frozenset({"viewport", "description", "author", "generator", "color-scheme", "theme-color", "robots"})
_LINK_RELS_LOADING = frozenset({"stylesheet", "icon", "shortcut icon", "apple-touch-icon", "manifest"})
_LINK_RELS_PLAIN = frozenset({"canonical", "prev", "next", "alternate"})
_SCRIPT_DIRS = ("assets/javascripts/", "assets/fmbuild/")
_DATA_SCRIPT_IDS = re.compile(r"^(__config|fm-[\w-]+)$")

_URL_ATTRS = frozenset({"href", "src", "cite", "action", "poster", "background", "xlink:href"})
_LOADING_ATTRS = frozenset({"src", "poster", "background"})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[a-z0-9+/=\s]*$", re.I)

_CSS_DECL = re.compile(r"^\s*(--[\w-]+|-?[a-z][a-z-]*)\s*:\s*(.*?)\s*$", re.I)
_CSS_VALUE = re.compile(r"^[\w\s#%.,+\-/*()'\"!]*$")
_CSS_FUNC = re.compile(r"([\w-]*)\s*\(")
_CSS_FUNCS = frozenset({"rgb", "rgba", "hsl", "hsla", "calc", "var", "min", "max", "clamp", ""})
_SAFE_ID = re.compile(r"^(?!__)[\w:.-]{1,200}$", re.ASCII)


def _plain_url(value: str) -> str:
    """The URL as a browser reads it: entities decoded, whitespace and controls removed."""
    return re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(value)).lower()


def url_allowed(value: str, *, loads: bool, allow_data_images: bool = False) -> bool:
    """A link may go to http(s)/mailto or a path; a URL that loads must stay on this site."""
    plain = _plain_url(value)
    if "\\" in plain:  # `/\evil.example` is another host to a browser
        return False
    scheme = _SCHEME.match(plain)
    if loads:
        if allow_data_images and _IMAGE_DATA.match(html.unescape(value).strip()):
            return True
        return scheme is None and not plain.startswith("//")
    return scheme is None or scheme.group(1) in _LINK_SCHEMES


def style_allowed(value: str) -> bool:
    """Inline CSS: plain declarations; no `url()`, `image-set()`, `expression()`, `@import`, escapes."""
    text = html.unescape(value)
    if "/*" in text or "\\" in text or "@" in text or "<" in text:
        return False
    for decl in text.split(";"):
        if not decl.strip():
            continue
        m = _CSS_DECL.match(decl)
        if m is None or not _CSS_VALUE.match(m.group(2)):
            return False
        if any(f.lower() not in _CSS_FUNCS for f in _CSS_FUNC.findall(m.group(2))):
            return False
        if m.group(1).lower() in {"behavior", "-moz-binding"}:
            return False
    return True


@lru_cache(maxsize=1)
def theme_inline_scripts() -> tuple[re.Pattern[str], ...]:
    """Material's own inline scripts as patterns: each `{{ … }}` in the template may be a
    relative path (the only thing Material fills in there)."""
    try:
        import material
    except ImportError:  # no theme installed: no inline script is trusted
        return ()
    folder = Path(material.__file__).parent / "templates" / "partials" / "javascripts"
    patterns = []
    for template in sorted(folder.glob("*.html")):
        text = template.read_text(encoding="utf-8", errors="replace")
        for body in re.findall(r"<script>(.*?)</script>", text, re.S):
            parts = re.split(r"\{\{.*?\}\}", body, flags=re.S)
            if any("{%" in p for p in parts):
                continue
            patterns.append(re.compile(r"[\w./-]*".join(re.escape(p) for p in parts), re.S))
    return tuple(patterns)


@dataclass(frozen=True)
class Policy:
    name: str
    tags: dict[str, frozenset[str]]
    input_types: frozenset[str]
    scripts: bool  # the theme's scripts may stay
    theme_hooks: bool  # data-md-* and aria-* attributes (Material's components)
    allow_data_images: bool = False
    head_style: bool = False  # an Edition's own <style> block and its CSP meta
    reuse_pieces: bool = False  # whole pages, whose frame repeats: see `clean_html`


CONTENT = Policy("content", _CONTENT_TAGS, _CONTENT_INPUT_TYPES, scripts=False, theme_hooks=False)
GENERATED = Policy("generated", _GENERATED_TAGS, frozenset({"checkbox", "search", "text"}), scripts=True,
                   theme_hooks=False)
PAGE = Policy("page", _PAGE_TAGS, _PAGE_INPUT_TYPES, scripts=True, theme_hooks=True, reuse_pieces=True)
EDITION = Policy("edition", _PAGE_TAGS, _PAGE_INPUT_TYPES, scripts=False, theme_hooks=False,
                 allow_data_images=True, head_style=True, reuse_pieces=True)


class _Rebuild(HTMLParser):
    def __init__(self, policy: Policy) -> None:
        super().__init__(convert_charrefs=True)
        self.policy = policy
        self.out: list[str] = []
        self.removed: list[str] = []
        self.skip: list[str] = []  # open elements being dropped with their content
        self.raw: tuple[str, list[tuple[str, str]]] | None = None  # an open script/style kept if its text is safe
        self.raw_text: list[str] = []

    # --- tokens -------------------------------------------------------------------------------

    def handle_decl(self, decl: str) -> None:
        # Only the one doctype, before any markup (else the page would fall into quirks mode).
        if decl.lower().startswith("doctype") and not "".join(self.out).strip():
            self.out[:] = ["<!doctype html>\n"]

    def handle_comment(self, data: str) -> None:
        pass  # comments carry nothing a reader needs (and conditional comments are markup)

    def handle_pi(self, data: str) -> None:
        self.removed.append("processing instruction")

    def unknown_decl(self, data: str) -> None:
        self.removed.append("CDATA section")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if self.raw is not None and tag == self.raw[0]:
            self._finish_raw()
            return
        if tag in self.policy.tags and tag not in VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.raw is not None:
            self.raw_text.append(data)
            return
        self.out.append(html.escape(data, quote=False))

    # --- decisions ----------------------------------------------------------------------------

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> None:
        if self.skip:
            if tag == self.skip[-1] and not closed and tag not in VOID:
                self.skip.append(tag)
            return
        if tag in ("script", "style"):
            kept = self._raw_allowed(tag, attrs)
            if kept and not closed:
                self.raw, self.raw_text = (tag, [(k, v or "") for k, v in attrs]), []
            elif not closed:
                self.skip.append(tag)
                self.removed.append(f"<{tag}>")
            return
        if tag not in self.policy.tags:
            self.removed.append(f"<{tag}>")
            if tag in DROP_WITH_CONTENT and not closed and tag not in VOID:
                self.skip.append(tag)
            return
        kept_attrs = self._attributes(tag, attrs)
        if kept_attrs is None:
            self.removed.append(f"<{tag}>")
            return
        rendered = "".join(f' {k}="{html.escape(v, quote=True)}"' if v is not None else f" {k}" for k, v in kept_attrs)
        self.out.append(f"<{tag}{rendered}>")
        if closed and tag not in VOID:
            self.out.append(f"</{tag}>")

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> list[tuple[str, str | None]] | None:
        """The attributes that stay; None drops the element itself (a meta or link that would
        refresh, load or redirect)."""
        policy = self.policy
        allowed = policy.tags[tag] | _GLOBAL
        kept: list[tuple[str, str | None]] = []
        values = {k: (v or "") for k, v in attrs}
        if tag == "meta":
            if "http-equiv" in values:
                csp = values["http-equiv"].strip().lower() == "content-security-policy"
                if not (policy.head_style and csp):
                    return None
                return [("http-equiv", "Content-Security-Policy"), ("content", values.get("content", ""))]
            if "name" in values and values["name"].lower() not in _META_NAMES:
                return None
        if tag == "link":
            rel = values.get("rel", "").strip().lower()
            if rel in _LINK_RELS_LOADING:
                if not url_allowed(values.get("href", ""), loads=True):
                    return None
            elif rel not in _LINK_RELS_PLAIN:
                return None
        if tag == "input" and values.get("type", "text").lower() not in policy.input_types:
            return None
        for key, value in attrs:
            text = value or ""
            if key.startswith("on") or key in ("srcdoc", "srcset", "formaction", "xmlns:xlink", "is"):
                self.removed.append(f"{key}= on <{tag}>")
                continue
            if key not in allowed and not self._theme_attr(key):
                self.removed.append(f"{key}= on <{tag}>")
                continue
            if key in _URL_ATTRS and not url_allowed(
                text, loads=key in _LOADING_ATTRS or tag == "link",
                allow_data_images=policy.allow_data_images and tag == "img",
            ):
                self.removed.append(f"{key}= on <{tag}>")
                if key in ("src", "href") and tag in ("img", "link", "script"):
                    return None
                continue
            if key == "style" and not style_allowed(text):
                self.removed.append(f"style= on <{tag}>")
                continue
            if key in ("id", "name", "for") and not policy.theme_hooks and not _SAFE_ID.match(text):
                self.removed.append(f"{key}= on <{tag}>")
                continue
            if key == "target" and text not in ("_blank", "_self"):
                continue
            kept.append((key, value))
        if tag == "a" and any(k == "target" for k, _ in kept):
            kept = [(k, v) for k, v in kept if k != "rel"] + [("rel", "noopener noreferrer")]
        if tag == "input" and policy is CONTENT:
            kept = [(k, v) for k, v in kept if k != "disabled"] + [("disabled", None)]
        return kept

    def _theme_attr(self, key: str) -> bool:
        if not self.policy.theme_hooks:
            return key.startswith("aria-") and key != "aria-owns"
        return key.startswith(("aria-", "data-md-")) or key in {"data-md-component"}

    def _raw_allowed(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        values = {k: (v or "") for k, v in attrs}
        if tag == "style":
            return self.policy.head_style and not values
        if not self.policy.scripts:
            return False
        if set(values) - {"src", "type", "id"}:
            return False
        if "src" in values:
            return _theme_script_path(values["src"])
        kind = values.get("type", "").lower()
        if kind == "application/json":
            return bool(_DATA_SCRIPT_IDS.match(values.get("id", "")))
        return kind in ("", "text/javascript") and "id" not in values

    def _finish_raw(self) -> None:
        assert self.raw is not None
        tag, attrs = self.raw
        text = "".join(self.raw_text)
        self.raw, self.raw_text = None, []
        values = dict(attrs)
        rendered = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs)
        if tag == "style":
            if _css_block_safe(text):
                self.out.append(f"<style>{text}</style>")
            else:
                self.removed.append("<style>")
            return
        if "src" in values:
            if text.strip():
                self.removed.append("<script> text beside src")
            self.out.append(f"<script{rendered}></script>")
            return
        if values.get("type", "").lower() == "application/json":
            try:
                data = json.loads(text)
            except ValueError:
                self.removed.append("<script> with data that is not JSON")
                return
            body = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            self.out.append(f"<script{rendered}>{body}</script>")
            return
        if "<!--" in text or "</" in text or not any(p.fullmatch(text) for p in theme_inline_scripts()):
            self.removed.append("<script> that is not the theme's")
            return
        self.out.append(f"<script>{text}</script>")

    def at_rest(self) -> bool:
        """Nothing buffered and nothing open that changes how the next text is read."""
        return not self.rawdata and not self.skip and self.raw is None and self.cdata_elem is None

    def result(self) -> str:
        if self.raw is not None:  # an unterminated script: dropped
            self.removed.append(f"unterminated <{self.raw[0]}>")
            self.raw = None
        return "".join(self.out)


def _theme_script_path(src: str) -> bool:
    """A script file of the theme or of fmbuild: `assets/javascripts/…` or `assets/fmbuild/…`,
    relative to the page (any number of `../`), never another host, never an attachment."""
    if not url_allowed(src, loads=True):
        return False
    path = re.sub(r"^(?:\./|\.\./)+|^/", "", src.split("?", 1)[0].split("#", 1)[0])
    return path.endswith(".js") and ".." not in path.split("/") and path.startswith(_SCRIPT_DIRS)


def _css_block_safe(css: str) -> bool:
    lowered = css.lower()
    return not any(bad in lowered for bad in ("url(", "@import", "expression(", "\\", "</", "<!--", "image-set(", "-moz-binding", "behavior"))


# Lines already rebuilt, by policy: Material repeats the navigation on every page, line for line,
# so most of a page is a line seen before. A line is reused only when the parser is at rest on
# both sides of it (no tag half read, no element being dropped, no script open): its output then
# depends on its own text alone.
_LINES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
_LINES_MAX = 100_000
# Pieces of a page: cut at each line that starts with a tag (the theme writes one a line, and
# its navigation repeats on every page). Where the cut falls changes only speed: a piece is
# reused only between two points where the parser is at rest.
_PIECE = re.compile(r"\n(?=[ \t]*<)")  # the newline itself goes between pieces


def clean_html(text: str, policy: Policy = PAGE) -> tuple[str, list[str]]:
    """`text` rebuilt from what `policy` allows; also what was removed (for the build log)."""
    parser = _Rebuild(policy)
    if not policy.reuse_pieces:  # a note's own content: seen once, nothing to reuse
        parser.feed(text)
        parser.close()
        return parser.result(), parser.removed
    out, removed = parser.out, parser.removed
    seen = _LINES.setdefault(policy.name, {})
    at_rest = True
    for index, piece in enumerate(_PIECE.split(text)):
        if index:  # the newline the split took out: plain text at rest, else the parser's
            if at_rest:
                out.append("\n")
            else:
                parser.feed("\n")
                at_rest = parser.at_rest()
        if at_rest and (known := seen.get(piece)) is not None:
            out.append(known[0])
            if known[1]:
                removed.extend(known[1])
            continue
        mark, removed_mark = len(out), len(removed)
        parser.feed(piece)
        now_at_rest = parser.at_rest()
        if at_rest and now_at_rest and "<!" not in piece:  # a doctype is kept only at the top
            if len(seen) >= _LINES_MAX:
                seen.clear()
            seen[piece] = ("".join(out[mark:]), tuple(removed[removed_mark:]))
        at_rest = now_at_rest
    parser.close()
    return parser.result(), parser.removed


CONTENT_REMOVED: list[str] = []  # filled by the MkDocs hook (`mkdocs_hooks.py`), read by the build
RENDERING: list[str] = []  # the page MkDocs renders now (set by the hook)


@dataclass
class HardenReport:
    pages: int = 0
    removed: dict[str, list[str]] = field(default_factory=dict)  # page -> what the pass removed


def harden_site(site_dir: Path, *, policy_for: Callable[[str], Policy] | None = None) -> HardenReport:
    """Rewrite every HTML file under `site_dir` through the allow-list (in place)."""
    report = HardenReport()
    for page in sorted(site_dir.rglob("*.html")):
        if page.is_symlink() or not page.is_file():
            continue
        rel = page.relative_to(site_dir).as_posix()
        policy = policy_for(rel) if policy_for else PAGE
        text = page.read_text(encoding="utf-8", errors="replace")
        cleaned, removed = clean_html(text, policy)
        report.pages += 1
        if removed:
            report.removed[rel] = removed
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")
    return report
